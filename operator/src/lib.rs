//! Paddock's Kubernetes operator as a library: the `paddock.dev/v1alpha1` API types, the
//! Tenant, ToolServer, AgentTask and PostgresCluster controllers, and the process around them (leader election,
//! metrics, the development issuer). The binary (`main.rs`) only parses arguments and calls in.
//!
//! Data flow: the controllers watch their kinds; the Tenant controller writes PostgreSQL (roles,
//! rows) and Secrets, the ToolServer controller writes runtime Deployments that read those
//! Secrets, and the AgentTask controller calls the runtimes over A2A.
#![forbid(unsafe_code)]

pub mod agenttask;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod crd;
pub mod credentials;
pub mod devissuer;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod run;
pub mod status;
pub mod tenant;
pub mod toolserver;
