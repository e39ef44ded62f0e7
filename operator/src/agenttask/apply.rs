//! The apply step of the AgentTask controller: what the task asks of its runtime over A2A. Submit it once
//! (`SendMessage`, message id = the object's uid), then poll it (`GetTask`) with a widening interval, and
//! cancel it (`CancelTask`) past its `timeout` or once its cost passes its `budget`. Each answer is mirrored
//! into the status under construction; the caller writes it. A finished task whose TTL ran out is deleted.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, ResourceExt, api::DeleteParams};
use rust_decimal::Decimal;

use super::{
    a2a::{A2aClient, A2aError, TaskView},
    poll_interval, submission_metadata,
    validate::Checked,
};
use crate::{
    conditions::{Desired, Status},
    context::Context,
    crd::{AgentTask, agenttask::TaskState},
    status::StatusBuilder,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to reach the A2A endpoint: {0}")]
    CallRuntime(#[source] A2aError),
    #[error("failed to delete the finished AgentTask")]
    DeleteFinished(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::CallRuntime(_) => "CallRuntime",
            Error::DeleteFinished(_) => "DeleteFinished",
        }
    }
}

/// Deletes a finished task whose `ttlSecondsAfterFinished` has passed.
pub async fn delete_finished(task: &AgentTask, ctx: &Context) -> Result<(), Error> {
    let api: Api<AgentTask> =
        Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
    match api
        .delete(&task.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::DeleteFinished(e)),
    }
}

/// Submits the task; returns when to look at it again.
pub async fn submit(
    task: &AgentTask,
    client: &A2aClient<'_>,
    st: &mut StatusBuilder<AgentTask>,
    checked: &Checked,
    now: DateTime<Utc>,
) -> Result<Duration, Error> {
    let metadata = submission_metadata(&task.spec, checked.timeout);
    let message_id = task.uid().unwrap_or_else(|| task.name_any());
    match client
        .send_message(&message_id, &task.spec.input, metadata)
        .await
    {
        Ok(view) => {
            st.status.start_time = Some(Time(now));
            st.set(Desired::new(
                "Accepted",
                Status::True,
                "Submitted",
                format!("submitted as A2A task {}", view.id),
            ));
            st.mirror(&view);
            Ok(if view.state.is_terminal() {
                Duration::ZERO
            } else {
                poll_interval(Duration::ZERO)
            })
        }
        Err(A2aError::Unavailable) => {
            st.set(Desired::new(
                "Accepted",
                Status::False,
                "A2ANotAvailable",
                format!(
                    "Pending: A2A not available yet on ToolServer {}",
                    task.spec.tool_server_ref
                ),
            ));
            Ok(Duration::from_secs(60))
        }
        Err(e @ A2aError::Rpc { .. }) => {
            st.finish(TaskState::Rejected, "SubmissionRefused", e.to_string());
            Ok(Duration::ZERO)
        }
        Err(e) if e.is_transient() => Err(Error::CallRuntime(e)),
        Err(e) => {
            st.set(Desired::new(
                "Accepted",
                Status::False,
                "SubmissionFailed",
                e.to_string(),
            ));
            Ok(Duration::from_secs(60))
        }
    }
}

/// Follows the submitted task `task_id`: cancels it past its timeout or budget, polls it otherwise; returns
/// when to look at it again.
pub async fn follow(
    task: &AgentTask,
    client: &A2aClient<'_>,
    st: &mut StatusBuilder<AgentTask>,
    task_id: &str,
    checked: &Checked,
    now: DateTime<Utc>,
) -> Result<Duration, Error> {
    let Checked { timeout, budget } = *checked;
    let started = st.status.start_time.as_ref().map_or(now, |t| t.0);
    let running_for = (now - started).to_std().unwrap_or_default();
    let over_budget = |cost: &Option<String>| {
        let cost = cost.as_deref().and_then(|c| Decimal::from_str(c).ok());
        matches!((cost, budget), (Some(c), Some(b)) if c > b)
    };
    let cancel_reason = if running_for >= timeout {
        Some(("Timeout", format!("timed out after {}", task.spec.timeout)))
    } else if over_budget(&st.status.cost) {
        Some((
            "BudgetExceeded",
            format!(
                "cost {} exceeded the task budget {}",
                st.status.cost.clone().unwrap_or_default(),
                task.spec.budget.clone().unwrap_or_default()
            ),
        ))
    } else {
        None
    };
    if let Some((reason, message)) = cancel_reason {
        match client.cancel_task(task_id).await {
            Ok(view) => st.mirror(&TaskView {
                state: TaskState::Canceled,
                ..view
            }),
            Err(e) if e.is_transient() => return Err(Error::CallRuntime(e)),
            // Not cancelable (already finished) or gone: record our verdict anyway.
            Err(e) => {
                tracing::info!(task = %task_id, error = %e, "cancel after {reason} was refused")
            }
        }
        st.finish(TaskState::Canceled, reason, message);
        return Ok(Duration::ZERO);
    }
    match client.get_task(task_id).await {
        Ok(view) => {
            st.mirror(&view);
            if !view.state.is_terminal() && over_budget(&view.cost) {
                return Ok(Duration::ZERO);
            }
        }
        Err(A2aError::Rpc {
            code: paddock_contract::protocol::a2a::TASK_NOT_FOUND,
            ..
        }) => {
            st.finish(
                TaskState::Failed,
                "TaskNotFound",
                format!("the runtime no longer knows task {task_id}"),
            );
        }
        Err(e) if e.is_transient() => return Err(Error::CallRuntime(e)),
        Err(e) => {
            st.set(Desired::new(
                "Accepted",
                Status::True,
                "PollFailed",
                e.to_string(),
            ));
        }
    }
    if st.status.state.is_some_and(TaskState::is_terminal) {
        return Ok(Duration::ZERO);
    }
    let left = timeout.saturating_sub(running_for);
    Ok(poll_interval(running_for).min(left.max(Duration::from_secs(1))))
}
