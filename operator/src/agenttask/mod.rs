//! The AgentTask controller: submits the task over A2A to its ToolServer with a token the
//! operator mints for the tenant, follows it by polling with a widening interval, and mirrors
//! the A2A task into status.
//!
//! Reconcile runs inside the `finalizer` helper (a running task is state outside Kubernetes that deletion
//! must cancel, see [`cleanup`]). It is a short driver ([`steps`]) over steps that each live in their own
//! module:
//! 1. **finished**: a terminal task only waits for `ttlSecondsAfterFinished`, then is deleted;
//! 2. **validate** ([`validate`]): timeout and budget parse;
//! 3. **dereference** ([`dereference`]): the ToolServer exists, serves A2A and is Ready;
//! 4. **apply** ([`apply`]): submit once (`SendMessage`, message id = the object's uid), or poll
//!    (`GetTask`); a task past its `timeout`, or whose cost passed its `budget`, is canceled (`CancelTask`);
//! 5. **status** ([`status`]): state, task id, artifacts summary, cost, `Accepted`/`Complete`/`Failed`.
//!
//! A runtime without A2A (404 or method not found) leaves the task pending with
//! `Accepted=False, reason A2ANotAvailable`, checked again every minute.

pub mod a2a;
pub mod apply;
pub mod cleanup;
pub mod dereference;
pub mod status;
pub mod validate;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::Utc;
use futures::{Future, StreamExt};
use kube::{
    Api, ResourceExt,
    runtime::{
        Controller,
        controller::Action,
        finalizer::{self, Event as FinalizerEvent, finalizer},
        watcher,
    },
};
use serde_json::json;

use self::a2a::A2aClient;
use crate::{
    context::{self, Context},
    crd::{AgentTask, AgentTaskStatus, agenttask::TaskState},
    metrics::{AgentTaskStateLabels, TasksInState},
    status::StatusBuilder,
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

/// A failed step; the message is the step's own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Dereference(#[from] dereference::Error),
    #[error(transparent)]
    Apply(#[from] apply::Error),
    #[error(transparent)]
    Status(#[from] status::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Dereference(e) => e.metric_label(),
            Error::Apply(e) => e.metric_label(),
            Error::Status(e) => e.metric_label(),
            Error::Finalizer(e) => context::finalizer_label(e, Error::metric_label),
        }
    }
}

pub async fn run(ctx: Arc<Context>, shutdown: impl Future<Output = ()> + Send + Sync + 'static) {
    let controller = Controller::new(
        Api::<AgentTask>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .with_config(ctx.settings.controller_config());
    let tasks = controller.store();
    // From the cache at each scrape rather than in the status step: a task waits minutes between
    // polls, and its age must grow meanwhile.
    ctx.metrics.count_agenttasks_with(move || {
        task_gauges(tasks.state().iter().map(AsRef::as_ref), Utc::now())
    });
    controller
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "agenttask reconcile did not complete");
            }
        })
        .await;
}

/// The state label of a task: its A2A state, or `pending` before it has one (not yet accepted by
/// a ToolServer).
fn state_label(state: Option<TaskState>) -> &'static str {
    state.map_or("pending", TaskState::db)
}

/// AgentTasks per namespace and state, with the age (since creation) of the oldest non-terminal
/// one in each.
pub fn task_gauges<'a>(
    tasks: impl IntoIterator<Item = &'a AgentTask>,
    now: chrono::DateTime<Utc>,
) -> BTreeMap<AgentTaskStateLabels, TasksInState> {
    let mut out = BTreeMap::<AgentTaskStateLabels, TasksInState>::new();
    for task in tasks {
        let state = task.status.as_ref().and_then(|s| s.state);
        let entry = out
            .entry(AgentTaskStateLabels {
                namespace: task.namespace().unwrap_or_default(),
                state: state_label(state).to_owned(),
            })
            .or_default();
        entry.count += 1;
        if state.is_some_and(TaskState::is_terminal) {
            continue;
        }
        let age = task.metadata.creation_timestamp.as_ref().map_or(0.0, |t| {
            (now - t.0).num_milliseconds().max(0) as f64 / 1000.0
        });
        entry.oldest_seconds = Some(entry.oldest_seconds.map_or(age, |o| o.max(age)));
    }
    out
}

pub fn error_policy(task: Arc<AgentTask>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, error.metric_label());
    let delay = ctx.backoff.next(&context::key(task.as_ref()));
    tracing::warn!(agenttask = %task.name_any(), namespace = ?task.namespace(), error = %error, retry_in = ?delay, "agenttask reconcile failed");
    Action::requeue(delay)
}

