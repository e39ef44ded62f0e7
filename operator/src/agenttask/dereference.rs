//! The dereference step of the AgentTask controller: the ToolServer the task names, which must exist, serve
//! A2A and be Ready, its call URL, and a token the operator mints for the task's tenant.

use std::time::Duration;

use kube::{Api, ResourceExt};

use super::{TASK_SCOPES, TOKEN_TTL};
use crate::{
    conditions::{self, Desired, Status},
    context::Context,
    crd::{AgentTask, ToolServer},
    toolserver::build::{resource_url, service_url},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to read ToolServer {0}")]
    ReadToolServer(String, #[source] kube::Error),
    #[error("failed to mint a token: {0}")]
    MintToken(String),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::ReadToolServer(..) => "ReadToolServer",
            Error::MintToken(_) => "MintToken",
        }
    }
}

/// Where to call the task's runtime, and with which token.
pub struct Target {
    pub base_url: String,
    pub token: String,
}

/// Why the task cannot be submitted yet: the `Accepted` condition, and when to look again.
pub struct NotYet {
    pub accepted: Desired,
    pub retry: Duration,
}

/// The task's target, or why there is none yet.
pub async fn target(task: &AgentTask, ctx: &Context) -> Result<Result<Target, NotYet>, Error> {
    let ns = task.namespace().unwrap_or_default();
    let ts_name = &task.spec.tool_server_ref;
    let api: Api<ToolServer> = Api::namespaced(ctx.client.clone(), &ns);
    let not_yet = |reason, message, secs| NotYet {
        accepted: Desired::new("Accepted", Status::False, reason, message),
        retry: Duration::from_secs(secs),
    };
    let Some(ts) = api
        .get_opt(ts_name)
        .await
        .map_err(|e| Error::ReadToolServer(format!("{ns}/{ts_name}"), e))?
    else {
        return Ok(Err(not_yet(
            "ToolServerNotFound",
            format!("ToolServer {ts_name} does not exist in {ns}"),
            30,
        )));
    };
    if !ts.spec.a2a.enabled {
        return Ok(Err(not_yet(
            "A2ADisabled",
            format!("ToolServer {ts_name} has spec.a2a.enabled false"),
            60,
        )));
    }
    if !ts
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
    {
        return Ok(Err(not_yet(
            "ToolServerNotReady",
            format!("waiting for ToolServer {ts_name} to be Ready"),
            15,
        )));
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
