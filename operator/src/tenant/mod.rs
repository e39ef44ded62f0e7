//! The Tenant controller: a Tenant becomes a PostgreSQL login role and rows, claimed
//! namespaces, and a Secret with the tenant's DSN in each of them.
//!
//! Reconcile pipeline (inside kube-runtime's `finalizer` helper, since the role and rows are
//! state outside Kubernetes):
//! 1. **validate** ([`spec`]): the spec becomes a [`TenantRecord`] or an `InvalidSpec`
//!    condition, and the reconcile waits for a change;
//! 2. **namespaces**: each claimed namespace must exist and not belong to another tenant;
//! 3. **password**: reused from an existing tenant Secret, generated only when none has one;
//! 4. **database** ([`db::provision`]): rows, prices, role, role mapping, in one transaction;
//! 5. **apply** ([`build`]): label the namespaces, apply the Secrets (server-side apply, one
//!    field manager), release namespaces the spec no longer lists;
//! 6. **status**: `DatabaseProvisioned`, `NamespacesClaimed`, `BudgetWarning`,
//!    `BudgetExceeded` and `Ready`, the role name, and the month's spend from the ledger.
//!
//! Deleting a Tenant releases its namespaces and drops its role; its rows are kept or deleted
//! according to `spec.deletionPolicy`.

pub mod build;
pub mod db;
pub mod spec;

use std::{sync::Arc, time::Duration};

use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::{
        Controller,
        controller::Action,
        events::EventType,
        finalizer::{self, Event as FinalizerEvent, finalizer},
        reflector::ObjectRef,
        watcher,
    },
};

use self::{build::Claim, db::DbFailure, spec::TenantRecord};
use crate::{
    conditions::{Desired, Status},
    context::{self, Context},
    crd::{AgentTask, TENANT_LABEL, Tenant, TenantStatus, tenant::TenantSpend},
    credentials,
    names::{self, MANAGER, RoleName},
    status::{StatusBuilder, StatusOf},
};

