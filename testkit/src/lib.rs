//! Paddock's test kit: what the runtime's, the operator's and the end-to-end tests share with the lab, so each
//! suite states its behaviour and none carries its own copy of the set-up.
//!
//! - [`issuer`]: a development issuer (a key, its JWKS file) and the tokens it mints;
//! - [`runtime`]: the runtime in process, either as a router driven without a socket ([`runtime::TestApp`]) or
//!   served on loopback ports from a configuration ([`runtime::start`]), the one start-up every suite uses;
//! - [`db`]: test databases: logins as the runtime's and tenants' roles, tenant provisioning, a scratch
//!   database with the migrations applied;
//! - [`mcp`] and [`a2a`]: the MCP and A2A test clients on a [`runtime::TestApp`]; [`McpClient`] is the
//!   runtime's own client over HTTP;
//! - [`model`]: an OpenAI-compatible model server that answers, fails or stalls on demand;
//! - [`embedding`]: the embedding model on disk (`PADDOCK_MODEL_DIR`) and an embedder running it;
//! - [`otlp`]: an OTLP/HTTP trace receiver that keeps the spans it is sent;
//! - `operator` (feature `operator`): the operator's fixtures and a provisioned tenant with its ToolServer.
//!
//! Data flows one way: a test provisions a database ([`db`]), starts the runtime over it ([`runtime`]) trusting
//! an [`issuer`], and talks to it with tokens from that issuer through [`mcp`], [`a2a`] or [`McpClient`].
#![forbid(unsafe_code)]

pub mod a2a;
pub mod db;
pub mod embedding;
pub mod issuer;
pub mod mcp;
pub mod model;
#[cfg(feature = "operator")]
pub mod operator;
pub mod otlp;
pub mod runtime;

pub use issuer::{AUDIENCE, ISSUER, Keys, RESOURCE, RO, RW, keys};
pub use paddock_runtime::client::{ClientError, McpClient};
pub use runtime::{TestApp, app, app_on, app_with};

/// What a runtime test uses most: `use paddock_testkit::prelude::*;` (the A2A client and the model server are
/// [`a2a`] and [`model`]).
pub mod prelude {
    pub use crate::{
        db::*,
        issuer::{AUDIENCE, ISSUER, Keys, RESOURCE, RO, RW, keys},
        mcp::{Session, Stateless},
        runtime::{Reply, TestApp, app, app_on, app_with},
    };
}
