//! Validate and build steps of the ToolServer controller, as pure functions: from a ToolServer,
//! its Tenant and a few resolved inputs to the runtime's configuration file, ConfigMap,
//! Deployment and Service. No client, no network; unit-tested from YAML fixtures.
//!
//! The runtime configuration is the contract's `RuntimeConfig`, written with only the fields the
//! spec names, so the runtime's defaults fill in the rest (a test loads it as the runtime does).
//! Secrets never enter the ConfigMap: the DSN and provider API keys reach the container as
//! environment variables from Secrets.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort,
            EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, Lifecycle, LifecycleHandler,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
            SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec,
            SleepAction, Volume, VolumeMount,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use kube::{Resource, ResourceExt};
use paddock_contract::config::{
    self as runtime, AuthConfig, EmbeddingConfig, IssuerConfig, JwksSource, LlmConfig,
    ProviderKind, RuntimeConfig,
};
use sha2::{Digest, Sha256};

use crate::{
    crd::{
        Tenant, ToolServer, parse_duration,
        toolserver::{A2aSpec, EmbeddingProvider, Fusion, LlmProvider, SearchSpec},
    },
    names::{self, CONFIG_HASH_ANNOTATION},
    tenant::build::DSN_KEY,
};

/// Port the runtime listens on, in the container and on the Service.
pub const PORT: i32 = 8080;
/// Port of the runtime's `/metrics`: declared on the container (named [`METRICS_PORT_NAME`]) for the chart's
/// PodMonitor, and never on the Service, since the metrics name every tenant with its budget and spend.
pub const METRICS_PORT: i32 = 9090;
/// Name of the metrics port on the container.
pub const METRICS_PORT_NAME: &str = "metrics";
/// Where the ConfigMap is mounted.
pub const CONFIG_DIR: &str = "/etc/paddock";
/// The runtime configuration file inside the ConfigMap.
pub const CONFIG_FILE: &str = "runtime.yaml";
/// The development issuer's public JWKS inside the ConfigMap.
pub const DEV_JWKS_FILE: &str = "dev-issuer-jwks.json";
/// Where the runtime image keeps the built-in embedding model.
pub const LOCAL_MODEL_DIR: &str = "/models/all-MiniLM-L6-v2";
/// Environment variable carrying the embedding provider's API key.
pub const EMBEDDING_API_KEY_ENV: &str = "PADDOCK_EMBEDDING_API_KEY";
/// Environment variable carrying the language model provider's API key.
pub const LLM_API_KEY_ENV: &str = "PADDOCK_LLM_API_KEY";
/// Name of the runtime container.
pub const CONTAINER: &str = "runtime";
/// UID and GID of the distroless `nonroot` user.
const NONROOT: i64 = 65532;

/// A tenant issuer whose JWKS location is known (from the spec or from discovery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedIssuer {
    pub issuer: String,
    pub jwks_url: String,
}

/// Everything the build step needs besides the ToolServer itself.
pub struct Inputs<'a> {
    pub toolserver: &'a ToolServer,
    pub tenant: &'a Tenant,
    /// The tenant's issuers that can be trusted (see the controller's issuer resolution).
    pub issuers: &'a [ResolvedIssuer],
    /// `iss` of the operator's development issuer.
    pub dev_issuer: &'a str,
    /// Its public JWKS document.
    pub dev_jwks: &'a str,
    /// Image when the spec names none.
    pub default_image: &'a str,
}

/// Why a ToolServer gets no children.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("namespace {namespace} is not one of Tenant {tenant}'s spec.namespaces")]
    NamespaceNotOwned { namespace: String, tenant: String },
    #[error("{0}")]
    InvalidSpec(String),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NamespaceNotOwned { .. } => "NamespaceNotOwned",
            Refusal::InvalidSpec(_) => "InvalidSpec",
        }
    }
}

