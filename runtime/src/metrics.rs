//! Prometheus metrics (prometheus-client) under the `paddock` prefix, served at `/metrics`.
//!
//! Components register their own families into the one registry at start-up (the embedder registers its
//! failures, breaker state and cache hits); request-level families live here.
//!
//! This module knows no protocol domain: A2A code pushes plain values into it (a task's final state by name,
//! a tenant's budget figures), and the task-slot gauges are read at scrape time through [`TaskSlots`], which
//! the A2A side implements. Data flows domain code → [`Metrics`] methods → the families → `GET /metrics`.

use std::sync::Arc;

use axum::{extract::State, http::header, response::IntoResponse};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::db::Db;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `mcp` or `a2a`.
    pub endpoint: &'static str,
    pub method: String,
    /// The tool for `tools/call`, else empty.
    pub tool: String,
    /// `ok`, `tool_error` or the JSON-RPC error code.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcDurationLabels {
    pub endpoint: &'static str,
    pub method: String,
    pub tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    /// Why the request was refused before reaching a method: `unauthorized`, `rate_limited`, `forbidden`, ...
    pub reason: &'static str,
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub tenant: String,
    pub currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabels {
    pub tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelSpendLabels {
    pub tenant: String,
    /// A model the tenant's configuration allows (a bounded set).
    pub model: String,
    pub currency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DegradedLabels {
    pub tenant: String,
    /// Why the vector arm was unavailable: the embedding failure's reason (`breaker_open`, `timeout`, ...).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskEndLabels {
    /// `completed`, `failed`, `canceled` or `rejected`.
    pub state: &'static str,
    /// Why it failed or was rejected (`lease_expired`, `replica_shutdown`, `budget_exceeded`, ...); empty
    /// otherwise.
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandoverLabels {
    /// `handed_back` (this replica, shutting down, gave a waiting task up) or `adopted` (this replica took
    /// over a task another replica never started).
    pub direction: &'static str,
}

type MoneyGauge = Family<BudgetLabels, Gauge<f64, std::sync::atomic::AtomicU64>>;
type MoneyCounter<L> = Family<L, Counter<f64, std::sync::atomic::AtomicU64>>;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms .. ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A tenant's budget standing as exposition values (the money itself is decimal in PostgreSQL).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BudgetFigures {
    pub limit: f64,
    pub spent: f64,
    pub reserved: f64,
    pub remaining: f64,
    pub warn_at_percent: i32,
}

/// The task slots of this replica, read when `/metrics` is scraped (implemented by the A2A task runner).
pub trait TaskSlots: Send + Sync {
    /// Tasks running now.
    fn running(&self) -> usize;
    /// Tasks accepted that wait for a free slot.
    fn waiting(&self) -> usize;
}

/// Request-level metrics. Cheap to clone (families are shared).
#[derive(Clone)]
pub struct Metrics {
    pub rpc_requests: Family<RpcLabels, Counter>,
    pub rpc_duration: HistogramFamily<RpcDurationLabels>,
    pub rejections: Family<RejectLabels, Counter>,
    /// This month's budget, settled spend, held reservations and what is left, per tenant (exposition only;
    /// the money itself is decimal in PostgreSQL).
    pub budget_limit: MoneyGauge,
    pub budget_spent: MoneyGauge,
    pub budget_reserved: MoneyGauge,
    pub budget_remaining: MoneyGauge,
    /// The percentage of the budget at which each tenant is warned (the Tenant's `warnAtPercent`).
    budget_warn_percent: Family<TenantLabels, Gauge>,
    /// Money charged for model calls, by tenant and model (per replica; sum over replicas).
    model_spend: MoneyCounter<ModelSpendLabels>,
    /// Searches answered lexically because the vector arm was unavailable.
    searches_degraded: Family<DegradedLabels, Counter>,
    /// Model calls refused because the budget could not cover their estimate.
    pub budget_rejections: Family<TenantLabels, Counter>,
    pool_size: Gauge,
    pool_idle: Gauge,
    tasks_running: Gauge,
    tasks_waiting: Gauge,
    /// Tasks this replica ended, by final state and reason.
    tasks_ended: Family<TaskEndLabels, Counter>,
    tasks_handed_over: Family<HandoverLabels, Counter>,
    /// MCP sessions this replica's sweeper deleted (expired or ended).
    pub mcp_sessions_purged: Counter,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            rpc_requests: Family::default(),
            rpc_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            rejections: Family::default(),
            budget_limit: Family::default(),
            budget_spent: Family::default(),
            budget_reserved: Family::default(),
            budget_remaining: Family::default(),
            budget_warn_percent: Family::default(),
            model_spend: Family::default(),
            searches_degraded: Family::default(),
            budget_rejections: Family::default(),
            pool_size: Gauge::default(),
            pool_idle: Gauge::default(),
            tasks_running: Gauge::default(),
            tasks_waiting: Gauge::default(),
            tasks_ended: Family::default(),
            tasks_handed_over: Family::default(),
            mcp_sessions_purged: Counter::default(),
        };
        registry.register(
            "rpc_requests",
            "JSON-RPC requests by endpoint, method, tool and status",
            m.rpc_requests.clone(),
        );
        registry.register(
            "rpc_duration_seconds",
            "JSON-RPC request latency",
            m.rpc_duration.clone(),
        );
        registry.register(
            "request_rejections",
            "Requests refused before any method ran (auth, rate limit, size, session)",
            m.rejections.clone(),
        );
        registry.register(
            "budget_limit",
            "Monthly budget per tenant",
            m.budget_limit.clone(),
        );
        registry.register(
            "budget_spent",
            "Settled spend this month per tenant",
            m.budget_spent.clone(),
        );
        registry.register(
            "budget_reserved",
            "Budget held by model calls in flight per tenant",
            m.budget_reserved.clone(),
        );
        registry.register(
            "budget_remaining",
            "Budget left for new model calls this month per tenant",
            m.budget_remaining.clone(),
        );
        registry.register(
            "budget_warn_percent",
            "The percentage of its monthly budget at which a tenant is warned (its warnAtPercent)",
            m.budget_warn_percent.clone(),
        );
        registry.register(
            "model_spend",
            "Money charged for model calls by this replica, by tenant, model and currency",
            m.model_spend.clone(),
        );
        registry.register(
            "search_degraded",
            "Searches answered lexically because the vector arm was unavailable, by tenant and reason",
            m.searches_degraded.clone(),
        );
        registry.register(
            "budget_rejections",
            "Model calls refused because the tenant's budget could not cover them",
            m.budget_rejections.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Open database connections in the pool",
            m.pool_size.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections in the pool",
            m.pool_idle.clone(),
        );
        registry.register(
            "a2a_tasks_running",
            "A2A tasks this replica is running (at most a2a.max_running_tasks)",
            m.tasks_running.clone(),
        );
        registry.register(
            "a2a_tasks_waiting",
            "A2A tasks this replica accepted that wait for a free slot",
            m.tasks_waiting.clone(),
        );
        registry.register(
            "a2a_tasks_ended",
            "A2A tasks this replica brought to a final state, by state and reason",
            m.tasks_ended.clone(),
        );
        registry.register(
            "a2a_tasks_handed_over",
            "A2A tasks that never started and moved between replicas: handed back by this one, or adopted",
            m.tasks_handed_over.clone(),
        );
        registry.register(
            "mcp_sessions_purged",
            "MCP sessions this replica deleted after they expired or ended (mcp.session_idle_timeout_ms)",
            m.mcp_sessions_purged.clone(),
        );
        m
    }

    /// Counts `n` tasks this replica ended in `state`, the state's stored name (for `reason`, if it failed or
    /// was refused).
    pub fn count_tasks_ended(&self, state: &'static str, reason: Option<&'static str>, n: u64) {
        self.tasks_ended
            .get_or_create(&TaskEndLabels {
                state,
                reason: reason.unwrap_or_default(),
            })
            .inc_by(n);
    }

    /// Counts `n` waiting tasks handed back (`handed_back`) or adopted (`adopted`).
    pub fn count_handovers(&self, direction: &'static str, n: u64) {
        self.tasks_handed_over
            .get_or_create(&HandoverLabels { direction })
            .inc_by(n);
    }

    /// Counts a refused request. `tenant` names a tenant only once admission has shown it is provisioned; before
    /// that (or for a tenant that is not) it is `""`, so what tokens claim can never grow the label set.
    pub fn reject(&self, reason: &'static str, tenant: &str) {
        self.rejections
            .get_or_create(&RejectLabels {
                reason,
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    /// Publishes one tenant's budget standing.
    pub fn set_budget(&self, tenant: &str, currency: &str, figures: BudgetFigures) {
        self.budget_warn_percent
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .set(i64::from(figures.warn_at_percent));
        let labels = BudgetLabels {
            tenant: tenant.to_owned(),
            currency: currency.to_owned(),
        };
        self.budget_limit.get_or_create(&labels).set(figures.limit);
        self.budget_spent.get_or_create(&labels).set(figures.spent);
        self.budget_reserved
            .get_or_create(&labels)
            .set(figures.reserved);
        self.budget_remaining
            .get_or_create(&labels)
            .set(figures.remaining);
    }

    /// Counts `amount` charged to `tenant` for a call of `model`.
    pub fn model_charged(&self, tenant: &str, model: &str, currency: &str, amount: f64) {
        self.model_spend
            .get_or_create(&ModelSpendLabels {
                tenant: tenant.to_owned(),
                model: model.to_owned(),
                currency: currency.to_owned(),
            })
            .inc_by(amount);
    }

    /// Counts a search of `tenant` answered lexically because embedding the query failed for `reason`.
    pub fn search_degraded(&self, tenant: &str, reason: &'static str) {
        self.searches_degraded
            .get_or_create(&DegradedLabels {
                tenant: tenant.to_owned(),
                reason,
            })
            .inc();
    }

    pub fn budget_rejected(&self, tenant: &str) {
        self.budget_rejections
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .inc();
    }

    pub fn observe_rpc(
        &self,
        endpoint: &'static str,
        method: &str,
        tool: &str,
        status: String,
        secs: f64,
    ) {
        let (method, tool) = (method.to_owned(), tool.to_owned());
        self.rpc_duration
            .get_or_create(&RpcDurationLabels {
                endpoint,
                method: method.clone(),
                tool: tool.clone(),
            })
            .observe(secs);
        self.rpc_requests
            .get_or_create(&RpcLabels {
                endpoint,
                method,
                tool,
                status,
            })
            .inc();
    }
}

/// Shared state of the `/metrics` route.
#[derive(Clone)]
pub struct MetricsEndpoint {
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    pub db: Db,
    pub tasks: Arc<dyn TaskSlots>,
}

pub async fn serve_metrics(State(m): State<MetricsEndpoint>) -> impl IntoResponse {
    m.metrics.pool_size.set(i64::from(m.db.pool_size()));
    m.metrics.pool_idle.set(m.db.pool_idle() as i64);
    m.metrics.tasks_running.set(m.tasks.running() as i64);
    m.metrics.tasks_waiting.set(m.tasks.waiting() as i64);
    let mut body = String::new();
    if encode(&mut body, &m.registry).is_err() {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics",
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
