//! A2A: durable tasks over JSON-RPC (A2A 1.0 and 0.3), streamed with SSE, run as workflows that call the MCP
//! tools, paid for from a budget that concurrent replicas can never overspend.
//!
//! Data flow:
//! - `GET /.well-known/agent-card.json` ([`card`]) describes the skills, the endpoint and its security; public.
//! - `POST /a2a` ([`rpc`]) behind the bearer and Origin layers: the method name picks the dialect, admission
//!   applies the tenant's rate limit, and each method runs against the task store ([`store`]) in a
//!   [`crate::db::TenantTx`]. `SendMessage` creates the task (holding a lease for this replica) and hands it to
//!   [`worker`], which runs a [`workflow`] on a tokio task and writes every status and artifact update to
//!   PostgreSQL. A replica runs at most `max_running_tasks` at once; the others wait, `submitted`, in order.
//!   Streams ([`stream`]) read those updates back from the database, woken early by a local
//!   broadcast when the writer is on the same replica, so a stream on any replica sees the same events.
//! - Model calls go through [`llm`] (OpenAI-compatible chat completions) or [`extractive`], each guarded by a
//!   reservation from [`budget`].
//! - Every replica runs the lease sweeper ([`worker::sweep`]): once a dead replica's leases run out, the tasks
//!   it had started are failed with a reason, never left working, and the ones it had not started are adopted.
//!   A replica that is shut down drains ([`worker::drain`]): it hands its waiting tasks over at once.

pub mod budget;
pub mod card;
pub mod extractive;
pub mod llm;
pub mod params;
pub mod rpc;
pub mod store;
pub mod stream;
pub mod wire;
pub mod worker;
pub mod workflow;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, watch};
use uuid::Uuid;

pub use self::llm::{Llm, LlmConfig};
use crate::{app::AppState, db::TenantId};

pub use paddock_contract::config::{A2aConfig, A2aConfigError, A2aSettings};

/// The A2A side of the runtime: settings, the model provider, and this replica's view of the tasks it runs.
/// Cheap to clone.
#[derive(Clone)]
pub struct A2a {
    inner: Arc<Inner>,
}

struct Inner {
    settings: A2aSettings,
    llm: Llm,
    /// Names this replica in task leases.
    replica: String,
    /// Task ids whose events changed on this replica; wakes local streams before their next poll.
    events: broadcast::Sender<Uuid>,
    /// The tasks this replica holds, running or waiting for a slot.
    held: Mutex<HashMap<Uuid, Held>>,
    /// Fires whenever a held task is let go, for [`A2a::all_released`].
    released: Notify,
    /// One permit per task allowed to run at once (`max_running_tasks`).
    slots: Arc<Semaphore>,
    /// Set once the replica shuts down: no task starts any more, and none is adopted.
    draining: watch::Sender<bool>,
}

/// A task this replica holds.
struct Held {
    tenant: TenantId,
    /// Tells the task's workflow to stop at its next checkpoint.
    cancel: watch::Sender<bool>,
}

/// What a task waiting to run gets.
enum Slot {
    /// A slot: run now.
    Run(OwnedSemaphorePermit),
    /// Canceled while waiting.
    Canceled,
    /// The replica is shutting down: hand the task to another replica.
    HandBack,
}

