//! The dereference step of the ToolServer controller: reads what a ToolServer refers to. First its Tenant,
//! which the validate step needs; then, for a valid ToolServer only, what the build step reads: the tenant's
//! database Secret, the API key Secrets and the tenant's issuers with their JWKS URLs ([`super::issuers`]).

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{Api, ResourceExt};

use super::{build::ResolvedIssuer, issuers};
use crate::{
    conditions::{Desired, Status},
    context::Context,
    crd::{Tenant, ToolServer},
    names,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read Tenant {0}")]
    ReadTenant(String, #[source] kube::Error),
    #[error("failed to read Secret {0}")]
    ReadSecret(String, #[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadTenant(..) => "ReadTenant",
            Error::ReadSecret(..) => "ReadSecret",
        }
    }
}

/// The Tenant the ToolServer names, if it exists.
pub async fn tenant(ts: &ToolServer, ctx: &Context) -> Result<Option<Tenant>, Error> {
    let tenant_ref = &ts.spec.tenant_ref;
    Api::<Tenant>::all(ctx.client.clone())
        .get_opt(tenant_ref)
        .await
        .map_err(|e| Error::ReadTenant(tenant_ref.clone(), e))
}

/// What the build step reads besides the ToolServer and its Tenant.
pub struct Referenced {
    /// Name and data of the tenant's database Secret in the ToolServer's namespace.
    pub db_secret: (String, BTreeMap<String, ByteString>),
    /// Name and data of each API key Secret the spec names.
    pub key_secrets: Vec<(String, BTreeMap<String, ByteString>)>,
    /// The tenant's issuers the runtime can trust.
    pub issuers: Vec<ResolvedIssuer>,
    /// Why the others cannot be trusted.
    pub issuer_problems: Vec<String>,
}

impl Referenced {
    /// The Secrets whose data the pods read, for the pod template's hash.
    pub fn hashed_secrets(&self) -> Vec<(&str, &BTreeMap<String, ByteString>)> {
        let (db_name, db_data) = &self.db_secret;
        let mut hashed = vec![(db_name.as_str(), db_data)];
        hashed.extend(self.key_secrets.iter().map(|(n, d)| (n.as_str(), d)));
        hashed
    }
}

/// The references of a ToolServer that passed validation, or the `Ready` condition it waits under while
/// one is missing.
pub async fn inputs(
    ts: &ToolServer,
    tenant: &Tenant,
    ctx: &Context,
) -> Result<Result<Referenced, Desired>, Error> {
    let ns = ts.namespace().unwrap_or_default();
    let tenant_ref = &ts.spec.tenant_ref;
    let db_secret = names::db_secret_name(tenant_ref);
    let Some(db_data) = secret_data(ctx, &ns, &db_secret).await? else {
        return Ok(Err(Desired::new(
            "Ready",
            Status::False,
            "TenantNotReady",
            format!(
                "waiting for Tenant {tenant_ref} to provision Secret {db_secret} in this namespace"
            ),
        )));
    };
    let mut key_secrets = Vec::new();
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
                return Ok(Err(Desired::new(
                    "Ready",
                    Status::False,
                    "SecretNotFound",
                    format!("Secret {} with key {} not found", r.name, r.key),
                )));
            }
        }
    }
    let (issuers, issuer_problems) = issuers::resolve(ctx, tenant).await;
    Ok(Ok(Referenced {
        db_secret: (db_secret, db_data),
        key_secrets,
        issuers,
        issuer_problems,
    }))
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