/// In-cluster base URL of the ToolServer's Service.
pub fn service_url(ts: &ToolServer) -> String {
    format!(
        "http://{}.{}.svc:{PORT}",
        ts.name_any(),
        ts.namespace().unwrap_or_default()
    )
}

/// The MCP endpoint URL: the runtime's OAuth resource identifier and the dev tokens' audience.
pub fn resource_url(ts: &ToolServer) -> String {
    format!("{}/mcp", service_url(ts))
}

fn invalid(msg: impl Into<String>) -> Refusal {
    Refusal::InvalidSpec(msg.into())
}

/// Whether the ToolServer may run for `tenant`, and whether its spec is one the runtime accepts.
pub fn validate(ts: &ToolServer, tenant: &Tenant) -> Result<(), Refusal> {
    let namespace = ts.namespace().unwrap_or_default();
    let tenant_name = tenant.name_any();
    if ts.spec.tenant_ref != tenant_name || !tenant.spec.namespaces.contains(&namespace) {
        return Err(Refusal::NamespaceNotOwned {
            namespace,
            tenant: ts.spec.tenant_ref.clone(),
        });
    }
    for tool in &ts.spec.tools {
        let name = tool.name();
        if !paddock_contract::protocol::TOOL_NAMES.contains(&name) {
            return Err(invalid(format!(
                "spec.tools: tool {name} is not available in this runtime version"
            )));
        }
    }
    let e = &ts.spec.embedding;
    parse_duration(&e.timeout).map_err(|err| invalid(format!("spec.embedding.timeout: {err}")))?;
    if e.provider != EmbeddingProvider::None
        && e.dimensions as usize != paddock_contract::schema::VECTOR_DIMENSIONS
    {
        return Err(invalid(format!(
            "spec.embedding.dimensions: the database stores {}-dimensional vectors, not {}",
            paddock_contract::schema::VECTOR_DIMENSIONS,
            e.dimensions
        )));
    }
    if e.provider == EmbeddingProvider::Openai && (e.endpoint.is_none() || e.model.is_none()) {
        return Err(invalid(
            "spec.embedding: provider openai needs endpoint and model",
        ));
    }
    if let Some(llm) = &ts.spec.llm {
        parse_duration(&llm.timeout).map_err(|err| invalid(format!("spec.llm.timeout: {err}")))?;
        if let Some(model) = &llm.model
            && !tenant.spec.models.allowed.contains(model)
        {
            return Err(invalid(format!(
                "spec.llm.model: {model} is not in Tenant {tenant_name}'s models.allowed"
            )));
        }
    }
    if ts.spec.image.as_deref().is_some_and(str::is_empty) {
        return Err(invalid("spec.image must not be empty"));
    }
    Ok(())
}

/// The spec's `search:` settings on the runtime's defaults, and the names of those it sets.
fn search_config(
    s: &SearchSpec,
    named: &mut Vec<&'static str>,
) -> Result<runtime::SearchConfig, Refusal> {
    let mut search = runtime::SearchConfig::default();
    named.push("search");
    if let Some(a) = s.alpha.as_deref() {
        search.alpha = a
            .parse::<f64>()
            .ok()
            .filter(|a| (0.0..=1.0).contains(a))
            .ok_or_else(|| {
                invalid(format!(
                    "spec.search.alpha: {a:?} is not a decimal from 0 to 1"
                ))
            })?;
        named.push("search.alpha");
    }
    if let Some(f) = s.fusion {
        search.fusion = match f {
            Fusion::Convex => runtime::Fusion::Convex,
            Fusion::Rrf => runtime::Fusion::Rrf,
        };
        named.push("search.fusion");
    }
    if let Some(k) = s.rrf_k {
        search.rrf_k = f64::from(k);
        named.push("search.rrf_k");
    }
    if let Some(d) = s.depth {
        search.depth = i64::from(d);
        named.push("search.depth");
    }
    if let Some(ef) = s.ef_search {
        search.ef_search = u32::try_from(ef)
            .map_err(|_| invalid(format!("spec.search.efSearch: {ef} is negative")))?;
        named.push("search.ef_search");
    }
    Ok(search)
}

