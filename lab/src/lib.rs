//! Paddock's lab: measurements of the runtime, kept out of the product binary (`paddock-lab`, not
//! `paddock-runtime`).
//!
//! - [`bench`]: MCP `hybrid_search` throughput over real HTTP against the pgbench ceiling of the same SQL;
//! - [`eval`]: retrieval quality (nDCG@10, recall@100, MRR@10) on a BEIR-layout collection;
//! - [`embed`]: the embedding provider's raw speed, which the benchmark reports beside the runtime's.
//!
//! Both commands drive the real runtime in process, started by the test kit (`paddock_testkit::runtime`) from a
//! configuration as a deployment writes it, and talk to it through the runtime's own MCP client, so they measure
//! the path every client takes.
#![forbid(unsafe_code)]

pub mod bench;
pub mod cli;
pub mod embed;
pub mod eval;
