//! The Tenant controller's database step against the real PostgreSQL, run as a non-superuser
//! admin role (what production gives the operator): provision, re-apply unchanged, change,
//! deprovision; and what the provisioned role can and cannot see.
//!
//! ```sh
//! eval "$(scripts/postgres.sh start --data $HOME/.cache/paddock/pgdata-test)"
//! cargo test -p paddock-operator --test tenant_db
//! ```

use std::str::FromStr;

use paddock_operator::{
    crd::{Tenant, tenant::DeletionPolicy},
    credentials,
    names::{RoleName, quote_ident},
    tenant::{
        db::{self, DbFailure},
        spec::TenantRecord,
    },
};
use paddock_testkit::operator::db::{Admin, login, suffix};
use rust_decimal::Decimal;
use sqlx::PgPool;

fn record(name: &str, yaml_extra: &str) -> TenantRecord {
    let yaml = format!(
        r#"
apiVersion: paddock.dev/v1alpha1
kind: Tenant
metadata: {{name: {name}}}
spec:
  namespaces: [{name}]
  auth: {{issuer: "https://idp.example.com", audience: paddock}}
  budget: {{monthlyLimit: "25.00"}}
  models:
    allowed: [gpt-4o-mini]
    prices:
      gpt-4o-mini: {{inputPer1kTokens: "0.00015", outputPer1kTokens: "0.0006"}}
      llama3.2: {{inputPer1kTokens: "0", outputPer1kTokens: "0"}}
{yaml_extra}"#
    );
    let tenant: Tenant = serde_yaml::from_str(&yaml).unwrap();
    TenantRecord::from_tenant(&tenant).unwrap()
}

async fn stored_verifier(superuser: &PgPool, role: &RoleName) -> Option<String> {
    sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role.as_str())
        .fetch_optional(superuser)
        .await
        .unwrap()
        .flatten()
}

