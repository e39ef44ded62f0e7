//! The contract between Paddock's operator and its runtime, which meet only in PostgreSQL and over HTTP: the
//! schema and its roles ([`schema`]), who a token may speak for ([`identity`]), the runtime's configuration
//! file ([`config`]), the protocol names the runtime serves ([`protocol`]), the A2A skills and task states
//! ([`a2a`]) and the development issuer both use ([`dev`]); with the `client` feature, the MCP client every
//! Paddock tool speaks to a runtime with ([`client`]).
//!
//! No Kubernetes, no HTTP server and no model: the operator builds on this crate alone, never on the runtime.
#![forbid(unsafe_code)]

pub mod a2a;
#[cfg(feature = "client")]
pub mod client;
pub mod config;
pub mod dev;
pub mod identity;
pub mod protocol;
pub mod schema;
