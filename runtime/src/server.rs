//! Start-up: configuration → shared state (database pool, authenticator, embedder, metrics) → background
//! indexer → the public HTTP server and the operations server (`/metrics`), with graceful shutdown.

use std::sync::Arc;

use prometheus_client::registry::Registry;

use crate::{
    app::{self, AppState},
    audit::Audit,
    auth::{AuthError, Authenticator},
    config::{RuntimeConfig, RuntimeConfigExt},
    db::{Db, DbError},
    embed::Embedder,
    indexer::{self, IndexerHandle},
    metrics::Metrics,
};

/// How often each replica deletes audit events past their retention.
const AUDIT_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// The vector column's dimensions (see the schema); other embedders are refused at start-up.
pub use paddock_contract::schema::VECTOR_DIMENSIONS;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("failed to set up the database pool")]
    Db(#[from] DbError),
    #[error("failed to set up authentication")]
    Auth(#[from] AuthError),
    #[error("failed to listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server failed")]
    Serve(#[source] std::io::Error),
}

/// Builds the application state. Never fails because a provider is down: the embedder degrades instead.
pub async fn build_state(cfg: &RuntimeConfig) -> Result<AppState, StartError> {
    let mut registry = Registry::with_prefix("paddock");
    let metrics = Metrics::register(&mut registry);
    let embedder = match &cfg.embedding {
        None => Embedder::disabled(),
        Some(e) => {
            let embedder = Embedder::from_config(e, &mut registry);
            match embedder.dimensions() {
                Some(d) if d != VECTOR_DIMENSIONS => {
                    tracing::error!(
                        dimensions = d,
                        expected = VECTOR_DIMENSIONS,
                        "embedding dimensions do not match the schema; semantic search disabled"
                    );
                    Embedder::disabled()
                }
                _ => embedder,
            }
        }
    };
    let db = Db::connect_lazy(&cfg.db()?)?;
    let auth = Authenticator::new(cfg.auth.clone()).await?;
    let invalid = |e: String| StartError::Config(crate::config::ConfigError::Invalid(e));
    let a2a_settings = cfg
        .a2a
        .settings(&cfg.auth.resource)
        .map_err(|e| invalid(e.to_string()))?;
    let llm = crate::a2a::Llm::from_config(&cfg.llm).map_err(|e| invalid(e.to_string()))?;
    let audit = Audit::start(db.clone(), &mut registry);
    Ok(AppState {
        db,
        embedder,
        indexer: IndexerHandle::default(),
        auth,
        metrics,
        settings: Arc::new(cfg.settings()),
        registry: Arc::new(registry),
        a2a: crate::a2a::A2a::new(a2a_settings, llm),
        audit,
    })
}

/// Runs both servers until SIGTERM/Ctrl-C, then drains (see [`serve_until_drained`]) and closes the pool.
pub async fn run(cfg: RuntimeConfig) -> Result<(), StartError> {
    let state = build_state(&cfg).await?;
    let listener = bind(&cfg.listen).await?;
    let ops_listener = bind(&cfg.metrics_listen).await?;
    let addr = listener.local_addr().map_err(StartError::Serve)?;
    let metrics_addr = ops_listener.local_addr().map_err(StartError::Serve)?;
    tracing::info!(%addr, %metrics_addr, "paddock-runtime listening");
    let indexer = tokio::spawn(indexer::run(
        state.db.clone(),
        state.embedder.clone(),
        state.indexer.clone(),
    ));
    // Every replica sweeps expired task leases and refreshes the budget gauges.
    let a2a_background = tokio::spawn(crate::a2a::background(state.clone()));
    let session_sweep = tokio::spawn(crate::sessions::sweep(
        state.db.clone(),
        state.settings.session_idle_timeout,
        state.metrics.clone(),
    ));
    let audit_sweep = tokio::spawn(crate::audit::sweep(
        state.audit.clone(),
        cfg.audit.retention(),
        AUDIT_SWEEP_INTERVAL,
    ));
    let result = serve_until_drained(listener, ops_listener, &state, app::shutdown_signal()).await;
    indexer.abort();
    a2a_background.abort();
    session_sweep.abort();
    audit_sweep.abort();
    // What the last requests and tasks recorded is written before the pool closes.
    state.audit.flush().await;
    state.db.close().await;
    result.map_err(StartError::Serve)
}

async fn bind(addr: &str) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

/// How long the operations server gets to finish its last scrape once the drain is over.
const OPS_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Serves the public router on `listener` and the operations router on `ops_listener` until `signal`, then
/// drains the public one (see [`drain_public`]). The operations server keeps answering during the drain, so
/// the scraper sees the replica's tasks wind down, and stops last.
pub async fn serve_until_drained(
    listener: tokio::net::TcpListener,
    ops_listener: tokio::net::TcpListener,
    state: &AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_ops, mut ops_stopping) = tokio::sync::watch::channel(false);
    let mut ops = tokio::spawn(app::serve(
        ops_listener,
        app::ops_app(state.clone()),
        async move {
            let _ = ops_stopping.wait_for(|stop| *stop).await;
        },
    ));
    let served = tokio::select! {
        served = drain_public(listener, state, signal) => served,
        // Before its stop signal, the operations server ends only by failing.
        ended = &mut ops => return Err(match ended {
            Ok(Err(e)) => e,
            Ok(Ok(())) => std::io::Error::other("the operations server stopped"),
            Err(e) => std::io::Error::other(e),
        }),
    };
    stop_ops.send_replace(true);
    match tokio::time::timeout(OPS_STOP_TIMEOUT, &mut ops).await {
        Ok(Ok(ended)) => ended?,
        Ok(Err(e)) => return Err(std::io::Error::other(e)),
        Err(_) => ops.abort(),
    }
    served
}

/// Serves until `signal`, then drains for at most `a2a.drain_timeout`: the listener stops accepting, in-flight
/// requests finish, tasks waiting for a slot go to the other replicas, and running tasks get the rest of the
/// time to finish (see [`crate::a2a::worker::drain`]). Connections still open at the deadline (streams, mostly)
/// are closed; their clients reconnect to another replica.
async fn drain_public(
    listener: tokio::net::TcpListener,
    state: &AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, mut stopping) = tokio::sync::watch::channel(false);
    let server = app::serve(listener, app::app(state.clone()), async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return result,
        () = signal => {}
    }
    let deadline = tokio::time::Instant::now() + state.a2a.settings().drain_timeout;
    stop.send_replace(true);
    let http = tokio::time::timeout_at(deadline, &mut server);
    let (served, ()) = tokio::join!(http, crate::a2a::worker::drain(state, deadline));
    served.unwrap_or_else(|_| {
        tracing::warn!("connections still open at the drain deadline; closing them");
        Ok(())
    })
}
