//! Token verification: JOSE header checks, issuer and key selection, signature and claim
//! validation, and the mapping of claims to a [`Principal`].

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::config::{AuthConfig, IssuerConfig, JwksSource};
use super::jwks::{JwksCache, KeyKind, KeyMatch};
use super::verified::{Verified, VerifiedTokens};
use super::{AuthError, Principal, is_dns1123_label, is_scope_token, is_valid_user};

/// Longest token accepted, in bytes; larger ones are refused before any parsing.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Verifies bearer tokens against the configured issuers. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Authenticator {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    issuers: Vec<Issuer>,
    leeway_secs: u64,
    /// Tokens whose signature was verified recently.
    verified: VerifiedTokens,
    /// `resource` exactly as configured.
    pub(super) resource: String,
    /// Absolute URL of our protected-resource metadata (the path-inserted form).
    pub(super) metadata_url: String,
    /// Paths the metadata is served at.
    pub(super) metadata_paths: Vec<String>,
    pub(super) authorization_servers: Vec<String>,
}

struct Issuer {
    cfg: IssuerConfig,
    keys: Arc<JwksCache>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("resource", &self.inner.resource)
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|i| &i.cfg.issuer)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Authenticator {
    /// Checks the configuration, loads JWKS files (URL sources are fetched on first use).
    pub async fn new(cfg: AuthConfig) -> Result<Self, AuthError> {
        if cfg.issuers.is_empty() {
            return Err(AuthError::Config("at least one issuer is required".into()));
        }
        let (metadata_url, well_known) = metadata_location(&cfg.resource)?;
        let mut metadata_paths = vec![super::http::WELL_KNOWN.to_owned()];
        if well_known != super::http::WELL_KNOWN {
            metadata_paths.push(well_known);
        }

        let ttl = Duration::from_secs(cfg.jwks_cache_ttl_secs);
        let min_refresh = Duration::from_secs(cfg.jwks_refresh_min_interval_secs);
        let mut client = None;
        let mut issuers: Vec<Issuer> = Vec::with_capacity(cfg.issuers.len());
        for ic in &cfg.issuers {
            validate_issuer(ic)?;
            if issuers.iter().any(|i| i.cfg.issuer == ic.issuer) {
                return Err(AuthError::Config(format!(
                    "issuer {} is configured twice",
                    ic.issuer
                )));
            }
            let keys = match &ic.jwks {
                JwksSource::File(path) => JwksCache::file(&ic.issuer, path).await?,
                JwksSource::Url(url) => {
                    check_jwks_url(url)?;
                    if client.is_none() {
                        client = Some(http_client(Duration::from_secs(
                            cfg.jwks_fetch_timeout_secs.max(1),
                        ))?);
                    }
                    let client = client.clone().expect("client was just built");
                    JwksCache::url(&ic.issuer, url.clone(), client, ttl, min_refresh)
                }
            };
            issuers.push(Issuer {
                cfg: ic.clone(),
                keys: Arc::new(keys),
            });
        }

        // RFC 9728 lists authorization servers by their RFC 8414 issuer identifier, an http(s) URL; clients
        // parse them as URLs (the official MCP SDK refuses the whole document otherwise). Configured ones must
        // be URLs; by default the issuers that are URLs are advertised, and the others (e.g. a development
        // issuer named `paddock-dev`) are left out.
        for server in &cfg.authorization_servers {
            if !is_http_url(server) {
                return Err(AuthError::Config(format!(
                    "authorization server {server:?}: not an http(s) URL"
                )));
            }
        }
        let mut authorization_servers = cfg.authorization_servers.clone();
        if authorization_servers.is_empty() {
            authorization_servers = issuers
                .iter()
                .map(|i| i.cfg.issuer.clone())
                .filter(|iss| is_http_url(iss))
                .collect();
        }

        Ok(Authenticator {
            inner: Arc::new(Inner {
                issuers,
                leeway_secs: cfg.leeway_secs,
                verified: VerifiedTokens::new(),
                resource: cfg.resource,
                metadata_url,
                metadata_paths,
                authorization_servers,
            }),
        })
    }

    /// The exact resource URL this server protects.
    /// The authorization servers the protected-resource metadata advertises.
    pub fn authorization_servers(&self) -> &[String] {
        &self.inner.authorization_servers
    }

    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// The absolute URL of the protected-resource metadata, as sent in `WWW-Authenticate`.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// Verifies a bearer token and returns who it identifies.
    pub async fn authenticate(&self, bearer_token: &str) -> Result<Principal, AuthError> {
        let result = self.verify(bearer_token).await;
        if let Err(e) = &result {
            match e {
                AuthError::KeysUnavailable { .. } => {
                    tracing::warn!(reason = %e, "cannot verify bearer token")
                }
                _ => tracing::info!(reason = %e, "refused bearer token"),
            }
        }
        result
    }

    async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::invalid_token("token too large"));
        }
        let digest = VerifiedTokens::digest(token);
        if let Some(hit) = self.inner.verified.get(&digest) {
            if self.still_holds(&hit).await {
                return Ok(hit.principal.clone());
            }
            self.inner.verified.remove(&digest);
        }
        let verified = self.verify_signed(token).await?;
        let principal = verified.principal.clone();
        self.inner.verified.insert(digest, verified);
        Ok(principal)
    }

    /// Whether an earlier verification still stands: the token is within its validity window, and its
    /// issuer's keys (reloaded as a full verification would reload them) still select the key that verified it.
    async fn still_holds(&self, v: &Verified) -> bool {
        if !v.is_current(
            jsonwebtoken::get_current_timestamp(),
            self.inner.leeway_secs,
        ) {
            return false;
        }
        let keys = &self.inner.issuers[v.issuer].keys;
        matches!(keys.key_for(v.kid.as_deref(), v.kind).await, Ok(KeyMatch::Found(key)) if v.verified_by(&key))
    }

    /// The full verification: header, issuer, key, signature and claims.
    async fn verify_signed(&self, token: &str) -> Result<Verified, AuthError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let header = decode_segment(header)?;

        // Refuse by algorithm before touching keys: this is what stops `alg: none` and the
        // HMAC-with-public-key confusion.
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => accepted_alg(alg)?,
            _ => return Err(AuthError::invalid_token("token header has no alg")),
        };
        if header.contains_key("crit") {
            return Err(AuthError::invalid_token(
                "token header has unsupported critical parameters",
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(malformed()),
        };
        if signature.is_empty() {
            return Err(AuthError::invalid_token("token has no signature"));
        }
        if alg == Algorithm::ES256 && !es256_signature_is_canonical(signature) {
            return Err(AuthError::invalid_token(
                "ES256 signature is not in canonical (low-S) form",
            ));
        }

        // The issuer is read before verification only to choose whose keys verify the token.
        let unverified = decode_segment(payload)?;
        let iss = match unverified.get("iss") {
            Some(Value::String(iss)) => iss,
            _ => return Err(AuthError::invalid_token("token is missing the iss claim")),
        };
        let issuer_index = self
            .inner
            .issuers
            .iter()
            .position(|i| &i.cfg.issuer == iss)
            .ok_or_else(|| AuthError::invalid_token("unknown token issuer"))?;
        let issuer = &self.inner.issuers[issuer_index];

        let kind = KeyKind::for_alg(alg)
            .ok_or_else(|| AuthError::invalid_token("unsupported token algorithm"))?;
        let key = match issuer.keys.key_for(kid, kind).await? {
            KeyMatch::Found(key) => key,
            KeyMatch::WrongType => {
                return Err(AuthError::invalid_token(
                    "token algorithm does not match the signing key",
                ));
            }
            KeyMatch::NotFound => return Err(AuthError::invalid_token("unknown signing key")),
            KeyMatch::Ambiguous => {
                return Err(AuthError::invalid_token(
                    "token has no kid and the issuer has several keys",
                ));
            }
        };

        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[&issuer.cfg.issuer]);
        validation.set_audience(&[&issuer.cfg.audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = self.inner.leeway_secs;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(map_jwt_error)?;
        check_time_claims(&data.claims)?;
        let principal = principal_from_claims(&issuer.cfg, &data.claims)?;
        // The decoder required `exp` as an unsigned integer, and `check_time_claims` any `nbf`.
        let time = |claim: &str| data.claims.get(claim).and_then(Value::as_u64);
        let exp =
            time("exp").ok_or_else(|| AuthError::invalid_token("token has no valid exp claim"))?;
        Ok(Verified {
            principal,
            issuer: issuer_index,
            kid: kid.map(str::to_owned),
            kind,
            key,
            exp,
            nbf: time("nbf"),
        })
    }
}

fn malformed() -> AuthError {
    AuthError::invalid_token("malformed token")
}

fn decode_segment(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed())?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(malformed()),
    }
}

