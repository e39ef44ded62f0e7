//! The status step of the ToolServer controller: `Ready` from the Deployment (or why there is none),
//! `IssuersResolved`, `url`, replicas and the `Verified` self-check ([`super::verify`]) once the pods are ready,
//! written through the generic [`StatusBuilder`].

use std::time::Instant;

use k8s_openapi::{api::apps::v1::Deployment, apimachinery::pkg::apis::meta::v1::Condition};
use kube::{Api, ResourceExt, runtime::controller::Action, runtime::events::EventType};

use super::{
    RESYNC, RETRY, VERIFY_EVERY, build, dereference::Referenced, validate::Invalid, verify,
};
use crate::{
    conditions::{self, Desired, Status},
    context::{self, Context},
    crd::{ToolServer, ToolServerStatus},
    metrics::Metrics,
    names,
    status::{StatusBuilder, StatusOf},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to update the ToolServer status")]
    PatchStatus(#[source] kube::Error),
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::PatchStatus(_) => "PatchStatus",
        }
    }
}

impl StatusOf for ToolServer {
    type Status = ToolServerStatus;

    fn current_status(&self) -> Option<&ToolServerStatus> {
        self.status.as_ref()
    }

    fn api(&self, client: kube::Client) -> Api<Self> {
        Api::namespaced(client, &self.namespace().unwrap_or_default())
    }

    fn event_for(t: &Desired) -> Option<(EventType, &'static str)> {
        let type_ = match (t.type_, t.status) {
            ("Ready" | "Verified", Status::True) => EventType::Normal,
            ("Ready" | "Verified" | "IssuersResolved", Status::False) => EventType::Warning,
            _ => return None,
        };
        let reason = if t.status == Status::True {
            t.type_
        } else {
            t.reason
        };
        Some((type_, reason))
    }

    fn record_conditions(&self, metrics: &Metrics, conditions: &[Condition]) {
        metrics.set_toolserver_conditions(
            &self.namespace().unwrap_or_default(),
            &self.name_any(),
            conditions,
        );
    }
}

/// The status a reconcile starts from: the current one, with the URL and selector the ToolServer always has.
pub fn builder(ts: &ToolServer) -> StatusBuilder<ToolServer> {
    let mut st = StatusBuilder::new(ts);
    st.status.url = Some(build::service_url(ts));
    st.status.selector = Some(names::selector_string(&names::toolserver_selector(
        &ts.name_any(),
    )));
    st
}

async fn save(st: StatusBuilder<ToolServer>, ts: &ToolServer, ctx: &Context) -> Result<(), Error> {
    st.save(ts, ctx).await.map_err(Error::PatchStatus)
}

/// A refused ToolServer: `Ready=False` with the reason, no replicas, no self-check; it waits for a change.
pub async fn refused(
    mut st: StatusBuilder<ToolServer>,
    ts: &ToolServer,
    ctx: &Context,
    invalid: &Invalid,
) -> Result<Action, Error> {
    st.set(Desired::new(
        "Ready",
        Status::False,
        invalid.reason(),
        invalid.to_string(),
    ));
    conditions::remove(&mut st.status.conditions, "Verified");
    conditions::remove(&mut st.status.conditions, "IssuersResolved");
    st.status.ready_replicas = None;
    st.status.replicas = None;
    save(st, ts, ctx).await?;
    Ok(Action::await_change())
}

/// `Ready=False` while a reference is missing or a child's name is taken; retried after `after`.
pub async fn waiting(
    mut st: StatusBuilder<ToolServer>,
    ts: &ToolServer,
    ctx: &Context,
    ready: Desired,
    after: std::time::Duration,
) -> Result<Action, Error> {
    st.set(ready);
    save(st, ts, ctx).await?;
    Ok(Action::requeue(after))
}

/// `IssuersResolved`: whether every tenant issuer is trusted.
pub fn issuers(st: &mut StatusBuilder<ToolServer>, referenced: &Referenced) {
    if referenced.issuer_problems.is_empty() {
        st.set(Desired::new(
            "IssuersResolved",
            Status::True,
            "Resolved",
            format!("{} tenant issuer(s) trusted", referenced.issuers.len()),
        ));
    } else {
        st.set(Desired::new(
            "IssuersResolved",
            Status::False,
            "IssuerUnresolved",
            format!("not trusted: {}", referenced.issuer_problems.join("; ")),
        ));
    }
}

/// `Ready` and replicas from the applied Deployment, and the `Verified` self-check of a ready server whose
/// configuration (`hash`) was not checked recently.
pub async fn deployed(
    mut st: StatusBuilder<ToolServer>,
    ts: &ToolServer,
    ctx: &Context,
    applied: &Deployment,
    hash: &str,
) -> Result<Action, Error> {
    let ns = ts.namespace().unwrap_or_default();
    let name = ts.name_any();
    let dep_status = applied.status.clone().unwrap_or_default();
    st.status.ready_replicas = Some(dep_status.ready_replicas.unwrap_or(0));
    st.status.replicas = Some(dep_status.replicas.unwrap_or(0));
    let ready = build::deployment_ready(applied, ts.spec.replicas);
    let is_ready = ready.status == Status::True;
    st.set(ready);

    let mut requeue = RESYNC;
    if is_ready {
        let cache_key = context::key(ts);
        let fresh = ctx
            .verified
            .lock()
            .expect("verify cache")
            .get(&cache_key)
            .is_some_and(|(h, at)| h == hash && at.elapsed() < VERIFY_EVERY);
        if !fresh || !conditions::is_true(&st.status.conditions, "Verified") {
            let base = ctx.settings.call_url(&ns, &name, &build::service_url(ts));
            match verify::initialize(
                &ctx.http,
                &ctx.dev_issuer,
                &base,
                &ts.spec.tenant_ref,
                &build::resource_url(ts),
            )
            .await
            {
                Ok(message) => {
                    ctx.verified
                        .lock()
                        .expect("verify cache")
                        .insert(cache_key, (hash.to_owned(), Instant::now()));
                    st.set(Desired::new(
                        "Verified",
                        Status::True,
                        "InitializeSucceeded",
                        message,
                    ));
                }
                Err(e) => {
                    ctx.verified
                        .lock()
                        .expect("verify cache")
                        .remove(&cache_key);
                    st.set(Desired::new(
                        "Verified",
                        Status::False,
                        "InitializeFailed",
                        e.to_string(),
                    ));
                    requeue = RETRY;
                }
            }
        }
    } else if ts.spec.replicas == 0 {
        st.set(Desired::new(
            "Verified",
            Status::Unknown,
            "ScaledToZero",
            "no replicas to check",
        ));
    } else {
        st.set(Desired::new(
            "Verified",
            Status::Unknown,
            "NotReady",
            "waiting for ready replicas before the self-check",
        ));
        requeue = RETRY;
    }
    save(st, ts, ctx).await?;
    Ok(Action::requeue(requeue))
}
