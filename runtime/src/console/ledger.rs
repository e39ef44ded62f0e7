//! The ledger export: a tenant's usage ledger entries over a range of UTC days, as CSV or JSON, for
//! accounting.
//!
//! `GET /console/api/ledger?since=YYYY-MM-DD&until=YYYY-MM-DD&format=csv|json` → the bearer, tenant and Origin
//! middleware of the protected routes → `usage:read` → the tenant's rate limit → one statement in a
//! [`crate::db::TenantTx`] under the caller's tenant (row-level security confines it to that tenant) → the
//! entries, oldest first. `until` is exclusive; a range spans at most 366 days and at most [`MAX_ENTRIES`]
//! entries, else the request is refused with a precise message instead of being cut short silently.

use axum::{
    Extension, Json,
    extract::{Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{
    a2a::budget::money,
    admission,
    app::AppState,
    auth::{Principal, scopes},
    db::{DbError, TenantId},
};

/// The export's path.
pub(super) const PATH: &str = "/console/api/ledger";

/// The most entries one export holds.
pub const MAX_ENTRIES: i64 = 100_000;

/// The longest range one export covers, in days.
const MAX_DAYS: i64 = 366;

/// Why an export was refused.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{0}")]
    InvalidRange(&'static str),
    #[error("format must be csv or json")]
    InvalidFormat,
    #[error("the range holds more than {MAX_ENTRIES} ledger entries; export a shorter range")]
    TooManyEntries,
    #[error("failed to read the usage ledger")]
    ReadLedger(#[source] DbError),
}

impl IntoResponse for LedgerError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            Self::InvalidRange(_) | Self::InvalidFormat => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::TooManyEntries => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::ReadLedger(e) => {
                tracing::error!(error = %e, "ledger export failed");
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
        };
        let mut resp = (
            status,
            Json(json!({"error": error, "error_description": self.to_string()})),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        super::with_headers(resp)
    }
}

/// The query string. Unknown parameters are refused, so a typo never exports something else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    since: Option<String>,
    until: Option<String>,
    format: Option<String>,
}

/// One settled model call of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LedgerEntry {
    /// The ledger's own id of the entry.
    pub id: i64,
    pub at: DateTime<Utc>,
    pub user: String,
    pub model: String,
    pub task: Option<Uuid>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    #[serde(serialize_with = "as_money")]
    pub cost: Decimal,
    /// The cost is the reserved estimate: the call's replica died before its real usage was known.
    pub estimated: bool,
}

fn as_money<S: serde::Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&money(*d))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// The range and format of a query: default the current month to date, as CSV.
fn parse(q: &ExportQuery, today: NaiveDate) -> Result<(NaiveDate, NaiveDate, Format), LedgerError> {
    use chrono::Datelike;
    let day = |s: &Option<String>, bad: &'static str| {
        s.as_deref()
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| LedgerError::InvalidRange(bad))
            })
            .transpose()
    };
    let since = day(&q.since, "since must be a date, YYYY-MM-DD")?
        .unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let until = day(&q.until, "until must be a date, YYYY-MM-DD")?
        .unwrap_or_else(|| today.succ_opt().unwrap_or(today));
    if since >= until {
        return Err(LedgerError::InvalidRange("since must be before until"));
    }
    if (until - since).num_days() > MAX_DAYS {
        return Err(LedgerError::InvalidRange(
            "an export covers at most 366 days",
        ));
    }
    let format = match q.format.as_deref() {
        None | Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some(_) => return Err(LedgerError::InvalidFormat),
    };
    Ok((since, until, format))
}

pub(super) async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = state.auth.require_scope(&principal, scopes::USAGE_READ) {
        return super::with_headers(r);
    }
    let Ok(tenant) = TenantId::parse(&principal.tenant) else {
        return super::with_headers(crate::jsonrpc::refusal(
            StatusCode::FORBIDDEN,
            "the token names no valid tenant",
        ));
    };
    let Ok(Query(query)) = query else {
        return LedgerError::InvalidRange(
            "the query takes since, until (YYYY-MM-DD) and format (csv or json) only",
        )
        .into_response();
    };
    let (since, until, format) = match parse(&query, Utc::now().date_naive()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(r) = admission::admit_request(&state, &tenant, None, 1).await {
        return super::with_headers(r);
    }
    let entries = match read(&state, &tenant, since, until).await {
        Ok(e) => e,
        Err(e) => return e.into_response(),
    };
    let name = format!("ledger-{}-{since}-{until}", tenant.as_str());
    let (mime, ext, body) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", to_csv(&entries)),
        Format::Json => (
            "application/json",
            "json",
            json!({
                "tenant": tenant.as_str(),
                "since": since,
                "until": until,
                "entries": entries,
            })
            .to_string(),
        ),
    };
    let disposition = format!("attachment; filename=\"{name}.{ext}\"");
    let mut resp = ([(header::CONTENT_TYPE, mime)], body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    super::with_headers(resp)
}

