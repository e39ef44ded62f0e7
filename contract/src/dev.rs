//! The built-in development issuer: an ES256 (P-256) signing key, its public JWKS, and token
//! minting.
//!
//! The operator keeps the key in a Secret and mints tokens for AgentTasks; the runtime's `token` CLI
//! subcommand mints tokens for people. Runtimes trust the issuer through its `jwks.json`, like any
//! other issuer. Nothing here parses arguments.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, LineEnding};
use serde_json::json;

use crate::identity::{is_dns1123_label, is_scope_token, is_valid_user};

/// File name of the PKCS#8 PEM signing key written by [`generate_keypair`].
pub const SIGNING_KEY_FILE: &str = "signing-key.pem";
/// File name of the public JWKS written by [`generate_keypair`].
pub const JWKS_FILE: &str = "jwks.json";

/// Why a development key could not be made or a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("failed to write {path}: {source}")]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to overwrite the existing signing key {0}")]
    KeyExists(PathBuf),
    #[error("failed to read the signing key {path}: {source}")]
    ReadKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse the signing key: {0}")]
    ParseKey(String),
    #[error("failed to encode the signing key: {0}")]
    EncodeKey(String),
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    #[error("failed to sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A development signing key with its public half.
pub struct DevSigningKey {
    /// PKCS#8 PEM of the private key.
    pub private_pem: Zeroizing<String>,
    /// RFC 7638 thumbprint of the public key, used as `kid`.
    pub kid: String,
    /// `{"keys": [<public JWK>]}` with `kid`, `alg: ES256` and `use: sig`.
    pub jwks: serde_json::Value,
}

impl std::fmt::Debug for DevSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevSigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Where [`generate_keypair`] wrote the key pair.
#[derive(Clone, Debug)]
pub struct DevKeyFiles {
    pub signing_key: PathBuf,
    pub jwks: PathBuf,
    pub kid: String,
}

/// Generates a fresh P-256 key in memory.
pub fn generate() -> DevSigningKey {
    let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
    from_secret(&secret).expect("a freshly generated P-256 key encodes as PKCS#8 and JWK")
}

/// Loads a PKCS#8 PEM P-256 key (e.g. from the operator's Secret) and derives its `kid` and JWKS.
pub fn from_pem(pem: &str) -> Result<DevSigningKey, DevError> {
    let secret =
        p256::SecretKey::from_pkcs8_pem(pem).map_err(|e| DevError::ParseKey(e.to_string()))?;
    from_secret(&secret)
}

fn from_secret(secret: &p256::SecretKey) -> Result<DevSigningKey, DevError> {
    let private_pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| DevError::EncodeKey(e.to_string()))?;
    let mut jwk = serde_json::to_value(secret.public_key().to_jwk())
        .map_err(|e| DevError::EncodeKey(e.to_string()))?;
    let kid = thumbprint(&jwk)
        .ok_or_else(|| DevError::EncodeKey("public JWK lacks EC members".into()))?;
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!("ES256");
    jwk["use"] = json!("sig");
    Ok(DevSigningKey {
        private_pem,
        kid,
        jwks: json!({ "keys": [jwk] }),
    })
}

/// Generates a key pair into `dir`: `signing-key.pem` (mode 0600) and `jwks.json`.
/// An existing signing key is never overwritten: tokens signed with it would stop verifying.
pub fn generate_keypair(dir: &Path) -> Result<DevKeyFiles, DevError> {
    let key = generate();
    let signing_key = dir.join(SIGNING_KEY_FILE);
    let jwks = dir.join(JWKS_FILE);
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| DevError::WriteFile { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;

    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut file = match opts.open(&signing_key) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(DevError::KeyExists(signing_key));
        }
        Err(e) => return Err(write_err(&signing_key)(e)),
    };
    file.write_all(key.private_pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err(&signing_key))?;

    let mut body = serde_json::to_vec_pretty(&key.jwks).expect("a JSON value serialises");
    body.push(b'\n');
    std::fs::write(&jwks, body).map_err(write_err(&jwks))?;
    Ok(DevKeyFiles {
        signing_key,
        jwks,
        kid: key.kid,
    })
}

/// The claims of a development token.
#[derive(Clone, Debug)]
pub struct MintClaims {
    pub issuer: String,
    pub audience: String,
    /// Tenant name, written to the `tenant_id` claim.
    pub tenant: String,
    /// User, written to `sub`.
    pub user: String,
    pub scopes: Vec<String>,
    /// Lifetime; every token expires.
    pub ttl: Duration,
}

/// Mints an ES256 token with the key in the PEM file at `key_pem_path`.
pub fn mint(key_pem_path: &Path, kid: &str, claims: &MintClaims) -> Result<String, DevError> {
    let pem = Zeroizing::new(std::fs::read_to_string(key_pem_path).map_err(|source| {
        DevError::ReadKey {
            path: key_pem_path.to_owned(),
            source,
        }
    })?);
    mint_with_pem(&pem, kid, claims)
}

