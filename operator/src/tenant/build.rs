//! Build step of the Tenant controller: the objects and status pieces derived from a Tenant, as
//! pure functions (no client, no database), unit-tested from fixtures.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Resource, runtime::reflector::ObjectRef};
use reqwest::Url;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::{
    conditions::{Desired, Status},
    crd::{TENANT_LABEL, Tenant},
    credentials,
    names::{self, RoleName},
};

/// Key of the DSN in the tenant's Secret; the runtime reads the variable of the same name.
pub const DSN_KEY: &str = "PADDOCK_DATABASE_URL";
/// Key of the role name in the tenant's Secret.
pub const USERNAME_KEY: &str = "username";
/// Key of the password in the tenant's Secret.
pub const PASSWORD_KEY: &str = "password";

/// Connection parameters that belong to the operator's own login and must not be handed on.
const PRIVATE_PARAMS: [&str; 6] = [
    "user",
    "password",
    "passfile",
    "sslcert",
    "sslkey",
    "sslpassword",
];

/// The base URL tenant DSNs are made from has no host to log in to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the tenant database URL must be a postgres:// URL with a host (set --tenant-database-url)"
)]
pub struct BadBaseUrl;

/// Checks that `base` can carry tenant credentials: a `postgres://` or `postgresql://` URL with a host.
pub fn parse_base_url(base: &str) -> Result<Url, BadBaseUrl> {
    let url = Url::parse(base).map_err(|_| BadBaseUrl)?;
    let scheme_ok = matches!(url.scheme(), "postgres" | "postgresql");
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) {
        return Err(BadBaseUrl);
    }
    Ok(url)
}

/// The tenant's DSN: `base` with the tenant role's credentials in place of the operator's, and
/// without parameters that name the operator's own credential files.
pub fn tenant_dsn(base: &Url, role: &RoleName, password: &str) -> String {
    let mut url = base.clone();
    // Both are ASCII from whitelists, so they need no percent-encoding and setting cannot fail
    // on a URL with a host (checked by parse_base_url).
    let _ = url.set_username(role.as_str());
    let _ = url.set_password(Some(password));
    let kept: Vec<(String, String)> = base
        .query_pairs()
        .filter(|(k, _)| !PRIVATE_PARAMS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    url.to_string()
}

/// The password stored in an existing tenant Secret, if it belongs to `role` and looks like one
/// the operator generated (a Secret edited into something else is not trusted).
pub fn password_from_secret(secret: &Secret, role: &RoleName) -> Option<String> {
    let data = secret.data.as_ref()?;
    let text = |key: &str| {
        data.get(key)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let password = text(PASSWORD_KEY)?;
    (text(USERNAME_KEY)? == role.as_str() && credentials::is_valid_password(&password))
        .then_some(password)
}

/// The Secret with the tenant's database credentials for `namespace`, owned by the Tenant.
pub fn db_secret(
    tenant: &Tenant,
    namespace: &str,
    role: &RoleName,
    password: &str,
    dsn: &str,
) -> Secret {
    let name = tenant.metadata.name.clone().unwrap_or_default();
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(names::db_secret_name(&name)),
            namespace: Some(namespace.to_owned()),
            labels: Some(names::tenant_labels(&name)),
            owner_references: tenant.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([
            (DSN_KEY.to_owned(), bytes(dsn)),
            (USERNAME_KEY.to_owned(), bytes(role.as_str())),
            (PASSWORD_KEY.to_owned(), bytes(password)),
        ])),
        ..Default::default()
    }
}

/// Server-side apply body that labels `namespace` as claimed by `tenant`.
pub fn namespace_claim(namespace: &str, tenant: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {TENANT_LABEL: tenant}},
    })
}

/// Merge patch that removes the tenant label from a released namespace.
pub fn namespace_release() -> Value {
    json!({"metadata": {"labels": {TENANT_LABEL: null}}})
}

/// Who a namespace belongs to, judged from its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Unlabelled, or already ours.
    Claimable,
    /// Labelled for another tenant.
    Taken(String),
}

