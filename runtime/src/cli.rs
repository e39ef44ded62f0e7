//! Command-line interface of `paddock-runtime`.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::config::{LogFormat, TracingConfig};

#[derive(Debug, Parser)]
#[command(
    name = "paddock-runtime",
    version,
    about = "Paddock runtime: MCP tools and A2A tasks for one or more tenants"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP (and A2A) over HTTP.
    Serve {
        /// Configuration file (YAML or JSON).
        #[arg(long, env = "PADDOCK_CONFIG")]
        config: PathBuf,
    },
    /// Apply the database migrations (needs an owner/admin role, as the operator has).
    Migrate {
        #[arg(long, env = "PADDOCK_ADMIN_DATABASE_URL")]
        database_url: String,
    },
    /// Load documents from a JSON Lines file through MCP `upsert_document` (the authenticated path).
    Ingest {
        /// The MCP endpoint, e.g. http://127.0.0.1:8080/mcp
        #[arg(long, env = "PADDOCK_MCP_URL")]
        url: String,
        /// A bearer token with the documents:write scope.
        #[arg(long, env = "PADDOCK_TOKEN", hide_env_values = true)]
        token: String,
        /// Rows of {id, title, content, metadata} (BEIR's {_id, title, text} also works).
        #[arg(long)]
        file: PathBuf,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
    },
    /// Generate a development signing key (signing-key.pem) and its public JWKS (jwks.json).
    Keygen {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Mint a development token signed with a key made by `keygen`.
    Token {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        audience: String,
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value = "dev")]
        user: String,
        /// Scopes, space- or comma-separated.
        #[arg(long, default_value = "documents:read")]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

/// Installs logging (JSON lines in production, plain text for people) and, when configured, traces.
pub fn init_telemetry(
    format: LogFormat,
    tracing: &TracingConfig,
) -> Result<paddock_telemetry::Telemetry, paddock_telemetry::TelemetryError> {
    paddock_telemetry::init(&paddock_telemetry::Settings {
        service_name: "paddock-runtime",
        log_format: match format {
            LogFormat::Json => paddock_telemetry::LogFormat::Json,
            LogFormat::Text => paddock_telemetry::LogFormat::Text,
        },
        default_filter: "info,sqlx=warn,tower_http=info",
        tracing: paddock_telemetry::Tracing {
            otlp_endpoint: tracing.otlp_endpoint.clone(),
            sample_ratio: tracing.sample_ratio,
        },
    })
}

pub fn ttl(secs: u64) -> Duration {
    Duration::from_secs(secs)
}
