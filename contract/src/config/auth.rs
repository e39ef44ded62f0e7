//! The `auth:` section: which issuers the runtime trusts, where their keys live, and how it names itself in
//! RFC 9728 metadata.

use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};

/// Where an issuer's public keys (a JWKS document) come from.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JwksSource {
    /// A local file, loaded at start-up and re-read when its modification time changes
    /// (e.g. a mounted Secret or ConfigMap).
    File(PathBuf),
    /// An `https://` URL (plain `http://` only for loopback hosts), fetched on first use and cached.
    Url(String),
}

/// Written in the map form (`{file: ...}` or `{url: ...}`), never as a YAML tag: the runtime reads YAML as
/// JSON, where enums are maps.
impl Serialize for JwksSource {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self {
            JwksSource::File(path) => map.serialize_entry("file", path)?,
            JwksSource::Url(url) => map.serialize_entry("url", url)?,
        }
        map.end()
    }
}

/// One trusted token issuer.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// The `aud` value its tokens must carry for this server.
    pub audience: String,
    /// Its signing keys.
    pub jwks: JwksSource,
    /// Claim holding the tenant name.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim holding the user identifier.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim holding the scopes as a space-separated string (or an array). The array claim `scp`
    /// is always read as well.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
}

impl IssuerConfig {
    /// An issuer with the default claim names (`tenant_id`, `sub`, `scope`).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        IssuerConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            tenant_claim: default_tenant_claim(),
            user_claim: default_user_claim(),
            scope_claim: default_scope_claim(),
        }
    }
}

/// The whole authentication configuration of a runtime.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The exact URL of the MCP endpoint clients connect to, e.g. `http://127.0.0.1:8080/mcp`.
    /// It is echoed verbatim as `resource` in the protected-resource metadata.
    pub resource: String,
    /// Authorization servers to advertise; when empty, the issuers' `iss` values are advertised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Trusted issuers; the token's `iss` selects one.
    pub issuers: Vec<IssuerConfig>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_secs")]
    pub leeway_secs: u64,
    /// How long fetched JWKS are fresh, in seconds. Stale keys keep serving while a refresh runs,
    /// and keep serving if it fails.
    #[serde(default = "default_jwks_cache_ttl_secs")]
    pub jwks_cache_ttl_secs: u64,
    /// Minimum time between two fetches of one issuer's JWKS, in seconds: bounds the refreshes
    /// that tokens with unknown `kid`s can cause.
    #[serde(default = "default_jwks_refresh_min_interval_secs")]
    pub jwks_refresh_min_interval_secs: u64,
    /// Timeout of one JWKS fetch, in seconds.
    #[serde(default = "default_jwks_fetch_timeout_secs")]
    pub jwks_fetch_timeout_secs: u64,
}

impl AuthConfig {
    /// A configuration with the default leeway and JWKS cache settings.
    pub fn new(resource: impl Into<String>, issuers: Vec<IssuerConfig>) -> Self {
        AuthConfig {
            issuers,
            resource: resource.into(),
            authorization_servers: Vec::new(),
            leeway_secs: default_leeway_secs(),
            jwks_cache_ttl_secs: default_jwks_cache_ttl_secs(),
            jwks_refresh_min_interval_secs: default_jwks_refresh_min_interval_secs(),
            jwks_fetch_timeout_secs: default_jwks_fetch_timeout_secs(),
        }
    }
}

fn default_tenant_claim() -> String {
    "tenant_id".to_owned()
}
fn default_user_claim() -> String {
    "sub".to_owned()
}
fn default_scope_claim() -> String {
    "scope".to_owned()
}
fn default_leeway_secs() -> u64 {
    30
}
fn default_jwks_cache_ttl_secs() -> u64 {
    300
}
fn default_jwks_refresh_min_interval_secs() -> u64 {
    30
}
fn default_jwks_fetch_timeout_secs() -> u64 {
    5
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_fields_are_omitted() {
        let cfg: AuthConfig = serde_json::from_value(serde_json::json!({
            "resource": "http://127.0.0.1:8080/mcp",
            "issuers": [{
                "issuer": "https://issuer.test",
                "audience": "paddock",
                "jwks": {"url": "https://issuer.test/jwks.json"}
            }]
        }))
        .unwrap();
        assert_eq!(cfg.leeway_secs, 30);
        assert_eq!(cfg.jwks_cache_ttl_secs, 300);
        assert_eq!(cfg.jwks_refresh_min_interval_secs, 30);
        let iss = &cfg.issuers[0];
        assert_eq!(
            iss.jwks,
            JwksSource::Url("https://issuer.test/jwks.json".into())
        );
        assert_eq!(
            (
                iss.tenant_claim.as_str(),
                iss.user_claim.as_str(),
                iss.scope_claim.as_str()
            ),
            ("tenant_id", "sub", "scope")
        );
    }

    #[test]
    fn file_source_and_custom_claims_deserialize() {
        let iss: IssuerConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://idp.example",
            "audience": "paddock",
            "jwks": {"file": "keys/jwks.json"},
            "tenant_claim": "org",
        }))
        .unwrap();
        assert_eq!(iss.jwks, JwksSource::File("keys/jwks.json".into()));
        assert_eq!(iss.tenant_claim, "org");
    }

    #[test]
    fn misspelled_fields_are_rejected() {
        let err = serde_json::from_value::<IssuerConfig>(serde_json::json!({
            "issuer": "https://idp.example",
            "audience": "paddock",
            "jwks": {"file": "jwks.json"},
            "tenant_clam": "org",
        }))
        .unwrap_err();
        assert!(err.to_string().contains("tenant_clam"), "{err}");
    }
}
