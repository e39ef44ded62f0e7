//! `ToolServer` (namespaced): a Deployment of `paddock-runtime` serving one tenant's MCP tools
//! and A2A skills.
//!
//! The ToolServer controller builds a Deployment, Service and ConfigMap from the spec and
//! reports the Service URL and ready replicas in status. That a ToolServer's namespace belongs
//! to its tenant needs the Namespace object, so admission checks it with a
//! `ValidatingAdmissionPolicy` (see [`super::policy`]) rather than a CEL rule here.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CEL_HTTP_URL, Condition, DNS1123_LABEL, DURATION, MODEL_NAME, SecretKeyRef};

/// A tenant's tool server: MCP tools and A2A skills over the tenant's documents.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "ToolServer",
    namespaced,
    status = "ToolServerStatus",
    derive = "PartialEq",
    shortname = "ts",
    category = "paddock",
    doc = "ToolServer runs paddock-runtime for one tenant: MCP tools and A2A skills over the tenant's documents.",
    // The name is also the Service's name, and Service names are DNS-1035 labels.
    validation = Rule::new("self.metadata.name.size() <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')")
        .message("ToolServer names must be DNS-1035 labels (start with a letter; they name a Service)"),
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn = r#"{"name":"Tenant","type":"string","jsonPath":".spec.tenantRef","priority":1,"description":"Tenant that owns the server"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the server is available"}"#,
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas","description":"Desired replicas"}"#,
    printcolumn = r#"{"name":"Available","type":"integer","jsonPath":".status.readyReplicas","description":"Ready replicas"}"#,
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".status.url","description":"In-cluster URL of the server"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ToolServerSpec {
    /// Name of the Tenant that owns this server. The namespace must be one of the tenant's
    /// `spec.namespaces`. Immutable.
    #[schemars(length(min = 1, max = 40), regex(pattern = DNS1123_LABEL))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("tenantRef is immutable"))]
    pub tenant_ref: String,

    /// Number of runtime pods. The runtime keeps no state of its own, so any replica serves
    /// any request; 0 stops the server.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 20))]
    pub replicas: i32,

    /// Runtime container image, overriding the operator's default (`--runtime-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// MCP tools to expose. One of `hybrid_search`, `search`, `get_document`,
    /// `list_documents`, `upsert_document`, `delete_document`, `usage`.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub tools: Vec<Tool>,

    /// How documents and queries are embedded for the vector arm of hybrid search.
    #[serde(default)]
    pub embedding: EmbeddingSpec,

    /// Language model used by the `rag` and `research` skills. Without it, answers are
    /// extractive (quoted passages, no model calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmSpec>,

    /// Agent-to-agent (A2A) endpoint settings.
    #[serde(default)]
    pub a2a: A2aSpec,

    /// MCP endpoint settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpSpec>,

    /// How `hybrid_search` ranks. Unset fields keep the runtime's defaults, which were measured on
    /// BEIR SciFact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSpec>,

    /// CPU and memory requests and limits of the runtime container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// OpenTelemetry traces of the runtime pods, sent over OTLP/HTTP. Unset: no traces, unless
    /// the pods' environment sets the standard `OTEL_*` variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,

    /// The tenants' web console at `/console` (search, documents, tasks, spend), on by default.
    /// It is static pages: every call it makes carries the signed-in person's token and its scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleSpec>,
}

/// The web console's settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleSpec {
    /// Serve the console at `/console` (and redirect `/` to it).
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Sign-in at the tenant's authorization server with the OAuth 2.1 authorization-code flow and
    /// PKCE (S256), offered when that server's metadata supports it. Unset: people sign in with a
    /// pasted token or a handover link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<ConsoleOAuthSpec>,
}

/// The console as a public OAuth client (no secret) of the tenant's authorization server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsoleOAuthSpec {
    /// The console's client id at the authorization server, registered with the redirect URI
    /// `<ToolServer URL>/console/`.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[!-~]+$"))]
    pub client_id: String,

    /// The authorization server's issuer URL. Unset: the first one the runtime's
    /// protected-resource metadata names. Its origin must also serve the token endpoint: it is
    /// the one foreign origin the console's Content-Security-Policy lets it reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s?#]+$"))]
    pub authorization_server: Option<String>,

    /// The scopes the console asks for, separated by single spaces. Unset: every scope the
    /// runtime knows (the authorization server grants what it allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub scope: Option<String>,
}

