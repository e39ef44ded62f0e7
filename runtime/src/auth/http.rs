//! HTTP face of authentication: the bearer middleware, the 401/403 challenges and the RFC 9728
//! protected-resource metadata.

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{AUTHORIZATION, CACHE_CONTROL, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::json;

use super::{AuthError, Authenticator, Principal, scopes};

/// The RFC 9728 well-known path.
pub(super) const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// axum middleware: authenticates the `Authorization: Bearer` token and inserts the
/// [`Principal`] into the request extensions, or answers with the challenge.
///
/// Use with `axum::middleware::from_fn_with_state(authenticator, auth::require_bearer)`.
pub async fn require_bearer(
    State(auth): State<Authenticator>,
    mut req: Request,
    next: Next,
) -> Response {
    let token = match bearer_token(req.headers()) {
        Ok(token) => token.to_owned(),
        Err(e) => {
            tracing::debug!(reason = %e, "request without usable bearer credentials");
            return auth.challenge(&e);
        }
    };
    match auth.authenticate(&token).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => auth.challenge(&e),
    }
}

/// Extracts the token from the one `Authorization` header. The scheme is case-insensitive
/// (RFC 7235); any other scheme counts as no bearer credentials.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Err(AuthError::MissingToken),
        (Some(_), Some(_)) => {
            return Err(AuthError::InvalidRequest(
                "more than one Authorization header",
            ));
        }
        (Some(v), None) => v,
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::InvalidRequest("malformed Authorization header"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::InvalidRequest("the Bearer scheme needs a token"));
    }
    // RFC 6750 b64token; anything else cannot be a JWT.
    let token_char =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=');
    if !token.chars().all(token_char) {
        return Err(AuthError::invalid_token("malformed token"));
    }
    Ok(token)
}

impl Authenticator {
    /// The response for a failed authentication: 401 with a `WWW-Authenticate` challenge pointing at
    /// the protected-resource metadata (400 for an unusable header, 403 for a missing scope, 503
    /// when the issuer's keys cannot be fetched). The body is
    /// `{"error": ..., "error_description": ...}` and never contains the token.
    pub fn challenge(&self, err: &AuthError) -> Response {
        let meta = &self.inner.metadata_url;
        let (status, error, description, www) = match err {
            AuthError::MissingToken => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                err.to_string(),
                Some(format!("Bearer resource_metadata=\"{meta}\"")),
            ),
            AuthError::InvalidRequest(_) => {
                let d = quoted(&err.to_string());
                (
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    d.clone(),
                    Some(format!(
                        "Bearer error=\"invalid_request\", error_description=\"{d}\", resource_metadata=\"{meta}\""
                    )),
                )
            }
            AuthError::InvalidToken(_) => {
                let d = quoted(&err.to_string());
                (
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    d.clone(),
                    Some(format!(
                        "Bearer error=\"invalid_token\", error_description=\"{d}\", resource_metadata=\"{meta}\""
                    )),
                )
            }
            AuthError::InsufficientScope(scope) => return self.insufficient_scope(scope),
            AuthError::KeysUnavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the token issuer's signing keys are unavailable; retry later".to_owned(),
                None,
            ),
            AuthError::Config(_) | AuthError::LoadJwks { .. } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "authentication is misconfigured".to_owned(),
                None,
            ),
        };
        error_response(status, error, &description, www)
    }

    /// 403 for a valid token that lacks `scope`.
    pub fn insufficient_scope(&self, scope: &str) -> Response {
        let scope = quoted(scope);
        let www = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{}\"",
            self.inner.metadata_url
        );
        error_response(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            &format!("the {scope} scope is required"),
            Some(www),
        )
    }

    /// `Ok` when `principal` has `scope`, else the 403 response to return.
    #[allow(clippy::result_large_err)]
    pub fn require_scope(&self, principal: &Principal, scope: &str) -> Result<(), Response> {
        if principal.has_scope(scope) {
            Ok(())
        } else {
            Err(self.insufficient_scope(scope))
        }
    }
}

fn error_response(
    status: StatusCode,
    error: &str,
    description: &str,
    www: Option<String>,
) -> Response<Body> {
    let mut resp = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if let Some(www) = www {
        // Every part is checked ASCII (see `quoted` and the resource URL check), so this holds;
        // a bare challenge is the safe fallback.
        let value =
            HeaderValue::from_str(&www).unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
        resp.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Keeps only the characters RFC 6750 allows inside `error_description` and `scope` values.
fn quoted(s: &str) -> String {
    s.chars()
        .filter(|&c| matches!(c, '\x20'..='\x7e') && c != '"' && c != '\\')
        .collect()
}

/// Serves RFC 9728 protected-resource metadata at `/.well-known/oauth-protected-resource` and at
/// the path-inserted form for the resource's path (e.g. `.../oauth-protected-resource/mcp`).
pub fn metadata_router<S>(auth: Authenticator) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let mut router = axum::Router::new();
    for path in auth.inner.metadata_paths.clone() {
        router = router.route(&path, get(metadata));
    }
    router.with_state(auth)
}

async fn metadata(State(auth): State<Authenticator>) -> Response {
    let mut body = json!({
        "resource": auth.inner.resource,
        "bearer_methods_supported": ["header"],
        "scopes_supported": scopes::ALL,
        "resource_name": "Paddock",
    });
    // Optional in RFC 9728: absent when no issuer is an http(s) URL a client could discover.
    if !auth.inner.authorization_servers.is_empty() {
        body["authorization_servers"] = json!(auth.inner.authorization_servers);
    }
    let mut resp = Json(body).into_response();
    resp.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    resp
}

/// Handlers behind [`require_bearer`] take the caller as an argument: `async fn h(p: Principal)`.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Principal>() {
            Some(p) => Ok(p.clone()),
            None => {
                // A route that reads the principal without the middleware in front is a wiring bug,
                // not a client error; fail closed and loudly.
                tracing::error!(path = %parts.uri.path(), "handler needs a Principal but the route has no require_bearer layer");
                Err(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "authentication is not configured for this route",
                    None,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER abc.def.ghi",
            "Bearer   abc.def.ghi ",
        ] {
            assert_eq!(bearer_token(&headers(&[v])).unwrap(), "abc.def.ghi", "{v}");
        }
    }

    #[test]
    fn other_schemes_and_absent_headers_are_missing_credentials() {
        assert!(matches!(
            bearer_token(&headers(&[])),
            Err(AuthError::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Basic YWxhZGRpbjpvcGVuc2VzYW1l"])),
            Err(AuthError::MissingToken)
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearerabc"])),
            Err(AuthError::MissingToken)
        ));
    }

    #[test]
    fn unusable_headers_are_invalid_requests() {
        assert!(matches!(
            bearer_token(&headers(&["Bearer"])),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer    "])),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a.b.c", "Bearer d.e.f"])),
            Err(AuthError::InvalidRequest(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a\"b"])),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            bearer_token(&headers(&["Bearer a b"])),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn quoted_values_cannot_break_out_of_the_header_parameter() {
        assert_eq!(quoted("a\"b\\c\r\nd\u{e9}"), "abcd");
    }
}
