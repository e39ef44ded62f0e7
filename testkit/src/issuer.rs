//! A development issuer for tests and the lab: a fresh P-256 key whose JWKS is written to a temporary
//! directory, so the runtime trusts it as it trusts the operator's development issuer (a JWKS file), and the
//! tokens it signs for a tenant, user and scopes.

use std::{path::PathBuf, time::Duration};

use paddock_contract::dev;
use paddock_runtime::auth::{AuthConfig, IssuerConfig, JwksSource};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "paddock-test";
pub const RESOURCE: &str = "http://127.0.0.1:8080/mcp";

pub const RW: &[&str] = &["documents:read", "documents:write"];
pub const RO: &[&str] = &["documents:read"];

/// A development key pair on disk (`signing-key.pem`, `jwks.json`) and the issuer and audience its tokens name.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub pem: String,
    pub kid: String,
    pub issuer: String,
    pub audience: String,
}

/// Keys for [`ISSUER`] and [`AUDIENCE`].
pub fn keys() -> Keys {
    Keys::with_issuer(ISSUER, AUDIENCE).expect("a development key pair in a temporary directory")
}

impl Keys {
    /// Keys whose tokens name `issuer` and `audience`.
    pub fn with_issuer(issuer: &str, audience: &str) -> Result<Self, dev::DevError> {
        let dir = tempfile::tempdir().map_err(|source| dev::DevError::WriteFile {
            path: std::env::temp_dir(),
            source,
        })?;
        let files = dev::generate_keypair(dir.path())?;
        let pem = std::fs::read_to_string(&files.signing_key).map_err(|source| {
            dev::DevError::WriteFile {
                path: files.signing_key.clone(),
                source,
            }
        })?;
        Ok(Self {
            dir,
            pem,
            kid: files.kid,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        })
    }

    /// The JWKS file the runtime reads the public key from.
    pub fn jwks_file(&self) -> PathBuf {
        self.dir.path().join(dev::JWKS_FILE)
    }

    /// A token for `tenant` and `user` with `scopes`, valid for `ttl`.
    pub fn mint(
        &self,
        tenant: &str,
        user: &str,
        scopes: &[&str],
        ttl: Duration,
    ) -> Result<String, dev::DevError> {
        dev::mint_with_pem(
            &self.pem,
            &self.kid,
            &dev::MintClaims {
                issuer: self.issuer.clone(),
                audience: self.audience.clone(),
                tenant: tenant.into(),
                user: user.into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                ttl,
            },
        )
    }

    /// A token of user `alice` for ten minutes.
    pub fn token(&self, tenant: &str, scopes: &[&str]) -> String {
        self.token_for(tenant, "alice", scopes)
    }

    pub fn token_for(&self, tenant: &str, user: &str, scopes: &[&str]) -> String {
        self.mint(tenant, user, scopes, Duration::from_secs(600))
            .unwrap()
    }

    /// This issuer as a runtime configuration file names it (an entry of `auth.issuers`).
    pub fn issuer_json(&self) -> Value {
        json!({ "issuer": self.issuer, "audience": self.audience, "jwks": { "file": self.jwks_file() } })
    }

    /// The authentication settings of a runtime that trusts this issuer alone, for [`RESOURCE`], with no leeway.
    pub fn auth_config(&self) -> AuthConfig {
        let mut issuer = IssuerConfig::new(
            self.issuer.clone(),
            self.audience.clone(),
            JwksSource::File(self.jwks_file()),
        );
        issuer.tenant_claim = "tenant_id".into();
        serde_json::from_value::<AuthConfig>(
            json!({ "issuers": [], "resource": RESOURCE, "leeway_secs": 0 }),
        )
        .map(|mut c| {
            c.issuers.push(issuer);
            c
        })
        .unwrap()
    }
}
