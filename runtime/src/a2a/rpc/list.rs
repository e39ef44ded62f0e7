//! `ListTasks` (0.3: `tasks/list`): the caller's tasks, newest first, a page at a time.
//!
//! The typed [`ListParams`] are checked (page size, state, page token, timestamp) → one query in a
//! [`crate::db::TenantTx`] under the caller's tenant (and, without `tasks:admin`, among the caller's own
//! tasks) fetches a page plus one row, which tells whether another page exists → each task rendered in the
//! request's dialect, with an opaque keyset token (creation time and id of the last task) for the next page.

use std::str::FromStr;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{Reply, err, owner_filter};
use crate::{
    a2a::{
        params::ListParams,
        store::{self, ListFilter},
        stream,
        wire::{Dialect, TaskState},
    },
    app::AppState,
    auth::Principal,
    db::TenantId,
    jsonrpc::{self, Id},
};

fn encode_page_token(t: &store::TaskRow) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}", t.created_at.timestamp_micros(), t.id))
}

fn decode_page_token(s: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (micros, id) = raw.split_once('|')?;
    Some((
        DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        Uuid::from_str(id).ok()?,
    ))
}

pub(super) async fn list_tasks(
    state: &AppState,
    p: &Principal,
    tenant: &TenantId,
    id: &Id,
    d: Dialect,
    lp: ListParams,
) -> Reply {
    let invalid = |msg: &str| {
        err(
            id,
            jsonrpc::INVALID_PARAMS,
            format!("invalid params: {msg}"),
        )
    };
    let page_size = match lp.page_size {
        None => 50,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => return invalid("pageSize must be between 1 and 100"),
    };
    let state_filter = match lp.status.as_deref() {
        None | Some("") | Some("TASK_STATE_UNSPECIFIED") => None,
        Some(s) => match TaskState::from_wire(s) {
            Some(st) => Some(st),
            None => return invalid("status is not a task state"),
        },
    };
    let before = match lp.page_token.as_deref() {
        None | Some("") => None,
        Some(t) => match decode_page_token(t) {
            Some(b) => Some(b),
            None => return invalid("pageToken is not valid"),
        },
    };
    let updated_after = match lp.status_timestamp_after.as_deref() {
        None | Some("") => None,
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(ts) => Some(ts.with_timezone(&Utc)),
            Err(_) => return invalid("statusTimestampAfter must be an RFC 3339 timestamp"),
        },
    };
    let owner = owner_filter(p);
    let filter = ListFilter {
        owner: owner.as_deref(),
        context_id: lp.context_id.as_deref().filter(|c| !c.is_empty()),
        state: state_filter,
        updated_after,
        before,
        limit: page_size + 1,
    };
    let mut tx = try_db!(id, state.db.begin(tenant).await);
    let (mut rows, total) = try_db!(id, store::list(&mut tx, &filter).await);
    let more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    let history_length = Some(lp.history_length.unwrap_or(0) as usize);
    let mut tasks = Vec::with_capacity(rows.len());
    for r in &rows {
        tasks.push(try_db!(
            id,
            stream::render(
                &mut tx,
                r,
                d,
                history_length,
                lp.include_artifacts.unwrap_or(false)
            )
            .await
        ));
    }
    try_db!(id, tx.commit().await);
    let next = if more {
        rows.last().map(encode_page_token).unwrap_or_default()
    } else {
        String::new()
    };
    Reply::Result(json!({
        "tasks": tasks,
        "nextPageToken": next,
        "pageSize": page_size,
        "totalSize": total,
    }))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip() {
        let now = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let raw = URL_SAFE_NO_PAD.encode(format!("{}|{}", now.timestamp_micros(), id));
        assert_eq!(decode_page_token(&raw), Some((now, id)));
        assert_eq!(decode_page_token("garbage"), None);
    }
}
