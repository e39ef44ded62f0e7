//! The ToolServer controller: a ToolServer becomes a ConfigMap, a Deployment of
//! `paddock-runtime` and a Service, all owned by it.
//!
//! Reconcile pipeline:
//! 1. **validate**: the Tenant exists, claims this namespace, and the spec is one the runtime
//!    accepts ([`build::validate`]). A refused ToolServer gets a condition and no children (any
//!    it had are removed), and waits for a change;
//! 2. **inputs**: the tenant's database Secret (written by the Tenant controller), API key
//!    Secrets, and the tenant's issuers with their JWKS URLs ([`issuers`]);
//! 3. **build** ([`build`]): ConfigMap, Deployment (with a hash of the ConfigMap and Secret
//!    contents on the pod template), Service;
//! 4. **apply**: server-side apply under one field manager, refusing to take over objects of
//!    the same name that another owner controls;
//! 5. **status**: `Ready` from the Deployment, `IssuersResolved`, `url`, replicas and the
//!    `Verified` self-check ([`verify`]) once the pods are ready.

pub mod build;
pub mod issuers;
pub mod verify;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{Future, StreamExt};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Secret, Service},
    },
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
    runtime::{Controller, controller::Action, events::EventType, reflector::ObjectRef, watcher},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use self::build::Inputs;
use crate::{
    conditions::{self, Desired, Status},
    context::{self, Context},
    crd::{TENANT_LABEL, Tenant, ToolServer, ToolServerStatus},
    names::{self, MANAGER},
    status::{StatusBuilder, StatusOf},
};

const CONTROLLER: &str = "toolserver";
/// Re-check interval of a healthy, verified server.
const RESYNC: Duration = Duration::from_secs(300);
/// Retry interval while the pods come up or the self-check fails.
const RETRY: Duration = Duration::from_secs(30);
/// How long a successful self-check stands for an unchanged configuration.
const VERIFY_EVERY: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read Tenant {0}")]
    ReadTenant(String, #[source] kube::Error),
    #[error("failed to read Secret {0}")]
    ReadSecret(String, #[source] kube::Error),
    #[error("failed to read {0}")]
    ReadChild(String, #[source] kube::Error),
    #[error("failed to apply {0}")]
    ApplyChild(String, #[source] kube::Error),
    #[error("failed to delete {0}")]
    DeleteChild(String, #[source] kube::Error),
    #[error("failed to update the ToolServer status")]
    PatchStatus(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadTenant(..) => "ReadTenant",
            Error::ReadSecret(..) => "ReadSecret",
            Error::ReadChild(..) => "ReadChild",
            Error::ApplyChild(..) => "ApplyChild",
            Error::DeleteChild(..) => "DeleteChild",
            Error::PatchStatus(_) => "PatchStatus",
        }
    }
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let children = || watcher::Config::default().labels(names::MANAGED_SELECTOR);
    let controller = Controller::new(
        Api::<ToolServer>::all(client.clone()),
        watcher::Config::default(),
    );
    let by_tenant = controller.store();
    let by_secret = controller.store();
    controller
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
        })
        .await;
}

pub fn error_policy(ts: Arc<ToolServer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.next(&context::key(ts.as_ref()));
    tracing::warn!(toolserver = %ts.name_any(), namespace = ?ts.namespace(), error = %error, retry_in = ?delay, "toolserver reconcile failed");
    Action::requeue(delay)
}

pub async fn reconcile(ts: Arc<ToolServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    if ts.metadata.deletion_timestamp.is_some() {
        // Children go with their owner (garbage collection); there is no external state.
        return Ok(Action::await_change());
    }
    let key = context::key(ts.as_ref());
    let result = apply(&ts, &ctx).await;
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

impl StatusOf for ToolServer {
    type Status = ToolServerStatus;

    fn current_status(&self) -> Option<&ToolServerStatus> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }

    fn event_for(t: &Desired) -> Option<(EventType, &'static str)> {
        let type_ = match (t.type_, t.status) {
            ("Ready" | "Verified", Status::True) => EventType::Normal,
            ("Ready" | "Verified" | "IssuersResolved", Status::False) => EventType::Warning,
            _ => return None,
        };
        let reason = if t.status == Status::True {
            t.type_
        } else {
            t.reason
        };
        Some((type_, reason))
    }
}

/// The status a reconcile starts from: the current one, with the URL and selector the ToolServer always has.
fn status_builder(ts: &ToolServer) -> StatusBuilder<ToolServer> {
    let mut st = StatusBuilder::new(ts);
    st.status.url = Some(build::service_url(ts));
    st.status.selector = Some(names::selector_string(&names::toolserver_selector(
        &ts.name_any(),
    )));
    st
}

/// Refuses the ToolServer: condition, no children.
async fn refuse(
    ts: &ToolServer,
    ctx: &Context,
    mut st: StatusBuilder<ToolServer>,
    reason: &'static str,
    message: String,
) -> Result<Action, Error> {
    delete_children(ts, ctx).await?;
    st.set(Desired::new("Ready", Status::False, reason, message));
    conditions::remove(&mut st.status.conditions, "Verified");
    conditions::remove(&mut st.status.conditions, "IssuersResolved");
    st.status.ready_replicas = None;
    st.status.replicas = None;
    st.save(ts, ctx).await.map_err(Error::PatchStatus)?;
    Ok(Action::await_change())
}

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ts: &ToolServer,
) -> bool {
    let uid = ts.uid();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

async fn delete_children(ts: &ToolServer, ctx: &Context) -> Result<(), Error> {
    let ns = ts.namespace().unwrap_or_default();
    let name = ts.name_any();
    delete_owned::<Deployment>(ctx, &ns, &name, ts).await?;
    delete_owned::<Service>(ctx, &ns, &name, ts).await?;
    delete_owned::<ConfigMap>(ctx, &ns, &names::runtime_config_map_name(&name), ts).await
}

async fn delete_owned<K>(ctx: &Context, ns: &str, name: &str, ts: &ToolServer) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let what = || format!("{} {ns}/{name}", K::kind(&()));
    match api
        .get_opt(name)
        .await
        .map_err(|e| Error::ReadChild(what(), e))?
    {
        Some(obj) if owned_by(obj.meta(), ts) => {
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                Err(e) => Err(Error::DeleteChild(what(), e)),
            }
        }
        _ => Ok(()),
    }
}