/// A ledger row as the statement returns it, in [`LedgerEntry`]'s field order.
type EntryRow = (
    i64,
    DateTime<Utc>,
    String,
    String,
    Option<Uuid>,
    i64,
    i64,
    Decimal,
    bool,
);

async fn read(
    state: &AppState,
    tenant: &TenantId,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<Vec<LedgerEntry>, LedgerError> {
    let start = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let rows = async {
        let mut tx = state.db.begin(tenant).await?;
        let rows: Vec<EntryRow> =
            sqlx::query_as(
                "SELECT id, created_at, user_id, model, task_id, input_tokens, output_tokens, cost, estimated \
                   FROM usage_ledger WHERE created_at >= $1 AND created_at < $2 \
                  ORDER BY created_at, id LIMIT $3",
            )
            .bind(start(since))
            .bind(start(until))
            .bind(MAX_ENTRIES + 1)
            .fetch_all(tx.conn())
            .await?;
        tx.commit().await?;
        Ok::<_, DbError>(rows)
    }
    .await
    .map_err(LedgerError::ReadLedger)?;
    if rows.len() as i64 > MAX_ENTRIES {
        return Err(LedgerError::TooManyEntries);
    }
    Ok(rows
        .into_iter()
        .map(
            |(id, at, user, model, task, input_tokens, output_tokens, cost, estimated)| {
                LedgerEntry {
                    id,
                    at,
                    user,
                    model,
                    task,
                    input_tokens,
                    output_tokens,
                    cost,
                    estimated,
                }
            },
        )
        .collect())
}

/// The CSV columns, in order.
pub const CSV_HEADER: &str = "id,at,user,model,task,input_tokens,output_tokens,cost,estimated";

/// RFC 4180 CSV, one line per entry after [`CSV_HEADER`].
pub fn to_csv(entries: &[LedgerEntry]) -> String {
    let mut out = String::with_capacity(64 * (entries.len() + 1));
    out.push_str(CSV_HEADER);
    out.push_str("\r\n");
    for e in entries {
        let task = e.task.map(|t| t.to_string()).unwrap_or_default();
        let fields = [
            e.id.to_string(),
            e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            csv_text(&e.user),
            csv_text(&e.model),
            task,
            e.input_tokens.to_string(),
            e.output_tokens.to_string(),
            money(e.cost),
            e.estimated.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A text field: quoted when it holds a comma, quote or line break, and, when it starts like a formula
/// (`=`, `+`, `-`, `@`, tab, carriage return), prefixed with `'` so a spreadsheet shows it as text instead of
/// running it.
fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(since: Option<&str>, until: Option<&str>, format: Option<&str>) -> ExportQuery {
        ExportQuery {
            since: since.map(Into::into),
            until: until.map(Into::into),
            format: format.map(Into::into),
        }
    }

    #[test]
    fn ranges_default_to_this_month_and_are_checked() {
        let today = NaiveDate::from_ymd_opt(2026, 5, 17).unwrap();
        let (since, until, f) = parse(&q(None, None, None), today).unwrap();
        assert_eq!(since.to_string(), "2026-05-01");
        assert_eq!(until.to_string(), "2026-05-18");
        assert!(f == Format::Csv);
        let bad = |since, until, format| {
            parse(&q(since, until, format), today)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(Some("May 1st"), None, None),
            "since must be a date, YYYY-MM-DD"
        );
        assert_eq!(
            bad(None, Some("2026-13-01"), None),
            "until must be a date, YYYY-MM-DD"
        );
        assert_eq!(
            bad(Some("2026-05-02"), Some("2026-05-02"), None),
            "since must be before until"
        );
        assert_eq!(
            bad(Some("2024-01-01"), Some("2026-01-01"), None),
            "an export covers at most 366 days"
        );
        assert_eq!(bad(None, None, Some("xlsx")), "format must be csv or json");
    }

    #[test]
    fn csv_quotes_separators_and_defuses_formulas() {
        assert_eq!(csv_text("alice"), "alice");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_text("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_text("@sum"), "'@sum");
        assert_eq!(csv_text("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn csv_has_one_line_per_entry_with_exact_money() {
        let e = LedgerEntry {
            id: 7,
            at: DateTime::parse_from_rfc3339("2026-05-02T10:00:00Z")
                .unwrap()
                .to_utc(),
            user: "alice".into(),
            model: "small".into(),
            task: None,
            input_tokens: 1200,
            output_tokens: 300,
            cost: Decimal::new(125, 4),
            estimated: false,
        };
        let csv = to_csv(&[e]);
        assert_eq!(
            csv,
            format!(
                "{CSV_HEADER}\r\n7,2026-05-02T10:00:00.000000Z,alice,small,,1200,300,0.0125,false\r\n"
            )
        );
    }
}
