//! The tenants' web console: static pages served at `/console`, embedded in the binary.
//!
//! The console is a client like any other. Its pages ([`assets`]) run in the browser, hold the signed-in
//! person's token in session storage and call the same authenticated endpoints every client calls: `/mcp`
//! (the stateless era) for search, documents and usage, `/a2a` for tasks and their SSE streams, and the one
//! endpoint added for it, the ledger export ([`ledger`]), behind the same bearer, tenant and Origin checks.
//! Nothing here reads tenant data without a token, so the console adds no privileged path.
//!
//! Every response of the console carries a Content-Security-Policy that allows scripts, styles and requests
//! from this origin only (no inline script, no foreign origin), and is never framed. `/` and `/console`
//! redirect to `/console/`, so relative module paths resolve under it. The `console.enabled` setting switches
//! all of it off. With `console.oauth` set, the policy's `connect-src` also names the authorization server's
//! origin, the one foreign origin the console talks to (its metadata and token endpoint), and
//! `/console/api/config` tells the pages the client id ([`config`]).
//!
//! Sign-in without pasting: the demo hands a token over through a single-use code in the link's fragment
//! ([`handover`]).

mod assets;
mod config;
mod handover;
mod ledger;

use axum::{
    Router,
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};

use crate::app::AppState;

pub use self::config::content_security_policy;
pub use self::handover::{HandoverError, MAX_REDEEM_BYTES, TTL as HANDOVER_TTL};
pub use self::ledger::{LedgerEntry, LedgerError};

/// The console's Content-Security-Policy: this origin only, no inline script or style, no framing, no
/// plug-ins, no form posts. Charts are SVG built through the DOM, so `img-src` needs no `data:`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Where the console lives.
pub const PATH: &str = "/console/";

/// The console's pages and the handover's redemption: public (the pages hold no data; a code is its own
/// credential), under the console's headers.
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { to_console() }))
        .route("/console", get(|| async { to_console() }))
        .route("/console/", get(|| async { asset("index.html") }))
        .route(config::PATH, get(config::get))
        .route(
            handover::REDEEM_PATH,
            post(handover::redeem).layer(DefaultBodyLimit::max(handover::MAX_REDEEM_BYTES)),
        )
        .route(
            "/console/{*path}",
            get(|Path(p): Path<String>| async move { asset(&p) }),
        )
        .layer(middleware::from_fn_with_state(state.clone(), policy))
}

/// The ledger export and the handover's deposit, which need the protected routes' middleware (bearer, tenant,
/// Origin).
pub fn protected_router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(ledger::PATH, get(ledger::export))
        .route(handover::PATH, post(handover::deposit))
        .layer(middleware::from_fn_with_state(state.clone(), policy))
}

/// Sets this runtime's Content-Security-Policy on every console answer ([`with_headers`] sets the policy
/// without an authorization server; this one may name it).
async fn policy(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&content_security_policy(&state)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

fn to_console() -> Response {
    with_headers(Redirect::permanent(PATH).into_response())
}

fn asset(path: &str) -> Response {
    let resp = match assets::find(path) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                // Revalidate every time: a new runtime image brings new pages under the same names.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    };
    with_headers(resp)
}

/// Adds the console's security headers to a response.
pub(crate) fn with_headers(mut resp: Response) -> Response {
    set_security_headers(resp.headers_mut());
    resp
}

fn set_security_headers(h: &mut HeaderMap) {
    let s = HeaderValue::from_static;
    h.insert(header::CONTENT_SECURITY_POLICY, s(CONTENT_SECURITY_POLICY));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, s("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, s("DENY"));
    // Nothing of the console's address goes to another site.
    h.insert(header::REFERRER_POLICY, s("no-referrer"));
    h.insert(
        header::HeaderName::from_static("cross-origin-opener-policy"),
        s("same-origin"),
    );
}