impl A2a {
    pub fn new(settings: A2aSettings, llm: Llm) -> Self {
        let (events, _) = broadcast::channel(1024);
        let replica = format!(
            "{}-{}",
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "paddock".into()),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            inner: Arc::new(Inner {
                llm,
                replica,
                events,
                held: Mutex::new(HashMap::new()),
                released: Notify::new(),
                slots: Arc::new(Semaphore::new(settings.run_slots())),
                draining: watch::channel(false).0,
                settings,
            }),
        }
    }

    /// Default settings, extractive answers only.
    pub fn extractive() -> Self {
        Self::new(A2aSettings::default(), Llm::extractive())
    }

    pub fn settings(&self) -> &A2aSettings {
        &self.inner.settings
    }

    pub fn llm(&self) -> &Llm {
        &self.inner.llm
    }

    pub fn replica(&self) -> &str {
        &self.inner.replica
    }

    /// Tells local streams that `task` has new events.
    pub fn notify(&self, task: Uuid) {
        let _ = self.inner.events.send(task);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Uuid> {
        self.inner.events.subscribe()
    }

    fn held_tasks(&self) -> MutexGuard<'_, HashMap<Uuid, Held>> {
        self.inner.held.lock().expect("held tasks")
    }

    fn register(&self, task: Uuid, tenant: TenantId) -> watch::Receiver<bool> {
        let (cancel, rx) = watch::channel(false);
        self.held_tasks().insert(task, Held { tenant, cancel });
        rx
    }

    fn unregister(&self, task: Uuid) {
        self.held_tasks().remove(&task);
        self.inner.released.notify_waiters();
    }

    /// Stops a task running on this replica at its next checkpoint (the database already says canceled).
    pub fn signal_cancel(&self, task: Uuid) {
        if let Some(held) = self.held_tasks().get(&task) {
            let _ = held.cancel.send(true);
        }
    }

    /// Stops every held task at its next checkpoint and names their tenants.
    fn stop_all(&self) -> BTreeSet<TenantId> {
        self.held_tasks()
            .values()
            .map(|held| {
                let _ = held.cancel.send(true);
                held.tenant.clone()
            })
            .collect()
    }

    /// The replica is shutting down: tasks waiting for a slot are handed back, and from now on no task starts
    /// here and none is adopted.
    pub fn start_draining(&self) {
        self.inner.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Resolves once the replica starts draining.
    pub async fn draining_started(&self) {
        let mut draining = self.inner.draining.subscribe();
        let _ = draining.wait_for(|draining| *draining).await;
    }

    /// Resolves once this replica holds no task.
    pub async fn all_released(&self) {
        loop {
            let released = self.inner.released.notified();
            if self.held() == 0 {
                return;
            }
            released.await;
        }
    }

    /// How many more tasks this replica would run at once right now (for adopting others' tasks).
    fn free_slots(&self) -> usize {
        self.inner.settings.run_slots().saturating_sub(self.held())
    }

    /// How many tasks this replica holds now, running or waiting for a slot.
    pub fn held(&self) -> usize {
        self.held_tasks().len()
    }

    /// How many tasks are running now (holding a slot).
    pub fn running(&self) -> usize {
        self.inner.settings.run_slots() - self.inner.slots.available_permits()
    }

    /// How many held tasks wait for a slot.
    pub fn waiting(&self) -> usize {
        self.held().saturating_sub(self.running())
    }

    /// Waits for a slot to run a task in (see `max_running_tasks`), unless the task is canceled or the replica
    /// starts draining first.
    async fn run_slot(&self, cancel: &mut watch::Receiver<bool>) -> Slot {
        tokio::select! {
            biased;
            _ = cancel.wait_for(|canceled| *canceled) => Slot::Canceled,
            () = self.draining_started() => Slot::HandBack,
            permit = self.inner.slots.clone().acquire_owned() => match permit {
                Ok(permit) => Slot::Run(permit),
                Err(_) => Slot::Canceled,
            },
        }
    }
}

/// The A2A routes: the public agent card and the protected JSON-RPC endpoint. The caller adds the auth layers
/// to the protected part.
/// The slot gauges of `/metrics`, read at scrape time.
impl crate::metrics::TaskSlots for A2a {
    fn running(&self) -> usize {
        A2a::running(self)
    }

    fn waiting(&self) -> usize {
        A2a::waiting(self)
    }
}

pub fn public_router() -> axum::Router<AppState> {
    card::router()
}

pub fn protected_router() -> axum::Router<AppState> {
    rpc::router()
}

/// Background work every replica runs: the lease sweeper and the budget gauges. Never returns.
pub async fn background(state: AppState) {
    let worker = worker::Handle::from(&state);
    let sweep_every = state.a2a.settings().sweep_interval;
    let mut sweep = tokio::time::interval(sweep_every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut gauges = tokio::time::interval(Duration::from_secs(15));
    gauges.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => {
                if let Err(e) = worker::sweep(worker.clone()).await {
                    tracing::warn!(error = %e, "lease sweep failed; retrying next interval");
                }
            }
            _ = gauges.tick() => {
                match budget::overview(&state.db).await {
                    Ok(all) => for s in &all { s.publish(&state.metrics) },
                    Err(e) => tracing::debug!(error = %e, "budget gauges not refreshed"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_url_defaults_to_the_resource_origin() {
        let s = A2aConfig::default()
            .settings("https://docs.acme.example/mcp")
            .unwrap();
        assert_eq!(s.endpoint_url(), "https://docs.acme.example/a2a");
        let s = A2aConfig::default()
            .settings("http://127.0.0.1:9000/mcp")
            .unwrap();
        assert_eq!(s.public_url, "http://127.0.0.1:9000");
        let cfg = A2aConfig {
            public_url: Some("https://agents.example/base/".into()),
            ..A2aConfig::default()
        };
        assert_eq!(
            cfg.settings("x").unwrap().endpoint_url(),
            "https://agents.example/base/a2a"
        );
        let bad = A2aConfig {
            public_url: Some("ftp://x".into()),
            ..A2aConfig::default()
        };
        assert!(bad.settings("x").is_err());
        let bad = A2aConfig {
            default_skill: "poetry".into(),
            ..A2aConfig::default()
        };
        assert!(bad.settings("x").is_err());
    }
}