/// Whether an ES256 signature segment is `r || s` with `s` in the lower half of the group order. For every valid
/// signature (r, s), (r, n - s) verifies too; accepting only the low half gives each token one valid byte string,
/// so an altered copy of a token is never taken for a different, valid one. A segment that is not 64 bytes is
/// left for the signature check to refuse.
pub(crate) fn es256_signature_is_canonical(segment: &str) -> bool {
    match URL_SAFE_NO_PAD
        .decode(segment)
        .ok()
        .and_then(|b| p256::ecdsa::Signature::from_slice(&b).ok())
    {
        Some(sig) => sig.normalize_s().is_none(),
        None => true,
    }
}

fn accepted_alg(alg: &str) -> Result<Algorithm, AuthError> {
    match alg {
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        a if a.eq_ignore_ascii_case("none") => {
            Err(AuthError::invalid_token("unsigned tokens are not accepted"))
        }
        a if a.len() >= 2 && a[..2].eq_ignore_ascii_case("HS") => Err(AuthError::invalid_token(
            "HMAC-signed tokens are not accepted",
        )),
        _ => Err(AuthError::invalid_token("unsupported token algorithm")),
    }
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> AuthError {
    let reason = match e.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not yet valid",
        ErrorKind::InvalidAudience => "token audience does not match this resource",
        ErrorKind::InvalidIssuer => "unknown token issuer",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "exp" => "token has no valid exp claim",
            "aud" => "token has no valid aud claim",
            "iss" => "token has no valid iss claim",
            _ => "token is missing a required claim",
        },
        ErrorKind::InvalidSignature => "invalid token signature",
        ErrorKind::InvalidAlgorithm => "token algorithm does not match the signing key",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        _ => "invalid token",
    };
    AuthError::invalid_token(reason)
}

