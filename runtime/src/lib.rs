//! Paddock runtime: one axum service serving MCP tools (tenant-isolated hybrid search over documents) and A2A
//! tasks, on PostgreSQL under row-level security. A request flows through [`app`] (bearer auth and the other
//! middleware, routes) into [`mcp`] or [`a2a`] (protocol, with [`admission`]'s rate limit), then [`tools`] (tool
//! logic) and [`db`] (tenant-scoped transactions); any replica serves any request.
#![forbid(unsafe_code)]

pub mod a2a;
pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
/// The MCP client the `ingest` command uses (shared with the lab, the suites and `kubectl paddock`).
pub use paddock_contract::client;
pub mod config;
pub mod console;
pub mod db;
pub mod documents;
pub mod embed;
pub mod indexer;
pub mod ingest;
pub mod jsonrpc;
pub mod mcp;
pub mod metrics;
pub mod search;
pub mod server;
pub mod sessions;
pub mod tools;