/// Mints an ES256 token with a PKCS#8 PEM key held in memory.
pub fn mint_with_pem(pem: &str, kid: &str, claims: &MintClaims) -> Result<String, DevError> {
    let invalid = |what: &str| Err(DevError::InvalidClaims(what.to_owned()));
    if claims.issuer.is_empty() {
        return invalid("issuer must not be empty");
    }
    if claims.audience.is_empty() {
        return invalid("audience must not be empty");
    }
    if !is_dns1123_label(&claims.tenant) {
        return invalid(
            "tenant must be a DNS-1123 label (lowercase letters, digits and '-', at most 63)",
        );
    }
    if !is_valid_user(&claims.user) {
        return invalid("user must be 1 to 256 characters without control characters");
    }
    if let Some(bad) = claims.scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(DevError::InvalidClaims(format!(
            "scope {bad:?} is not a valid scope token"
        )));
    }
    if claims.ttl < Duration::from_secs(1) {
        return invalid("ttl must be at least one second");
    }
    if kid.is_empty() {
        return invalid("kid must not be empty");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let body = json!({
        "iss": claims.issuer,
        "aud": claims.audience,
        "sub": claims.user,
        "tenant_id": claims.tenant,
        "scope": claims.scopes.join(" "),
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(claims.ttl.as_secs()),
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    // RFC 9068 access-token type.
    header.typ = Some("at+jwt".to_owned());
    let key =
        EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| DevError::ParseKey(e.to_string()))?;
    Ok(canonical_es256(&jsonwebtoken::encode(
        &header, &body, &key,
    )?))
}

/// RFC 7638 thumbprint of a public JWK (RSA, EC or OKP), base64url without padding.
pub fn thumbprint(jwk: &serde_json::Value) -> Option<String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let s = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    // Members in lexicographic order, no whitespace, as RFC 7638 §3 prescribes.
    let canonical = match s("kty")? {
        "RSA" => serde_json::json!({"e": s("e")?, "kty": "RSA", "n": s("n")?}),
        "EC" => serde_json::json!({"crv": s("crv")?, "kty": "EC", "x": s("x")?, "y": s("y")?}),
        "OKP" => serde_json::json!({"crv": s("crv")?, "kty": "OKP", "x": s("x")?}),
        _ => return None,
    };
    // serde_json's default map is ordered by key, which yields exactly the canonical form.
    let bytes = serde_json::to_vec(&canonical).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes)))
}

/// The same ES256 token with its signature in the canonical low-S form that verification requires (see
/// the runtime's verifier): the signer picks either of the two valid `s` values, and `n - s` replaces a high one.
/// Anything that is not a three-part token with a 64-byte signature comes back unchanged.
pub fn canonical_es256(token: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let Some((signed, signature)) = token.rsplit_once('.') else {
        return token.to_owned();
    };
    let low = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|b| p256::ecdsa::Signature::from_slice(&b).ok())
        .and_then(|sig| sig.normalize_s());
    match low {
        Some(sig) => format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes())),
        None => token.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_matches_the_rfc_example() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    fn claims() -> MintClaims {
        MintClaims {
            issuer: "paddock-dev".into(),
            audience: "paddock".into(),
            tenant: "acme".into(),
            user: "alice".into(),
            scopes: vec!["documents:read".into()],
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn key_files_are_written_once_with_a_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate_keypair(dir.path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files.signing_key)
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        let jwks: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files.jwks).unwrap()).unwrap();
        let jwk = &jwks["keys"][0];
        assert_eq!(
            (jwk["kty"].as_str(), jwk["crv"].as_str()),
            (Some("EC"), Some("P-256"))
        );
        assert_eq!(
            (jwk["alg"].as_str(), jwk["use"].as_str()),
            (Some("ES256"), Some("sig"))
        );
        assert_eq!(jwk["kid"].as_str(), Some(files.kid.as_str()));
        assert!(
            jwk.get("d").is_none(),
            "the JWKS must not contain the private scalar"
        );
        let again = generate_keypair(dir.path()).unwrap_err();
        assert!(matches!(again, DevError::KeyExists(_)), "{again}");
    }

    #[test]
    fn kid_is_derived_from_the_key_and_survives_a_pem_round_trip() {
        let key = generate();
        let reloaded = from_pem(&key.private_pem).unwrap();
        assert_eq!(key.kid, reloaded.kid);
        assert_eq!(key.jwks, reloaded.jwks);
        assert_ne!(key.kid, generate().kid);
        assert!(
            from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }

    #[test]
    fn minted_tokens_carry_the_requested_claims() {
        use base64::Engine as _;
        let key = generate();
        let token = mint_with_pem(&key.private_pem, &key.kid, &claims()).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let body: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["tenant_id"], "acme");
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["scope"], "documents:read");
        assert_eq!(
            body["exp"].as_u64().unwrap() - body["iat"].as_u64().unwrap(),
            60
        );
    }

    #[test]
    fn bad_claims_are_refused_before_signing() {
        let key = generate();
        for (mutate, what) in [
            (
                Box::new(|c: &mut MintClaims| c.tenant = "acme'; DROP TABLE tenants;--".into())
                    as Box<dyn Fn(&mut MintClaims)>,
                "tenant",
            ),
            (
                Box::new(|c: &mut MintClaims| c.user = String::new()),
                "user",
            ),
            (
                Box::new(|c: &mut MintClaims| c.scopes = vec!["a b".into()]),
                "scope",
            ),
            (Box::new(|c: &mut MintClaims| c.ttl = Duration::ZERO), "ttl"),
            (
                Box::new(|c: &mut MintClaims| c.audience = String::new()),
                "audience",
            ),
        ] {
            let mut c = claims();
            mutate(&mut c);
            let err = mint_with_pem(&key.private_pem, &key.kid, &c).unwrap_err();
            assert!(
                matches!(err, DevError::InvalidClaims(_)) && err.to_string().contains(what),
                "{err}"
            );
        }
    }
}