async fn role_exists(pool: &PgPool, role: &RoleName) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(role.as_str())
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn provisioning_is_idempotent_keeps_the_password_and_follows_spec_changes(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let name = format!("t-{}", suffix());
    let rec = record(&name, "");
    let password = credentials::generate_password();

    let first = db::provision(&admin.pool, &rec, &password).await.unwrap();
    assert!(first.role_created && first.rows_changed, "{first:?}");

    // The role: a plain login, member of paddock_tenant, mapped to its tenant.
    let (login_ok, superuser, bypass, createrole, createdb): (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
    )
    .bind(rec.role.as_str())
    .fetch_one(&admin.pool)
    .await
    .unwrap();
    assert!(login_ok && !superuser && !bypass && !createrole && !createdb);
    let member: bool = sqlx::query_scalar("SELECT pg_has_role($1, 'paddock_tenant', 'MEMBER')")
        .bind(rec.role.as_str())
        .fetch_one(&admin.pool)
        .await
        .unwrap();
    assert!(member);
    let mapped: String =
        sqlx::query_scalar("SELECT tenant_id FROM tenant_roles WHERE role_name = $1")
            .bind(rec.role.as_str())
            .fetch_one(&admin.pool)
            .await
            .unwrap();
    assert_eq!(mapped, name);

    // PostgreSQL stored exactly our verifier, and it accepts the Secret's password.
    let verifier = stored_verifier(&admin.superuser, &rec.role)
        .await
        .expect("a password is set");
    assert_eq!(
        verifier,
        credentials::scram_verifier(rec.role.as_str(), &password)
    );
    assert!(credentials::verifier_matches(&verifier, &password));
    assert!(!credentials::verifier_matches(
        &verifier,
        &credentials::generate_password()
    ));

    // The rows.
    let (budget, rpm, models): (Decimal, i32, Vec<String>) = sqlx::query_as(
        "SELECT budget_monthly, requests_per_minute, allowed_models FROM tenants WHERE id = $1",
    )
    .bind(&name)
    .fetch_one(&admin.pool)
    .await
    .unwrap();
    assert_eq!(
        (budget, rpm, models),
        (
            Decimal::from_str("25.00").unwrap(),
            600,
            vec!["gpt-4o-mini".to_owned()]
        )
    );
    let updated_at = |pool: PgPool, name: String| async move {
        sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
            "SELECT updated_at FROM tenants WHERE id = $1",
        )
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let before = updated_at(admin.pool.clone(), name.clone()).await;

    // Re-applied unchanged: nothing is created or rewritten, the password stays.
    let again = db::provision(&admin.pool, &rec, &password).await.unwrap();
    assert!(!again.role_created && !again.rows_changed, "{again:?}");
    assert_eq!(
        stored_verifier(&admin.superuser, &rec.role)
            .await
            .as_deref(),
        Some(verifier.as_str())
    );
    assert_eq!(updated_at(admin.pool.clone(), name.clone()).await, before);

    // Changed: budget up, one price dropped.
    let changed = record(&name, "  rateLimit: {requestsPerMinute: 60, burst: 10}\n").clone();
    let mut changed = TenantRecord {
        budget_monthly: Decimal::from_str("99.50").unwrap(),
        ..changed
    };
    changed.prices.retain(|(m, _, _)| m == "gpt-4o-mini");
    let third = db::provision(&admin.pool, &changed, &password)
        .await
        .unwrap();
    assert!(!third.role_created && third.rows_changed);
    let (budget, rpm): (Decimal, i32) =
        sqlx::query_as("SELECT budget_monthly, requests_per_minute FROM tenants WHERE id = $1")
            .bind(&name)
            .fetch_one(&admin.pool)
            .await
            .unwrap();
    assert_eq!((budget, rpm), (Decimal::from_str("99.50").unwrap(), 60));
    let prices: Vec<String> =
        sqlx::query_scalar("SELECT model FROM model_prices WHERE tenant_id = $1 ORDER BY model")
            .bind(&name)
            .fetch_all(&admin.pool)
            .await
            .unwrap();
    assert_eq!(prices, ["gpt-4o-mini"]);

    // The tenants row brought its own documents partition.
    let partition: Option<String> =
        sqlx::query_scalar("SELECT to_regclass(paddock_documents_partition($1)::text)::text")
            .bind(&name)
            .fetch_one(&admin.pool)
            .await
            .unwrap();
    assert!(partition.is_some(), "a documents partition for {name}");

    // Deleted with Retain: role and mapping gone, rows kept.
    let gone = db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Retain)
        .await
        .unwrap();
    assert!(gone.role_dropped && !gone.rows_deleted, "{gone:?}");
    assert!(!role_exists(&admin.pool, &rec.role).await);
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(&name)
        .fetch_one(&admin.pool)
        .await
        .unwrap();
    let mappings: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenant_roles WHERE tenant_id = $1")
            .bind(&name)
            .fetch_one(&admin.pool)
            .await
            .unwrap();
    assert_eq!((kept, mappings), (1, 0));

    // Recreated, then deleted with Delete: rows gone too. Deprovisioning twice is harmless.
    db::provision(&admin.pool, &rec, &password).await.unwrap();
    let gone = db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Delete)
        .await
        .unwrap();
    assert!(gone.role_dropped && gone.rows_deleted);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(&name)
        .fetch_one(&admin.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);
    let partition: Option<String> =
        sqlx::query_scalar("SELECT to_regclass(paddock_documents_partition($1)::text)::text")
            .bind(&name)
            .fetch_one(&admin.pool)
            .await
            .unwrap();
    assert_eq!(
        partition, None,
        "the tenant's documents partition is dropped with it"
    );
    let twice = db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Delete)
        .await
        .unwrap();
    assert!(!twice.role_dropped && !twice.rows_deleted);
    admin.drop_role().await;
}

#[sqlx::test(migrations = false)]
async fn the_tenant_role_reads_only_its_own_rows(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let (a, b) = (format!("a-{}", suffix()), format!("b-{}", suffix()));
    let (ra, rb) = (record(&a, ""), record(&b, ""));
    db::provision(&admin.pool, &ra, &credentials::generate_password())
        .await
        .unwrap();
    db::provision(&admin.pool, &rb, &credentials::generate_password())
        .await
        .unwrap();
    for (tenant, doc) in [(&a, "doc-a"), (&b, "doc-b")] {
        sqlx::query("INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ($1, $2, 'text', 'h')")
            .bind(tenant)
            .bind(doc)
            .execute(&admin.pool)
            .await
            .unwrap();
    }

    let as_a = login(&admin.superuser, ra.role.as_str()).await;
    let docs: Vec<String> = sqlx::query_scalar("SELECT id FROM documents ORDER BY id")
        .fetch_all(&as_a)
        .await
        .unwrap();
    assert_eq!(docs, ["doc-a"]);
    let tenants: Vec<String> = sqlx::query_scalar("SELECT id FROM tenants")
        .fetch_all(&as_a)
        .await
        .unwrap();
    assert_eq!(
        tenants,
        std::slice::from_ref(&a),
        "only its own tenants row"
    );

    // Claiming the other tenant in the session setting changes nothing: the login is pinned.
    let mut tx = as_a.begin().await.unwrap();
    sqlx::query("SELECT set_config('paddock.tenant_id', $1, true)")
        .bind(&b)
        .execute(&mut *tx)
        .await
        .unwrap();
    let docs: Vec<String> = sqlx::query_scalar("SELECT id FROM documents")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(docs, ["doc-a"]);
    let write = sqlx::query(
        "INSERT INTO documents (tenant_id, id, content, content_hash) VALUES ($1, 'x', 'y', 'h')",
    )
    .bind(&b)
    .execute(&mut *tx)
    .await;
    assert_eq!(
        write
            .unwrap_err()
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501"),
        "RLS refuses a row for B"
    );
    tx.rollback().await.unwrap();

    // And it cannot change tenant settings or roles.
    let budget = sqlx::query("UPDATE tenants SET budget_monthly = 1000000")
        .execute(&as_a)
        .await;
    assert_eq!(
        budget
            .unwrap_err()
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501")
    );
    let mapping = sqlx::query("UPDATE tenant_roles SET tenant_id = $1")
        .bind(&b)
        .execute(&as_a)
        .await;
    assert_eq!(
        mapping
            .unwrap_err()
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("42501")
    );
    as_a.close().await;

    for (t, r) in [(&a, &ra.role), (&b, &rb.role)] {
        db::deprovision(&admin.pool, t, r, DeletionPolicy::Delete)
            .await
            .unwrap();
    }
    admin.drop_role().await;
}