#[tracing::instrument(name = "reconcile", skip_all, fields(
    otel.name = "reconcile AgentTask", k8s.object.kind = "AgentTask",
    k8s.namespace.name = %task.namespace().unwrap_or_default(), k8s.object.name = %task.name_any(),
))]
pub async fn reconcile(task: Arc<AgentTask>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile(CONTROLLER);
    let key = context::key(task.as_ref());
    let api: Api<AgentTask> =
        Api::namespaced(ctx.client.clone(), &task.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, task, |event| async {
        match event {
            FinalizerEvent::Apply(t) => steps(&t, &ctx).await,
            FinalizerEvent::Cleanup(t) => cleanup::cleanup(&t, &ctx).await,
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

/// The steps of one reconcile of an AgentTask that is not being deleted, in order.
async fn steps(task: &AgentTask, ctx: &Context) -> Result<Action, Error> {
    let mut st = StatusBuilder::new(task);
    let now = Utc::now();

    if st.status.state.is_some_and(TaskState::is_terminal) {
        return match ttl_remaining(&st.status, task.spec.ttl_seconds_after_finished, now) {
            None => Ok(Action::await_change()),
            Some(left) if left.is_zero() => {
                apply::delete_finished(task, ctx).await?;
                Ok(Action::await_change())
            }
            Some(left) => Ok(Action::requeue(left)),
        };
    }

    let checked = match validate::validate(&task.spec) {
        Ok(checked) => checked,
        Err(invalid) => {
            st.finish(TaskState::Rejected, "InvalidSpec", invalid.to_string());
            status::save(st, task, ctx).await?;
            return Ok(Action::await_change());
        }
    };
    let target = match dereference::target(task, ctx).await? {
        Ok(t) => t,
        Err(not_yet) => {
            st.set(not_yet.accepted);
            status::save(st, task, ctx).await?;
            return Ok(Action::requeue(not_yet.retry));
        }
    };
    let client = A2aClient::new(&ctx.http, &target.base_url, target.token);
    let next = match st.status.task_id.clone() {
        None => apply::submit(task, &client, &mut st, &checked, now).await?,
        Some(task_id) => apply::follow(task, &client, &mut st, &task_id, &checked, now).await?,
    };
    status::save(st, task, ctx).await?;
    Ok(Action::requeue(next))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn polling_slows_down_as_the_task_runs() {
        let secs = |s| poll_interval(Duration::from_secs(s)).as_secs();
        assert_eq!(
            [secs(0), secs(9), secs(10), secs(59), secs(60), secs(3600)],
            [2, 2, 5, 5, 15, 30]
        );
    }

    fn task(ns: &str, created: chrono::DateTime<Utc>, state: Option<TaskState>) -> AgentTask {
        let mut t = AgentTask::new(
            "t",
            serde_json::from_value(json!({
                "toolServerRef": "docs",
                "skill": "rag",
                "input": "x",
            }))
            .unwrap(),
        );
        t.metadata.namespace = Some(ns.to_owned());
        t.metadata.creation_timestamp = Some(Time(created));
        t.status = state.map(|state| AgentTaskStatus {
            state: Some(state),
            ..Default::default()
        });
        t
    }

    #[test]
    fn task_gauges_count_per_state_and_age_the_oldest_unfinished() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let ago = |s| now - chrono::Duration::seconds(s);
        let tasks = [
            task("acme", ago(30), None),
            task("acme", ago(600), Some(TaskState::Working)),
            task("acme", ago(60), Some(TaskState::Working)),
            task("acme", ago(7200), Some(TaskState::Completed)),
            task("umbrella", ago(5), Some(TaskState::InputRequired)),
        ];
        let got: Vec<_> = task_gauges(&tasks, now)
            .into_iter()
            .map(|(k, v)| (k.namespace, k.state, v.count, v.oldest_seconds))
            .collect();
        let row = |ns: &str, state: &str, n, oldest| (ns.to_owned(), state.to_owned(), n, oldest);
        assert_eq!(
            got,
            [
                row("acme", "completed", 1, None),
                row("acme", "pending", 1, Some(30.0)),
                row("acme", "working", 2, Some(600.0)),
                row("umbrella", "input-required", 1, Some(5.0)),
            ]
        );
        assert!(task_gauges(&[], now).is_empty());
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
