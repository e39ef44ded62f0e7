//! The ToolServer controller: a ToolServer becomes a ConfigMap, a Deployment of
//! `paddock-runtime` and a Service, all owned by it.
//!
//! Reconcile is a short driver ([`steps`]) over steps that each live in their own module, with their own
//! error:
//! 1. **dereference** ([`dereference::tenant`]): the Tenant the ToolServer names;
//! 2. **validate** ([`validate`]): the Tenant exists, claims this namespace, and the spec is one the runtime
//!    accepts. A refused ToolServer gets a condition and no children (any it had are removed), and waits
//!    for a change;
//! 3. **dereference** ([`dereference::inputs`]): the tenant's database Secret (written by the Tenant
//!    controller), API key Secrets, and the tenant's issuers with their JWKS URLs ([`issuers`]);
//! 4. **build** ([`build`]): ConfigMap, Deployment (with a hash of the ConfigMap and Secret contents on the
//!    pod template), Service, as pure functions;
//! 5. **apply** ([`apply`]): server-side apply under one field manager, refusing to take over objects of
//!    the same name that another owner controls;
//! 6. **status** ([`status`]): `Ready` from the Deployment, `IssuersResolved`, `url`, replicas and the
//!    `Verified` self-check ([`verify`]) once the pods are ready.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod issuers;
pub mod status;
pub mod validate;
pub mod verify;

use std::{sync::Arc, time::Duration};

use futures::{Future, StreamExt};
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Secret, Service},
};
use kube::{
    Api, ResourceExt,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use self::{apply::Applied, build::Inputs, validate::Invalid};
use crate::{
    conditions::{Desired, Status},
    context::{self, Context},
    crd::{TENANT_LABEL, Tenant, ToolServer},
    metrics, names,
    status::StatusBuilder,
};

const CONTROLLER: &str = "toolserver";
/// Re-check interval of a healthy, verified server.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry interval while the pods come up or the self-check fails.
const RETRY: Duration = Duration::from_secs(30);
/// How long a successful self-check stands for an unchanged configuration.
const VERIFY_EVERY: Duration = Duration::from_secs(300);
/// How often the condition series of deleted ToolServers are removed.
const SWEEP: Duration = Duration::from_secs(30);

/// A failed step; the message is the step's own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    Status(#[from] status::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Dereference(e) => e.metric_label(),
            Error::Apply(e) => e.metric_label(),
            Error::Status(e) => e.metric_label(),
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let metrics = ctx.metrics.clone();
    let children = || watcher::Config::default().labels(names::MANAGED_SELECTOR);
    let controller = Controller::new(
        Api::<ToolServer>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(ctx.settings.controller_config());
    let by_tenant = controller.store();
    let by_secret = controller.store();
    let existing = controller.store();
    let controller = controller
        .owns(Api::<Deployment>::all(client.clone()), children())
        .owns(Api::<Service>::all(client.clone()), children())
        .owns(Api::<ConfigMap>::all(client.clone()), children())
        // A Tenant change (namespaces, issuers, models) affects its ToolServers.
        .watches(
            Api::<Tenant>::all(client.clone()),
            watcher::Config::default(),
            move |t: Tenant| {
                let tenant = t.name_any();
                by_tenant
                    .state()
                    .into_iter()
                    .filter(|ts| ts.spec.tenant_ref == tenant)
                    .map(|ts| ObjectRef::from_obj(ts.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // The tenant's database Secret in the namespace: its content is part of the pod hash.
        .watches(Api::<Secret>::all(client), children(), move |s: Secret| {
            let (Some(tenant), Some(ns)) = (s.labels().get(TENANT_LABEL).cloned(), s.namespace())
            else {
                return Vec::new();
            };
            by_secret
                .state()
                .into_iter()
                .filter(|ts| {
                    ts.spec.tenant_ref == tenant && ts.namespace().as_deref() == Some(ns.as_str())
                })
                .map(|ts| ObjectRef::from_obj(ts.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "toolserver reconcile did not complete");
            }
        });
    // A ToolServer has no finalizer: once deleted it is not reconciled again, so its condition
    // series are swept against the cache.
    metrics::refresh_while(controller, existing, SWEEP, move |store| {
        metrics
            .retain_toolservers(|ns, name| store.get(&ObjectRef::new(name).within(ns)).is_some());
    })
    .await;
}

pub fn error_policy(ts: Arc<ToolServer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.next(&context::key(ts.as_ref()));
    tracing::warn!(toolserver = %ts.name_any(), namespace = ?ts.namespace(), error = %error, retry_in = ?delay, "toolserver reconcile failed");
    Action::requeue(delay)
}

#[tracing::instrument(name = "reconcile", skip_all, fields(
    otel.name = "reconcile ToolServer", k8s.object.kind = "ToolServer",
    k8s.namespace.name = %ts.namespace().unwrap_or_default(), k8s.object.name = %ts.name_any(),
))]
pub async fn reconcile(ts: Arc<ToolServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    if ts.metadata.deletion_timestamp.is_some() {
        // Children go with their owner (garbage collection); there is no external state.
        ctx.metrics
            .remove_toolserver(&ts.namespace().unwrap_or_default(), &ts.name_any());
        return Ok(Action::await_change());
    }
    let key = context::key(ts.as_ref());
    let result = steps(&ts, &ctx).await;
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

/// The steps of one reconcile, in order.
async fn steps(ts: &ToolServer, ctx: &Context) -> Result<Action, Error> {
    let mut st = status::builder(ts);
    let tenant = dereference::tenant(ts, ctx).await?;
    let tenant = match validate::validate(ts, tenant.as_ref()) {
        Ok(tenant) => tenant,
        Err(invalid) => return refuse(st, ts, ctx, &invalid).await,
    };
    let referenced = match dereference::inputs(ts, tenant, ctx).await? {
        Ok(referenced) => referenced,
        Err(waiting) => return Ok(status::waiting(st, ts, ctx, waiting, RETRY).await?),
    };
    status::issuers(&mut st, &referenced);
    let dev_jwks = ctx.dev_issuer.jwks_json();
    let inputs = Inputs {
        toolserver: ts,
        tenant,
        issuers: &referenced.issuers,
        dev_issuer: ctx.dev_issuer.issuer(),
        dev_jwks: &dev_jwks,
        default_image: &ctx.settings.runtime_image,
    };
    let children = match build::children(&inputs, &referenced.hashed_secrets()) {
        Ok(children) => children,
        Err(refusal) => return refuse(st, ts, ctx, &refusal.into()).await,
    };
    match apply::apply(ts, ctx, &children).await? {
        Applied::Deployment(applied) => {
            Ok(status::deployed(st, ts, ctx, &applied, &children.hash).await?)
        }
        Applied::Conflict(conflict) => {
            let ready = Desired::new(
                "Ready",
                Status::False,
                "ChildConflict",
                format!("{conflict} exists and is not owned by this ToolServer"),
            );
            Ok(status::waiting(st, ts, ctx, ready, RESYNC).await?)
        }
    }
}

/// Refuses the ToolServer: no children, and a condition that says why.
async fn refuse(
    st: StatusBuilder<ToolServer>,
    ts: &ToolServer,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Action, Error> {
    apply::delete_children(ts, ctx).await?;
    Ok(status::refused(st, ts, ctx, invalid).await?)
}
