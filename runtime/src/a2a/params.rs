//! The parameters of the A2A methods, as types: each method deserializes its `params` object once, here, and
//! works with the fields from then on.
//!
//! Data flows JSON-RPC `params` (already known to be an object) → one `serde_json::from_value` into the method's
//! struct → the method's checks, in a fixed order, each with its own message. Fields whose checks carry their
//! own wording (or that A2A clients send loosely) are read leniently: a value of the wrong type becomes
//! [`Checked::Invalid`] or is ignored instead of failing the whole request, so which error a request with
//! several faults gets does not depend on the order of its keys. The message itself stays JSON: it is checked
//! and normalised to the canonical 1.0 form by [`super::wire::message_from_wire`], in either dialect.

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use serde_json::Value;

/// A parameter that was read without failing the request: valid, or present with a value that is not.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked<T> {
    Valid(T),
    Invalid,
}

impl<T: Default> Default for Checked<T> {
    /// An absent parameter is its default.
    fn default() -> Self {
        Checked::Valid(T::default())
    }
}

/// Any JSON value, `Some` even when it is `null`: with `#[serde(default)]`, only an absent key is `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// `T`, or [`Checked::Invalid`] for a value `T` does not read.
fn checked<'de, D, T>(d: D) -> Result<Checked<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(T::deserialize(v).map_or(Checked::Invalid, Checked::Valid))
}

/// `T` read from a JSON object, or [`Checked::Invalid`] for anything else (serde would read a struct from an
/// array too).
fn checked_object<'de, D, T>(d: D) -> Result<Checked<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    if !v.is_object() {
        return Ok(Checked::Invalid);
    }
    Ok(T::deserialize(v).map_or(Checked::Invalid, Checked::Valid))
}

/// `T` read from a JSON object; anything else reads as `T::default()`.
fn object_or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + Default,
{
    let v = Value::deserialize(d)?;
    if !v.is_object() {
        return Ok(T::default());
    }
    Ok(T::deserialize(v).unwrap_or_default())
}

/// `Some(T)`, or `None` for a value of another type (clients send these flags loosely; they only ever
/// defaulted).
fn loose<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(T::deserialize(v).ok())
}

/// The elements of a JSON array; anything else reads as no elements.
fn array_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items,
        _ => Vec::new(),
    })
}

/// `SendMessage` / `SendStreamingMessage` (0.3: `message/send`, `message/stream`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    /// The message as sent, in either dialect; `None` only when the key is absent (`null` is "not an object").
    #[serde(default, deserialize_with = "present")]
    pub message: Option<Value>,
    /// Invalid when present but not an object (`null` included).
    #[serde(default, deserialize_with = "checked_object")]
    pub configuration: Checked<SendConfiguration>,
    /// The request's metadata; a value that is not an object names nothing.
    #[serde(default, deserialize_with = "object_or_default")]
    pub metadata: TaskMetadata,
}

/// The `configuration` of a send request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendConfiguration {
    /// 1.0's push configuration; any non-null value asks for push notifications, which this agent refuses.
    #[serde(default)]
    pub task_push_notification_config: Option<Value>,
    /// 0.3's name for the same.
    #[serde(default)]
    pub push_notification_config: Option<Value>,
    /// Media types the client accepts; empty (or not an array) accepts anything. Kept as JSON: an array
    /// holding only non-strings accepts nothing.
    #[serde(default, deserialize_with = "array_or_empty")]
    pub accepted_output_modes: Vec<Value>,
    /// How many history messages the answer carries; `null` means all.
    #[serde(default, deserialize_with = "checked")]
    pub history_length: Checked<Option<u64>>,
    /// 1.0: answer at once instead of waiting for the task to settle.
    #[serde(default, deserialize_with = "loose")]
    pub return_immediately: Option<bool>,
    /// 0.3: wait for the task to settle (the default).
    #[serde(default, deserialize_with = "loose")]
    pub blocking: Option<bool>,
}

impl SendConfiguration {
    pub fn wants_push(&self) -> bool {
        self.task_push_notification_config.is_some() || self.push_notification_config.is_some()
    }
}