pub fn claim_of(labels: Option<&BTreeMap<String, String>>, tenant: &str) -> Claim {
    match labels.and_then(|l| l.get(TENANT_LABEL)) {
        Some(owner) if owner != tenant => Claim::Taken(owner.clone()),
        _ => Claim::Claimable,
    }
}

/// `BudgetWarning` and `BudgetExceeded` for `spend` against the monthly `limit`.
pub fn budget_conditions(
    limit: Decimal,
    warn_at_percent: i32,
    spend: Decimal,
    currency: &str,
) -> [Desired; 2] {
    let shown = format!(
        "{} of {} {currency} spent this month",
        format_amount(spend),
        format_amount(limit)
    );
    let exceeded = if limit.is_zero() {
        spend > Decimal::ZERO
    } else {
        spend >= limit
    };
    let warn = exceeded
        || spend * Decimal::from(100) >= limit * Decimal::from(warn_at_percent) && !limit.is_zero();
    [
        if warn {
            Desired::new(
                "BudgetWarning",
                Status::True,
                "NearLimit",
                format!("{shown} (warning at {warn_at_percent}%)"),
            )
        } else {
            Desired::new(
                "BudgetWarning",
                Status::False,
                "BelowWarning",
                shown.clone(),
            )
        },
        if exceeded {
            Desired::new(
                "BudgetExceeded",
                Status::True,
                "OverBudget",
                format!("{shown}; model calls are refused"),
            )
        } else {
            Desired::new("BudgetExceeded", Status::False, "WithinBudget", shown)
        },
    ]
}

/// A money amount as status shows it: at most 6 decimals, at least 2, no trailing zeros beyond.
pub fn format_amount(amount: Decimal) -> String {
    let mut a = amount.round_dp(6).normalize();
    if a.scale() < 2 {
        a.rescale(2);
    }
    a.to_string()
}