/// `exp` is checked by the decoder; a present `nbf` or `iat` of the wrong type is ignored there,
/// so it is refused here.
fn check_time_claims(claims: &Map<String, Value>) -> Result<(), AuthError> {
    for (claim, reason) in [
        ("nbf", "token has an invalid nbf claim"),
        ("iat", "token has an invalid iat claim"),
    ] {
        if claims.get(claim).is_some_and(|v| !v.is_u64()) {
            return Err(AuthError::invalid_token(reason));
        }
    }
    Ok(())
}

pub(super) fn principal_from_claims(
    cfg: &IssuerConfig,
    claims: &Map<String, Value>,
) -> Result<Principal, AuthError> {
    let tenant = match claims.get(&cfg.tenant_claim) {
        None => {
            return Err(AuthError::invalid_token(
                "token is missing the tenant claim",
            ));
        }
        Some(Value::String(t)) if is_dns1123_label(t) => t.clone(),
        Some(_) => return Err(AuthError::invalid_token("invalid tenant claim")),
    };
    let user = match claims.get(&cfg.user_claim) {
        None => return Err(AuthError::invalid_token("token is missing the user claim")),
        Some(Value::String(u)) if is_valid_user(u) => u.clone(),
        Some(_) => return Err(AuthError::invalid_token("invalid user claim")),
    };
    let mut scopes = BTreeSet::new();
    let mut claim_names = vec![cfg.scope_claim.as_str()];
    if cfg.scope_claim != "scp" {
        claim_names.push("scp");
    }
    for name in claim_names {
        let bad = || AuthError::InvalidToken(Cow::Borrowed("invalid scope claim"));
        match claims.get(name) {
            None => {}
            Some(Value::String(s)) => {
                for scope in s.split(' ').filter(|s| !s.is_empty()) {
                    if !is_scope_token(scope) {
                        return Err(bad());
                    }
                    scopes.insert(scope.to_owned());
                }
            }
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(scope) if is_scope_token(scope) => {
                            scopes.insert(scope.clone());
                        }
                        _ => return Err(bad()),
                    }
                }
            }
            Some(_) => return Err(bad()),
        }
    }
    // An identifier for the audit trail, not a credential: one that is not a short printable string is left out
    // rather than refusing a token the issuer considers valid.
    let token_id = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| (1..=256).contains(&j.chars().count()) && !j.chars().any(char::is_control))
        .map(str::to_owned);
    Ok(Principal {
        tenant,
        user,
        scopes,
        issuer: cfg.issuer.clone(),
        token_id,
    })
}

