//! The validate step of the ToolServer controller, a pure function: whether the ToolServer's Tenant exists and
//! is not being deleted, claims the ToolServer's namespace, and whether the spec is one the runtime accepts
//! ([`build::validate`]). A refused ToolServer gets no children and waits for a change.

use crate::crd::{Tenant, ToolServer};

use super::build::{self, Refusal};

/// Why a ToolServer gets no children.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("Tenant {0} does not exist")]
    TenantNotFound(String),
    #[error("Tenant {0} is being deleted")]
    TenantDeleting(String),
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl Invalid {
    /// The `Ready` condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Invalid::TenantNotFound(_) => "TenantNotFound",
            Invalid::TenantDeleting(_) => "TenantDeleting",
            Invalid::Refused(r) => r.reason(),
        }
    }
}

/// The ToolServer's Tenant, if the ToolServer may run for it.
pub fn validate<'a>(ts: &ToolServer, tenant: Option<&'a Tenant>) -> Result<&'a Tenant, Invalid> {
    let tenant_ref = &ts.spec.tenant_ref;
    let tenant = tenant.ok_or_else(|| Invalid::TenantNotFound(tenant_ref.clone()))?;
    if tenant.metadata.deletion_timestamp.is_some() {
        return Err(Invalid::TenantDeleting(tenant_ref.clone()));
    }
    build::validate(ts, tenant)?;
    Ok(tenant)
}
