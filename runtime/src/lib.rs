//! Paddock runtime: one axum service serving MCP tools (tenant-isolated hybrid search over PostgreSQL) and,
//! later, A2A tasks. Requests flow through [`app`] (middleware, routes) into [`mcp`] (protocol), [`tools`]
//! (tool logic) and [`db`] (tenant-scoped transactions under row-level security).
#![forbid(unsafe_code)]

pub mod a2a;
pub mod admission;
pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod documents;
pub mod embed;
pub mod eval;
pub mod indexer;
pub mod ingest;
pub mod jsonrpc;
pub mod mcp;
pub mod metrics;
pub mod search;
pub mod server;
pub mod sessions;
pub mod tools;
