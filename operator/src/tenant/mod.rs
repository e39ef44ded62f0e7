//! The Tenant controller: a Tenant becomes a PostgreSQL login role and rows, claimed
//! namespaces, and a Secret with the tenant's DSN in each of them.
//!
//! Reconcile runs inside kube-runtime's `finalizer` helper, since the role and rows are state outside
//! Kubernetes. It is a short driver ([`steps`]) over steps that each live in their own module:
//! 1. **validate** ([`spec`]): the spec becomes a [`TenantRecord`] or an `InvalidSpec`
//!    condition, and the reconcile waits for a change;
//! 2. **place** ([`place`]): the database cluster the tenant lives on, chosen once and recorded
//!    in status; a spec that would move it is refused;
//! 3. **dereference** ([`dereference`]): each claimed namespace must exist and not belong to another
//!    tenant; the password is reused from an existing tenant Secret, generated only when none has one;
//! 4. **database** ([`db::provision`]): rows, prices, role, role mapping, in one transaction, on
//!    the tenant's cluster (a cluster that cannot be reached makes only its own tenants not Ready);
//! 5. **build** ([`build`]): the DSN (the tenant's cluster's), the namespace labels and the Secrets, as pure functions;
//! 6. **apply** ([`apply`]): label the namespaces, apply the Secrets (server-side apply, one
//!    field manager), release namespaces the spec no longer lists;
//! 7. **status** ([`status`]): `DatabaseProvisioned`, `NamespacesClaimed`, `BudgetWarning`,
//!    `BudgetExceeded` and `Ready`, the role name, and the month's spend from the ledger.
//!
//! Deleting a Tenant ([`cleanup`]) releases its namespaces and drops its role; its rows are kept or deleted
//! according to `spec.deletionPolicy`.

pub mod apply;
pub mod build;
pub mod cleanup;
pub mod db;
pub mod dereference;
pub mod place;
pub mod spec;
pub mod status;

use std::{sync::Arc, time::Duration};

use futures::{Future, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        events::EventType,
        finalizer::{self, Event as FinalizerEvent, finalizer},
        reflector::ObjectRef,
        watcher,
    },
};

use self::{db::DbFailure, spec::TenantRecord};
use crate::{
    cluster::ClusterProblem,
    context::{self, Context},
    crd::{AgentTask, PostgresCluster, TENANT_LABEL, Tenant},
    credentials, metrics, names,
    status::StatusBuilder,
};

/// Finalizer guarding the tenant's database role and rows.
pub const FINALIZER: &str = "paddock.dev/tenant-cleanup";
const CONTROLLER: &str = "tenant";
/// How often a healthy tenant is re-read (spend, drift).
const RESYNC: Duration = Duration::from_secs(300);
/// How often a tenant waiting for a namespace is retried.
const WAIT_NAMESPACE: Duration = Duration::from_secs(30);
/// How often a tenant waiting for a database cluster (to exist, or to take it) is retried.
const WAIT_CLUSTER: Duration = Duration::from_secs(30);
/// How often the condition series of deleted Tenants are removed.
const SWEEP: Duration = Duration::from_secs(30);

/// A failed step; the message is the step's own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Place(#[from] place::Error),
    #[error("the tenant's database cluster cannot be used: {0}")]
    Cluster(#[source] ClusterProblem),
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    #[error("failed to provision the tenant's database role and rows: {0}")]
    ProvisionDatabase(#[source] DbFailure),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    Status(#[from] status::Error),
    #[error("failed to remove the tenant's database role: {0}")]
    DeprovisionDatabase(#[source] DbFailure),
    #[error("failed to read namespace {0}")]
    ReadNamespace(String, #[source] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// Short label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Place(e) => e.metric_label(),
            Error::Cluster(_) => "Cluster",
            Error::Dereference(e) => e.metric_label(),
            Error::ProvisionDatabase(_) => "ProvisionDatabase",
            Error::Apply(e) => e.metric_label(),
            Error::Status(e) => e.metric_label(),
            Error::DeprovisionDatabase(_) => "DeprovisionDatabase",
            Error::ReadNamespace(..) => "ReadNamespace",
            Error::Finalizer(e) => context::finalizer_label(e, Error::metric_label),
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let tenants: Api<Tenant> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let tasks: Api<AgentTask> = Api::all(ctx.client.clone());
    let clusters: Api<PostgresCluster> = Api::all(ctx.client.clone());
    let controller = Controller::new(tenants, watcher::Config::default())
        .with_config(ctx.settings.controller_config());
    let store = controller.store();
    let existing = controller.store();
    ctx.clusters.set_tenant_store(controller.store());
    let registry = ctx.clone();
    let metrics = ctx.metrics.clone();
    let controller = controller
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
        // A cluster that goes down or comes back (its Ready condition), or is created for a
        // tenant that names it, reconciles its tenants now rather than at their next retry;
        // other changes (its tenant count) do not.
        .watches(
            clusters,
            watcher::Config::default(),
            move |c: PostgresCluster| {
                let tenants = if registry.clusters.readiness_changed(&c) {
                    registry.clusters.tenants_of(&c.name_any())
                } else {
                    vec![]
                };
                tenants.into_iter().map(|t| ObjectRef::<Tenant>::new(&t))
            },
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "tenant reconcile did not complete");
            }
        });
    // Cleanup removes a deleted Tenant's series; the sweep catches a Tenant that went without it
    // (finalizer removed by hand, deleted while another replica led).
    metrics::refresh_while(controller, existing, SWEEP, move |store| {
        metrics.retain_tenants(|name| store.get(&ObjectRef::new(name)).is_some());
    })
    .await;
}

