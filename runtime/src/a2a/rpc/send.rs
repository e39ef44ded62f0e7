//! `SendMessage` and `SendStreamingMessage` (0.3: `message/send`, `message/stream`): start a task.
//!
//! The typed [`SendParams`] are checked in a fixed order (message, configuration, follow-up, question, the
//! metadata's skill, model and budget) → in one [`crate::db::TenantTx`], the tenant's policy picks the model
//! and the task row is written with this replica's lease (or written `rejected` with the reason) → the
//! [`worker`] runs it → the answer is a stream of its updates, the task once it settles (blocking), or the
//! task as it is.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    CONTENT_TYPE_NOT_SUPPORTED, MAX_QUESTION_CHARS, PUSH_NOT_SUPPORTED, Reply,
    UNSUPPORTED_OPERATION, err, internal, load_rendered, not_found, owner_filter,
};
use crate::{
    a2a::{
        budget,
        params::{Checked, SendParams, TaskMetadata},
        store::{self, NewTask},
        stream,
        wire::{self, Dialect, TaskState},
        worker,
        workflow::{Skill, TaskCtx, pick_model},
    },
    app::AppState,
    audit::{self, AuditEvent},
    auth::Principal,
    db::TenantId,
    jsonrpc::{self, Id},
};

/// Output modes the skills produce; a request accepting none of them is refused.
const OUTPUT_MODES: &[&str] = &["text/markdown", "text/plain", "application/json"];

fn accepts_our_output(modes: &[Value]) -> bool {
    modes.is_empty()
        || modes.iter().filter_map(Value::as_str).any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            OUTPUT_MODES.contains(&m)
                || m == "*/*"
                || m == "text/*"
                || m == "text"
                || m == "application/*"
        })
}