/// Finalizer guarding the tenant's database role and rows.
pub const FINALIZER: &str = "paddock.dev/tenant-cleanup";
const CONTROLLER: &str = "tenant";
/// How often a healthy tenant is re-read (spend, drift).
const RESYNC: Duration = Duration::from_secs(300);
/// How often a tenant waiting for a namespace is retried.
const WAIT_NAMESPACE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to provision the tenant's database role and rows: {0}")]
    ProvisionDatabase(#[source] DbFailure),
    #[error("failed to remove the tenant's database role: {0}")]
    DeprovisionDatabase(#[source] DbFailure),
    #[error("failed to read namespace {0}")]
    ReadNamespace(String, #[source] kube::Error),
    #[error("failed to label namespace {0}")]
    ClaimNamespace(String, #[source] kube::Error),
    #[error("failed to release namespace {0}")]
    ReleaseNamespace(String, #[source] kube::Error),
    #[error("failed to list the tenant's namespaces")]
    ListNamespaces(#[source] kube::Error),
    #[error("failed to read Secret {0}")]
    ReadSecret(String, #[source] kube::Error),
    #[error("failed to apply Secret {0}")]
    ApplySecret(String, #[source] kube::Error),
    #[error("failed to delete Secret {0}")]
    DeleteSecret(String, #[source] kube::Error),
    #[error("failed to update the Tenant status")]
    PatchStatus(#[source] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// Short label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ProvisionDatabase(_) => "ProvisionDatabase",
            Error::DeprovisionDatabase(_) => "DeprovisionDatabase",
            Error::ReadNamespace(..) => "ReadNamespace",
            Error::ClaimNamespace(..) => "ClaimNamespace",
            Error::ReleaseNamespace(..) => "ReleaseNamespace",
            Error::ListNamespaces(_) => "ListNamespaces",
            Error::ReadSecret(..) => "ReadSecret",
            Error::ApplySecret(..) => "ApplySecret",
            Error::DeleteSecret(..) => "DeleteSecret",
            Error::PatchStatus(_) => "PatchStatus",
            Error::Finalizer(e) => context::finalizer_label(e, Error::metric_label),
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let tenants: Api<Tenant> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let tasks: Api<AgentTask> = Api::all(ctx.client.clone());
    let controller = Controller::new(tenants, watcher::Config::default());
    let store = controller.store();
    controller
        // A tenant's Secrets are cluster-scoped-owner children; map them back by label.
        .watches(
            secrets,
            watcher::Config::default().labels(names::MANAGED_SELECTOR),
            |s: Secret| {
                s.labels()
                    .get(TENANT_LABEL)
                    .map(|t| ObjectRef::<Tenant>::new(t))
            },
        )
        // Running tasks move the spend (reservations, then settled costs): show it in status
        // while it matters for BudgetWarning/BudgetExceeded, not minutes later at the resync.
        .watches(tasks, watcher::Config::default(), move |task: AgentTask| {
            task.status.as_ref()?.state.as_ref()?;
            let ns = task.namespace()?;
            build::tenant_claiming(store.state().iter().map(AsRef::as_ref), &ns)
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "tenant reconcile did not complete");
            }
        })
        .await;
}

/// Reconciles one Tenant.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let key = context::key(tenant.as_ref());
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            FinalizerEvent::Apply(t) => apply(t, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup(t, &ctx).await,
        }
    })
    .await;
    let result = context::finalizer_outcome(result).map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

/// Transient failures come back after a per-tenant exponential backoff.
pub fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.next(&context::key(tenant.as_ref()));
    tracing::warn!(tenant = %tenant.name_any(), error = %error, retry_in = ?delay, "tenant reconcile failed");
    Action::requeue(delay)
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
}

async fn apply(tenant: Arc<Tenant>, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let mut st = StatusBuilder::new(tenant.as_ref());

    // 1. validate
    let rec = match TenantRecord::from_tenant(&tenant) {
        Ok(rec) => rec,
        Err(invalid) => {
            st.set(Desired::new(
                "Ready",
                Status::False,
                "InvalidSpec",
                invalid.to_string(),
            ));
            st.save(tenant.as_ref(), ctx)
                .await
                .map_err(Error::PatchStatus)?;
            return Ok(Action::await_change());
        }
    };
    st.status.database_role = Some(rec.role.to_string());

    // 2. namespaces
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let (mut claimable, mut missing, mut taken) = (vec![], vec![], vec![]);
    for ns in &rec.namespaces {
        match ns_api
            .get_opt(ns)
            .await
            .map_err(|e| Error::ReadNamespace(ns.clone(), e))?
        {
            None => missing.push(ns.clone()),
            Some(n) if n.metadata.deletion_timestamp.is_some() => missing.push(ns.clone()),
            Some(n) => match build::claim_of(n.metadata.labels.as_ref(), &name) {
                Claim::Claimable => claimable.push(ns.clone()),
                Claim::Taken(owner) => taken.push(format!("{ns} (claimed by {owner})")),
            },
        }
    }

    // 3. password: keep the one the Secrets already carry
    let secret_name = names::db_secret_name(&name);
    let mut password = None;
    for ns in &claimable {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let existing = secrets
            .get_opt(&secret_name)
            .await
            .map_err(|e| Error::ReadSecret(format!("{ns}/{secret_name}"), e))?;
        if let Some(p) = existing
            .as_ref()
            .and_then(|s| build::password_from_secret(s, &rec.role))
        {
            password = Some(p);
            break;
        }
    }
    let password = password.unwrap_or_else(credentials::generate_password);

    // 4. database
    match db::provision(&ctx.pool, &rec, &password).await {
        Ok(done) => {
            st.set(Desired::new(
                "DatabaseProvisioned",
                Status::True,
                "Provisioned",
                format!("role {} and the tenant's rows are in place", rec.role),
            ));
            if done.role_created {
                ctx.event(
                    tenant.as_ref(),
                    EventType::Normal,
                    "RoleCreated",
                    "ProvisionDatabase",
                    format!("created database role {}", rec.role),
                )
                .await;
            }
        }
        Err(failure) => {
            tracing::error!(tenant = %name, error = ?failure, "database provisioning failed");
            st.set(Desired::new(
                "DatabaseProvisioned",
                Status::False,
                failure.reason(),
                failure.to_string(),
            ));
            st.set(Desired::new(
                "Ready",
                Status::False,
                failure.reason(),
                failure.to_string(),
            ));
            st.save(tenant.as_ref(), ctx)
                .await
                .map_err(Error::PatchStatus)?;
            return Err(Error::ProvisionDatabase(failure));
        }
    }

    // 5. apply: namespaces and Secrets
    let dsn = build::tenant_dsn(&ctx.settings.tenant_database_url, &rec.role, &password);
    let apply = PatchParams::apply(MANAGER).force();
    for ns in &claimable {
        ns_api
            .patch(ns, &apply, &Patch::Apply(build::namespace_claim(ns, &name)))
            .await
            .map_err(|e| Error::ClaimNamespace(ns.clone(), e))?;
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        secrets
            .patch(
                &secret_name,
                &apply,
                &Patch::Apply(build::db_secret(&tenant, ns, &rec.role, &password, &dsn)),
            )
            .await
            .map_err(|e| Error::ApplySecret(format!("{ns}/{secret_name}"), e))?;
    }
    let labelled = ns_api
        .list(&ListParams::default().labels(&format!("{TENANT_LABEL}={name}")))
        .await
        .map_err(Error::ListNamespaces)?;
    for ns in labelled
        .items
        .iter()
        .map(|n| n.name_any())
        .filter(|n| !rec.namespaces.contains(n))
    {
        release_namespace(ctx, &ns, &name).await?;
        ctx.event(
            tenant.as_ref(),
            EventType::Normal,
            "NamespaceReleased",
            "ReleaseNamespace",
            format!("namespace {ns} is no longer claimed"),
        )
        .await;
    }

    // 6. status
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
    match db::current_spend(&ctx.pool, &name).await {
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
            tracing::warn!(tenant = %name, error = ?failure, "failed to read the tenant's spend");
            st.set(Desired::new(
                "BudgetExceeded",
                Status::Unknown,
                "SpendUnavailable",
                failure.to_string(),
            ));
        }
    }
    st.set(ready);
    st.save(tenant.as_ref(), ctx)
        .await
        .map_err(Error::PatchStatus)?;
    Ok(Action::requeue(if namespaces_ok {
        RESYNC
    } else {
        WAIT_NAMESPACE
    }))
}

/// Deletes the tenant's Secret from `ns` and removes the namespace's tenant label.
async fn release_namespace(ctx: &Context, ns: &str, tenant: &str) -> Result<(), Error> {
    let secret_name = names::db_secret_name(tenant);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match secrets.delete(&secret_name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(Error::DeleteSecret(format!("{ns}/{secret_name}"), e)),
    }
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    match ns_api
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(build::namespace_release()),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::ReleaseNamespace(ns.to_owned(), e)),
    }
}

async fn cleanup(tenant: Arc<Tenant>, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    // The labelled namespaces, and the listed ones too in case a label was removed by hand.
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let labelled = ns_api
        .list(&ListParams::default().labels(&format!("{TENANT_LABEL}={name}")))
        .await
        .map_err(Error::ListNamespaces)?;
    let mut namespaces: Vec<String> = labelled.items.iter().map(|n| n.name_any()).collect();
    for ns in &tenant.spec.namespaces {
        if !namespaces.contains(ns) {
            namespaces.push(ns.clone());
        }
    }
    for ns in &namespaces {
        let owned_by_us = match ns_api
            .get_opt(ns)
            .await
            .map_err(|e| Error::ReadNamespace(ns.clone(), e))?
        {
            None => continue,
            Some(n) => build::claim_of(n.metadata.labels.as_ref(), &name) == Claim::Claimable,
        };
        if owned_by_us {
            release_namespace(ctx, ns, &name).await?;
        }
    }

    let role = tenant
        .status
        .as_ref()
        .and_then(|s| s.database_role.as_deref())
        .and_then(|r| RoleName::parse(r).ok())
        .unwrap_or_else(|| RoleName::for_tenant(&name));
    let policy = tenant.spec.deletion_policy;
    match db::deprovision(&ctx.pool, &name, &role, policy).await {
        Ok(done) => {
            tracing::info!(tenant = %name, role = %role, ?policy, ?done, "tenant deprovisioned");
            let rows = if done.rows_deleted {
                "its rows were deleted"
            } else {
                "its rows were kept"
            };
            ctx.event(
                tenant.as_ref(),
                EventType::Normal,
                "Deprovisioned",
                "DeprovisionDatabase",
                format!("dropped database role {role}; {rows}"),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(failure) => {
            tracing::error!(tenant = %name, error = ?failure, "tenant deprovisioning failed");
            let mut st = StatusBuilder::new(tenant.as_ref());
            st.set(Desired::new(
                "Ready",
                Status::False,
                "DeletionBlocked",
                format!("cannot finish deleting: {failure}"),
            ));
            st.save(tenant.as_ref(), ctx)
                .await
                .map_err(Error::PatchStatus)?;
            Err(Error::DeprovisionDatabase(failure))
        }
    }
}
