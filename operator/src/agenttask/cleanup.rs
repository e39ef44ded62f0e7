//! The cleanup step of the AgentTask controller, run by the finalizer when an AgentTask is deleted: a task
//! still running is canceled on its runtime, for up to [`super::CANCEL_GRACE`] while the runtime is
//! unreachable.

use chrono::Utc;
use kube::runtime::{controller::Action, events::EventType};

use super::{CANCEL_GRACE, Error, a2a::A2aClient, apply, dereference};
use crate::{
    context::Context,
    crd::{AgentTask, agenttask::TaskState},
};

pub async fn cleanup(task: &AgentTask, ctx: &Context) -> Result<Action, Error> {
    let status = task.status.clone().unwrap_or_default();
    let (Some(task_id), false) = (
        status.task_id.clone(),
        status.state.is_some_and(TaskState::is_terminal),
    ) else {
        return Ok(Action::await_change());
    };
    let deleting_for = task
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(|t| (Utc::now() - t.0).to_std().ok())
        .unwrap_or_default();
    let target = match dereference::target(task, ctx).await? {
        Ok(t) => t,
        // Without a ToolServer there is nothing left to cancel.
        Err(_) => return Ok(Action::await_change()),
    };
    let client = A2aClient::new(&ctx.http, &target.base_url, target.token);
    match client.cancel_task(&task_id).await {
        Ok(_) => {
            ctx.event(
                task,
                EventType::Normal,
                "Canceled",
                "Cleanup",
                format!("canceled A2A task {task_id} before deletion"),
            )
            .await;
            Ok(Action::await_change())
        }
        Err(e) if e.is_transient() && deleting_for < CANCEL_GRACE => {
            Err(apply::Error::CallRuntime(e).into())
        }
        Err(e) => {
            ctx.event(
                task,
                EventType::Warning,
                "CancelFailed",
                "Cleanup",
                format!("could not cancel A2A task {task_id}: {e}"),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}
