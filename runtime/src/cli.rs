//! Command-line interface of `paddock-runtime`.

use std::{path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

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

/// Installs the tracing subscriber: JSON lines in production, plain text for humans.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

pub fn ttl(secs: u64) -> Duration {
    Duration::from_secs(secs)
}
