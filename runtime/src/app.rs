//! The HTTP application: shared state, the two routers with their middleware, and graceful serving.
//!
//! `app(state)` builds the public router (the protocol endpoints, discovery, `/healthz` and `/readyz`) and
//! `ops_app(state)` the operations router (`/metrics`, `/healthz`, `/readyz`), both without a socket, so tests
//! drive them with `oneshot`; `serve` binds one. They listen on different addresses (`listen` and
//! `metrics_listen`): the metrics name every tenant with its budget and spend, so only the cluster's scraper
//! reaches them, never a client of the Service.
//!
//! Public layer order (outermost first): request id → trace span → CORS → body limit → timeout → routes.
//! The web console (`/console`, [`crate::console`]) is public static pages unless switched off; its ledger
//! export is a protected route. Protected routes (`/mcp`, `/a2a`, `/console/api/ledger`) add Origin
//! validation, bearer authentication and a JSON content-type check in front of their handlers.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use paddock_contract::protocol;
use prometheus_client::registry::Registry;
use tower::ServiceBuilder;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    auth::{self, Authenticator},
    db::Db,
    embed::Embedder,
    indexer::IndexerHandle,
    mcp,
    metrics::{self, Metrics, MetricsEndpoint},
    tools::SearchSettings,
};

/// Settings the handlers consult on every request.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tools this server offers; empty means all.
    pub tools: Vec<String>,
    pub tools_page_size: usize,
    /// Origins allowed to call the protocol endpoints (exact, or `scheme://host:*` for any port).
    pub allowed_origins: Vec<String>,
    /// How long an MCP session lives without requests.
    pub session_idle_timeout: Duration,
    /// The most messages one JSON-RPC batch may hold.
    pub max_batch_size: usize,
    pub search: SearchSettings,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Serve the web console at `/console` (and its ledger export).
    pub console: bool,
    /// The console's OAuth sign-in, when configured.
    pub console_oauth: Option<crate::config::ConsoleOAuthConfig>,
}

impl Default for Settings {
    /// The config file's defaults.
    fn default() -> Self {
        crate::config::settings(
            &crate::config::McpConfig::default(),
            SearchSettings::default(),
            &crate::config::LimitsConfig::default(),
        )
    }
}

impl Settings {
    pub fn tool_enabled(&self, name: &str) -> bool {
        self.tools.is_empty() || self.tools.iter().any(|t| t == name)
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|pattern| match pattern.strip_suffix(":*") {
                Some(prefix) => {
                    origin == prefix || {
                        origin
                            .strip_prefix(prefix)
                            .and_then(|rest| rest.strip_prefix(':'))
                            .is_some_and(|port| {
                                !port.is_empty()
                                    && port.len() <= 5
                                    && port.bytes().all(|b| b.is_ascii_digit())
                            })
                    }
                }
                None => origin == pattern,
            })
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub embedder: Embedder,
    pub indexer: IndexerHandle,
    pub auth: Authenticator,
    pub metrics: Metrics,
    pub settings: Arc<Settings>,
    pub registry: Arc<Registry>,
    /// A2A tasks: settings, model provider, and the tasks this replica runs.
    pub a2a: crate::a2a::A2a,
    /// The audit trail's writer.
    pub audit: crate::audit::Audit,
}

/// Builds the public router. It serves no `/metrics`: that is [`ops_app`]'s, on its own address.
pub fn app(state: AppState) -> Router {
    let mut protected = Router::new()
        .merge(mcp::router())
        .merge(crate::a2a::protected_router());
    if state.settings.console {
        protected = protected.merge(crate::console::protected_router(&state));
    }
    let protected = protected
        .layer(middleware::from_fn(require_json_body))
        .layer(middleware::from_fn_with_state(state.clone(), check_tenant))
        .layer(middleware::from_fn_with_state(
            state.auth.clone(),
            auth::require_bearer,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), check_origin));

    let settings = state.settings.clone();
    let cors_settings = settings.clone();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origin
                .to_str()
                .is_ok_and(|o| cors_settings.origin_allowed(o))
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static(protocol::mcp::VERSION_HEADER),
            HeaderName::from_static(protocol::mcp::SESSION_HEADER),
            HeaderName::from_static(protocol::mcp::METHOD_HEADER),
            HeaderName::from_static(protocol::mcp::NAME_HEADER),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(protocol::a2a::VERSION_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static(protocol::mcp::SESSION_HEADER),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(Duration::from_secs(600));

    let request_id = HeaderName::from_static("x-request-id");
    let mut public = Router::new();
    if settings.console {
        public = public.merge(crate::console::router(&state).with_state(state.clone()));
    }
    public
        .merge(protected.with_state(state.clone()))
        .merge(crate::a2a::public_router().with_state(state.clone()))
        .merge(auth::metadata_router(state.auth.clone()))
        // The kubelet probes the public port, whose listener stops at SIGTERM.
        .merge(health(&state))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(|res: &Response, _: Duration, span: &tracing::Span| {
                            span.record("http.response.status_code", res.status().as_u16());
                            if res.status().is_server_error() {
                                span.record("otel.status_code", "ERROR");
                            }
                        }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(cors)
                .layer(middleware::from_fn(payload_too_large_as_json))
                .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout,
                )),
        )
}