#[sqlx::test(migrations = false)]
async fn deprovisioning_ends_the_roles_open_sessions(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let name = format!("s-{}", suffix());
    let rec = record(&name, "");
    db::provision(&admin.pool, &rec, &credentials::generate_password())
        .await
        .unwrap();
    let session = login(&admin.superuser, rec.role.as_str()).await;
    sqlx::query("SELECT 1").execute(&session).await.unwrap();

    let gone = db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Delete)
        .await
        .unwrap();
    assert!(gone.role_dropped);
    assert!(gone.sessions_terminated >= 1, "{gone:?}");
    assert!(
        sqlx::query("SELECT 1").execute(&session).await.is_err(),
        "the session was ended"
    );
    admin.drop_role().await;
}

/// A role that already exists under the derived name with powers a tenant must not have is
/// never adopted (it would let the tenant's runtime bypass row-level security).
#[sqlx::test(migrations = false)]
async fn a_privileged_role_under_the_derived_name_is_refused(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let name = format!("p-{}", suffix());
    let rec = record(&name, "");
    let q = quote_ident(rec.role.as_str());
    sqlx::query(&format!("CREATE ROLE {q} LOGIN BYPASSRLS"))
        .execute(&admin.superuser)
        .await
        .unwrap();

    let err = db::provision(&admin.pool, &rec, &credentials::generate_password())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DbFailure::RoleConflict { why, .. } if why.contains("BYPASSRLS")),
        "{err}"
    );
    assert_eq!(err.reason(), "RoleConflict");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(&name)
        .fetch_one(&admin.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the transaction rolled back");

    sqlx::query(&format!("DROP ROLE {q}"))
        .execute(&admin.superuser)
        .await
        .unwrap();
    admin.drop_role().await;
}

#[sqlx::test(migrations = false)]
async fn spend_is_this_months_ledger_plus_held_reservations(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let name = format!("m-{}", suffix());
    let rec = record(&name, "");
    db::provision(&admin.pool, &rec, &credentials::generate_password())
        .await
        .unwrap();
    assert_eq!(
        db::current_spend(&admin.pool, &name).await.unwrap().amount,
        Decimal::ZERO
    );
    let last_month = "(paddock_budget_period() - interval '1 month')::date";
    for (cost, period) in [
        ("1.25", "paddock_budget_period()"),
        ("2.000001", "paddock_budget_period()"),
        ("100", last_month),
    ] {
        sqlx::query(&format!(
            "INSERT INTO usage_ledger (tenant_id, user_id, model, cost, period_start) VALUES ($1, 'u', 'gpt-4o-mini', $2::numeric, {period})"
        ))
        .bind(&name)
        .bind(cost)
        .execute(&admin.pool)
        .await
        .unwrap();
    }
    for (amount, state) in [("0.5", "held"), ("7", "settled"), ("9", "released")] {
        sqlx::query(
            "INSERT INTO budget_reservations (tenant_id, id, period_start, user_id, model, amount, state)
             VALUES ($1, gen_random_uuid(), paddock_budget_period(), 'u', 'gpt-4o-mini', $2::numeric, $3)",
        )
        .bind(&name)
        .bind(amount)
        .bind(state)
        .execute(&admin.pool)
        .await
        .unwrap();
    }
    let spend = db::current_spend(&admin.pool, &name).await.unwrap();
    assert_eq!(
        spend.settled,
        Decimal::from_str("3.250001").unwrap(),
        "last month's 100 is not counted"
    );
    assert_eq!(
        spend.reserved,
        Decimal::from_str("0.5").unwrap(),
        "only held reservations"
    );
    assert_eq!(spend.amount, Decimal::from_str("3.750001").unwrap());
    assert_eq!(
        spend.period_start.format("%d %H:%M:%S").to_string(),
        "01 00:00:00"
    );
    db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Delete)
        .await
        .unwrap();
    admin.drop_role().await;
}

