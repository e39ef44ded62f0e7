//! The status step of the AgentTask controller: the A2A task mirrored into status (state, task id, artifacts
//! summary, cost) and the `Accepted`, `Complete` and `Failed` conditions, written through the generic
//! [`StatusBuilder`].

use chrono::Utc;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt, runtime::events::EventType};

use super::a2a::TaskView;
use crate::{
    conditions::{Desired, Status},
    context::Context,
    crd::{AgentTask, AgentTaskStatus, agenttask::TaskState},
    status::{StatusBuilder, StatusOf},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to update the AgentTask status")]
    PatchStatus(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::PatchStatus(_) => "PatchStatus",
        }
    }
}

/// Writes the status built so far.
pub async fn save(
    st: StatusBuilder<AgentTask>,
    task: &AgentTask,
    ctx: &Context,
) -> Result<(), Error> {
    st.save(task, ctx).await.map_err(Error::PatchStatus)
}

impl StatusOf for AgentTask {
    type Status = AgentTaskStatus;

    fn current_status(&self) -> Option<&AgentTaskStatus> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }

    fn event_for(t: &Desired) -> Option<(EventType, &'static str)> {
        match (t.type_, t.status) {
            ("Accepted", Status::True) => Some((EventType::Normal, "Submitted")),
            ("Accepted", _) => Some((EventType::Warning, t.reason)),
            ("Complete", Status::True) => Some((EventType::Normal, "Completed")),
            ("Failed", Status::True) => Some((EventType::Warning, t.reason)),
            _ => None,
        }
    }
}

impl StatusBuilder<AgentTask> {
    /// Copies the A2A task into status and sets the terminal conditions.
    pub fn mirror(&mut self, view: &TaskView) {
        let was_terminal = self.status.state.is_some_and(TaskState::is_terminal);
        if !view.id.is_empty() {
            self.status.task_id = Some(view.id.clone());
        }
        if view.context_id.is_some() {
            self.status.context_id = view.context_id.clone();
        }
        self.status.state = Some(view.state);
        if view.message.is_some() {
            self.status.message = view.message.clone();
        }
        if !view.artifacts.is_empty() {
            self.status.artifacts = view.artifacts.clone();
        }
        if view.cost.is_some() {
            self.status.cost = view.cost.clone();
        }
        if view.state.is_terminal() && !was_terminal {
            self.finish(
                view.state,
                terminal_reason(view.state),
                self.status.message.clone().unwrap_or_default(),
            );
        }
    }

    pub fn finish(&mut self, state: TaskState, reason: &'static str, message: String) {
        self.status.state = Some(state);
        self.status
            .completion_time
            .get_or_insert_with(|| Time(Utc::now()));
        if state == TaskState::Completed {
            self.set(Desired::new("Complete", Status::True, reason, message));
            self.set(Desired::new("Failed", Status::False, reason, ""));
        } else {
            self.set(Desired::new("Failed", Status::True, reason, message));
            self.set(Desired::new("Complete", Status::False, reason, ""));
        }
    }
}

fn terminal_reason(state: TaskState) -> &'static str {
    match state {
        TaskState::Completed => "Completed",
        TaskState::Canceled => "Canceled",
        TaskState::Rejected => "Rejected",
        _ => "TaskFailed",
    }
}
