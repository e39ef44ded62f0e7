//! `AgentTask` (namespaced): one run of an A2A skill on a ToolServer.
//!
//! The AgentTask controller sends the input to the ToolServer's A2A endpoint, follows the
//! task to a terminal state and mirrors it into status. The spec is immutable: a task is one
//! run, and a changed request is a new AgentTask.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, DECIMAL, DNS1035_LABEL, DURATION, MODEL_NAME};

/// A request to run one skill on a ToolServer.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "paddock.dev",
    version = "v1alpha1",
    kind = "AgentTask",
    namespaced,
    status = "AgentTaskStatus",
    derive = "PartialEq",
    shortname = "at",
    category = "paddock",
    doc = "AgentTask runs one A2A skill (rag or research) on a ToolServer and records the outcome and its cost.",
    printcolumn = r#"{"name":"ToolServer","type":"string","jsonPath":".spec.toolServerRef","priority":1,"description":"ToolServer that runs the task"}"#,
    printcolumn = r#"{"name":"Skill","type":"string","jsonPath":".spec.skill","priority":1,"description":"Skill that runs"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state","description":"A2A task state"}"#,
    printcolumn = r#"{"name":"Cost","type":"string","jsonPath":".status.cost","description":"Cost charged to the tenant's budget"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message("spec is immutable: an AgentTask is one run; create a new AgentTask instead"))]
pub struct AgentTaskSpec {
    /// Name of the ToolServer, in this namespace, that runs the task.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1035_LABEL))]
    pub tool_server_ref: String,

    /// Skill to run: `rag` answers from retrieved passages in one step; `research` plans,
    /// searches several times and writes a cited report.
    pub skill: Skill,

    /// The question or instruction, 1 to 16000 characters.
    #[schemars(length(min = 1, max = 16000))]
    pub input: String,

    /// Model to use, overriding the ToolServer's default. Must be in the tenant's
    /// `models.allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = MODEL_NAME))]
    pub model: Option<String>,

    /// Most this task may spend, as a decimal string in the tenant's currency, e.g. `"0.50"`.
    /// The tenant's monthly budget still applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 19), regex(pattern = DECIMAL))]
    pub budget: Option<String>,

    /// How long the task may run before it is canceled, e.g. `10m` (1s to 24h).
    #[serde(default = "default_timeout")]
    #[schemars(length(min = 2, max = 32), regex(pattern = DURATION))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('24h')")
        .message("timeout must be between 1s and 24h"))]
    pub timeout: String,

    /// Delete the AgentTask this many seconds after it finishes. Unset keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31_536_000))]
    pub ttl_seconds_after_finished: Option<i32>,
}

fn default_timeout() -> String {
    "10m".into()
}

/// The runtime's skills and a task's states, in the contract's words (serde and schema names included).
pub use paddock_contract::a2a::{Skill, TaskState};

/// Observed state of an AgentTask.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentTaskStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// A2A task state: `submitted`, `working`, `completed`, `failed`, `canceled`,
    /// `rejected`, `input-required` or `auth-required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_task_state")]
    pub state: Option<TaskState>,

    /// Task id the runtime assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,

    /// A2A context id the task belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,

    /// Latest status message from the runtime, or why the task could not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Summary of the artifacts the task produced. Fetch them in full with `GetTask`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactSummary>,

    /// Cost charged to the tenant's budget, as a decimal string in the tenant's currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,

    /// When the task started running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the task reached a terminal state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Current conditions: `Accepted`, `Complete`, `Failed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// `Option<TaskState>` as a structural schema: a nullable string enum. The derived schema is
/// an `anyOf` of the enum and `null`, which the API server refuses (not structural).
fn optional_task_state(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = TaskState::json_schema(generator);
    schema.insert("nullable".into(), true.into());
    schema
}

/// Short description of one artifact.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSummary {
    /// Artifact name, e.g. `answer` or `report`.
    pub name: String,
    /// What the artifact holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Number of parts in the artifact.
    pub parts: i32,
    /// Start of the artifact's text, cut to a few hundred characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
}