/// A spec duration in the runtime file's milliseconds.
fn duration_ms(field: &str, value: &str) -> Result<u64, Refusal> {
    parse_duration(value)
        .map(|d| d.as_millis() as u64)
        .map_err(|err| invalid(format!("{field}: {err}")))
}

/// The fields of the runtime file the operator always writes; the spec's optional settings add theirs.
const ALWAYS_NAMED: &[&str] = &[
    "listen",
    "metrics_listen",
    "auth.resource",
    "auth.authorization_servers",
    "auth.issuers.issuer",
    "auth.issuers.audience",
    "auth.issuers.jwks.*",
    "auth.issuers.tenant_claim",
    "auth.issuers.user_claim",
    "embedding.provider",
    "embedding.endpoint",
    "embedding.model",
    "embedding.dimensions",
    "embedding.timeout_ms",
    "embedding.model_dir",
    "mcp.tools",
    "log_format",
];

/// The runtime configuration file (YAML). Call [`validate`] first.
pub fn runtime_config(inputs: &Inputs<'_>) -> Result<String, Refusal> {
    let ts = inputs.toolserver;
    let auth = &inputs.tenant.spec.auth;
    let resource = resource_url(ts);
    let mut named = ALWAYS_NAMED.to_vec();
    let issuer =
        |issuer: &str, audience: &str, jwks, tenant_claim: &str, user_claim: &str| IssuerConfig {
            tenant_claim: tenant_claim.to_owned(),
            user_claim: user_claim.to_owned(),
            ..IssuerConfig::new(issuer, audience, jwks)
        };
    let mut issuers: Vec<IssuerConfig> = inputs
        .issuers
        .iter()
        .map(|i| {
            issuer(
                &i.issuer,
                &auth.audience,
                JwksSource::Url(i.jwks_url.clone()),
                &auth.tenant_claim,
                &auth.user_claim,
            )
        })
        .collect();
    // Dev tokens carry the tenant in `tenant_id` and the user in `sub`, and name this server
    // as their audience.
    issuers.push(issuer(
        inputs.dev_issuer,
        &resource,
        JwksSource::File(format!("{CONFIG_DIR}/{DEV_JWKS_FILE}").into()),
        "tenant_id",
        "sub",
    ));
    let mut cfg = RuntimeConfig::new(AuthConfig {
        // Clients are sent to the tenant's own identity provider, never to the dev issuer.
        authorization_servers: inputs.issuers.iter().map(|i| i.issuer.clone()).collect(),
        ..AuthConfig::new(resource, issuers)
    });
    cfg.listen = format!("0.0.0.0:{PORT}");
    cfg.metrics_listen = format!("0.0.0.0:{METRICS_PORT}");
    let e = &ts.spec.embedding;
    let timeout_ms = duration_ms("spec.embedding.timeout", &e.timeout)?;
    let dimensions = usize::try_from(e.dimensions).map_err(|_| {
        invalid(format!(
            "spec.embedding.dimensions: {} is negative",
            e.dimensions
        ))
    })?;
    cfg.embedding = match e.provider {
        EmbeddingProvider::None => None,
        EmbeddingProvider::Openai => Some(EmbeddingConfig {
            provider: ProviderKind::OpenAi,
            endpoint: e.endpoint.clone(),
            model: e.model.clone(),
            dimensions,
            timeout_ms,
            ..EmbeddingConfig::default()
        }),
        EmbeddingProvider::Local => Some(EmbeddingConfig {
            provider: ProviderKind::Local,
            model: e.model.clone(),
            dimensions,
            timeout_ms,
            model_dir: Some(LOCAL_MODEL_DIR.into()),
            ..EmbeddingConfig::default()
        }),
    };
    if let Some(l) = &ts.spec.llm {
        let timeout_ms = duration_ms("spec.llm.timeout", &l.timeout)?;
        named.extend(["llm.provider", "llm.timeout_ms"]);
        cfg.llm = match l.provider {
            LlmProvider::Extractive => LlmConfig {
                provider: runtime::EXTRACTIVE.to_owned(),
                timeout_ms,
                ..LlmConfig::default()
            },
            LlmProvider::Openai => {
                // The variable the Deployment fills from `apiKeySecretRef`; the key never enters the file.
                named.extend(["llm.endpoint", "llm.model", "llm.api_key_env"]);
                LlmConfig {
                    provider: "openai".to_owned(),
                    endpoint: l.endpoint.clone(),
                    model: l.model.clone(),
                    api_key_env: LLM_API_KEY_ENV.to_owned(),
                    timeout_ms,
                    ..LlmConfig::default()
                }
            }
        };
    }
    cfg.mcp.tools = ts.spec.tools.iter().map(|t| t.name().to_owned()).collect();
    if let Some(t) = ts
        .spec
        .mcp
        .as_ref()
        .and_then(|m| m.session_idle_timeout.as_deref())
    {
        cfg.mcp.session_idle_timeout_ms = duration_ms("spec.mcp.sessionIdleTimeout", t)?;
        named.push("mcp.session_idle_timeout_ms");
    }
    if let Some(s) = &ts.spec.search {
        cfg.search = search_config(s, &mut named)?;
    }
    set_a2a(&mut cfg.a2a, &ts.spec.a2a, &mut named)?;
    if let Some(c) = &ts.spec.console {
        cfg.console.enabled = c.enabled;
        named.push("console.enabled");
        if let Some(o) = &c.oauth {
            cfg.console.oauth = Some(paddock_contract::config::ConsoleOAuthConfig {
                client_id: o.client_id.clone(),
                authorization_server: o.authorization_server.clone(),
                scope: o.scope.clone(),
            });
            named.push("console.oauth.*");
        }
    }
    if let Some(t) = &ts.spec.tracing {
        cfg.tracing.otlp_endpoint = Some(t.otlp_endpoint.clone());
        named.push("tracing.otlp_endpoint");
        if let Some(r) = t.sample_ratio.as_deref() {
            let ratio = r
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    invalid(format!(
                        "spec.tracing.sampleRatio: {r:?} is not a decimal from 0 to 1"
                    ))
                })?;
            cfg.tracing.sample_ratio = Some(ratio);
            named.push("tracing.sample_ratio");
        }
    }
    cfg.render(&named)
        .map_err(|e| invalid(format!("cannot render the runtime configuration: {e}")))
}

