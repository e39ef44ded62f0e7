//! The AgentTask controller: submits the task over A2A to its ToolServer with a token the
//! operator mints for the tenant, follows it by polling with a widening interval, and mirrors
//! the A2A task into status.
//!
//! Reconcile pipeline (inside the `finalizer` helper: a running task is state outside
//! Kubernetes that deletion must cancel):
//! 1. **finished**: a terminal task only waits for `ttlSecondsAfterFinished`, then is deleted;
//! 2. **validate**: timeout and budget parse; the ToolServer exists, serves A2A and is Ready;
//! 3. **submit** once (`SendMessage`, message id = the object's uid), or **poll** (`GetTask`);
//!    a task past its `timeout`, or whose cost passed its `budget`, is canceled (`CancelTask`);
//! 4. **status**: state, task id, artifacts summary, cost, `Accepted`/`Complete`/`Failed`.
//!
//! A runtime without A2A (404 or method not found) leaves the task pending with
//! `Accepted=False, reason A2ANotAvailable`, checked again every minute.

pub mod a2a;

use std::{str::FromStr, sync::Arc, time::Duration};

use chrono::Utc;
use futures::{Future, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{
    Api, ResourceExt,
    api::DeleteParams,
    runtime::{
        Controller,
        controller::Action,
        events::EventType,
        finalizer::{self, Event as FinalizerEvent, finalizer},
        watcher,
    },
};
use rust_decimal::Decimal;
use serde_json::json;

use self::a2a::{A2aClient, A2aError, TaskView};
use crate::{
    conditions::{self, Desired, Status},
    context::{self, Context},
    crd::{AgentTask, AgentTaskStatus, ToolServer, agenttask::TaskState, parse_duration},
    status::{StatusBuilder, StatusOf},
    toolserver::build::{resource_url, service_url},
};

/// Finalizer that cancels a running task before its AgentTask goes away.
pub const FINALIZER: &str = "paddock.dev/agenttask-cancel";
const CONTROLLER: &str = "agenttask";
/// How long deletion keeps trying to cancel an unreachable task before letting go.
const CANCEL_GRACE: Duration = Duration::from_secs(120);
/// Lifetime of the token for one call.
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Scopes of the operator's task tokens: run tasks, and read the documents their skills search.
pub const TASK_SCOPES: [&str; 2] = [
    paddock_contract::identity::scopes::TASKS_RUN,
    paddock_contract::identity::scopes::DOCUMENTS_READ,
];

/// `SendMessageRequest.metadata` for a task: skill, per-task budget, model, timeout.
pub fn submission_metadata(
    spec: &crate::crd::AgentTaskSpec,
    timeout: Duration,
) -> serde_json::Value {
    json!({
        "skill": spec.skill,
        "budget": spec.budget,
        "model": spec.model,
        "timeoutSeconds": timeout.as_secs(),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read ToolServer {0}")]
    ReadToolServer(String, #[source] kube::Error),
    #[error("failed to reach the A2A endpoint: {0}")]
    CallRuntime(#[source] A2aError),
    #[error("failed to mint a token: {0}")]
    MintToken(String),
    #[error("failed to delete the finished AgentTask")]
    DeleteFinished(#[source] kube::Error),
    #[error("failed to update the AgentTask status")]
    PatchStatus(#[source] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadToolServer(..) => "ReadToolServer",
            Error::CallRuntime(_) => "CallRuntime",
            Error::MintToken(_) => "MintToken",
            Error::DeleteFinished(_) => "DeleteFinished",
            Error::PatchStatus(_) => "PatchStatus",
            Error::Finalizer(e) => context::finalizer_label(e, Error::metric_label),
        }
    }
}

pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    Controller::new(
        Api::<AgentTask>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "agenttask reconcile did not complete");
        }
    })
    .await;
}

pub fn error_policy(task: Arc<AgentTask>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.next(&context::key(task.as_ref()));
    tracing::warn!(agenttask = %task.name_any(), namespace = ?task.namespace(), error = %error, retry_in = ?delay, "agenttask reconcile failed");
    Action::requeue(delay)
}

pub async fn reconcile(task: Arc<AgentTask>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let key = context::key(task.as_ref());
    let api: Api<AgentTask> =
        Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, task, |event| async {
        match event {
            FinalizerEvent::Apply(t) => apply(&t, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup(&t, &ctx).await,
        }
    })
    .await;
    let result = context::finalizer_outcome(result).map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.backoff.reset(&key);
    }
    result
}

