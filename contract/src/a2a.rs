//! The A2A vocabulary both sides speak: the skills a runtime offers, the states of a task and the two
//! protocol dialects that name them. The runtime serves them; an AgentTask names a skill and records a state.

use serde::{Deserialize, Serialize};

/// An A2A skill of the runtime.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Skill {
    /// Retrieval-augmented answer in one step.
    Rag,
    /// Multi-step research with a cited report.
    Research,
}

impl Skill {
    /// Every skill, in the agent card's order.
    pub const ALL: [Skill; 2] = [Skill::Research, Skill::Rag];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == s)
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|s| s.id()).collect()
    }

    /// The skill's id on the wire and in the AgentTask spec.
    pub fn id(self) -> &'static str {
        match self {
            Skill::Rag => "rag",
            Skill::Research => "research",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Skill::Rag => "Answer with citations",
            Skill::Research => "Research report",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Skill::Rag => {
                "Searches the tenant's documents, reads the best matches and answers the question, \
                citing each claim as [document-id]; every citation is checked against the retrieved documents."
            }
            Skill::Research => {
                "Splits the question into sub-queries, searches each, and writes a Markdown report \
                with cited findings and a list of sources; every citation is checked against the retrieved \
                documents. Select it with message metadata {\"skill\": \"research\"} (the default)."
            }
        }
    }

    pub fn tags(self) -> &'static [&'static str] {
        match self {
            Skill::Rag => &["rag", "question-answering", "citations", "search"],
            Skill::Research => &["research", "report", "citations", "search"],
        }
    }

    pub fn examples(self) -> &'static [&'static str] {
        match self {
            Skill::Rag => &["What does the right to erasure require?"],
            Skill::Research => &["Compare data retention rules and breach notification deadlines"],
        }
    }
}

/// The protocol dialect of one request, picked by its method name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V03,
}

/// A2A task state. Serialized in the A2A 0.3 spelling (`input-required`), the one the database stores and
/// an AgentTask's status shows; [`TaskState::v1`] gives the 1.0 name (`TASK_STATE_INPUT_REQUIRED`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum TaskState {
    /// Accepted, not started.
    Submitted,
    /// Running.
    Working,
    /// Finished with a result (terminal).
    Completed,
    /// Finished with an error (terminal).
    Failed,
    /// Canceled, e.g. on timeout (terminal).
    Canceled,
    /// Refused, e.g. over budget or model not allowed (terminal).
    Rejected,
    /// Waiting for more input (interrupted).
    InputRequired,
    /// Waiting for authorization (interrupted).
    AuthRequired,
}

impl TaskState {
    /// Every state, in the order of the task lifecycle.
    pub const ALL: [TaskState; 8] = [
        TaskState::Submitted,
        TaskState::Working,
        TaskState::InputRequired,
        TaskState::AuthRequired,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Canceled,
        TaskState::Rejected,
    ];

    /// The stored (and 0.3) name.
    pub fn db(self) -> &'static str {
        match self {
            TaskState::Submitted => "submitted",
            TaskState::Working => "working",
            TaskState::InputRequired => "input-required",
            TaskState::AuthRequired => "auth-required",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Rejected => "rejected",
        }
    }

    /// The 1.0 name.
    pub fn v1(self) -> &'static str {
        match self {
            TaskState::Submitted => "TASK_STATE_SUBMITTED",
            TaskState::Working => "TASK_STATE_WORKING",
            TaskState::InputRequired => "TASK_STATE_INPUT_REQUIRED",
            TaskState::AuthRequired => "TASK_STATE_AUTH_REQUIRED",
            TaskState::Completed => "TASK_STATE_COMPLETED",
            TaskState::Failed => "TASK_STATE_FAILED",
            TaskState::Canceled => "TASK_STATE_CANCELED",
            TaskState::Rejected => "TASK_STATE_REJECTED",
        }
    }

    /// The name in dialect `d`.
    pub fn render(self, d: Dialect) -> &'static str {
        match d {
            Dialect::V1 => self.v1(),
            Dialect::V03 => self.db(),
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.db() == s)
    }

    /// Reads either dialect's name (and 0.3's British `cancelled`, which some agents send).
    pub fn from_wire(s: &str) -> Option<Self> {
        if s == "cancelled" {
            return Some(TaskState::Canceled);
        }
        Self::ALL.into_iter().find(|t| t.db() == s || t.v1() == s)
    }

    /// Whether the task can never change state again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Canceled | TaskState::Rejected
        )
    }

    /// Terminal or waiting for the client: a stream closes on these.
    pub fn ends_stream(self) -> bool {
        self.is_terminal() || matches!(self, TaskState::InputRequired | TaskState::AuthRequired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serde_name_is_the_stored_name() {
        for s in TaskState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.db());
            assert_eq!(TaskState::from_wire(s.v1()), Some(s));
        }
        for k in Skill::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.id());
        }
    }
}
