//! Database clusters: the PostgresCluster controller, the registry of connection pools
//! ([`registry`]) and the placement policy ([`placement`]).
//!
//! The controller keeps each PostgresCluster's status true to what the operator sees: it reads
//! the admin Secret, connects (lazily, with a timeout), migrates the database once per pool and
//! then checks it with one round trip every [`HEALTHY_RESYNC`]. Its `Ready` condition is what
//! placement trusts, and the Tenant controller watches it: a cluster going down or coming back
//! reconciles the tenants placed on it at once, not at their next resync.
//!
//! A PostgresCluster carries the finalizer [`FINALIZER`] so that deleting it waits for the
//! tenants placed on it ([`deletion`]): their roles and rows are on it, and only the operator's
//! pool to it can drop them.

mod deletion;
pub mod placement;
pub mod registry;

use std::{sync::Arc, time::Duration};

use futures::{Future, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
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

pub use self::registry::{ClusterProblem, Clusters, Handle};
use crate::{
    conditions::{Desired, Status},
    context::{self, Context},
    crd::{PostgresCluster, PostgresClusterStatus},
    metrics::{self, Metrics},
    status::{StatusBuilder, StatusOf},
};

const CONTROLLER: &str = "postgrescluster";
/// How often a Ready cluster is checked.
const HEALTHY_RESYNC: Duration = Duration::from_secs(15);
/// How often a cluster that is not Ready is tried again.
const UNHEALTHY_RESYNC: Duration = Duration::from_secs(5);
/// How often a deletion that waits for tenants looks again.
const DELETION_RECHECK: Duration = Duration::from_secs(5);
/// How often the condition series of deleted clusters are swept.
const SWEEP: Duration = Duration::from_secs(30);
/// Keeps a PostgresCluster while tenants are placed on it.
pub const FINALIZER: &str = "paddock.dev/placed-tenants";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the cluster's Secret: {0}")]
    ReadSecret(#[source] ClusterProblem),
    #[error("failed to update the PostgresCluster status")]
    PatchStatus(#[source] kube::Error),
    #[error("failed to list the Tenants")]
    ListTenants(#[source] kube::Error),
    /// Not a failure: the deletion waits for these tenants, and the finalizer stays.
    #[error("{} tenants are still placed on the cluster", .0.len())]
    TenantsPlaced(Vec<String>),
    #[error(transparent)]
    Finalizer(Box<finalizer::Error<Error>>),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadSecret(_) => "ReadSecret",
            Error::PatchStatus(_) => "PatchStatus",
            Error::ListTenants(_) => "ListTenants",
            Error::TenantsPlaced(_) => "TenantsPlaced",
            Error::Finalizer(e) => context::finalizer_label(e, Error::metric_label),
        }
    }
}

impl StatusOf for PostgresCluster {
    type Status = PostgresClusterStatus;

    fn current_status(&self) -> Option<&PostgresClusterStatus> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::all(client)
    }

    fn event_for(t: &Desired) -> Option<(EventType, &'static str)> {
        match (t.type_, t.status) {
            ("Ready", Status::True) => Some((EventType::Normal, "Ready")),
            ("Ready", _) => Some((EventType::Warning, t.reason)),
            (deletion::CONDITION, Status::True) => Some((EventType::Warning, t.reason)),
            _ => None,
        }
    }

    fn record_conditions(&self, metrics: &Metrics, conditions: &[Condition]) {
        metrics.set_postgrescluster_conditions(&self.name_any(), conditions);
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let metrics = ctx.metrics.clone();
    let controller = Controller::new(
        Api::<PostgresCluster>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .with_config(ctx.settings.controller_config());
    let existing = controller.store();
    let controller = controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "postgrescluster reconcile did not complete");
            }
        });
    // The finalizer's release removes a deleted cluster's series; the sweep catches one that
    // went without it (finalizer removed by hand, deleted while another replica led).
    metrics::refresh_while(controller, existing, SWEEP, move |store| {
        metrics.retain_postgresclusters(|name| store.get(&ObjectRef::new(name)).is_some());
    })
    .await;
}

