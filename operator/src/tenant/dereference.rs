//! The dereference step of the Tenant controller: the namespaces the spec claims, as they are (missing,
//! claimable, or claimed by another tenant), and the password the tenant's Secrets already carry, which is
//! kept rather than rotated on every reconcile.

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;

use super::{
    build::{self, Claim},
    spec::TenantRecord,
};
use crate::{context::Context, names};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read namespace {0}")]
    ReadNamespace(String, #[source] kube::Error),
    #[error("failed to read Secret {0}")]
    ReadSecret(String, #[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadNamespace(..) => "ReadNamespace",
            Error::ReadSecret(..) => "ReadSecret",
        }
    }
}

/// The claimed namespaces, sorted by what can be done with them.
#[derive(Debug, Default)]
pub struct Namespaces {
    /// Free, or already this tenant's.
    pub claimable: Vec<String>,
    /// Absent or being deleted.
    pub missing: Vec<String>,
    /// Claimed by another tenant, as `name (claimed by owner)`.
    pub taken: Vec<String>,
}

/// Reads each namespace the record of Tenant `tenant` claims.
pub async fn namespaces(
    tenant: &str,
    rec: &TenantRecord,
    ctx: &Context,
) -> Result<Namespaces, Error> {
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut found = Namespaces::default();
    for ns in &rec.namespaces {
        match ns_api
            .get_opt(ns)
            .await
            .map_err(|e| Error::ReadNamespace(ns.clone(), e))?
        {
            None => found.missing.push(ns.clone()),
            Some(n) if n.metadata.deletion_timestamp.is_some() => found.missing.push(ns.clone()),
            Some(n) => match build::claim_of(n.metadata.labels.as_ref(), tenant) {
                Claim::Claimable => found.claimable.push(ns.clone()),
                Claim::Taken(owner) => found.taken.push(format!("{ns} (claimed by {owner})")),
            },
        }
    }
    Ok(found)
}

/// The password one of the tenant's Secrets in `claimable` already carries for its role, if any.
pub async fn password(
    tenant: &str,
    rec: &TenantRecord,
    claimable: &[String],
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let secret_name = names::db_secret_name(tenant);
    for ns in claimable {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let existing = secrets
            .get_opt(&secret_name)
            .await
            .map_err(|e| Error::ReadSecret(format!("{ns}/{secret_name}"), e))?;
        if let Some(p) = existing
            .as_ref()
            .and_then(|s| build::password_from_secret(s, &rec.role))
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}
