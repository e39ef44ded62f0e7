//! End-to-end harness for Paddock on a real Kubernetes control plane.
//!
//! The scenarios in `tests/` drive Paddock the way its users do: `kubectl apply` of Tenants,
//! ToolServers and AgentTasks, then MCP and A2A calls to the runtime. This library holds what
//! they share:
//! - [`env`]: the per-binary environment (database, installed chart, operator) and the
//!   per-scenario [`env::Scope`] with random names and cleanup;
//! - [`install`]: the CRDs and the chart's RBAC and admission policies;
//! - [`operator`]: `paddock-operator run` as the chart's ServiceAccount;
//! - [`kubelet`] and [`proxy`]: the runtime started on the host with what the operator rendered,
//!   and the stand-in for cluster DNS that routes Service URLs to it;
//! - [`llm`]: the stand-in model provider (the test kit's model server, answering as the scenarios expect);
//! - [`observability`]: Jaeger, Prometheus and a stand-in embeddings API for the observability scenarios;
//! - [`steps`]: the steps scenarios share (a Ready ToolServer, tokens, MCP calls);
//! - [`runner`]: the small test runner of the scenario binaries.
#![forbid(unsafe_code)]

pub mod db;
pub mod env;
pub mod install;
pub mod kubectl;
pub mod kubelet;
pub mod llm;
pub mod manifests;
pub mod observability;
pub mod operator;
pub mod process;
pub mod proxy;
pub mod runner;
pub mod steps;