/// The routes a request span names; any other path is named `other`, so span names stay a small set.
const ROUTES: &[&str] = &[
    "/mcp",
    "/a2a",
    "/healthz",
    "/readyz",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/agent-card.json",
    "/.well-known/agent.json",
    "/console/",
    "/console/api/ledger",
    "/console/api/config",
    "/console/api/handover",
    "/console/api/handover/redeem",
];

/// The span of one HTTP request, with the OpenTelemetry HTTP server conventions' names. It is a child of the
/// caller's span when the request carries a `traceparent`, and, when traced, every log line inside it names
/// its `trace_id` and `span_id`. Tenant and user are recorded once authentication has verified them; nothing of
/// the token is.
fn request_span(req: &Request) -> tracing::Span {
    let rid = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = req.uri().path();
    let route = ROUTES
        .iter()
        .copied()
        .find(|r| *r == path)
        .unwrap_or("other");
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = route,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        request_id = %rid,
        tenant = tracing::field::Empty,
        user = tracing::field::Empty,
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
    );
    if let Some(parent) = paddock_telemetry::propagation::from_headers(req.headers()) {
        paddock_telemetry::set_parent(&span, parent);
    }
    paddock_telemetry::record_ids(&span);
    span
}

/// A POST to a protocol endpoint carries JSON (`Content-Type: application/json`, parameters allowed). Anything else
/// is refused with 415 (after authentication, so an unauthenticated probe still gets its 401 challenge): a browser
/// may send `text/plain` across origins without asking, and no client of either protocol sends it.
async fn require_json_body(req: Request, next: Next) -> Response {
    if req.method() == Method::POST {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return crate::jsonrpc::refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            );
        }
    }
    next.run(req).await
}

/// Builds the operations router: `/metrics` for the scraper, and `/healthz` and `/readyz` as on the public
/// port. The registry must already hold every component's metrics.
pub fn ops_app(state: AppState) -> Router {
    let metrics_endpoint = MetricsEndpoint {
        registry: state.registry.clone(),
        metrics: state.metrics.clone(),
        db: state.db.clone(),
        tasks: Arc::new(state.a2a.clone()),
    };
    Router::new()
        .route(
            "/metrics",
            get(metrics::serve_metrics).with_state(metrics_endpoint),
        )
        .merge(health(&state))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.settings.request_timeout,
        ))
}

fn health(state: &AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state.db.clone())
}

/// DNS-rebinding protection: a present Origin must be allowed.
async fn check_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .is_ok_and(|o| state.settings.origin_allowed(o));
        if !ok {
            state.metrics.reject("origin", "");
            return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
        }
    }
    next.run(req).await
}

/// A runtime logged in as a tenant's own role serves that tenant only: a valid token for another tenant gets
/// 403 here, rather than the database refusing its rows somewhere inside the request.
async fn check_tenant(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(principal) = req.extensions().get::<auth::Principal>() else {
        return next.run(req).await;
    };
    match state.db.pinned_tenant().await {
        Ok(Some(served)) if served != principal.tenant => {
            state.metrics.reject("wrong_tenant", "");
            let message = format!(
                "this server serves tenant {served:?} only; the token is for {:?}",
                principal.tenant
            );
            crate::jsonrpc::refusal(StatusCode::FORBIDDEN, &message)
        }
        Ok(_) => next.run(req).await,
        Err(e) => crate::admission::unavailable(&state, &e),
    }
}

/// The body-limit layer answers 413 with a plain body; give it the JSON-RPC error shape clients parse.
async fn payload_too_large_as_json(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.status() != StatusCode::PAYLOAD_TOO_LARGE {
        return resp;
    }
    crate::jsonrpc::refusal(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
}

async fn readyz(State(db): State<Db>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response(),
    }
}

/// Serves `router` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_patterns_match_ports_only() {
        let s = Settings::default();
        assert!(s.origin_allowed("http://localhost:6274"));
        assert!(s.origin_allowed("http://127.0.0.1:8080"));
        assert!(s.origin_allowed("http://localhost"));
        assert!(!s.origin_allowed("http://localhost.evil.com"));
        assert!(!s.origin_allowed("http://localhost:80.evil.com"));
        assert!(!s.origin_allowed("https://evil.example"));
    }
}
