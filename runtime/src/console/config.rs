//! What the console's pages learn from the runtime before anyone signs in: whether OAuth sign-in is offered,
//! with which client id, at which authorization server and for which scopes (`GET /console/api/config`), and
//! the Content-Security-Policy that lets the pages reach that server and nothing else.
//!
//! The pages still read the protected-resource metadata and the authorization server's own metadata (RFC 8414)
//! themselves, and offer the sign-in only when it lists an authorization endpoint, a token endpoint and PKCE
//! with S256; this endpoint only says what the configuration chose.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{app::AppState, auth::scopes};

/// Where the pages read it.
pub(super) const PATH: &str = "/console/api/config";

/// The authorization server of the console's OAuth sign-in: the configured one, else the first one the
/// protected-resource metadata advertises. `None` without `console.oauth` or without any server.
fn authorization_server(state: &AppState) -> Option<(&str, &str)> {
    let o = state.settings.console_oauth.as_ref()?;
    let server = o.authorization_server.as_deref().or_else(|| {
        state
            .auth
            .authorization_servers()
            .first()
            .map(String::as_str)
    })?;
    Some((o.client_id.as_str(), server))
}

fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The console's Content-Security-Policy: [`super::CONTENT_SECURITY_POLICY`], with the authorization server's
/// origin added to `connect-src` when OAuth sign-in is configured.
pub fn content_security_policy(state: &AppState) -> String {
    match authorization_server(state).and_then(|(_, s)| origin_of(s)) {
        Some(origin) => super::CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'",
            &format!("connect-src 'self' {origin}"),
        ),
        None => super::CONTENT_SECURITY_POLICY.to_owned(),
    }
}

/// `GET /console/api/config`.
pub(super) async fn get(State(state): State<AppState>) -> Response {
    let body = match authorization_server(&state) {
        Some((client_id, server)) => {
            let scope = state
                .settings
                .console_oauth
                .as_ref()
                .and_then(|o| o.scope.clone())
                .unwrap_or_else(|| scopes::ALL.join(" "));
            json!({"oauth": {
                "client_id": client_id,
                "authorization_server": server,
                "scope": scope,
            }})
        }
        None => json!({}),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    super::with_headers(resp)
}
