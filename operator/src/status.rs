//! The status step every controller ends with, written once for the three kinds.
//!
//! A reconcile starts a [`StatusBuilder`] from the object's current status, sets the conditions it wants
//! ([`StatusBuilder::set`], which keeps `lastTransitionTime` when a status does not change, see
//! [`crate::conditions`]) and fills its kind's own fields on [`StatusBuilder::status`]. [`StatusBuilder::save`]
//! then writes the status with server-side apply only when it changed, stamped with the generation it describes,
//! and publishes the event each condition transition deserves, as the kind decides ([`StatusOf::event_for`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::events::EventType,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::{
    conditions::{self, Desired},
    context::Context,
    crd::{AgentTaskStatus, PostgresClusterStatus, TenantStatus, ToolServerStatus},
    metrics::Metrics,
    names::MANAGER,
};

/// A kind's status: conditions and the generation it describes.
pub trait Conditioned: Clone + Default + PartialEq + Serialize {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    fn set_observed_generation(&mut self, generation: Option<i64>);
}

/// The three kinds' statuses carry their conditions and generation under the same names.
macro_rules! conditioned {
    ($($status:ty),+) => {$(
        impl Conditioned for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
            fn set_observed_generation(&mut self, generation: Option<i64>) {
                self.observed_generation = generation;
            }
        }
    )+};
}
conditioned!(
    TenantStatus,
    ToolServerStatus,
    AgentTaskStatus,
    PostgresClusterStatus
);

/// A kind whose reconcile ends by writing a [`Conditioned`] status.
pub trait StatusOf:
    Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned
{
    type Status: Conditioned;

    fn current_status(&self) -> Option<&Self::Status>;

    /// The API its status is written through (cluster-wide or the object's namespace).
    fn api(&self, client: Client) -> Api<Self>;

    /// The event a condition transition deserves, as (type, reason); `None` for a transition worth none.
    fn event_for(transition: &Desired) -> Option<(EventType, &'static str)>;

    /// Exports the conditions the object now has as metrics; by default none.
    fn record_conditions(&self, _metrics: &Metrics, _conditions: &[Condition]) {}
}

/// Conditions under construction, with the events their transitions deserve.
pub struct StatusBuilder<K: StatusOf> {
    pub status: K::Status,
    generation: Option<i64>,
    transitions: Vec<Desired>,
}

impl<K: StatusOf> StatusBuilder<K> {
    pub fn new(obj: &K) -> Self {
        Self {
            status: obj.current_status().cloned().unwrap_or_default(),
            generation: obj.meta().generation,
            transitions: vec![],
        }
    }

    /// Sets a condition; a change of its status is a transition, published on [`save`](Self::save).
    pub fn set(&mut self, desired: Desired) {
        if conditions::set(
            self.status.conditions_mut(),
            &desired,
            self.generation,
            chrono::Utc::now(),
        ) {
            self.transitions.push(desired);
        }
    }

    /// Writes the status (if it changed) and publishes an event per meaningful transition.
    pub async fn save(mut self, obj: &K, ctx: &Context) -> Result<(), kube::Error> {
        self.status.set_observed_generation(self.generation);
        if obj.current_status() != Some(&self.status) {
            let patch = json!({
                "apiVersion": K::api_version(&()),
                "kind": K::kind(&()),
                "status": self.status,
            });
            obj.api(ctx.client.clone())
                .patch_status(
                    &obj.name_any(),
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(patch),
                )
                .await?;
        }
        // Also when nothing changed: a new leader starts with no series.
        obj.record_conditions(&ctx.metrics, self.status.conditions());
        for t in &self.transitions {
            if let Some((type_, reason)) = K::event_for(t) {
                ctx.event(obj, type_, reason, "Reconcile", t.message.clone())
                    .await;
            }
        }
        Ok(())
    }
}
