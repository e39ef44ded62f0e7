//! The apply step of the ToolServer controller: server-side apply of the built children under one field
//! manager, never over an object of the same name that someone else owns, and removal of the children of a
//! ToolServer that is refused.

use k8s_openapi::{
    NamespaceResourceScope,
    api::{
        apps::v1::Deployment,
        core::v1::{ConfigMap, Service},
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use super::build::Children;
use crate::{context::Context, crd::ToolServer, names};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read {0}")]
    ReadChild(String, #[source] kube::Error),
    #[error("failed to apply {0}")]
    ApplyChild(String, #[source] kube::Error),
    #[error("failed to delete {0}")]
    DeleteChild(String, #[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadChild(..) => "ReadChild",
            Error::ApplyChild(..) => "ApplyChild",
            Error::DeleteChild(..) => "DeleteChild",
        }
    }
}

/// What applying the children came to.
pub enum Applied {
    /// The Deployment as the API server returned it, with its status.
    Deployment(Box<Deployment>),
    /// An object of a child's name exists and is not this ToolServer's: nothing was applied.
    Conflict(String),
}

/// A namespaced kind the controller reads, applies or deletes.
trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
{
}
impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
{
}

/// Applies the ConfigMap, the Service and the Deployment, unless one of their names is taken.
pub async fn apply(ts: &ToolServer, ctx: &Context, children: &Children) -> Result<Applied, Error> {
    let ns = ts.namespace().unwrap_or_default();
    let name = ts.name_any();
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
        return Ok(Applied::Conflict(conflict));
    }
    apply_child(ctx, &ns, &children.config_map).await?;
    apply_child(ctx, &ns, &children.service).await?;
    let applied = apply_child(ctx, &ns, &children.deployment).await?;
    Ok(Applied::Deployment(Box::new(applied)))
}

/// Deletes the children this ToolServer owns (a refused ToolServer has none).
pub async fn delete_children(ts: &ToolServer, ctx: &Context) -> Result<(), Error> {
    let ns = ts.namespace().unwrap_or_default();
    let name = ts.name_any();
    delete_owned::<Deployment>(ctx, &ns, &name, ts).await?;
    delete_owned::<Service>(ctx, &ns, &name, ts).await?;
    delete_owned::<ConfigMap>(ctx, &ns, &names::runtime_config_map_name(&name), ts).await
}

fn owned_by(meta: &ObjectMeta, ts: &ToolServer) -> bool {
    let uid = ts.uid();
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == uid.as_ref())
}

async fn delete_owned<K: Child>(
    ctx: &Context,
    ns: &str,
    name: &str,
    ts: &ToolServer,
) -> Result<(), Error> {
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
async fn foreign<K: Child>(
    ctx: &Context,
    ns: &str,
    name: &str,
    ts: &ToolServer,
) -> Result<Option<String>, Error> {
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

async fn apply_child<K: Child>(ctx: &Context, ns: &str, obj: &K) -> Result<K, Error> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), ns);
    let name = obj.meta().name.clone().unwrap_or_default();
    // Typed objects serialise without apiVersion/kind; server-side apply needs both.
    let mut body = serde_json::to_value(obj).expect("Kubernetes objects serialise");
    body["apiVersion"] = json!(K::api_version(&()));
    body["kind"] = json!(K::kind(&()));
    api.patch(
        &name,
        &PatchParams::apply(names::MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map_err(|e| Error::ApplyChild(format!("{} {ns}/{name}", K::kind(&())), e))
}
