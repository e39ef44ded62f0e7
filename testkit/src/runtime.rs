//! The runtime in process, started one way for every suite and the lab.
//!
//! Two shapes:
//! - [`TestApp`]: the state built over a pool the test already holds, and the real routers (`app::app`,
//!   `app::ops_app`) driven with `oneshot`, no socket ([`app`], [`app_with`], [`app_on`]);
//! - [`Running`]: a configuration (a file the operator rendered, or [`dev_config`]) → `server::build_state` →
//!   both routers served on loopback ports ([`start`]), stopped with [`Running::stop`].

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode},
};
use http_body_util::BodyExt;
use paddock_runtime::{
    app::{self, AppState, Settings},
    auth::Authenticator,
    config::RuntimeConfig,
    db::Db,
    embed::Embedder,
    indexer::{self, IndexerHandle},
    metrics::Metrics,
    server,
};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tower::ServiceExt;

use crate::issuer::Keys;

/// A runtime instance over `pool` (the runtime role) with the given embedder.
pub struct TestApp {
    /// The public router (`listen`).
    pub router: Router,
    /// The operations router (`metrics_listen`): `/metrics`.
    pub ops: Router,
    pub state: AppState,
}

pub async fn app_with(
    pool: PgPool,
    keys: &Keys,
    embedder: Embedder,
    settings: Settings,
) -> TestApp {
    app_on(Db::from_pool(pool), keys, embedder, settings).await
}

/// A runtime instance over `db`, e.g. one made by [`Db::connect_lazy`] as the server makes it.
pub async fn app_on(db: Db, keys: &Keys, embedder: Embedder, settings: Settings) -> TestApp {
    let mut registry = Registry::with_prefix("paddock");
    let metrics = Metrics::register(&mut registry);
    let audit = paddock_runtime::audit::Audit::start(db.clone(), &mut registry);
    let state = AppState {
        db,
        embedder,
        indexer: IndexerHandle::default(),
        auth: Authenticator::new(keys.auth_config()).await.unwrap(),
        metrics,
        settings: Arc::new(settings),
        registry: Arc::new(registry),
        a2a: paddock_runtime::a2a::A2a::extractive(),
        audit,
    };
    TestApp::new(state)
}

pub async fn app(pool: PgPool, keys: &Keys) -> TestApp {
    app_with(pool, keys, Embedder::disabled(), Settings::default()).await
}

/// An HTTP answer, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