/// Where the runtime sends its traces, and how many it keeps.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// The collector's OTLP/HTTP base URL, e.g. `http://otel-collector.observability:4318`
    /// (spans go to `/v1/traces` under it).
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub otlp_endpoint: String,

    /// The share of new traces kept, a decimal from `0` to `1` (default `1`). A request whose
    /// caller's trace is sampled is always kept, so a trace is never cut in pieces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 5),
        regex(pattern = r"^(0(\.[0-9]{1,3})?|1(\.0{1,3})?)$")
    )]
    pub sample_ratio: Option<String>,
}

fn default_replicas() -> i32 {
    1
}

/// The MCP tools, in the contract's words (serde and schema names included).
pub use paddock_contract::protocol::Tool;

/// Embedding provider settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider != 'openai' || has(self.endpoint)")
        .message("endpoint is required when provider is openai").field_path(".endpoint"),
    validation = Rule::new("self.provider != 'openai' || has(self.model)")
        .message("model is required when provider is openai").field_path(".model"),
    validation = Rule::new("self.provider == 'openai' || !has(self.apiKeySecretRef)")
        .message("apiKeySecretRef only applies to provider openai").field_path(".apiKeySecretRef")
)]
pub struct EmbeddingSpec {
    /// `openai`: an OpenAI-compatible `/embeddings` API (OpenAI, Ollama, vLLM, TEI);
    /// `local`: the runtime's built-in embedder; `none`: lexical search only.
    #[serde(default)]
    pub provider: EmbeddingProvider,

    /// Base URL of the OpenAI-compatible API, e.g. `http://ollama:11434/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(CEL_HTTP_URL).message("endpoint must be an absolute http(s) URL"))]
    pub endpoint: Option<String>,

    /// Embedding model name, e.g. `all-minilm` or `text-embedding-3-small`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = MODEL_NAME))]
    pub model: Option<String>,

    /// Vector dimensions the model produces. Must match the database's vector column; the
    /// operator reports a mismatch in the `Ready` condition.
    #[serde(default = "default_dimensions")]
    #[schemars(range(min = 1, max = 4096))]
    pub dimensions: i32,

    /// Timeout of one embedding call, e.g. `5s` (100ms to 2m). When the provider is slow or
    /// down, search degrades to lexical and says so.
    #[serde(default = "default_embedding_timeout")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('100ms') && duration(self) <= duration('2m')")
        .message("timeout must be between 100ms and 2m"))]
    pub timeout: String,

    /// Secret key holding the provider's API key, sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
}

impl Default for EmbeddingSpec {
    fn default() -> Self {
        Self {
            provider: EmbeddingProvider::default(),
            endpoint: None,
            model: None,
            dimensions: default_dimensions(),
            timeout: default_embedding_timeout(),
            api_key_secret_ref: None,
        }
    }
}

fn default_dimensions() -> i32 {
    384
}

fn default_embedding_timeout() -> String {
    "5s".into()
}

/// Where embeddings come from.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingProvider {
    /// An OpenAI-compatible embeddings API.
    Openai,
    /// The runtime's built-in embedder.
    Local,
    /// No embeddings: lexical search only.
    #[default]
    None,
}

/// Language model settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.provider != 'openai' || has(self.endpoint)")
        .message("endpoint is required when provider is openai").field_path(".endpoint"),
    validation = Rule::new("self.provider != 'openai' || has(self.model)")
        .message("model is required when provider is openai").field_path(".model"),
    validation = Rule::new("self.provider == 'openai' || !has(self.apiKeySecretRef)")
        .message("apiKeySecretRef only applies to provider openai").field_path(".apiKeySecretRef")
)]
pub struct LlmSpec {
    /// `openai`: an OpenAI-compatible `/chat/completions` API; `extractive`: no model,
    /// answers quote the retrieved passages.
    #[serde(default)]
    pub provider: LlmProvider,

    /// Base URL of the OpenAI-compatible API, e.g. `http://ollama:11434/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(CEL_HTTP_URL).message("endpoint must be an absolute http(s) URL"))]
    pub endpoint: Option<String>,

    /// Default model for tasks that do not name one. It must be in the tenant's
    /// `models.allowed`; the operator reports it in the `Ready` condition otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = MODEL_NAME))]
    pub model: Option<String>,

    /// Secret key holding the provider's API key, sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,

    /// Timeout of one model call, e.g. `60s` (1s to 10m).
    #[serde(default = "default_llm_timeout")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('10m')")
        .message("timeout must be between 1s and 10m"))]
    pub timeout: String,
}

