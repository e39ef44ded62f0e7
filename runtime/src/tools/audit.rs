//! The `audit` tool: a page of the tenant's audit trail, newest first, for a tenant admin holding `audit:read`.
//!
//! [`AuditArgs`] (all optional: a time range, a user, a tool or method name, a page size and the cursor of the
//! previous page) → [`crate::audit::page`] reads `audit_events` in one transaction under the caller's tenant →
//! an [`AuditPage`], whose derived JSON Schema is the tool's output schema. Row-level security decides what is
//! there to read: the caller's own tenant, every user of it, never another tenant, whatever the filters say.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ToolCtx, ToolOutcome, input_schema, output_schema, read_only};
use crate::{
    audit::{self, StoredEvent},
    db::DbError,
};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditArgs {
    /// Events at or after this time (RFC 3339, or a UTC day YYYY-MM-DD).
    #[serde(default)]
    since: Option<String>,
    /// Events before this time (RFC 3339, or a UTC day YYYY-MM-DD, exclusive).
    #[serde(default)]
    until: Option<String>,
    /// Only this user's calls.
    #[serde(default)]
    #[schemars(length(min = 1, max = 256))]
    user: Option<String>,
    /// Only calls of this tool or A2A method.
    #[serde(default)]
    #[schemars(length(min = 1, max = 64))]
    tool: Option<String>,
    /// Events to return.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 200))]
    limit: i64,
    /// Opaque cursor from a previous page.
    #[serde(default)]
    cursor: Option<String>,
}

fn default_limit() -> i64 {
    50
}

// The result of `audit`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuditPage {
    /// The newest first.
    events: Vec<StoredEvent>,
    /// Pass back as `cursor` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Absent, never null, on the last page.
    #[schemars(with = "String")]
    next_cursor: Option<String>,
}

/// A time as RFC 3339, or a day as its first instant in UTC.
fn instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
}

/// Cursors: the `(at, id)` of the last event of the previous page.
fn encode_cursor(e: &StoredEvent) -> String {
    URL_SAFE_NO_PAD.encode(format!("audit:{}:{}", e.at.timestamp_micros(), e.id))
}

fn decode_cursor(c: &str) -> Option<(DateTime<Utc>, i64)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let (micros, id) = raw.strip_prefix("audit:")?.split_once(':')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id.parse().ok()?,
    ))
}

pub(super) async fn audit(ctx: &ToolCtx<'_>, a: AuditArgs) -> Result<ToolOutcome, DbError> {
    let since = a.since.as_deref().map(instant);
    let until = a.until.as_deref().map(instant);
    let before = a.cursor.as_deref().map(decode_cursor);
    let short = |s: &Option<String>, max: usize| {
        s.as_deref()
            .is_none_or(|s| (1..=max).contains(&s.chars().count()) && !s.contains('\0'))
    };
    validate!(
        !matches!(since, Some(None)) => "since must be an RFC 3339 time or a date, YYYY-MM-DD",
        !matches!(until, Some(None)) => "until must be an RFC 3339 time or a date, YYYY-MM-DD",
        (1..=200).contains(&a.limit) => "limit must be between 1 and 200",
        short(&a.user, 256) => "user must be 1-256 characters",
        short(&a.tool, 64) => "tool must be 1-64 characters",
        !matches!(before, Some(None)) => "cursor is not valid",
    );
    let (since, until) = (since.flatten(), until.flatten());
    validate!(
        match (since, until) { (Some(s), Some(u)) => s < u, _ => true } => "since must be before until",
    );
    let mut events = audit::page(
        ctx.db,
        ctx.tenant,
        &audit::Query {
            since,
            until,
            user: a.user.as_deref(),
            name: a.tool.as_deref(),
            before: before.flatten(),
            // One extra row tells whether another page exists.
            limit: a.limit + 1,
        },
    )
    .await?;
    let more = events.len() as i64 > a.limit;
    events.truncate(a.limit as usize);
    let next_cursor = events.last().filter(|_| more).map(encode_cursor);
    Ok(ToolOutcome::ok(&AuditPage {
        events,
        next_cursor,
    }))
}

pub(super) fn audit_spec() -> Value {
    json!({
        "name": "audit",
        "title": "Audit trail",
        "description": "The tenant's audit trail, newest first: every tool call and A2A method with who made it (user, token id), when, the documents returned or written, the task, the request id and the trace id. Filter by time, user or tool; pass nextCursor back as cursor for older events.",
        "inputSchema": input_schema::<AuditArgs>(),
        "outputSchema": output_schema::<AuditPage>(),
        "annotations": read_only(),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::tools::tests::{output_errors, structured};

    fn event() -> StoredEvent {
        StoredEvent {
            id: 42,
            at: Utc.with_ymd_and_hms(2026, 5, 4, 12, 30, 0).unwrap(),
            user: "alice".into(),
            token_id: Some("jti-1".into()),
            kind: "tool".into(),
            name: "hybrid_search".into(),
            document_ids: vec!["doc-1".into(), "doc-2".into()],
            task_id: None,
            request_id: Some("req-1".into()),
            trace_id: None,
            outcome: "ok".into(),
        }
    }

    #[test]
    fn audit_pages_are_what_their_output_schema_describes() {
        let page = structured(&AuditPage {
            events: vec![event()],
            next_cursor: Some(encode_cursor(&event())),
        });
        assert_eq!(output_errors("audit", &page), Vec::<String>::new());
        let e = &page["events"][0];
        assert_eq!(e["at"], "2026-05-04T12:30:00Z");
        assert_eq!(e["tokenId"], "jti-1");
        assert_eq!(e["documentIds"], json!(["doc-1", "doc-2"]));
        assert!(e.get("id").is_none(), "the row id is the cursor's business");
        assert!(e.get("traceId").is_none(), "absent, never null");
        let mut null_trace = page.clone();
        null_trace["events"][0]["traceId"] = Value::Null;
        assert!(!output_errors("audit", &null_trace).is_empty());
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let e = event();
        assert_eq!(decode_cursor(&encode_cursor(&e)), Some((e.at, e.id)));
        for bad in [
            "",
            "!!!",
            &URL_SAFE_NO_PAD.encode("tools:3"),
            &URL_SAFE_NO_PAD.encode("audit:x:1"),
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn times_are_rfc3339_or_days() {
        assert_eq!(
            instant("2026-05-04"),
            Some(Utc.with_ymd_and_hms(2026, 5, 4, 0, 0, 0).unwrap())
        );
        assert_eq!(
            instant("2026-05-04T14:30:00+02:00"),
            Some(Utc.with_ymd_and_hms(2026, 5, 4, 12, 30, 0).unwrap())
        );
        for bad in ["yesterday", "2026-13-01", "2026-05-04 12:00"] {
            assert_eq!(instant(bad), None, "{bad}");
        }
    }
}