/// Poll interval as a function of how long the task has run: quick at first, then every 30 s.
pub fn poll_interval(running_for: Duration) -> Duration {
    match running_for.as_secs() {
        0..10 => Duration::from_secs(2),
        10..60 => Duration::from_secs(5),
        60..600 => Duration::from_secs(15),
        _ => Duration::from_secs(30),
    }
}

/// When a finished task should be deleted, if ever.
pub fn ttl_remaining(
    status: &AgentTaskStatus,
    ttl_seconds: Option<i32>,
    now: chrono::DateTime<Utc>,
) -> Option<Duration> {
    let ttl = ttl_seconds?;
    let done = status.completion_time.as_ref()?.0;
    let due = done + chrono::Duration::seconds(i64::from(ttl));
    Some((due - now).to_std().unwrap_or(Duration::ZERO))
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
    fn mirror(&mut self, view: &TaskView) {
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

    fn finish(&mut self, state: TaskState, reason: &'static str, message: String) {
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

/// The ToolServer, its call URL, and a token for the task's tenant.
struct Target {
    base_url: String,
    token: String,
}

async fn target(
    task: &AgentTask,
    ctx: &Context,
    st: &mut StatusBuilder<AgentTask>,
) -> Result<Result<Target, Duration>, Error> {
    let ns = task.namespace().unwrap_or_default();
    let ts_name = &task.spec.tool_server_ref;
    let api: Api<ToolServer> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(ts) = api
        .get_opt(ts_name)
        .await
        .map_err(|e| Error::ReadToolServer(format!("{ns}/{ts_name}"), e))?
    else {
        st.set(Desired::new(
            "Accepted",
            Status::False,
            "ToolServerNotFound",
            format!("ToolServer {ts_name} does not exist in {ns}"),
        ));
        return Ok(Err(Duration::from_secs(30)));
    };
    if !ts.spec.a2a.enabled {
        st.set(Desired::new(
            "Accepted",
            Status::False,
            "A2ADisabled",
            format!("ToolServer {ts_name} has spec.a2a.enabled false"),
        ));
        return Ok(Err(Duration::from_secs(60)));
    }
    if !ts
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
    {
        st.set(Desired::new(
            "Accepted",
            Status::False,
            "ToolServerNotReady",
            format!("waiting for ToolServer {ts_name} to be Ready"),
        ));
        return Ok(Err(Duration::from_secs(15)));
    }
    let user = format!("agenttask:{ns}/{}", task.name_any());
    let token = ctx
        .dev_issuer
        .mint(
            &ts.spec.tenant_ref,
            &resource_url(&ts),
            &user,
            &TASK_SCOPES,
            TOKEN_TTL,
        )
        .map_err(|e| Error::MintToken(e.to_string()))?;
    Ok(Ok(Target {
        base_url: ctx.settings.call_url(&ns, ts_name, &service_url(&ts)),
        token,
    }))
}

async fn apply(task: &AgentTask, ctx: &Context) -> Result<Action, Error> {
    let mut st = StatusBuilder::new(task);
    let now = Utc::now();

    // 1. finished: only the TTL is left to honour
    if st.status.state.is_some_and(TaskState::is_terminal) {
        return match ttl_remaining(&st.status, task.spec.ttl_seconds_after_finished, now) {
            None => Ok(Action::await_change()),
            Some(left) if left.is_zero() => {
                let api: Api<AgentTask> =
                    Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
                match api
                    .delete(&task.name_any(), &DeleteParams::background())
                    .await
                {
                    Ok(_) => Ok(Action::await_change()),
                    Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
                    Err(e) => Err(Error::DeleteFinished(e)),
                }
            }
            Some(left) => Ok(Action::requeue(left)),
        };
    }

    // 2. validate
    let timeout = match parse_duration(&task.spec.timeout) {
        Ok(t) => t,
        Err(e) => {
            st.finish(
                TaskState::Rejected,
                "InvalidSpec",
                format!("spec.timeout: {e}"),
            );
            st.save(task, ctx).await.map_err(Error::PatchStatus)?;
            return Ok(Action::await_change());
        }
    };
    let budget = match task
        .spec
        .budget
        .as_deref()
        .map(Decimal::from_str)
        .transpose()
    {
        Ok(b) => b,
        Err(_) => {
            st.finish(
                TaskState::Rejected,
                "InvalidSpec",
                "spec.budget is not a decimal amount".to_owned(),
            );
            st.save(task, ctx).await.map_err(Error::PatchStatus)?;
            return Ok(Action::await_change());
        }
    };
    let target = match target(task, ctx, &mut st).await? {
        Ok(t) => t,
        Err(retry) => {
            st.save(task, ctx).await.map_err(Error::PatchStatus)?;
            return Ok(Action::requeue(retry));
        }
    };
    let client = A2aClient::new(&ctx.http, &target.base_url, target.token);

    // 3. submit or poll
    let Some(task_id) = st.status.task_id.clone() else {
        let metadata = submission_metadata(&task.spec, timeout);
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
                let done = view.state.is_terminal();
                st.save(task, ctx).await.map_err(Error::PatchStatus)?;
                return Ok(if done {
                    Action::requeue(Duration::ZERO)
                } else {
                    Action::requeue(poll_interval(Duration::ZERO))
                });
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
                st.save(task, ctx).await.map_err(Error::PatchStatus)?;
                return Ok(Action::requeue(Duration::from_secs(60)));
            }
            Err(e @ A2aError::Rpc { .. }) => {
                st.finish(TaskState::Rejected, "SubmissionRefused", e.to_string());
                st.save(task, ctx).await.map_err(Error::PatchStatus)?;
                return Ok(Action::requeue(Duration::ZERO));
            }
            Err(e) if e.is_transient() => return Err(Error::CallRuntime(e)),
            Err(e) => {
                st.set(Desired::new(
                    "Accepted",
                    Status::False,
                    "SubmissionFailed",
                    e.to_string(),
                ));
                st.save(task, ctx).await.map_err(Error::PatchStatus)?;
                return Ok(Action::requeue(Duration::from_secs(60)));
            }
        }
    };

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
        match client.cancel_task(&task_id).await {
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
        st.save(task, ctx).await.map_err(Error::PatchStatus)?;
        return Ok(Action::requeue(Duration::ZERO));
    }
    match client.get_task(&task_id).await {
        Ok(view) => {
            st.mirror(&view);
            if !view.state.is_terminal() && over_budget(&view.cost) {
                st.save(task, ctx).await.map_err(Error::PatchStatus)?;
                return Ok(Action::requeue(Duration::ZERO));
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
    let terminal = st.status.state.is_some_and(TaskState::is_terminal);
    st.save(task, ctx).await.map_err(Error::PatchStatus)?;
    if terminal {
        return Ok(Action::requeue(Duration::ZERO));
    }
    let left = timeout.saturating_sub(running_for);
    Ok(Action::requeue(
        poll_interval(running_for).min(left.max(Duration::from_secs(1))),
    ))
}

async fn cleanup(task: &AgentTask, ctx: &Context) -> Result<Action, Error> {
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
    let mut st = StatusBuilder::new(task);
    let target = match target(task, ctx, &mut st).await? {
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
        Err(e) if e.is_transient() && deleting_for < CANCEL_GRACE => Err(Error::CallRuntime(e)),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn polling_slows_down_as_the_task_runs() {
        let secs = |s| poll_interval(Duration::from_secs(s)).as_secs();
        assert_eq!(
            [secs(0), secs(9), secs(10), secs(59), secs(60), secs(3600)],
            [2, 2, 5, 5, 15, 30]
        );
    }

    #[test]
    fn ttl_counts_from_completion() {
        let done = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let status = AgentTaskStatus {
            completion_time: Some(Time(done)),
            ..Default::default()
        };
        assert_eq!(
            ttl_remaining(&status, None, done),
            None,
            "no TTL, never deleted"
        );
        assert_eq!(
            ttl_remaining(&status, Some(60), done + chrono::Duration::seconds(20)),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            ttl_remaining(&status, Some(60), done + chrono::Duration::seconds(90)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            ttl_remaining(&AgentTaskStatus::default(), Some(60), done),
            None,
            "not finished"
        );
    }
}
