//! The built-in development issuer: an ES256 key the operator keeps in a Secret of its own
//! namespace, the JWKS every runtime trusts it through, and the short-lived tokens the operator
//! mints with it (the `Verified` self-check of a ToolServer, AgentTask submissions).
//!
//! The public JWKS travels inside each ToolServer's ConfigMap (ConfigMaps cannot be mounted
//! across namespaces), so rotating the key rolls every runtime. People can mint tokens from the
//! same Secret with `paddock-runtime token --key signing-key.pem --issuer <issuer> ...`.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{Api, Client, api::PostParams};
use paddock_contract::dev::{self, DevError, MintClaims};

use crate::names;

/// Key of the PKCS#8 PEM signing key in the Secret.
pub const SIGNING_KEY: &str = dev::SIGNING_KEY_FILE;
/// Key of the public JWKS in the Secret (for convenience; the runtimes get it from their ConfigMap).
pub const JWKS_KEY: &str = dev::JWKS_FILE;

/// The development issuer's key and identity.
pub struct DevIssuer {
    issuer: String,
    key: dev::DevSigningKey,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIssuer")
            .field("issuer", &self.issuer)
            .field("kid", &self.key.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the development issuer Secret {namespace}/{name}")]
    ReadSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create the development issuer Secret {namespace}/{name}")]
    CreateSecret {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the development issuer Secret {namespace}/{name} has no usable {SIGNING_KEY}; fix or delete it"
    )]
    BadSecret {
        namespace: String,
        name: String,
        #[source]
        source: Option<DevError>,
    },
}

impl DevIssuer {
    /// A fresh key for `issuer`.
    pub fn generate(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            key: dev::generate(),
        }
    }

    /// The key in `pem` (PKCS#8 P-256) for `issuer`.
    pub fn from_pem(issuer: &str, pem: &str) -> Result<Self, DevError> {
        Ok(Self {
            issuer: issuer.to_owned(),
            key: dev::from_pem(pem)?,
        })
    }

    /// The `iss` of minted tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The public JWKS document, as the runtime's JWKS file loader reads it.
    pub fn jwks_json(&self) -> String {
        let mut text =
            serde_json::to_string_pretty(&self.key.jwks).expect("a JSON value serialises");
        text.push('\n');
        text
    }

    /// Mints a token for `tenant`, accepted by a runtime whose dev issuer audience is `audience`.
    pub fn mint(
        &self,
        tenant: &str,
        audience: &str,
        user: &str,
        scopes: &[&str],
        ttl: Duration,
    ) -> Result<String, DevError> {
        dev::mint_with_pem(
            &self.key.private_pem,
            &self.key.kid,
            &MintClaims {
                issuer: self.issuer.clone(),
                audience: audience.to_owned(),
                tenant: tenant.to_owned(),
                user: user.to_owned(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                ttl,
            },
        )
    }

    /// The Secret that stores this key.
    fn to_secret(&self, namespace: &str, name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([
                    (names::MANAGED_BY.to_owned(), names::MANAGER.to_owned()),
                    ("app.kubernetes.io/part-of".to_owned(), "paddock".to_owned()),
                ])),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([
                (
                    SIGNING_KEY.to_owned(),
                    ByteString(self.key.private_pem.as_bytes().to_vec()),
                ),
                (
                    JWKS_KEY.to_owned(),
                    ByteString(self.jwks_json().into_bytes()),
                ),
            ])),
            ..Default::default()
        }
    }

    /// The key kept in Secret `namespace/name`, if there is one; it is never created here.
    pub async fn read(
        client: Client,
        namespace: &str,
        name: &str,
        issuer: &str,
    ) -> Result<Option<Self>, Error> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let ids = || (namespace.to_owned(), name.to_owned());
        let existing = api.get_opt(name).await.map_err(|source| {
            let (namespace, name) = ids();
            Error::ReadSecret {
                namespace,
                name,
                source,
            }
        })?;
        let Some(secret) = existing else {
            return Ok(None);
        };
        let pem = secret
            .data
            .as_ref()
            .and_then(|d| d.get(SIGNING_KEY))
            .and_then(|b| String::from_utf8(b.0.clone()).ok());
        let (namespace, name) = ids();
        let Some(pem) = pem else {
            return Err(Error::BadSecret {
                namespace,
                name,
                source: None,
            });
        };
        Self::from_pem(issuer, &pem)
            .map(Some)
            .map_err(|e| Error::BadSecret {
                namespace,
                name,
                source: Some(e),
            })
    }

    /// Loads the key from `namespace/name`, creating the Secret with a new key when it does not
    /// exist. An existing but unreadable Secret is an error, never overwritten: tokens signed
    /// with that key would stop verifying.
    pub async fn ensure(
        client: Client,
        namespace: &str,
        name: &str,
        issuer: &str,
    ) -> Result<Self, Error> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let ids = || (namespace.to_owned(), name.to_owned());
        for _ in 0..2 {
            if let Some(existing) = Self::read(client.clone(), namespace, name, issuer).await? {
                return Ok(existing);
            }
            let fresh = Self::generate(issuer);
            match api
                .create(&PostParams::default(), &fresh.to_secret(namespace, name))
                .await
            {
                Ok(_) => {
                    tracing::info!(%namespace, %name, kid = %fresh.key.kid, "created the development issuer key");
                    return Ok(fresh);
                }
                // Another replica won the race: read its key.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(source) => {
                    let (namespace, name) = ids();
                    return Err(Error::CreateSecret {
                        namespace,
                        name,
                        source,
                    });
                }
            }
        }
        let (namespace, name) = ids();
        Err(Error::BadSecret {
            namespace,
            name,
            source: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_holds_only_the_public_key_and_survives_a_secret_round_trip() {
        let issuer = DevIssuer::generate("urn:paddock:dev-issuer");
        let jwks: serde_json::Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "no private scalar in the JWKS"
        );
        let secret = issuer.to_secret("paddock-system", "paddock-dev-issuer");
        let pem = String::from_utf8(secret.data.unwrap()[SIGNING_KEY].0.clone()).unwrap();
        let again = DevIssuer::from_pem("urn:paddock:dev-issuer", &pem).unwrap();
        assert_eq!(again.jwks_json(), issuer.jwks_json());
        let token = issuer.mint(
            "acme",
            "http://docs.acme.svc:8080/mcp",
            "system:paddock-operator",
            &[],
            Duration::from_secs(60),
        );
        assert_eq!(token.unwrap().split('.').count(), 3);
    }
}
