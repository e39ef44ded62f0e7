//! The attack suite: every trust boundary of a tenant's data and bill, tried the way an attacker would, against
//! the real router, the real authenticator and the real PostgreSQL.
//!
//! - [`database`]: a tenant's own login role and the shared runtime role, connected directly, trying every way
//!   out of their tenant (`SET ROLE`, `SET SESSION AUTHORIZATION`, the tenant setting, `row_security`,
//!   partitions, every SECURITY DEFINER function).
//! - [`tokens`]: forged, altered and crafted bearer tokens.
//! - [`console`]: the web console's pages (their Content-Security-Policy, paths outside its files) and its ledger
//!   export (tokens, scope, tenant, Origin, hostile queries).
//! - [`requests`]: another tenant's ids on every tool and A2A method, another user's session, scope escalation,
//!   batches against the rate limit, and malformed or hostile bodies.
//!
//! Every refusal must be a clean protocol error: never a 5xx, never the database's or the driver's text
//! ([`assert_clean`]). `docs/security.md` states the threat model these tests hold the code to.

mod console;
mod database;
mod requests;
mod tokens;

use axum::http::StatusCode;

/// Words that only the database, the driver or a panic would put in an answer.
const LEAKS: &[&str] = &[
    "sqlx",
    "postgres",
    "PostgreSQL",
    "SQLSTATE",
    "pg_",
    "violates",
    "duplicate key",
    "relation \"",
    "syntax error",
    "panicked",
    "invalid byte sequence",
];

/// A refusal (or any answer) is clean: not a server error, and its body names nothing of the layers beneath.
#[track_caller]
pub fn assert_clean(status: StatusCode, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert!(
        !status.is_server_error(),
        "a server error ({status}) for an attacker's input: {text}"
    );
    for word in LEAKS {
        assert!(
            !text.contains(word),
            "the answer leaks {word:?} ({status}): {text}"
        );
    }
}
