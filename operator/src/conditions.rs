//! Status conditions the Kubernetes way: one entry per type, `lastTransitionTime` moves only
//! when the status changes, and every entry carries the generation it describes. That is what
//! `kubectl wait --for=condition=Ready`, Argo CD and Flux read.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    chrono::{DateTime, Utc},
};

/// The three condition statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    pub fn from_bool(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

/// A condition as a reconcile wants it to be; [`set`] turns it into a stored [`Condition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: Status,
    /// CamelCase, machine-readable.
    pub reason: &'static str,
    /// For people. Never carries raw database or upstream error text.
    pub message: String,
}

impl Desired {
    pub fn new(
        type_: &'static str,
        status: Status,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Sets `desired` in `conditions`, keeping the old `lastTransitionTime` when the status is
/// unchanged. Returns whether the status changed (a transition worth an event).
pub fn set(
    conditions: &mut Vec<Condition>,
    desired: &Desired,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> bool {
    let fresh = |last_transition_time: Time| Condition {
        type_: desired.type_.to_owned(),
        status: desired.status.as_str().to_owned(),
        reason: desired.reason.to_owned(),
        message: desired.message.clone(),
        observed_generation: generation,
        last_transition_time,
    };
    match conditions.iter_mut().find(|c| c.type_ == desired.type_) {
        Some(existing) if existing.status == desired.status.as_str() => {
            *existing = fresh(existing.last_transition_time.clone());
            false
        }
        Some(existing) => {
            *existing = fresh(Time(now));
            true
        }
        None => {
            conditions.push(fresh(Time(now)));
            true
        }
    }
}

/// Drops the condition of type `type_`, if present.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The condition of type `type_`, if present.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of type `type_` is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    get(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn unchanged_status_keeps_last_transition_time_but_updates_the_rest() {
        let mut conds = Vec::new();
        let ready = Desired::new("Ready", Status::False, "Provisioning", "creating the role");
        assert!(
            set(&mut conds, &ready, Some(1), at(0)),
            "a new condition is a transition"
        );

        let still = Desired::new(
            "Ready",
            Status::False,
            "NamespaceNotFound",
            "namespace acme does not exist",
        );
        assert!(!set(&mut conds, &still, Some(2), at(60)));
        let c = get(&conds, "Ready").unwrap();
        assert_eq!(
            c.last_transition_time,
            Time(at(0)),
            "same status: time kept"
        );
        assert_eq!(
            (c.reason.as_str(), c.observed_generation),
            ("NamespaceNotFound", Some(2))
        );
        assert_eq!(c.message, "namespace acme does not exist");

        let now_ready = Desired::new("Ready", Status::True, "Provisioned", "ok");
        assert!(set(&mut conds, &now_ready, Some(2), at(120)));
        assert_eq!(
            get(&conds, "Ready").unwrap().last_transition_time,
            Time(at(120))
        );
        assert_eq!(conds.len(), 1, "one entry per type");
    }

    #[test]
    fn types_are_independent() {
        let mut conds = Vec::new();
        set(
            &mut conds,
            &Desired::new("Ready", Status::True, "Provisioned", ""),
            Some(1),
            at(0),
        );
        set(
            &mut conds,
            &Desired::new("BudgetExceeded", Status::False, "WithinBudget", ""),
            Some(1),
            at(5),
        );
        assert!(
            is_true(&conds, "Ready")
                && !is_true(&conds, "BudgetExceeded")
                && !is_true(&conds, "Verified")
        );
        remove(&mut conds, "Ready");
        assert!(get(&conds, "Ready").is_none() && get(&conds, "BudgetExceeded").is_some());
    }
}
