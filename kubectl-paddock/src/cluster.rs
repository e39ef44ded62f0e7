//! The cluster as the plugin sees it: a client from the caller's kubeconfig, the `paddock.dev`
//! objects, the operator's development issuer, and the ToolServer that serves a tenant.

use std::{path::Path, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api, Client, Config, ResourceExt,
    config::{KubeConfigOptions, Kubeconfig},
};
use paddock_operator::{
    crd::{tenant::Tenant, toolserver::ToolServer},
    devissuer::{self, DevIssuer},
};

/// The Secret the chart names `devIssuer.secretName`, and the issuer it names `devIssuer.issuer`.
pub const DEV_ISSUER_SECRET: &str = "paddock-dev-issuer";
pub const DEV_ISSUER: &str = "urn:paddock:dev-issuer";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read the kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("failed to configure a Kubernetes client")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("failed to create a Kubernetes client")]
    Client(#[source] Box<kube::Error>),
    #[error("failed to read {what}")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("tenant {0} does not exist")]
    NoTenant(String),
    #[error("no ToolServer serves tenant {0}; apply one with spec.tenantRef: {0}")]
    NoToolServer(String),
    #[error(
        "tenant {tenant} has several ToolServers ({names}); name one with --toolserver NAMESPACE/NAME"
    )]
    SeveralToolServers { tenant: String, names: String },
    #[error("ToolServer {0} does not serve tenant {1}")]
    OtherTenant(String, String),
    #[error("ToolServer {0} has no URL yet; wait until it is Ready, or pass --url")]
    NoUrl(String),
    #[error(
        "this cluster has no Paddock development issuer (Secret {namespace}/{name}); tokens for tenant {tenant} come from its identity provider, {issuer}"
    )]
    NoDevIssuer {
        namespace: String,
        name: String,
        tenant: String,
        issuer: String,
    },
    #[error(
        "you may not read the development issuer's key (Secret {namespace}/{name}); ask a platform admin, or get a token for tenant {tenant} from its identity provider, {issuer}"
    )]
    DevIssuerForbidden {
        namespace: String,
        name: String,
        tenant: String,
        issuer: String,
    },
    #[error(transparent)]
    DevIssuer(Box<devissuer::Error>),
    #[error("failed to create an HTTP client")]
    Http(#[source] reqwest::Error),
}

/// The API server as the caller, and where the operator keeps its issuer.
pub struct Cluster {
    pub client: Client,
    /// The kubeconfig context's namespace, for subcommands that take `-n`.
    pub default_namespace: String,
    pub operator_namespace: String,
}

impl Cluster {
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        operator_namespace: &str,
    ) -> Result<Self, Error> {
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config = match kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(Error::Kubeconfig)?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(Error::Kubeconfig)?
            }
            None if context.is_some() => Config::from_kubeconfig(&options)
                .await
                .map_err(Error::Kubeconfig)?,
            None => Config::infer().await.map_err(Error::Infer)?,
        };
        let default_namespace = config.default_namespace.clone();
        Ok(Self {
            client: Client::try_from(config).map_err(|e| Error::Client(Box::new(e)))?,
            default_namespace,
            operator_namespace: operator_namespace.to_owned(),
        })
    }

    pub async fn tenant(&self, name: &str) -> Result<Tenant, Error> {
        Api::<Tenant>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(read(format!("Tenant {name}")))?
            .ok_or_else(|| Error::NoTenant(name.to_owned()))
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, Error> {
        list(Api::all(self.client.clone()), "Tenants").await
    }

    pub async fn toolservers(&self) -> Result<Vec<ToolServer>, Error> {
        list(Api::all(self.client.clone()), "ToolServers").await
    }

    pub async fn toolserver(&self, namespace: &str, name: &str) -> Result<ToolServer, Error> {
        Api::<ToolServer>::namespaced(self.client.clone(), namespace)
            .get(name)
            .await
            .map_err(read(format!("ToolServer {namespace}/{name}")))
    }

    /// The ToolServer serving `tenant`: the one `pick` names (`NAMESPACE/NAME`), or the only one.
    pub async fn toolserver_for(
        &self,
        tenant: &str,
        pick: Option<&str>,
    ) -> Result<ToolServer, Error> {
        if let Some(pick) = pick {
            let (namespace, name) = pick
                .split_once('/')
                .unwrap_or((&self.default_namespace, pick));
            let ts = self.toolserver(namespace, name).await?;
            if ts.spec.tenant_ref != tenant {
                return Err(Error::OtherTenant(pick.to_owned(), tenant.to_owned()));
            }
            return Ok(ts);
        }
        let mut serving: Vec<ToolServer> = self
            .toolservers()
            .await?
            .into_iter()
            .filter(|ts| ts.spec.tenant_ref == tenant)
            .collect();
        match serving.len() {
            0 => Err(Error::NoToolServer(tenant.to_owned())),
            1 => Ok(serving.remove(0)),
            _ => Err(Error::SeveralToolServers {
                tenant: tenant.to_owned(),
                names: serving.iter().map(qualified).collect::<Vec<_>>().join(", "),
            }),
        }
    }

    /// The image of the Deployment the operator renders for `ts` (its name and namespace).
    pub async fn runtime_image(&self, ts: &ToolServer) -> Option<String> {
        let api: Api<Deployment> =
            Api::namespaced(self.client.clone(), &ts.namespace().unwrap_or_default());
        let deployment = api.get_opt(&ts.name_any()).await.ok()??;
        deployment
            .spec?
            .template
            .spec?
            .containers
            .into_iter()
            .next()?
            .image
    }

    /// The operator's development issuer, to mint tokens for `tenant`. Refused with the tenant's
    /// own issuer named when the key is absent or not readable by the caller.
    pub async fn dev_issuer(&self, tenant: &Tenant, issuer: &str) -> Result<DevIssuer, Error> {
        let (namespace, name) = (
            self.operator_namespace.clone(),
            DEV_ISSUER_SECRET.to_owned(),
        );
        let external = || (tenant.name_any(), tenant.spec.auth.issuer.clone());
        match DevIssuer::read(self.client.clone(), &namespace, &name, issuer).await {
            Ok(Some(key)) => Ok(key),
            Ok(None) => {
                let (tenant, issuer) = external();
                Err(Error::NoDevIssuer {
                    namespace,
                    name,
                    tenant,
                    issuer,
                })
            }
            Err(devissuer::Error::ReadSecret {
                source: kube::Error::Api(e),
                ..
            }) if e.code == 403 => {
                let (tenant, issuer) = external();
                Err(Error::DevIssuerForbidden {
                    namespace,
                    name,
                    tenant,
                    issuer,
                })
            }
            Err(e) => Err(Error::DevIssuer(Box::new(e))),
        }
    }
}

/// `NAMESPACE/NAME` of a namespaced object.
pub fn qualified<K: ResourceExt>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// The base URL a ToolServer answers at: `url` if given, else its `status.url`.
pub fn base_url(ts: &ToolServer, url: Option<&str>) -> Result<String, Error> {
    url.map(str::to_owned)
        .or_else(|| ts.status.as_ref().and_then(|s| s.url.clone()))
        .map(|u| u.trim_end_matches('/').to_owned())
        .ok_or_else(|| Error::NoUrl(qualified(ts)))
}

/// An HTTP client for ToolServers; it honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY.
pub fn http() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(Error::Http)
}

async fn list<K>(api: Api<K>, what: &str) -> Result<Vec<K>, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    Ok(api
        .list(&Default::default())
        .await
        .map_err(read(what.to_owned()))?
        .items)
}

fn read(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Read {
        what,
        source: Box::new(source),
    }
}