fn owner_meta(ts: &ToolServer, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: ts.namespace(),
        labels: Some(names::toolserver_labels(
            &ts.name_any(),
            &ts.spec.tenant_ref,
        )),
        owner_references: ts.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// A ToolServer's children, and the hash of their inputs on the pod template.
pub struct Children {
    pub config_map: ConfigMap,
    pub deployment: Deployment,
    pub service: Service,
    pub hash: String,
}

/// The ConfigMap, Deployment and Service; `secrets` are the Secrets whose data the pods read, for the hash.
pub fn children(
    inputs: &Inputs<'_>,
    secrets: &[(&str, &BTreeMap<String, ByteString>)],
) -> Result<Children, Refusal> {
    let config_map = config_map(inputs)?;
    let hash = config_hash(&config_map, secrets);
    Ok(Children {
        deployment: deployment(inputs, &hash),
        service: service(inputs),
        config_map,
        hash,
    })
}

/// The ConfigMap with the runtime configuration and the development issuer's JWKS.
pub fn config_map(inputs: &Inputs<'_>) -> Result<ConfigMap, Refusal> {
    let ts = inputs.toolserver;
    Ok(ConfigMap {
        metadata: owner_meta(ts, names::runtime_config_map_name(&ts.name_any())),
        data: Some(BTreeMap::from([
            (CONFIG_FILE.to_owned(), runtime_config(inputs)?),
            (DEV_JWKS_FILE.to_owned(), inputs.dev_jwks.to_owned()),
        ])),
        ..Default::default()
    })
}

/// SHA-256 over the ConfigMap's data and the data of the Secrets the pods read, in a fixed
/// order. Any change to either changes the hash, and so the pod template.
pub fn config_hash(
    config: &ConfigMap,
    secrets: &[(&str, &BTreeMap<String, ByteString>)],
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(b"configmap");
    for (k, v) in config.data.iter().flatten() {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    for (name, data) in secrets {
        field(b"secret");
        field(name.as_bytes());
        for (k, v) in data.iter() {
            field(k.as_bytes());
            field(&v.0);
        }
    }
    names::hex(&h.finalize())
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(2),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

fn default_resources(local_model: bool) -> ResourceRequirements {
    let q = |s: &str| Quantity(s.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), q("100m")),
            (
                "memory".to_owned(),
                q(if local_model { "512Mi" } else { "128Mi" }),
            ),
        ])),
        limits: Some(BTreeMap::from([(
            "memory".to_owned(),
            q(if local_model { "1Gi" } else { "512Mi" }),
        )])),
        ..Default::default()
    }
}