/// Reconciles one Tenant.
#[tracing::instrument(name = "reconcile", skip_all, fields(
    otel.name = "reconcile Tenant", k8s.object.kind = "Tenant", k8s.object.name = %tenant.name_any(),
))]
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let key = context::key(tenant.as_ref());
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            FinalizerEvent::Apply(t) => steps(&t, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup::cleanup(&t, &ctx).await,
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

/// The steps of one reconcile of a Tenant that is not being deleted, in order.
async fn steps(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let mut st = StatusBuilder::new(tenant);

    let rec = match TenantRecord::from_tenant(tenant) {
        Ok(rec) => rec,
        Err(invalid) => {
            status::invalid(&mut st, &invalid);
            status::save(st, tenant, ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let cluster = match place::place(tenant, ctx).await? {
        Ok(cluster) => cluster,
        Err(refusal) => {
            status::placement_refused(&mut st, &refusal);
            status::save(st, tenant, ctx).await?;
            return Ok(if refusal.waits_for_clusters() {
                Action::requeue(WAIT_CLUSTER)
            } else {
                Action::await_change()
            });
        }
    };
    // The role goes into status only with the cluster it is on: a role without a cluster
    // reads as a tenant provisioned before clusters existed, which is on `default`.
    st.status.database_cluster = Some(cluster.clone());
    st.status.database_role = Some(rec.role.to_string());
    let handle = match ctx.clusters.handle(&cluster, &ctx.client).await {
        Ok(handle) => handle,
        Err(problem) if problem.is_api_error() => return Err(Error::Cluster(problem)),
        Err(problem) => {
            tracing::warn!(tenant = %name, cluster = %cluster, error = ?problem, "the tenant's database cluster cannot be used");
            status::cluster_unavailable(&mut st, &problem);
            status::save(st, tenant, ctx).await?;
            if matches!(problem, ClusterProblem::NotFound(_)) {
                return Ok(Action::requeue(WAIT_CLUSTER));
            }
            return Err(Error::Cluster(problem));
        }
    };

    let namespaces = dereference::namespaces(&name, &rec, ctx).await?;
    let password = dereference::password(&name, &rec, &namespaces.claimable, ctx)
        .await?
        .unwrap_or_else(credentials::generate_password);

    match db::provision(&handle.pool, &rec, &password).await {
        Ok(done) => {
            status::provisioned(&mut st, &rec, &cluster);
            if done.role_created {
                ctx.event(
                    tenant,
                    EventType::Normal,
                    "RoleCreated",
                    "ProvisionDatabase",
                    format!("created database role {} on cluster {cluster}", rec.role),
                )
                .await;
            }
        }
        Err(failure) => {
            tracing::error!(tenant = %name, error = ?failure, "database provisioning failed");
            status::provisioning_failed(&mut st, &cluster, &failure);
            status::save(st, tenant, ctx).await?;
            return Err(Error::ProvisionDatabase(failure));
        }
    }

    let dsn = build::tenant_dsn(&handle.tenant_base, &rec.role, &password);
    apply::apply(tenant, &rec, &namespaces.claimable, &password, &dsn, ctx).await?;

    let namespaces_ok = status::claimed(&mut st, &name, &rec, &namespaces, &handle.pool).await;
    status::save(st, tenant, ctx).await?;
    Ok(Action::requeue(if namespaces_ok {
        RESYNC
    } else {
        WAIT_NAMESPACE
    }))
}
