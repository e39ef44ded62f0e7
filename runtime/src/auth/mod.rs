//! Bearer-token authentication: the runtime as an OAuth 2.1 resource server.
//!
//! Data flow for one request:
//! 1. [`require_bearer`] (axum middleware) reads the `Authorization: Bearer` header, and only that
//!    header: tokens in query strings or bodies are ignored.
//! 2. [`Authenticator::authenticate`] checks the JOSE header before any cryptography (`alg: none`,
//!    HMAC and unknown algorithms are refused outright), picks the [`IssuerConfig`] named by the
//!    token's `iss`, selects the key by `kid` from that issuer's JWKS (a file, or a URL cached with
//!    a TTL and refreshed at a bounded rate when an unknown `kid` appears), verifies the signature
//!    and the `exp`/`nbf`/`iss`/`aud` claims, then builds a [`Principal`] from the tenant, user and
//!    scope claims.
//!    A token verified once is recognised by its digest on later requests (`verified`): its time claims are
//!    checked again and its key must still be the one its issuer's JWKS selects, but the signature is not.
//! 3. On success the [`Principal`] goes into the request extensions; on failure the client gets a
//!    401 whose `WWW-Authenticate` header points at the RFC 9728 metadata served by
//!    [`metadata_router`]. Handlers that need a scope answer 403 through
//!    [`Authenticator::insufficient_scope`].
//!
//! Tokens are never logged and never echoed back; refusals are logged with their reason only.
//! [`dev`] holds the built-in development issuer (key generation and token minting).

mod config;
mod http;
mod jwks;
mod verified;
mod verify;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;

pub use paddock_contract::dev;

pub use self::config::{AuthConfig, IssuerConfig, JwksSource};
pub(crate) use self::http::bearer_token;
pub use self::http::{metadata_router, require_bearer};
pub use self::verify::Authenticator;

pub use paddock_contract::identity::{is_dns1123_label, is_scope_token, is_valid_user, scopes};

/// Who is calling: taken only from a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Tenant name (a DNS-1123 label, the same as the `Tenant` object's name).
    pub tenant: String,
    /// The user (or workload) the token was issued to.
    pub user: String,
    /// Granted scopes.
    pub scopes: BTreeSet<String>,
    /// The issuer that signed the token.
    pub issuer: String,
    /// The token's `jti` claim, when it has one of 1 to 256 printable characters: an identifier the issuer
    /// chose, which the audit trail records so a call can be traced to the token that made it. Never the token.
    pub token_id: Option<String>,
}

impl Principal {
    /// Whether the token grants `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }
}

/// Why a request was not authenticated, or why the authenticator could not be built.
///
/// The `Display` text of the request-time variants is safe to show to clients: it never contains
/// any part of the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No bearer credentials at all (no `Authorization` header, or another scheme such as `Basic`).
    #[error("a bearer token is required in the Authorization header")]
    MissingToken,
    /// The `Authorization` header itself is unusable (e.g. sent twice, or `Bearer` without a token).
    #[error("{0}")]
    InvalidRequest(&'static str),
    /// The token was refused; the reason is a fixed phrase, safe to return to the client.
    #[error("{0}")]
    InvalidToken(Cow<'static, str>),
    /// The token is valid but lacks a scope.
    #[error("the {0} scope is required")]
    InsufficientScope(String),
    /// The issuer's keys could not be fetched and none are cached.
    #[error("failed to fetch the signing keys of issuer {issuer}")]
    KeysUnavailable { issuer: String },
    /// The configuration is unusable.
    #[error("invalid authentication configuration: {0}")]
    Config(String),
    /// A JWKS file could not be read or holds no usable key.
    #[error("failed to load JWKS from {path}: {reason}")]
    LoadJwks { path: PathBuf, reason: String },
}

impl AuthError {
    pub(crate) fn invalid_token(reason: &'static str) -> Self {
        AuthError::InvalidToken(Cow::Borrowed(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_reports_its_scopes() {
        let p = Principal {
            tenant: "acme".into(),
            user: "alice".into(),
            scopes: [scopes::DOCUMENTS_READ.to_string()].into(),
            issuer: "https://issuer.test".into(),
            token_id: None,
        };
        assert!(p.has_scope(scopes::DOCUMENTS_READ));
        assert!(!p.has_scope(scopes::DOCUMENTS_WRITE));
    }
}
