//! `paddock-operator run`: start-up and the life of the process.
//!
//! 1. connect to PostgreSQL with the admin DSN and apply the migrations (sqlx takes an
//!    advisory lock, so replicas starting together migrate once); this is the `default`
//!    cluster, and each PostgresCluster is connected and migrated later, on first use;
//! 2. serve `/metrics`, `/healthz` and `/readyz` (on every replica);
//! 3. wait for the leader Lease;
//! 4. load or create the development issuer key;
//! 5. run the Tenant, ToolServer, AgentTask and PostgresCluster controllers until SIGTERM/SIGINT, then let
//!    running reconciles finish and release the Lease.
//!
//! Losing the Lease ends the process at once (exit code 1), as client-go does: a replica that
//! cannot prove it leads must not write anything more.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use futures::FutureExt;
use kube::{
    Client,
    runtime::events::{Recorder, Reporter},
};
use sqlx::postgres::PgPoolOptions;

use crate::{
    agenttask,
    cluster::{self, Clusters},
    context::{self, Backoff, Context, Settings},
    devissuer::DevIssuer,
    leader::{Elector, LeaseSettings},
    metrics::Metrics,
    tenant::{self, build::parse_base_url},
    toolserver,
};

/// Options of `paddock-operator run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// PostgreSQL DSN of the operator's admin role (schema owner, CREATEROLE).
    #[arg(long, env = "PADDOCK_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_database_url: String,

    /// Base of the DSNs handed to tenants (host, port, database, sslmode), as the runtime pods
    /// reach PostgreSQL. Defaults to the admin DSN without its credentials.
    #[arg(long, env = "PADDOCK_TENANT_DATABASE_URL", hide_env_values = true)]
    pub tenant_database_url: Option<String>,

    /// Whether the operator's own database (the `default` cluster) takes new tenants that name
    /// no cluster. Tenants already on it stay, and a Tenant naming `default` still goes there.
    #[arg(
        long,
        env = "PADDOCK_DEFAULT_CLUSTER_ACCEPTS_NEW_TENANTS",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub default_cluster_accepts_new_tenants: bool,

    /// Image of ToolServer Deployments that do not set spec.image.
    #[arg(long, env = "PADDOCK_RUNTIME_IMAGE", default_value = concat!("paddock/paddock-runtime:", env!("CARGO_PKG_VERSION")))]
    pub runtime_image: String,

    /// Namespace of the operator: holds the leader Lease and the development issuer Secret.
    #[arg(long, env = "PADDOCK_NAMESPACE", default_value = "paddock-system")]
    pub namespace: String,

    /// Name of the leader election Lease.
    #[arg(
        long,
        env = "PADDOCK_LEADER_ELECTION_LEASE",
        default_value = "paddock-operator-leader"
    )]
    pub leader_election_lease: String,

    /// Run without leader election (only safe with a single replica).
    #[arg(long, env = "PADDOCK_NO_LEADER_ELECTION")]
    pub no_leader_election: bool,

    /// Identity in the Lease; defaults to $POD_NAME or the host name, plus a random suffix.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// Address of the /metrics, /healthz and /readyz server.
    #[arg(long, env = "PADDOCK_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// `iss` of the built-in development issuer's tokens.
    #[arg(
        long,
        env = "PADDOCK_DEV_ISSUER",
        default_value = "urn:paddock:dev-issuer"
    )]
    pub dev_issuer: String,

    /// Secret (in --namespace) holding the development issuer's signing key.
    #[arg(
        long,
        env = "PADDOCK_DEV_ISSUER_SECRET",
        default_value = "paddock-dev-issuer"
    )]
    pub dev_issuer_secret: String,

    /// Test only: call NAMESPACE/NAME's runtime at URL instead of its Service (for the
    /// Verified self-check and AgentTask submissions), e.g. `acme/docs=http://127.0.0.1:18080`.
    /// Repeatable; the variable takes a comma-separated list.
    #[arg(long = "service-url-override", env = "PADDOCK_SERVICE_URL_OVERRIDES", value_delimiter = ',', value_parser = context::parse_override)]
    pub service_url_overrides: Vec<(String, String)>,

    /// Reconciles each controller (Tenant, ToolServer, AgentTask, PostgresCluster) runs at once.
    /// Each reconcile makes a few API requests and, for Tenants, database work through a pool of
    /// four connections; a bound keeps a burst of thousands of objects from flooding the API
    /// server, whose refusals (429) would also starve the leader Lease's renewals.
    #[arg(long, env = "PADDOCK_RECONCILE_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    pub reconcile_concurrency: u16,

    /// Log format: json or text.
    #[arg(long, env = "PADDOCK_LOG_FORMAT", default_value = "json")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Installs logging (filter from RUST_LOG, default info) and, when the standard `OTEL_*` variables name an