fn validate_issuer(ic: &IssuerConfig) -> Result<(), AuthError> {
    let bad = |what: &str| Err(AuthError::Config(format!("issuer {:?}: {what}", ic.issuer)));
    if ic.issuer.is_empty() {
        return bad("issuer must not be empty");
    }
    if ic.audience.is_empty() {
        return bad("audience must not be empty");
    }
    if ic.tenant_claim.is_empty() || ic.user_claim.is_empty() || ic.scope_claim.is_empty() {
        return bad("claim names must not be empty");
    }
    Ok(())
}

/// Derives the metadata URL (RFC 9728 §3.1: the well-known segment inserted between host and
/// path) and its path from the resource URL.
fn metadata_location(resource: &str) -> Result<(String, String), AuthError> {
    let bad = |what: String| Err(AuthError::Config(format!("resource {resource:?}: {what}")));
    let url = match reqwest::Url::parse(resource) {
        Ok(url) => url,
        Err(e) => return bad(format!("not an absolute URL: {e}")),
    };
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return bad("must be an http(s) URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return bad("must not have a query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad("must not carry credentials".into());
    }
    let path = url.path();
    let well_known = format!(
        "{}{}",
        super::http::WELL_KNOWN,
        if path == "/" { "" } else { path }
    );
    let mut metadata = url.clone();
    metadata.set_path(&well_known);
    Ok((metadata.to_string(), well_known))
}

