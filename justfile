# The recipes people run. Each one calls the script or cargo command that does the work, so everything here also
# works without `just` (cargo install just).

set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Paddock on embedded defaults: PostgreSQL, a demo tenant, the runtime, a token and curl lines.
demo *args:
    scripts/demo.sh {{args}}

# Every test, as CI runs it: unit, database, HTTP, attacks, interop, then end to end on Kubernetes.
test:
    scripts/test.sh

# Every test but the end-to-end suite, for a quick local loop.
test-quick:
    scripts/test.sh --no-e2e

# The official MCP conformance suite against a running runtime, for 2026-07-28 and 2025-11-25 (or `--revision REV`).
conformance *args:
    scripts/conformance.sh {{args}}

# The web console in headless Chromium against a real runtime (`--serve` keeps it running for a person).
console-test *args:
    scripts/console-test.sh {{args}}

# The end-to-end suite on a control plane built from Go modules; NAME narrows it to matching scenarios.
e2e *name:
    scripts/e2e.sh {{name}}

# The MCP hybrid_search benchmark against its pgbench ceiling (options after `--`, see scripts/bench.sh).
bench *args:
    scripts/bench.sh {{args}}

# Retrieval quality on a BEIR data set (e.g. SciFact): nDCG@10, recall@100, MRR@10 per arm.
eval beir database_url model_dir *args:
    cargo run --release --locked -p paddock-lab -- eval --beir {{beir}} --database-url {{database_url}} --model-dir {{model_dir}} {{args}}

# Regenerate the CRD YAML (crds/ and the chart's copies) from the Rust types.
crds:
    cargo run -p paddock-operator -- crds --dir crds --chart charts/paddock

# Format and lint the workspace.
fmt:
    cargo fmt --all

lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Fuzz one request parser (jsonrpc_framing, mcp_request, a2a_request) for RUNS executions (nightly, cargo-fuzz).
fuzz target runs="10000000":
    cd fuzz && cargo +nightly fuzz run {{target}} -- -runs={{runs}}