/// OTLP endpoint, traces of each reconcile. Called within the tokio runtime, which carries the exports.
pub fn init_telemetry(
    format: LogFormat,
) -> Result<paddock_telemetry::Telemetry, paddock_telemetry::TelemetryError> {
    paddock_telemetry::init(&paddock_telemetry::Settings {
        service_name: "paddock-operator",
        log_format: match format {
            LogFormat::Json => paddock_telemetry::LogFormat::Json,
            LogFormat::Text => paddock_telemetry::LogFormat::Text,
        },
        default_filter: "info,kube=warn,sqlx=warn",
        tracing: paddock_telemetry::Tracing::default(),
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

fn identity(given: Option<String>) -> String {
    use rand::Rng as _;
    let base = given
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "paddock-operator".to_owned());
    let suffix: u32 = rand::thread_rng().r#gen();
    format!("{base}_{suffix:08x}")
}

/// Runs the operator until a shutdown signal (Ok) or the loss of the Lease (exit 1).
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let tenant_base = args
        .tenant_database_url
        .as_deref()
        .unwrap_or(&args.admin_database_url);
    let tenant_database_url = parse_base_url(tenant_base).context("invalid tenant database URL")?;

    let metrics = Metrics::new();
    let server = tokio::spawn(metrics.clone().serve(args.metrics_addr));

    let pool = connect(&args.admin_database_url).await?;
    paddock_contract::schema::MIGRATOR
        .run(&pool)
        .await
        .context("failed to apply the database migrations")?;
    tracing::info!("database migrations applied");
    metrics.set_ready();

    let client = Client::try_default()
        .await
        .context("failed to create a Kubernetes client")?;
    let shutdown = shutdown_signal().boxed().shared();

    let mut elector = None;
    if !args.no_leader_election {
        let settings = LeaseSettings::new(
            &args.namespace,
            &args.leader_election_lease,
            &identity(args.identity.clone()),
        );
        tracing::info!(lease = %settings.name, namespace = %settings.namespace, identity = %settings.identity, "waiting for the leader Lease");
        let mut e = Elector::new(client.clone(), settings);
        tokio::select! {
            _ = e.acquire() => {}
            _ = shutdown.clone() => { server.abort(); return Ok(()); }
        }
        elector = Some(e);
    }
    metrics.set_leader(true);

    let dev_issuer = DevIssuer::ensure(
        client.clone(),
        &args.namespace,
        &args.dev_issuer_secret,
        &args.dev_issuer,
    )
    .await
    .context("failed to load the development issuer key")?;

    let reporter = Reporter {
        controller: "paddock-operator".into(),
        instance: args.identity.clone(),
    };
    let clusters = Clusters::new(
        pool.clone(),
        tenant_database_url.clone(),
        args.default_cluster_accepts_new_tenants,
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        pool,
        clusters,
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        dev_issuer,
        settings: Settings {
            runtime_image: args.runtime_image.clone(),
            tenant_database_url,
            service_url_overrides: args
                .service_url_overrides
                .iter()
                .cloned()
                .collect::<HashMap<_, _>>(),
            http_timeout: Duration::from_secs(10),
            reconcile_concurrency: args.reconcile_concurrency,
        },
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("failed to build the HTTP client")?,
        backoff: Backoff::default(),
        verified: Default::default(),
        discovery: Default::default(),
    });
    if !ctx.settings.service_url_overrides.is_empty() {
        tracing::warn!(overrides = ?ctx.settings.service_url_overrides, "service URL overrides are set (test only)");
    }

    let controllers = futures::future::join4(
        tenant::run(ctx.clone(), shutdown.clone()),
        toolserver::run(ctx.clone(), shutdown.clone()),
        agenttask::run(ctx.clone(), shutdown.clone()),
        cluster::run(ctx.clone(), shutdown.clone()),
    );
    match elector.as_mut() {
        Some(e) => {
            tokio::select! {
                _ = controllers => {}
                _ = e.hold() => {
                    metrics.set_leader(false);
                    tracing::error!("lost the leader Lease; exiting so that another replica takes over");
                    std::process::exit(1);
                }
            }
            e.release().await;
        }
        None => {
            controllers.await;
        }
    }
    ctx.pool.close().await;
    server.abort();
    Ok(())
}

/// Connects to PostgreSQL, retrying for about a minute (the database may start after us).
async fn connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let options = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(10));
    let mut delay = Duration::from_secs(1);
    for attempt in 1.. {
        match options.clone().connect(url).await {
            Ok(pool) => return Ok(pool),
            Err(e) if attempt < 8 => {
                tracing::warn!(error = %e, attempt, "cannot connect to the database yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(15));
            }
            Err(e) => return Err(e).context("failed to connect to the database"),
        }
    }
    unreachable!("the loop returns")
}