fn is_http_url(s: &str) -> bool {
    reqwest::Url::parse(s)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// JWKS over plain HTTP would let anyone on the path inject keys, so it is allowed only on loopback.
fn check_jwks_url(url: &str) -> Result<(), AuthError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| AuthError::Config(format!("JWKS URL {url:?}: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&parsed) => Ok(()),
        _ => Err(AuthError::Config(format!(
            "JWKS URL {url:?} must use https (plain http only on loopback)"
        ))),
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, AuthError> {
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let allowed = attempt.url().scheme() == "https" || is_loopback_host(attempt.url());
        if attempt.previous().len() >= 3 {
            attempt.error("too many redirects")
        } else if allowed {
            attempt.follow()
        } else {
            attempt.error("redirect to a non-https URL")
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(redirects)
        .user_agent(concat!("paddock-runtime/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AuthError::Config(format!("failed to build the JWKS HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issuer() -> IssuerConfig {
        IssuerConfig::new(
            "https://issuer.test",
            "paddock",
            JwksSource::Url("https://issuer.test/jwks".into()),
        )
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn metadata_url_inserts_the_well_known_segment_before_the_path() {
        let cases = [
            (
                "http://127.0.0.1:8080/mcp",
                "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://paddock.example/mcp/",
                "https://paddock.example/.well-known/oauth-protected-resource/mcp/",
            ),
            (
                "https://paddock.example",
                "https://paddock.example/.well-known/oauth-protected-resource",
            ),
            (
                "https://paddock.example/",
                "https://paddock.example/.well-known/oauth-protected-resource",
            ),
            (
                "http://[::1]:9000/t/acme/mcp",
                "http://[::1]:9000/.well-known/oauth-protected-resource/t/acme/mcp",
            ),
        ];
        for (resource, want) in cases {
            assert_eq!(metadata_location(resource).unwrap().0, want, "{resource}");
        }
    }

    #[test]
    fn unusable_resource_urls_are_config_errors() {
        for resource in [
            "",
            "mcp",
            "ftp://h/mcp",
            "http://h/mcp?x=1",
            "http://h/mcp#f",
            "http://u:p@h/mcp",
        ] {
            assert!(
                matches!(metadata_location(resource), Err(AuthError::Config(_))),
                "{resource}"
            );
        }
    }

    #[test]
    fn jwks_over_plain_http_is_allowed_only_on_loopback() {
        assert!(check_jwks_url("https://idp.example/jwks").is_ok());
        assert!(check_jwks_url("http://127.0.0.1:9999/jwks").is_ok());
        assert!(check_jwks_url("http://localhost/jwks").is_ok());
        assert!(check_jwks_url("http://[::1]/jwks").is_ok());
        assert!(check_jwks_url("http://idp.example/jwks").is_err());
        assert!(check_jwks_url("http://10.0.0.1/jwks").is_err());
        assert!(check_jwks_url("file:///etc/jwks").is_err());
    }

    #[test]
    fn algorithms_are_refused_by_name_before_verification() {
        assert!(accepted_alg("ES256").is_ok());
        assert!(accepted_alg("RS256").is_ok());
        assert!(accepted_alg("EdDSA").is_ok());
        for alg in [
            "none", "None", "NONE", "HS256", "HS384", "HS512", "hs256", "RS384", "PS256", "ES384",
            "",
        ] {
            assert!(accepted_alg(alg).is_err(), "{alg}");
        }
        let reason = |alg| accepted_alg(alg).unwrap_err().to_string();
        assert_eq!(reason("none"), "unsigned tokens are not accepted");
        assert_eq!(reason("HS256"), "HMAC-signed tokens are not accepted");
    }

    #[test]
    fn scopes_come_from_the_scope_string_and_the_scp_array() {
        let p = principal_from_claims(
            &issuer(),
            &claims(json!({"tenant_id": "acme", "sub": "alice", "scope": "documents:read  tasks:run", "scp": ["usage:read"]})),
        )
        .unwrap();
        assert_eq!(
            p.scopes,
            ["documents:read", "tasks:run", "usage:read"]
                .map(String::from)
                .into()
        );
        let p = principal_from_claims(
            &issuer(),
            &claims(json!({"tenant_id": "acme", "sub": "alice"})),
        )
        .unwrap();
        assert!(p.scopes.is_empty());
    }

    #[test]
    fn bad_claims_are_refused_with_precise_reasons() {
        let cases = [
            (json!({"sub": "alice"}), "token is missing the tenant claim"),
            (
                json!({"tenant_id": "acme'; DROP TABLE tenants;--", "sub": "a"}),
                "invalid tenant claim",
            ),
            (json!({"tenant_id": "", "sub": "a"}), "invalid tenant claim"),
            (
                json!({"tenant_id": "Acme", "sub": "a"}),
                "invalid tenant claim",
            ),
            (
                json!({"tenant_id": "acme corp", "sub": "a"}),
                "invalid tenant claim",
            ),
            (json!({"tenant_id": 42, "sub": "a"}), "invalid tenant claim"),
            (
                json!({"tenant_id": ["acme"], "sub": "a"}),
                "invalid tenant claim",
            ),
            (
                json!({"tenant_id": "acme"}),
                "token is missing the user claim",
            ),
            (
                json!({"tenant_id": "acme", "sub": ""}),
                "invalid user claim",
            ),
            (
                json!({"tenant_id": "acme", "sub": "a\u{0}b"}),
                "invalid user claim",
            ),
            (
                json!({"tenant_id": "acme", "sub": "a".repeat(257)}),
                "invalid user claim",
            ),
            (json!({"tenant_id": "acme", "sub": 7}), "invalid user claim"),
            (
                json!({"tenant_id": "acme", "sub": "a", "scope": 3}),
                "invalid scope claim",
            ),
            (
                json!({"tenant_id": "acme", "sub": "a", "scp": [1]}),
                "invalid scope claim",
            ),
            (
                json!({"tenant_id": "acme", "sub": "a", "scope": "ok bad\"quote"}),
                "invalid scope claim",
            ),
        ];
        for (c, want) in cases {
            let err = principal_from_claims(&issuer(), &claims(c.clone())).unwrap_err();
            assert_eq!(err.to_string(), want, "{c}");
        }
    }

    #[test]
    fn tenant_and_user_claims_are_configurable() {
        let mut cfg = issuer();
        cfg.tenant_claim = "org".into();
        cfg.user_claim = "email".into();
        let p = principal_from_claims(
            &cfg,
            &claims(json!({"org": "globex", "email": "bob@globex.test", "tenant_id": "acme"})),
        )
        .unwrap();
        assert_eq!(
            (p.tenant.as_str(), p.user.as_str()),
            ("globex", "bob@globex.test")
        );
    }
}