fn default_llm_timeout() -> String {
    "60s".into()
}

/// Which language model backend answers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LlmProvider {
    /// An OpenAI-compatible chat completions API.
    #[default]
    Openai,
    /// No model: answers quote retrieved passages.
    Extractive,
}

/// MCP endpoint settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct McpSpec {
    /// How long an MCP session may go unused before it expires, e.g. `24h` (the default; 1s to
    /// 720h). A request on an expired session gets 404, and the client initializes a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('720h')")
        .message("sessionIdleTimeout must be between 1s and 720h"))]
    pub session_idle_timeout: Option<String>,
}

/// Ranking settings of `hybrid_search`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SearchSpec {
    /// How the keyword and vector candidates become one ranking. `convex` (the default): a
    /// weighted sum of each arm's min-max normalised scores; `rrf`: Reciprocal Rank Fusion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "fusion_schema")]
    pub fusion: Option<Fusion>,

    /// The vector arm's share in `convex` fusion, a decimal from `0` to `1` (default `0.5`);
    /// the keyword arm gets the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 5),
        regex(pattern = r"^(0(\.[0-9]{1,3})?|1(\.0{1,3})?)$")
    )]
    pub alpha: Option<String>,

    /// The constant k of `rrf` fusion, which scores a hit `weight / (k + rank)` in each arm
    /// (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub rrf_k: Option<i32>,

    /// Candidates each arm contributes before fusion (default 40; at least a call's `limit`).
    /// More finds more, at more database work per search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub depth: Option<i32>,

    /// The HNSW candidate list when the vector arm ranks alone (default 100); fused with the
    /// keyword arm it searches `depth` candidates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub ef_search: Option<i32>,
}

/// An optional enum as a structural schema: a plain string with its values (schemars' own form,
/// `anyOf` with a null branch, is not structural and the API server refuses it).
fn fusion_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["convex", "rrf"]
    })
}

/// How `hybrid_search` fuses its two arms.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// A weighted sum of min-max normalised scores.
    Convex,
    /// Reciprocal Rank Fusion.
    Rrf,
}

/// A2A endpoint settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct A2aSpec {
    /// Serve the A2A endpoint (`/a2a`) and agent card. AgentTasks need it.
    #[serde(default = "default_true")]
    pub enabled: bool,

    /// Tasks each replica runs at once (default 16). Tasks accepted beyond that wait, in the
    /// `submitted` state, for a free slot on the replica that accepted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 256))]
    pub max_running_tasks: Option<i32>,

    /// Seconds a replica being stopped (a rolling update, a scale-down) gives its running tasks to finish
    /// (default 20). Tasks still running then fail with the reason `replica_shutdown`; tasks that had not
    /// started move to another replica at once. The pods' termination grace period is this plus 15 seconds:
    /// a 5-second preStop sleep (the pod keeps serving while it leaves the Service) and a 10-second margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub drain_timeout_seconds: Option<i32>,
}

impl Default for A2aSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            max_running_tasks: None,
            drain_timeout_seconds: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Schema for `resources`: limits and requests of cpu/memory/ephemeral-storage quantities.
/// Written by hand because the upstream schema also carries dynamic resource `claims`
/// (not meaningful here) and a multi-kilobyte Quantity description per map.
fn resources_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let quantities = |what: &str| {
        serde_json::json!({
            "type": "object",
            "description": format!("{what} per resource name (cpu, memory, ephemeral-storage), as Kubernetes quantities such as 500m or 256Mi."),
            "maxProperties": 8,
            "additionalProperties": {
                "anyOf": [{"type": "integer"}, {"type": "string"}],
                "pattern": "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
                "x-kubernetes-int-or-string": true
            }
        })
    };
    schemars::json_schema!({
        "type": "object",
        "description": "CPU and memory requests and limits of the runtime container.",
        "properties": {
            "limits": quantities("Maximum amount"),
            "requests": quantities("Minimum amount reserved")
        }
    })
}

/// Observed state of a ToolServer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current conditions: `Ready` (the Deployment's pods are available), `Verified` (the
    /// operator completed an MCP `initialize` against the server), `IssuersResolved` (every
    /// tenant issuer's keys can be fetched over https).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// In-cluster base URL of the server, e.g. `http://docs.acme.svc:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Pods of the Deployment that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// Pods of the Deployment, ready or not (used by the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,

    /// Label selector of the server's pods, in string form (used by the scale subresource
    /// and HorizontalPodAutoscalers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}