/// `created` is the audit event of the call, written with the task it creates.
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_message(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    params: SendParams,
    streaming: bool,
    mut created: AuditEvent,
) -> Reply {
    let invalid = |msg: String| {
        err(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("invalid params: {msg}"),
        )
    };
    let Some(raw_message) = &params.message else {
        return invalid("message is required".into());
    };
    let mut message = match wire::message_from_wire(raw_message) {
        Ok(m) => m,
        Err(e) => return invalid(e),
    };
    let Checked::Valid(config) = params.configuration else {
        return invalid("configuration must be an object".into());
    };
    if config.wants_push() {
        return err(
            id,
            PUSH_NOT_SUPPORTED,
            "push notifications are not supported; use SendStreamingMessage or SubscribeToTask",
        );
    }
    if !accepts_our_output(&config.accepted_output_modes) {
        return err(
            id,
            CONTENT_TYPE_NOT_SUPPORTED,
            format!("this agent produces {}", OUTPUT_MODES.join(", ")),
        );
    }
    let Checked::Valid(history_length) = config.history_length else {
        return invalid("configuration.historyLength must be a non-negative integer".into());
    };
    let history_length = history_length.map(|n| n as usize);
    let blocking = match d {
        Dialect::V1 => !config.return_immediately.unwrap_or(false),
        Dialect::V03 => config.blocking.unwrap_or(true),
    };

    let owner = owner_filter(p);
    if let Some(task_ref) = message.get("taskId").and_then(Value::as_str) {
        // Follow-up messages on a task: these skills never ask for input, so a task never waits for one.
        let found = match Uuid::from_str(task_ref) {
            Err(_) => None,
            Ok(tid) => {
                let mut tx = try_db!(id, state.db.begin(tenant).await);
                let t = try_db!(id, store::get(&mut tx, tid, owner.as_deref()).await);
                try_db!(id, tx.commit().await);
                t
            }
        };
        return match found {
            None => not_found(id, task_ref),
            Some(t) => err(
                id,
                UNSUPPORTED_OPERATION,
                format!(
                    "task {} is {} and takes no further messages; send a new message (with the same contextId to \
                     continue the conversation)",
                    t.id,
                    t.state.db()
                ),
            ),
        };
    }

    let question = wire::message_text(&message);
    if question.is_empty() {
        return invalid("the message needs a text part holding the question".into());
    }
    if question.chars().count() > MAX_QUESTION_CHARS {
        return invalid(format!(
            "the question is longer than {MAX_QUESTION_CHARS} characters"
        ));
    }
    let meta = TaskMetadata::of_message(&message).or(params.metadata);
    let skill_name = match meta.skill() {
        None => state.a2a.settings().default_skill.clone(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return invalid("metadata.skill must be a string".into()),
    };
    let Some(skill) = Skill::parse(&skill_name) else {
        return invalid(format!(
            "unknown skill {skill_name:?}; this agent has {}",
            Skill::names().join(", ")
        ));
    };
    let requested_model = match meta.model() {
        None => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => return invalid("metadata.model must be a non-empty string".into()),
    };
    let budget_limit = match meta.budget() {
        None => None,
        Some(v) => {
            let parsed = match v {
                Value::String(s) => Decimal::from_str(s.trim()).ok(),
                Value::Number(n) => Decimal::from_str(&n.to_string()).ok(),
                _ => None,
            };
            match parsed {
                Some(b) if b >= Decimal::ZERO && b.scale() <= 6 => Some(b),
                _ => {
                    return invalid(
                        "metadata.budget must be a non-negative decimal amount (e.g. \"0.50\")"
                            .into(),
                    );
                }
            }
        }
    };

    let task_id = Uuid::new_v4();
    let context_id = message
        .get("contextId")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::new_v4().to_string());
    message["taskId"] = json!(task_id.to_string());
    message["contextId"] = json!(context_id);

    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let Some(policy) = try_db!(id, budget::policy(&mut tx).await) else {
        return err(
            id,
            jsonrpc::INVALID_REQUEST,
            "tenant is not provisioned on this server",
        );
    };
    let llm = state.a2a.llm();
    let choice = try_db!(
        id,
        pick_model(&mut tx, requested_model.as_deref(), llm, &policy).await
    );
    let model_name = match &choice {
        Ok(c) => c.name().to_owned(),
        Err(_) => requested_model
            .clone()
            .or_else(|| llm.default_model().map(str::to_owned))
            .unwrap_or_default(),
    };
    let mut metadata = json!({ "currency": policy.currency });
    if let Some(b) = budget_limit {
        metadata["budget"] = json!(budget::money(b));
    }
    let rejection_message = choice.as_ref().err().map(|r| {
        wire::agent_message(
            &task_id.to_string(),
            &context_id,
            &r.message,
            Some(json!({ "reason": r.reason })),
        )
    });
    // The request's trace (its own span, a child of the caller's `traceparent`), which the run continues; when
    // this process exports no traces, the caller's `traceparent` itself.
    let trace_parent = paddock_telemetry::propagation::traceparent(&tracing::Span::current())
        .or_else(|| created.origin.caller_traceparent.clone());
    let new = NewTask {
        id: task_id,
        context_id: &context_id,
        user: &p.user,
        skill: skill.id(),
        model: Some(&model_name)
            .filter(|m| !m.is_empty())
            .map(String::as_str),
        state: if choice.is_ok() {
            TaskState::Submitted
        } else {
            TaskState::Rejected
        },
        status_message: rejection_message.as_ref(),
        reason: choice.as_ref().err().map(|r| r.reason),
        input: &message,
        metadata: &metadata,
        scopes: &p.scopes.iter().cloned().collect::<Vec<_>>(),
        budget_limit,
        lease: choice
            .is_ok()
            .then(|| (state.a2a.replica(), state.a2a.settings().lease_ttl)),
        trace_parent: trace_parent.as_deref(),
    };
    let task = try_db!(id, store::insert(&mut tx, &new).await);
    // The task and its audit event commit together: the trail holds every task there is.
    created.task_id = Some(task_id);
    try_db!(id, audit::insert(&mut tx, &[created]).await);
    try_db!(id, tx.commit().await);
    tracing::info!(task = %task_id, skill = skill.id(), model = %model_name, state = task.state.db(), "task created");
    if let Err(r) = &choice {
        state
            .metrics
            .count_tasks_ended(TaskState::Rejected.db(), Some(r.reason), 1);
    }

    if let Ok(model) = choice {
        worker::spawn(
            worker::Handle::from(state),
            TaskCtx {
                id: task_id,
                context_id: context_id.clone(),
                tenant: tenant.clone(),
                principal: p.clone(),
                skill,
                question,
                model,
                allow_fallback: policy.allow_extractive_fallback,
                currency: policy.currency.clone(),
                trace_parent,
            },
        );
    }

    if streaming {
        return Reply::Stream(Box::new(stream::task_stream(
            state.clone(),
            stream::Follow {
                tenant: tenant.clone(),
                task: task_id,
                owner,
                rpc_id: id.clone(),
                dialect: d,
                from: stream::Start::Creation,
            },
        )));
    }
    if blocking && !task.state.ends_stream() {
        // Answer before the request timeout cuts the exchange: a task still running then is returned as it is.
        let limit = state
            .settings
            .request_timeout
            .saturating_sub(std::time::Duration::from_secs(2));
        let wait = state
            .a2a
            .settings()
            .blocking_wait
            .min(limit.max(std::time::Duration::from_millis(500)));
        try_db!(
            id,
            stream::wait_until_settled(state, tenant, task_id, wait).await
        );
    }
    match load_rendered(state, tenant, task_id, None, d, history_length, true).await {
        Ok(Some(t)) => Reply::Result(wire::wrap_task_result(t, d)),
        Ok(None) => not_found(id, &task_id.to_string()),
        Err(e) => internal(id, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_modes_we_produce_or_wildcards_are_accepted() {
        assert!(accepts_our_output(&[]));
        assert!(accepts_our_output(&[json!("text/plain")]));
        assert!(!accepts_our_output(&[json!("image/png")]));
    }
}