async fn reply(r: Response<Body>) -> Reply {
    let status = r.status();
    let headers = r.headers().clone();
    let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

impl TestApp {
    /// The routers over `state`.
    pub fn new(state: AppState) -> Self {
        TestApp {
            router: app::app(state.clone()),
            ops: app::ops_app(state.clone()),
            state,
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        reply(self.router.clone().oneshot(req).await.unwrap()).await
    }

    /// GET `path` without credentials (health, readiness, agent card).
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// GET `path` from the operations router.
    pub async fn get_ops(&self, path: &str) -> Reply {
        let req = Request::get(path).body(Body::empty()).unwrap();
        reply(self.ops.clone().oneshot(req).await.unwrap()).await
    }

    /// The `/metrics` text, as the scraper reads it from the operations router.
    pub async fn metrics(&self) -> String {
        let r = self.get_ops("/metrics").await;
        assert_eq!(r.status, StatusCode::OK);
        String::from_utf8(r.body).expect("the metrics are UTF-8")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("failed to listen on a loopback port")]
    Bind(#[source] std::io::Error),
    #[error("invalid runtime configuration: {0}")]
    Config(#[source] serde_json::Error),
    #[error("failed to start the runtime")]
    Runtime(#[from] server::StartError),
}

/// Loopback listeners for the public and the operations server, bound before the configuration is written so
/// that it can name its own address (`auth.resource`).
pub struct Listeners {
    public: TcpListener,
    ops: TcpListener,
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
}

impl Listeners {
    pub async fn bind() -> Result<Self, StartError> {
        let public = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StartError::Bind)?;
        let ops = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(StartError::Bind)?;
        Ok(Self {
            addr: public.local_addr().map_err(StartError::Bind)?,
            ops_addr: ops.local_addr().map_err(StartError::Bind)?,
            public,
            ops,
        })
    }

    /// The MCP endpoint the public listener will serve.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

/// A configuration as a deployment writes it, for a runtime on `listeners` that logs in with `database_url`
/// and trusts `keys` alone. `sections` (a JSON object: `embedding`, `search`, `llm`, `a2a`, `database`, …) is
/// merged in, a section's keys over the defaults'. Parsed from JSON like a config file, so every setting not
/// named is the deployment's default.
pub fn dev_config(
    listeners: &Listeners,
    keys: &Keys,
    database_url: &str,
    sections: Value,
) -> Result<RuntimeConfig, StartError> {
    let mut cfg = json!({
        "listen": listeners.addr.to_string(),
        "metrics_listen": listeners.ops_addr.to_string(),
        "database": { "url": database_url },
        "auth": { "resource": listeners.mcp_url(), "issuers": [keys.issuer_json()] },
        "log_format": "text"
    });
    if let Value::Object(sections) = sections {
        for (name, section) in sections {
            match (cfg.get_mut(&name), section) {
                (Some(Value::Object(into)), Value::Object(from)) => into.extend(from),
                (_, section) => cfg[name] = section,
            }
        }
    }
    serde_json::from_value(cfg).map_err(StartError::Config)
}

/// A runtime serving on loopback ports.
pub struct Running {
    pub addr: SocketAddr,
    pub ops_addr: SocketAddr,
    pub state: AppState,
    /// The public server; ends when [`Running::stop`] signals it.
    pub task: JoinHandle<std::io::Result<()>>,
    pub ops_task: JoinHandle<std::io::Result<()>>,
    shutdown: oneshot::Sender<()>,
    indexer: Option<JoinHandle<()>>,
    /// Files the configuration names (a JWKS file), kept while the runtime runs.
    files: Option<tempfile::TempDir>,
}

/// Builds the state from `cfg` as the server does and serves the public and the operations router on
/// `listeners` (the addresses in `cfg` are not bound again).
pub async fn start(listeners: Listeners, cfg: &RuntimeConfig) -> Result<Running, StartError> {
    let state = server::build_state(cfg).await?;
    let (shutdown, rx) = oneshot::channel::<()>();
    let ops_task = tokio::spawn(app::serve(
        listeners.ops,
        app::ops_app(state.clone()),
        std::future::pending(),
    ));
    let task = tokio::spawn(app::serve(
        listeners.public,
        app::app(state.clone()),
        async {
            let _ = rx.await;
        },
    ));
    Ok(Running {
        addr: listeners.addr,
        ops_addr: listeners.ops_addr,
        state,
        task,
        ops_task,
        shutdown,
        indexer: None,
        files: None,
    })
}

impl Running {
    /// `http://host:port` of the public server.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base_url())
    }

    /// `http://host:port` of the operations server, for `/metrics`.
    pub fn ops_base_url(&self) -> String {
        format!("http://{}", self.ops_addr)
    }

    /// Also runs the background indexer, which embeds what ingestion stored, as the server does.
    pub fn with_indexer(mut self) -> Self {
        self.indexer = Some(tokio::spawn(indexer::run(
            self.state.db.clone(),
            self.state.embedder.clone(),
            self.state.indexer.clone(),
        )));
        self
    }

    /// Keeps `dir` (files the configuration names) until the runtime is dropped.
    pub fn keeping(mut self, dir: tempfile::TempDir) -> Self {
        self.files = Some(dir);
        self
    }

    /// Stops accepting, lets the public server finish, stops the rest and closes the pool.
    pub async fn stop(self) {
        if let Some(indexer) = &self.indexer {
            indexer.abort();
        }
        let _ = self.shutdown.send(());
        let _ = self.task.await;
        self.ops_task.abort();
        self.state.audit.flush().await;
        self.state.db.close().await;
    }
}