/// Reconciles one PostgresCluster: reach it, migrate it and report; or, once it is deleted, let
/// it go when no tenant is placed on it.
#[tracing::instrument(name = "reconcile", skip_all, fields(
    otel.name = "reconcile PostgresCluster", k8s.object.kind = "PostgresCluster", k8s.object.name = %pgc.name_any(),
))]
pub async fn reconcile(pgc: Arc<PostgresCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let key = context::key(pgc.as_ref());
    let api: Api<PostgresCluster> = Api::all(ctx.client.clone());
    let result = finalizer(&api, FINALIZER, pgc, |event| async {
        match event {
            FinalizerEvent::Apply(pgc) => check(&pgc, &ctx).await,
            FinalizerEvent::Cleanup(pgc) => deletion::release(&pgc, &ctx).await,
        }
    })
    .await;
    let action = match context::finalizer_outcome(result) {
        Ok(action) => action,
        // Tenants are still placed on it: the finalizer stays, and waiting is no failure.
        Err(finalizer::Error::CleanupFailed(Error::TenantsPlaced(_))) => {
            Action::requeue(DELETION_RECHECK)
        }
        Err(e) => return Err(Error::Finalizer(Box::new(e))),
    };
    ctx.backoff.reset(&key);
    Ok(action)
}

/// Reaches the cluster, migrates it and reports.
async fn check(pgc: &PostgresCluster, ctx: &Context) -> Result<Action, Error> {
    let name = pgc.name_any();
    let mut st = StatusBuilder::new(pgc);
    st.status.tenants = Some(
        ctx.clusters
            .tenant_counts("")
            .get(&name)
            .copied()
            .unwrap_or(0)
            .try_into()
            .unwrap_or(i32::MAX),
    );
    let ready = match ctx.clusters.handle_for(pgc, &ctx.client).await {
        Ok(handle) => match registry::ping(&handle).await {
            Ok(version) => {
                st.status.server_version = Some(version);
                st.set(Desired::new(
                    "Migrated",
                    Status::True,
                    "Migrated",
                    "the Paddock schema is up to date",
                ));
                st.set(Desired::new(
                    "Ready",
                    Status::True,
                    "Ready",
                    "the operator reached the database and migrated it",
                ));
                true
            }
            Err(problem) => {
                not_ready(&mut st, &problem);
                false
            }
        },
        Err(problem) if problem.is_api_error() => return Err(Error::ReadSecret(problem)),
        Err(problem) => {
            tracing::warn!(cluster = %name, error = ?problem, "database cluster is not usable");
            if matches!(
                problem,
                ClusterProblem::MigrationFailed { .. } | ClusterProblem::MigrationTimedOut { .. }
            ) {
                st.set(Desired::new(
                    "Migrated",
                    Status::False,
                    problem.reason(),
                    problem.to_string(),
                ));
            }
            not_ready(&mut st, &problem);
            false
        }
    };
    st.save(pgc, ctx).await.map_err(Error::PatchStatus)?;
    Ok(Action::requeue(if ready {
        HEALTHY_RESYNC
    } else {
        UNHEALTHY_RESYNC
    }))
}

fn not_ready(st: &mut StatusBuilder<PostgresCluster>, problem: &ClusterProblem) {
    st.set(Desired::new(
        "Ready",
        Status::False,
        problem.reason(),
        problem.to_string(),
    ));
}

/// Transient failures come back after a per-cluster exponential backoff.
pub fn error_policy(pgc: Arc<PostgresCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.next(&context::key(pgc.as_ref()));
    tracing::warn!(cluster = %pgc.name_any(), error = %error, retry_in = ?delay, "postgrescluster reconcile failed");
    Action::requeue(delay)
}