/// The runtime's `a2a:` section: only what the spec sets, the runtime's defaults for the rest.
fn set_a2a(
    cfg: &mut runtime::A2aConfig,
    a2a: &A2aSpec,
    named: &mut Vec<&'static str>,
) -> Result<(), Refusal> {
    if let Some(n) = a2a.max_running_tasks {
        cfg.max_running_tasks = usize::try_from(n)
            .map_err(|_| invalid(format!("spec.a2a.maxRunningTasks: {n} is negative")))?;
        named.push("a2a.max_running_tasks");
    }
    if let Some(s) = a2a.drain_timeout_seconds {
        cfg.drain_timeout_ms = s as u64 * 1000;
        named.push("a2a.drain_timeout_ms");
    }
    Ok(())
}

/// A stopping pod first sleeps this long (a `preStop` sleep action), still serving, while its endpoint is
/// taken out of the Service: only then does SIGTERM make the runtime stop accepting connections, so clients
/// are not refused during a rolling update.
pub const PRE_STOP_SLEEP_SECONDS: i64 = 5;
/// After SIGTERM the runtime drains for its drain timeout; the kubelet waits this much longer before it kills
/// the container, for the last writes and the exit.
const GRACE_BEYOND_DRAIN_SECONDS: i64 = 10;
/// The runtime's default `a2a.drain_timeout_ms`, in seconds (a build test keeps the two equal).
const DEFAULT_DRAIN_SECONDS: i64 = 20;

/// The pods' `terminationGracePeriodSeconds`: the preStop sleep, the drain and a margin.
pub fn termination_grace_seconds(a2a: &A2aSpec) -> i64 {
    PRE_STOP_SLEEP_SECONDS
        + a2a
            .drain_timeout_seconds
            .map_or(DEFAULT_DRAIN_SECONDS, i64::from)
        + GRACE_BEYOND_DRAIN_SECONDS
}