/// Database failures become fixed condition texts; the raw error never reaches status.
#[sqlx::test(migrations = false)]
async fn failures_are_reported_without_database_text(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    // A pool whose server went away.
    let closed = admin.pool.clone();
    let rec = record(&format!("f-{}", suffix()), "");
    let other = login(&admin.superuser, &admin.role).await;
    other.close().await;
    let err = db::provision(&other, &rec, &credentials::generate_password())
        .await
        .unwrap_err();
    assert_eq!(
        (err.reason(), err.to_string().as_str()),
        (
            "DatabaseUnavailable",
            "the database is unreachable; retrying"
        )
    );
    assert!(err.is_transient());
    drop(closed);
    admin.drop_role().await;
}

/// A tenant login that can `SET ROLE paddock_tenant` could (before migration 0012) leave its tenant. The role the
/// operator provisions cannot switch to any role, and one made the old way (a member with SET) is repaired when
/// the Tenant is reconciled again: the grant is replaced, not added beside.
#[sqlx::test(migrations = false)]
async fn the_tenant_login_cannot_switch_roles_and_an_old_grant_is_repaired(superuser: PgPool) {
    let admin = Admin::new(superuser).await;
    let name = format!("p-{}", suffix());
    let rec = record(&name, "");
    let password = credentials::generate_password();
    db::provision(&admin.pool, &rec, &password).await.unwrap();

    let set_role = |pool: PgPool| async move {
        let r = sqlx::query("SET ROLE paddock_tenant").execute(&pool).await;
        pool.close().await;
        r.err().and_then(|e| {
            e.as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned())
        })
    };
    let grants = |pool: PgPool, role: String| async move {
        sqlx::query_as::<_, (bool, bool, bool)>(
            "SELECT inherit_option, set_option, admin_option FROM pg_auth_members WHERE member = $1::regrole",
        )
        .bind(role)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let as_tenant = login(&admin.superuser, rec.role.as_str()).await;
    assert_eq!(set_role(as_tenant).await.as_deref(), Some("42501"));
    assert_eq!(
        grants(admin.pool.clone(), rec.role.quoted()).await,
        [(true, false, false)]
    );

    let grant_with_set = |grantor: PgPool, role: String| async move {
        sqlx::query(&format!("GRANT paddock_tenant TO {role} WITH SET TRUE"))
            .execute(&grantor)
            .await
            .unwrap();
    };
    // The old shape: the operator's own grant allows SET ROLE (`CREATE ROLE ... IN ROLE paddock_tenant`).
    grant_with_set(admin.pool.clone(), rec.role.quoted()).await;
    assert_eq!(
        set_role(login(&admin.superuser, rec.role.as_str()).await).await,
        None
    );

    db::provision(&admin.pool, &rec, &password).await.unwrap();
    assert_eq!(
        set_role(login(&admin.superuser, rec.role.as_str()).await)
            .await
            .as_deref(),
        Some("42501")
    );
    assert_eq!(
        grants(admin.pool.clone(), rec.role.quoted()).await,
        [(true, false, false)],
        "one pinned grant"
    );
    // Reconciling again changes nothing.
    db::provision(&admin.pool, &rec, &password).await.unwrap();
    assert_eq!(
        grants(admin.pool.clone(), rec.role.quoted()).await,
        [(true, false, false)]
    );

    // A grant with SET that someone else made, which the operator may not revoke, is a conflict it names,
    // never a role it hands out as it is.
    grant_with_set(admin.superuser.clone(), rec.role.quoted()).await;
    match db::provision(&admin.pool, &rec, &password).await {
        Err(DbFailure::RoleConflict { why, .. }) => {
            assert!(why.contains("lets it SET ROLE"), "{why}")
        }
        other => panic!("expected a role conflict, got {other:?}"),
    }
    sqlx::query(&format!("REVOKE paddock_tenant FROM {}", rec.role.quoted()))
        .execute(&admin.superuser)
        .await
        .unwrap();

    db::deprovision(&admin.pool, &name, &rec.role, DeletionPolicy::Delete)
        .await
        .unwrap();
    admin.drop_role().await;
}