/// The Tenant to reconcile when an AgentTask in `namespace` changes: the one whose spec claims
/// that namespace. A task reserves and settles budget as it runs, so its tenant's spend is read
/// again then, not only at the next resync.
pub fn tenant_claiming<'a>(
    tenants: impl IntoIterator<Item = &'a Tenant>,
    namespace: &str,
) -> Option<ObjectRef<Tenant>> {
    tenants
        .into_iter()
        .find(|t| {
            t.meta().deletion_timestamp.is_none()
                && t.spec.namespaces.iter().any(|n| n == namespace)
        })
        .map(ObjectRef::from_obj)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn tenant() -> Tenant {
        serde_yaml::from_str(
            r#"
apiVersion: paddock.dev/v1alpha1
kind: Tenant
metadata: {name: acme, uid: 0b0e7a52-7d3c-4a3e-9d2a-5b7c1f3f2a10}
spec:
  namespaces: [acme]
  auth: {issuer: "https://idp.example.com", audience: paddock}
  budget: {monthlyLimit: "25.00"}
"#,
        )
        .unwrap()
    }

    #[test]
    fn an_agent_task_maps_to_the_tenant_claiming_its_namespace() {
        let acme = tenant();
        let mut other = tenant();
        other.metadata.name = Some("globex".into());
        other.spec.namespaces = vec!["globex".into(), "shared-tools".into()];
        let tenants = [acme, other];
        assert_eq!(
            tenant_claiming(&tenants, "acme").map(|r| r.name),
            Some("acme".to_owned())
        );
        assert_eq!(
            tenant_claiming(&tenants, "shared-tools").map(|r| r.name),
            Some("globex".to_owned())
        );
        assert_eq!(
            tenant_claiming(&tenants, "kube-system"),
            None,
            "a namespace no Tenant claims maps to none"
        );
    }

    #[test]
    fn tenant_dsn_swaps_credentials_and_drops_private_parameters() {
        let base = parse_base_url(
            "postgres://paddock_admin:s3cret@db.example:5432/paddock?sslmode=verify-full&sslkey=/etc/admin.key&user=x&application_name=op",
        )
        .unwrap();
        let role = RoleName::for_tenant("acme");
        let dsn = tenant_dsn(&base, &role, "Pw0rdPw0rdPw0rdPw0rdPw0rdPw0rdPw0rd12");
        assert_eq!(
            dsn,
            format!(
                "postgres://{role}:Pw0rdPw0rdPw0rdPw0rdPw0rdPw0rdPw0rd12@db.example:5432/paddock?sslmode=verify-full&application_name=op"
            )
        );
        assert!(
            !dsn.contains("s3cret") && !dsn.contains("paddock_admin") && !dsn.contains("admin.key")
        );
        let plain = tenant_dsn(&parse_base_url("postgresql://a@h/db").unwrap(), &role, "p");
        assert_eq!(plain, format!("postgresql://{role}:p@h/db"));
    }

    #[test]
    fn base_urls_without_a_host_are_refused() {
        for bad in [
            "postgres:///paddock?host=/var/run/postgresql",
            "mysql://h/db",
            "not a url",
            "postgres://",
        ] {
            assert_eq!(parse_base_url(bad), Err(BadBaseUrl), "{bad}");
        }
    }

    #[test]
    fn the_db_secret_is_owned_labelled_and_round_trips_its_password() {
        let t = tenant();
        let role = RoleName::for_tenant("acme");
        let password = credentials::generate_password();
        let s = db_secret(&t, "acme", &role, &password, "postgres://x");
        assert_eq!(s.metadata.name.as_deref(), Some("paddock-db-acme"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("acme"));
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get(TENANT_LABEL).map(String::as_str), Some("acme"));
        assert_eq!(
            labels.get(names::MANAGED_BY).map(String::as_str),
            Some(names::MANAGER)
        );
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Tenant", "acme", Some(true))
        );
        assert_eq!(password_from_secret(&s, &role), Some(password.clone()));
        // Another role's Secret, or a tampered password, is not reused.
        assert_eq!(
            password_from_secret(&s, &RoleName::for_tenant("other")),
            None
        );
        let mut tampered = s.clone();
        tampered.data.as_mut().unwrap().insert(
            PASSWORD_KEY.into(),
            ByteString(b"x'; DROP ROLE y; --".to_vec()),
        );
        assert_eq!(password_from_secret(&tampered, &role), None);
    }

    #[test]
    fn namespaces_labelled_for_another_tenant_are_not_claimable() {
        let labels = BTreeMap::from([(TENANT_LABEL.to_owned(), "globex".to_owned())]);
        assert_eq!(
            claim_of(Some(&labels), "acme"),
            Claim::Taken("globex".into())
        );
        assert_eq!(claim_of(Some(&labels), "globex"), Claim::Claimable);
        assert_eq!(claim_of(None, "acme"), Claim::Claimable);
        assert_eq!(
            namespace_claim("acme", "acme")["metadata"]["labels"][TENANT_LABEL],
            "acme"
        );
        assert!(namespace_release()["metadata"]["labels"][TENANT_LABEL].is_null());
    }

    #[test]
    fn budget_conditions_follow_spend() {
        let [warn, over] = budget_conditions(d("25"), 80, d("3.12"), "USD");
        assert_eq!((warn.status, over.status), (Status::False, Status::False));
        assert_eq!(over.message, "3.12 of 25.00 USD spent this month");
        let [warn, over] = budget_conditions(d("25"), 80, d("20"), "USD");
        assert_eq!(
            (warn.status, warn.reason, over.status),
            (Status::True, "NearLimit", Status::False)
        );
        let [warn, over] = budget_conditions(d("25"), 80, d("25.000001"), "USD");
        assert_eq!(
            (warn.status, over.status, over.reason),
            (Status::True, Status::True, "OverBudget")
        );
        let [_, over] = budget_conditions(d("0"), 80, d("0"), "USD");
        assert_eq!(
            over.status,
            Status::False,
            "a zero budget with no spend is not exceeded"
        );
        let [_, over] = budget_conditions(d("0"), 80, d("0.01"), "USD");
        assert_eq!(over.status, Status::True);
    }

    #[test]
    fn amounts_are_shown_with_two_to_six_decimals() {
        assert_eq!(format_amount(d("3.120000")), "3.12");
        assert_eq!(format_amount(d("0")), "0.00");
        assert_eq!(format_amount(d("1.2345678")), "1.234568");
        assert_eq!(format_amount(d("25")), "25.00");
    }
}