/// Whether an object of this name exists and belongs to someone else.
async fn foreign<K>(
    ctx: &Context,
    ns: &str,
    name: &str,
    ts: &ToolServer,
) -> Result<Option<String>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let what = format!("{} {ns}/{name}", K::kind(&()));
    match api
        .get_opt(name)
        .await
        .map_err(|e| Error::ReadChild(what.clone(), e))?
    {
        Some(obj) if !owned_by(obj.meta(), ts) => Ok(Some(what)),
        _ => Ok(None),
    }
}

async fn apply_child<K>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    // Typed objects serialise without apiVersion/kind; server-side apply needs both.
    let mut body = serde_json::to_value(obj).expect("Kubernetes objects serialise");
    body["apiVersion"] = json!(K::api_version(&()));
    body["kind"] = json!(K::kind(&()));
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(|e| Error::ApplyChild(format!("{} {ns}/{name}", K::kind(&())), e))
}

async fn secret_data(
    ctx: &Context,
    ns: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, ByteString>>, Error> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| Error::ReadSecret(format!("{ns}/{name}"), e))?;
    Ok(secret.map(|s| s.data.unwrap_or_default()))
}

async fn apply(ts: &ToolServer, ctx: &Context) -> Result<Action, Error> {
    let ns = ts.namespace().unwrap_or_default();
    let name = ts.name_any();
    let mut st = status_builder(ts);

    // 1. validate
    let tenant_ref = &ts.spec.tenant_ref;
    let tenants: Api<Tenant> = Api::all(ctx.client.clone());
    let Some(tenant) = tenants
        .get_opt(tenant_ref)
        .await
        .map_err(|e| Error::ReadTenant(tenant_ref.clone(), e))?
    else {
        return refuse(
            ts,
            ctx,
            st,
            "TenantNotFound",
            format!("Tenant {tenant_ref} does not exist"),
        )
        .await;
    };
    if tenant.metadata.deletion_timestamp.is_some() {
        return refuse(
            ts,
            ctx,
            st,
            "TenantDeleting",
            format!("Tenant {tenant_ref} is being deleted"),
        )
        .await;
    }
    if let Err(refusal) = build::validate(ts, &tenant) {
        return refuse(ts, ctx, st, refusal.reason(), refusal.to_string()).await;
    }

    // 2. inputs
    let db_secret = names::db_secret_name(tenant_ref);
    let Some(db_data) = secret_data(ctx, &ns, &db_secret).await? else {
        st.set(Desired::new(
            "Ready",
            Status::False,
            "TenantNotReady",
            format!(
                "waiting for Tenant {tenant_ref} to provision Secret {db_secret} in this namespace"
            ),
        ));
        st.save(ts, ctx).await.map_err(Error::PatchStatus)?;
        return Ok(Action::requeue(RETRY));
    };
    let mut key_secrets: Vec<(String, BTreeMap<String, ByteString>)> = Vec::new();
    let refs = [
        ts.spec.embedding.api_key_secret_ref.as_ref(),
        ts.spec
            .llm
            .as_ref()
            .and_then(|l| l.api_key_secret_ref.as_ref()),
    ];
    for r in refs.into_iter().flatten() {
        match secret_data(ctx, &ns, &r.name).await? {
            Some(data) if data.contains_key(&r.key) => key_secrets.push((r.name.clone(), data)),
            _ => {
                st.set(Desired::new(
                    "Ready",
                    Status::False,
                    "SecretNotFound",
                    format!("Secret {} with key {} not found", r.name, r.key),
                ));
                st.save(ts, ctx).await.map_err(Error::PatchStatus)?;
                return Ok(Action::requeue(RETRY));
            }
        }
    }
    let (issuers, problems) = issuers::resolve(ctx, &tenant).await;
    if problems.is_empty() {
        st.set(Desired::new(
            "IssuersResolved",
            Status::True,
            "Resolved",
            format!("{} tenant issuer(s) trusted", issuers.len()),
        ));
    } else {
        st.set(Desired::new(
            "IssuersResolved",
            Status::False,
            "IssuerUnresolved",
            format!("not trusted: {}", problems.join("; ")),
        ));
    }

    // 3. build
    let dev_jwks = ctx.dev_issuer.jwks_json();
    let inputs = Inputs {
        toolserver: ts,
        tenant: &tenant,
        issuers: &issuers,
        dev_issuer: ctx.dev_issuer.issuer(),
        dev_jwks: &dev_jwks,
        default_image: &ctx.settings.runtime_image,
    };
    let config_map = match build::config_map(&inputs) {
        Ok(cm) => cm,
        Err(refusal) => return refuse(ts, ctx, st, refusal.reason(), refusal.to_string()).await,
    };
    let mut hashed: Vec<(&str, &BTreeMap<String, ByteString>)> =
        vec![(db_secret.as_str(), &db_data)];
    hashed.extend(key_secrets.iter().map(|(n, d)| (n.as_str(), d)));
    let hash = build::config_hash(&config_map, &hashed);
    let deployment = build::deployment(&inputs, &hash);
    let service = build::service(&inputs);

    // 4. apply, never over someone else's object
    let cm_name = names::runtime_config_map_name(&name);
    let conflict = [
        foreign::<ConfigMap>(ctx, &ns, &cm_name, ts).await?,
        foreign::<Service>(ctx, &ns, &name, ts).await?,
        foreign::<Deployment>(ctx, &ns, &name, ts).await?,
    ]
    .into_iter()
    .flatten()
    .next();
    if let Some(conflict) = conflict {
        st.set(Desired::new(
            "Ready",
            Status::False,
            "ChildConflict",
            format!("{conflict} exists and is not owned by this ToolServer"),
        ));
        st.save(ts, ctx).await.map_err(Error::PatchStatus)?;
        return Ok(Action::requeue(RESYNC));
    }
    apply_child(ctx, &ns, &config_map).await?;
    apply_child(ctx, &ns, &service).await?;
    let applied = apply_child(ctx, &ns, &deployment).await?;

    // 5. status
    let dep_status = applied.status.clone().unwrap_or_default();
    st.status.ready_replicas = Some(dep_status.ready_replicas.unwrap_or(0));
    st.status.replicas = Some(dep_status.replicas.unwrap_or(0));
    let ready = build::deployment_ready(&applied, ts.spec.replicas);
    let is_ready = ready.status == Status::True;
    st.set(ready);

    let mut requeue = RESYNC;
    if is_ready {
        let cache_key = context::key(ts);
        let fresh = ctx
            .verified
            .lock()
            .expect("verify cache")
            .get(&cache_key)
            .is_some_and(|(h, at)| h == &hash && at.elapsed() < VERIFY_EVERY);
        if !fresh || !conditions::is_true(&st.status.conditions, "Verified") {
            let base = ctx.settings.call_url(&ns, &name, &build::service_url(ts));
            match verify::initialize(
                &ctx.http,
                &ctx.dev_issuer,
                &base,
                tenant_ref,
                &build::resource_url(ts),
            )
            .await
            {
                Ok(message) => {
                    ctx.verified
                        .lock()
                        .expect("verify cache")
                        .insert(cache_key, (hash.clone(), Instant::now()));
                    st.set(Desired::new(
                        "Verified",
                        Status::True,
                        "InitializeSucceeded",
                        message,
                    ));
                }
                Err(e) => {
                    ctx.verified
                        .lock()
                        .expect("verify cache")
                        .remove(&cache_key);
                    st.set(Desired::new(
                        "Verified",
                        Status::False,
                        "InitializeFailed",
                        e.to_string(),
                    ));
                    requeue = RETRY;
                }
            }
        }
    } else if ts.spec.replicas == 0 {
        st.set(Desired::new(
            "Verified",
            Status::Unknown,
            "ScaledToZero",
            "no replicas to check",
        ));
    } else {
        st.set(Desired::new(
            "Verified",
            Status::Unknown,
            "NotReady",
            "waiting for ready replicas before the self-check",
        ));
        requeue = RETRY;
    }
    st.save(ts, ctx).await.map_err(Error::PatchStatus)?;
    Ok(Action::requeue(requeue))
}
