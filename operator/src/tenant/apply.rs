//! The apply step of the Tenant controller: labels the claimable namespaces as the tenant's, applies the
//! tenant's database Secret in each (server-side apply, one field manager), and releases the namespaces the
//! spec no longer lists.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::events::EventType,
};

use super::{build, spec::TenantRecord};
use crate::{
    context::Context,
    crd::{TENANT_LABEL, Tenant},
    names::{self, MANAGER},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to label namespace {0}")]
    ClaimNamespace(String, #[source] kube::Error),
    #[error("failed to release namespace {0}")]
    ReleaseNamespace(String, #[source] kube::Error),
    #[error("failed to list the tenant's namespaces")]
    ListNamespaces(#[source] kube::Error),
    #[error("failed to apply Secret {0}")]
    ApplySecret(String, #[source] kube::Error),
    #[error("failed to delete Secret {0}")]
    DeleteSecret(String, #[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ClaimNamespace(..) => "ClaimNamespace",
            Error::ReleaseNamespace(..) => "ReleaseNamespace",
            Error::ListNamespaces(_) => "ListNamespaces",
            Error::ApplySecret(..) => "ApplySecret",
            Error::DeleteSecret(..) => "DeleteSecret",
        }
    }
}

/// Claims `claimable` with a Secret holding `password` and `dsn` in each, and releases the namespaces
/// labelled as the tenant's that its record no longer lists.
pub async fn apply(
    tenant: &Tenant,
    rec: &TenantRecord,
    claimable: &[String],
    password: &str,
    dsn: &str,
    ctx: &Context,
) -> Result<(), Error> {
    let name = tenant.name_any();
    let secret_name = names::db_secret_name(&name);
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let apply = PatchParams::apply(MANAGER).force();
    for ns in claimable {
        ns_api
            .patch(ns, &apply, &Patch::Apply(build::namespace_claim(ns, &name)))
            .await
            .map_err(|e| Error::ClaimNamespace(ns.clone(), e))?;
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        secrets
            .patch(
                &secret_name,
                &apply,
                &Patch::Apply(build::db_secret(tenant, ns, &rec.role, password, dsn)),
            )
            .await
            .map_err(|e| Error::ApplySecret(format!("{ns}/{secret_name}"), e))?;
    }
    for ns in labelled(&name, ctx)
        .await?
        .into_iter()
        .filter(|n| !rec.namespaces.contains(n))
    {
        release_namespace(ctx, &ns, &name).await?;
        ctx.event(
            tenant,
            EventType::Normal,
            "NamespaceReleased",
            "ReleaseNamespace",
            format!("namespace {ns} is no longer claimed"),
        )
        .await;
    }
    Ok(())
}

/// The namespaces labelled as Tenant `tenant`'s.
pub async fn labelled(tenant: &str, ctx: &Context) -> Result<Vec<String>, Error> {
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let labelled = ns_api
        .list(&ListParams::default().labels(&format!("{TENANT_LABEL}={tenant}")))
        .await
        .map_err(Error::ListNamespaces)?;
    Ok(labelled.items.iter().map(|n| n.name_any()).collect())
}

/// Deletes the tenant's Secret from `ns` and removes the namespace's tenant label.
pub async fn release_namespace(ctx: &Context, ns: &str, tenant: &str) -> Result<(), Error> {
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