/// The task options a send request carries in its metadata or its message's. Each is any JSON, checked by the
/// method so that each has its own message; a key present in the message's metadata wins even when it is `null`
/// (which then means "not set").
#[derive(Debug, Default, Clone, Deserialize)]
pub struct TaskMetadata {
    #[serde(default, deserialize_with = "present")]
    skill: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    model: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    budget: Option<Value>,
}

impl TaskMetadata {
    /// The metadata of a canonical message (an object or absent, per `message_from_wire`).
    pub fn of_message(message: &Value) -> Self {
        message
            .get("metadata")
            .filter(|m| m.is_object())
            .and_then(|m| Self::deserialize(m).ok())
            .unwrap_or_default()
    }

    /// Each option from `self` when it has the key, else from `fallback`.
    pub fn or(self, fallback: Self) -> Self {
        Self {
            skill: self.skill.or(fallback.skill),
            model: self.model.or(fallback.model),
            budget: self.budget.or(fallback.budget),
        }
    }

    pub fn skill(&self) -> Option<&Value> {
        self.skill.as_ref().filter(|v| !v.is_null())
    }

    pub fn model(&self) -> Option<&Value> {
        self.model.as_ref().filter(|v| !v.is_null())
    }

    pub fn budget(&self) -> Option<&Value> {
        self.budget.as_ref().filter(|v| !v.is_null())
    }
}

/// `GetTask`, `CancelTask`, `SubscribeToTask` (0.3: `tasks/get`, `tasks/cancel`, `tasks/resubscribe`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdParams {
    /// The task's id as sent; a malformed one names no task.
    pub id: String,
    #[serde(default)]
    pub history_length: Option<u64>,
}

/// `ListTasks` (0.3: `tasks/list`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    #[serde(default)]
    pub context_id: Option<String>,
    /// A task state in either dialect; empty or `TASK_STATE_UNSPECIFIED` means any.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub page_size: Option<i64>,
    #[serde(default)]
    pub page_token: Option<String>,
    #[serde(default)]
    pub history_length: Option<u64>,
    /// RFC 3339.
    #[serde(default)]
    pub status_timestamp_after: Option<String>,
    #[serde(default)]
    pub include_artifacts: Option<bool>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn send(v: Value) -> SendParams {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_null_message_is_present_and_an_absent_one_is_not() {
        assert_eq!(send(json!({})).message, None);
        assert_eq!(send(json!({ "message": null })).message, Some(Value::Null));
    }

    #[test]
    fn configuration_must_be_an_object_when_present() {
        assert!(matches!(send(json!({})).configuration, Checked::Valid(_)));
        for bad in [json!(null), json!([]), json!("x")] {
            assert!(matches!(
                send(json!({ "configuration": bad })).configuration,
                Checked::Invalid
            ));
        }
    }

    #[test]
    fn loose_configuration_fields_default_and_strict_ones_are_checked() {
        let p = send(json!({ "configuration": {
            "acceptedOutputModes": "text/plain", "blocking": "no", "historyLength": null,
            "pushNotificationConfig": null,
        } }));
        let Checked::Valid(c) = p.configuration else {
            panic!("configuration is an object")
        };
        assert!(c.accepted_output_modes.is_empty() && c.blocking.is_none() && !c.wants_push());
        assert_eq!(c.history_length, Checked::Valid(None));
        let p = send(json!({ "configuration": { "historyLength": -1 } }));
        let Checked::Valid(c) = p.configuration else {
            panic!("configuration is an object")
        };
        assert_eq!(c.history_length, Checked::Invalid);
    }

    #[test]
    fn the_message_metadata_wins_over_the_request_metadata() {
        let p = send(json!({ "metadata": { "skill": "rag", "model": "m", "budget": "1" } }));
        let m = TaskMetadata::of_message(
            &json!({ "metadata": { "skill": "research", "model": null } }),
        );
        let both = m.or(p.metadata);
        assert_eq!(both.skill(), Some(&json!("research")));
        // A null in the message's metadata unsets the option rather than deferring to the request's.
        assert_eq!(both.model(), None);
        assert_eq!(both.budget(), Some(&json!("1")));
        // Metadata that is not an object names nothing.
        assert!(
            send(json!({ "metadata": ["rag"] }))
                .metadata
                .skill()
                .is_none()
        );
    }
}
