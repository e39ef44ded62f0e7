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
pub mod dev;
mod http;
mod jwks;
mod verified;
mod verify;

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::path::PathBuf;

pub use self::config::{AuthConfig, IssuerConfig, JwksSource};
pub use self::http::{metadata_router, require_bearer};
pub use self::verify::Authenticator;

/// The scopes that gate the runtime's tools and routes.
pub mod scopes {
    /// Search and read a tenant's documents.
    pub const DOCUMENTS_READ: &str = "documents:read";
    /// Add, change and delete a tenant's documents.
    pub const DOCUMENTS_WRITE: &str = "documents:write";
    /// Start A2A tasks and follow their progress.
    pub const TASKS_RUN: &str = "tasks:run";
    /// Cancel or inspect any task of the tenant.
    pub const TASKS_ADMIN: &str = "tasks:admin";
    /// Read the tenant's usage and budget.
    pub const USAGE_READ: &str = "usage:read";

    /// Every scope the runtime knows, as advertised in the protected-resource metadata.
    pub const ALL: [&str; 5] = [
        DOCUMENTS_READ,
        DOCUMENTS_WRITE,
        TASKS_RUN,
        TASKS_ADMIN,
        USAGE_READ,
    ];
}

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

/// Whether `s` is a DNS-1123 label (`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`), the form of a
/// Kubernetes object name and so of a tenant name.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// Whether `s` is a usable user identifier: 1 to 256 characters, none of them a control character.
pub fn is_valid_user(s: &str) -> bool {
    let n = s.chars().count();
    (1..=256).contains(&n) && !s.chars().any(char::is_control)
}

/// Whether `s` is one OAuth scope token (RFC 6749 §3.3: `1*NQCHAR`).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels_follow_kubernetes_rules() {
        for ok in ["a", "acme", "acme-corp", "a1", "0", "x".repeat(63).as_str()] {
            assert!(is_dns1123_label(ok), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "acme corp",
            "acme.corp",
            "acme_corp",
            "acme'; DROP TABLE tenants;--",
            "ümlaut",
            "x".repeat(64).as_str(),
        ] {
            assert!(!is_dns1123_label(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(is_valid_user("alice@example.com"));
        assert!(is_valid_user(&"é".repeat(256)));
        assert!(!is_valid_user(""));
        assert!(!is_valid_user(&"a".repeat(257)));
        assert!(!is_valid_user("alice\nbob"));
        assert!(!is_valid_user("alice\u{7f}"));
    }

    #[test]
    fn scope_tokens_exclude_spaces_quotes_and_backslashes() {
        assert!(is_scope_token("documents:read"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
    }

    #[test]
    fn principal_reports_its_scopes() {
        let p = Principal {
            tenant: "acme".into(),
            user: "alice".into(),
            scopes: [scopes::DOCUMENTS_READ.to_string()].into(),
            issuer: "https://issuer.test".into(),
        };
        assert!(p.has_scope(scopes::DOCUMENTS_READ));
        assert!(!p.has_scope(scopes::DOCUMENTS_WRITE));
    }
}
