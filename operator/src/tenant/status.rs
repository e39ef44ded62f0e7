//! The status step of the Tenant controller: `DatabaseProvisioned`, `NamespacesClaimed`, `BudgetWarning`,
//! `BudgetExceeded` and `Ready`, the role name and the month's spend from the ledger, written through the
//! generic [`StatusBuilder`].

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Api, ResourceExt, runtime::events::EventType};
use sqlx::PgPool;

use super::{build, db, db::DbFailure, dereference::Namespaces, spec::TenantRecord};
use crate::{
    cluster::{ClusterProblem, placement::Refusal},
    conditions::{Desired, Status},
    context::Context,
    crd::{Tenant, TenantStatus, tenant::TenantSpend},
    metrics::Metrics,
    status::{StatusBuilder, StatusOf},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to update the Tenant status")]
    PatchStatus(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::PatchStatus(_) => "PatchStatus",
        }
    }
}

impl StatusOf for Tenant {
    type Status = TenantStatus;

    fn current_status(&self) -> Option<&TenantStatus> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }

    fn event_for(t: &Desired) -> Option<(EventType, &'static str)> {
        match (t.type_, t.status) {
            ("Ready", Status::True) => Some((EventType::Normal, "Ready")),
            ("Ready", _) => Some((EventType::Warning, t.reason)),
            ("BudgetExceeded", Status::True) => Some((EventType::Warning, "BudgetExceeded")),
            ("BudgetWarning", Status::True) => Some((EventType::Warning, "BudgetWarning")),
            _ => None,
        }
    }

    fn record_conditions(&self, metrics: &Metrics, conditions: &[Condition]) {
        metrics.set_tenant_conditions(&self.name_any(), conditions);
    }
}

/// Writes the status built so far.
pub async fn save(st: StatusBuilder<Tenant>, tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    st.save(tenant, ctx).await.map_err(Error::PatchStatus)
}

/// `Ready=False` for a spec that can never be provisioned.
pub fn invalid(st: &mut StatusBuilder<Tenant>, invalid: &super::spec::InvalidSpec) {
    st.set(Desired::new(
        "Ready",
        Status::False,
        "InvalidSpec",
        invalid.to_string(),
    ));
}

/// `Ready=False` for a tenant that cannot be placed on a database cluster.
pub fn placement_refused(st: &mut StatusBuilder<Tenant>, refusal: &Refusal) {
    st.set(Desired::new(
        "Ready",
        Status::False,
        refusal.reason(),
        refusal.to_string(),
    ));
}

/// `DatabaseProvisioned=False` and `Ready=False` for a tenant whose cluster cannot be used.
pub fn cluster_unavailable(st: &mut StatusBuilder<Tenant>, problem: &ClusterProblem) {
    for type_ in ["DatabaseProvisioned", "Ready"] {
        st.set(Desired::new(
            type_,
            Status::False,
            problem.reason(),
            problem.to_string(),
        ));
    }
}

/// `DatabaseProvisioned=True`.
pub fn provisioned(st: &mut StatusBuilder<Tenant>, rec: &TenantRecord, cluster: &str) {
    st.set(Desired::new(
        "DatabaseProvisioned",
        Status::True,
        "Provisioned",
        format!(
            "role {} and the tenant's rows are in place on database cluster {cluster}",
            rec.role
        ),
    ));
}

/// `DatabaseProvisioned=False` and `Ready=False` with the failure's reason.
pub fn provisioning_failed(st: &mut StatusBuilder<Tenant>, cluster: &str, failure: &DbFailure) {
    let message = format!("database cluster {cluster}: {failure}");
    st.set(Desired::new(
        "DatabaseProvisioned",
        Status::False,
        failure.reason(),
        message.clone(),
    ));
    st.set(Desired::new(
        "Ready",
        Status::False,
        failure.reason(),
        message,
    ));
}

/// `NamespacesClaimed`, the budget conditions with the month's spend, and `Ready`; whether every namespace
/// was claimed.
pub async fn claimed(
    st: &mut StatusBuilder<Tenant>,
    tenant: &str,
    rec: &TenantRecord,
    namespaces: &Namespaces,
    pool: &PgPool,
) -> bool {
    let Namespaces {
        claimable,
        missing,
        taken,
    } = namespaces;
    let namespaces_ok = missing.is_empty() && taken.is_empty();
    let claimed = if namespaces_ok {
        Desired::new(
            "NamespacesClaimed",
            Status::True,
            "Claimed",
            format!("claimed {}", claimable.join(", ")),
        )
    } else if !taken.is_empty() {
        Desired::new(
            "NamespacesClaimed",
            Status::False,
            "NamespaceClaimedByOtherTenant",
            format!("not claimed: {}", taken.join(", ")),
        )
    } else {
        Desired::new(
            "NamespacesClaimed",
            Status::False,
            "NamespaceNotFound",
            format!("namespaces not found: {}", missing.join(", ")),
        )
    };
    let ready = if namespaces_ok {
        Desired::new(
            "Ready",
            Status::True,
            "Provisioned",
            "the tenant's database role, rows and Secrets are in place",
        )
    } else {
        Desired::new(
            "Ready",
            Status::False,
            claimed.reason,
            claimed.message.clone(),
        )
    };
    st.set(claimed);
    match db::current_spend(pool, tenant).await {
        Ok(spend) => {
            for c in build::budget_conditions(
                rec.budget_monthly,
                rec.warn_at_percent,
                spend.amount,
                &rec.currency,
            ) {
                st.set(c);
            }
            st.status.spend = Some(TenantSpend {
                period_start: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    spend.period_start,
                ),
                amount: build::format_amount(spend.amount),
                currency: rec.currency.clone(),
            });
        }
        Err(failure) => {
            tracing::warn!(tenant, error = ?failure, "failed to read the tenant's spend");
            st.set(Desired::new(
                "BudgetExceeded",
                Status::Unknown,
                "SpendUnavailable",
                failure.to_string(),
            ));
        }
    }
    st.set(ready);
    namespaces_ok
}

/// `Ready=False` while deleting cannot finish.
pub fn deletion_blocked(st: &mut StatusBuilder<Tenant>, failure: &dyn std::fmt::Display) {
    st.set(Desired::new(
        "Ready",
        Status::False,
        "DeletionBlocked",
        format!("cannot finish deleting: {failure}"),
    ));
}
