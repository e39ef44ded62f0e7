//! The contract between Paddock's operator and its runtime, which meet only in PostgreSQL and over HTTP: the
//! schema and its roles ([`schema`]), who a token may speak for ([`identity`]), the protocol names the runtime
//! serves ([`protocol`]) and the development issuer both use ([`dev`]).
//!
//! No Kubernetes, no HTTP server and no model: the operator builds on this crate alone, never on the runtime.
#![forbid(unsafe_code)]

pub mod dev;
pub mod identity;
pub mod protocol;
pub mod schema;