/// The runtime Deployment. `config_hash` goes on the pod template, so a changed configuration
/// or credential rolls the pods.
pub fn deployment(inputs: &Inputs<'_>, config_hash: &str) -> Deployment {
    let ts = inputs.toolserver;
    let name = ts.name_any();
    let spec = &ts.spec;
    let mut env = vec![
        secret_env(
            "PADDOCK_DATABASE_URL",
            &names::db_secret_name(&spec.tenant_ref),
            DSN_KEY,
        ),
        EnvVar {
            name: "RUST_LOG".to_owned(),
            value: Some("info".to_owned()),
            ..Default::default()
        },
    ];
    if let Some(r) = &spec.embedding.api_key_secret_ref {
        env.push(secret_env(EMBEDDING_API_KEY_ENV, &r.name, &r.key));
    }
    if let Some(r) = spec
        .llm
        .as_ref()
        .filter(|l| l.provider == LlmProvider::Openai)
        .and_then(|l| l.api_key_secret_ref.as_ref())
    {
        env.push(secret_env(LLM_API_KEY_ENV, &r.name, &r.key));
    }
    let local_model = spec.embedding.provider == EmbeddingProvider::Local;
    let container = Container {
        name: CONTAINER.to_owned(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| inputs.default_image.to_owned()),
        ),
        args: Some(vec![
            "serve".to_owned(),
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        env: Some(env),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: PORT,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            },
            ContainerPort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                container_port: METRICS_PORT,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            },
        ]),
        // The local embedder loads its model before the server listens.
        startup_probe: Some(http_probe("/healthz", 2, 90)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction {
                    seconds: PRE_STOP_SLEEP_SECONDS,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        readiness_probe: Some(http_probe("/readyz", 5, 2)),
        resources: Some(
            spec.resources
                .clone()
                .unwrap_or_else(|| default_resources(local_model)),
        ),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".to_owned(),
                mount_path: CONFIG_DIR.to_owned(),
                read_only: Some(true),
                ..Default::default()
            },
            VolumeMount {
                name: "tmp".to_owned(),
                mount_path: "/tmp".to_owned(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let labels = names::toolserver_labels(&name, &spec.tenant_ref);
    Deployment {
        metadata: owner_meta(ts, name.clone()),
        spec: Some(DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(names::toolserver_selector(&name)),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: Some(BTreeMap::from([
                        (CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned()),
                        (
                            "kubectl.kubernetes.io/default-container".to_owned(),
                            CONTAINER.to_owned(),
                        ),
                    ])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    // The runtime never talks to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NONROOT),
                        run_as_group: Some(NONROOT),
                        fs_group: Some(NONROOT),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "config".to_owned(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: names::runtime_config_map_name(&name),
                                default_mode: Some(0o444),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "tmp".to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("64Mi".to_owned())),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ]),
                    termination_grace_period_seconds: Some(termination_grace_seconds(&spec.a2a)),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ClusterIP Service in front of the runtime pods: the protocol port only, never the metrics port.
pub fn service(inputs: &Inputs<'_>) -> Service {
    let ts = inputs.toolserver;
    Service {
        metadata: owner_meta(ts, ts.name_any()),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(names::toolserver_selector(&ts.name_any())),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: PORT,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `Ready` from the Deployment's status: every wanted replica updated, ready and available.
pub fn deployment_ready(dep: &Deployment, wanted: i32) -> crate::conditions::Desired {
    use crate::conditions::{Desired, Status};
    let status = dep.status.clone().unwrap_or_default();
    let observed = status.observed_generation.unwrap_or(0) >= dep.metadata.generation.unwrap_or(0);
    let (updated, ready, available) = (
        status.updated_replicas.unwrap_or(0),
        status.ready_replicas.unwrap_or(0),
        status.available_replicas.unwrap_or(0),
    );
    if !observed {
        return Desired::new(
            "Ready",
            Status::False,
            "Progressing",
            "waiting for the Deployment controller to observe the change",
        );
    }
    if wanted == 0 {
        return Desired::new("Ready", Status::False, "ScaledToZero", "spec.replicas is 0");
    }
    let shown = format!("{ready}/{wanted} replicas ready");
    if updated >= wanted && ready >= wanted && available >= wanted {
        Desired::new("Ready", Status::True, "Available", shown)
    } else {
        Desired::new(
            "Ready",
            Status::False,
            "Progressing",
            format!("{shown}, {updated} up to date"),
        )
    }
}
