//! Prometheus metrics (`paddock_operator_*`) and the small HTTP server that serves them with
//! `/healthz` and `/readyz`. The server runs on every replica, leader or not.
//!
//! - `reconcile_runs_total{controller}` and `reconcile_failures_total{controller,error}`;
//! - `reconcile_duration_seconds{controller}`;
//! - `leader` (1 on the replica holding the Lease);
//! - `toolserver_condition{namespace,toolserver,condition,status}` and
//!   `tenant_condition{tenant,condition,status}`: 1 for each condition's current status, set by the
//!   status step and removed with the object;
//! - `agenttasks{namespace,state}` and `agenttask_oldest_seconds{namespace,state}`: AgentTasks per
//!   state (`pending` before the task has one), and the age of the oldest non-terminal one. Never
//!   per task: names are unbounded.
//!
//! The object series exist on the leader only, the replica whose controllers run.

use std::{
    collections::{BTreeMap, HashMap},
    hash::Hash,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use futures::Future;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::reflector::Store;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub controller: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolServerConditionLabels {
    pub namespace: String,
    pub toolserver: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantConditionLabels {
    pub tenant: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PostgresClusterConditionLabels {
    pub cluster: String,
    pub condition: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct AgentTaskStateLabels {
    pub namespace: String,
    pub state: String,
}

/// The AgentTasks of one namespace in one state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TasksInState {
    pub count: i64,
    /// Age of the oldest of them, for non-terminal states only.
    pub oldest_seconds: Option<f64>,
}

/// A gauge family whose series belong to objects: setting an object's series removes the ones it
/// no longer has, and a gone object's series go with it, so that none outlives what it describes.
#[derive(Clone)]
struct ObjectSeries<K, L> {
    family: Family<L, Gauge>,
    by_object: Arc<Mutex<HashMap<K, Vec<L>>>>,
}

impl<K: Eq + Hash + Clone, L: Clone + Eq + Hash + EncodeLabelSet + std::fmt::Debug>
    ObjectSeries<K, L>
{
    fn new(family: Family<L, Gauge>) -> Self {
        Self {
            family,
            by_object: Arc::default(),
        }
    }

    fn set(&self, object: K, series: Vec<L>) {
        let mut by_object = self.by_object.lock().expect("object series");
        for old in by_object.get(&object).into_iter().flatten() {
            if !series.contains(old) {
                self.family.remove(old);
            }
        }
        for labels in &series {
            self.family.get_or_create(labels).set(1);
        }
        by_object.insert(object, series);
    }

    /// Sets `object`'s series to one per condition, labelled by `labels(type, status)`.
    fn set_conditions(
        &self,
        object: K,
        conditions: &[Condition],
        labels: impl Fn(String, String) -> L,
    ) {
        let series = conditions
            .iter()
            .map(|c| labels(c.type_.clone(), c.status.clone()))
            .collect();
        self.set(object, series);
    }

    fn remove(&self, object: &K) {
        let mut by_object = self.by_object.lock().expect("object series");
        for old in by_object.remove(object).into_iter().flatten() {
            self.family.remove(&old);
        }
    }

    /// Removes the series of every object for which `keep` is false.
    fn retain(&self, keep: impl Fn(&K) -> bool) {
        let mut by_object = self.by_object.lock().expect("object series");
        by_object.retain(|object, series| {
            let kept = keep(object);
            if !kept {
                for old in series.iter() {
                    self.family.remove(old);
                }
            }
            kept
        });
    }
}

/// What the AgentTask gauges count, read at each scrape.
type TaskCounts = Box<dyn Fn() -> BTreeMap<AgentTaskStateLabels, TasksInState> + Send + Sync>;

/// `agenttasks` and `agenttask_oldest_seconds`, computed when Prometheus scrapes rather than by a
/// loop of their own: a task created a moment ago is in the next scrape, the oldest task's age is
/// its age at that scrape, and a namespace and state with no task left has no series rather than
/// its last value. Nothing is exported until a source is set (the replicas that do not lead).
#[derive(Clone, Default)]
struct AgentTaskGauges(Arc<Mutex<Option<TaskCounts>>>);

impl std::fmt::Debug for AgentTaskGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentTaskGauges").finish_non_exhaustive()
    }
}

impl Collector for AgentTaskGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(tasks) = self
            .0
            .lock()
            .expect("agenttask gauges")
            .as_ref()
            .map(|count| count())
        else {
            return Ok(());
        };
        let counts = Family::<AgentTaskStateLabels, Gauge>::default();
        let oldest = Family::<AgentTaskStateLabels, Gauge<f64, AtomicU64>>::default();
        for (labels, t) in &tasks {
            counts.get_or_create(labels).set(t.count);
            if let Some(age) = t.oldest_seconds {
                oldest.get_or_create(labels).set(age);
            }
        }
        counts.encode(encoder.encode_descriptor(
            "agenttasks",
            "AgentTasks per namespace and state (pending: no state yet)",
            None,
            counts.metric_type(),
        )?)?;
        oldest.encode(encoder.encode_descriptor(
            "agenttask_oldest_seconds",
            "Age of the oldest non-terminal AgentTask per namespace and state",
            None,
            oldest.metric_type(),
        )?)
    }
}

/// The operator's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    runs: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    leader: Gauge,
    toolservers: ObjectSeries<(String, String), ToolServerConditionLabels>,
    tenants: ObjectSeries<String, TenantConditionLabels>,
    clusters: ObjectSeries<String, PostgresClusterConditionLabels>,
    agenttasks: AgentTaskGauges,
    ready: Arc<AtomicBool>,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("paddock_operator");
        let runs = Family::<ControllerLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        let leader = Gauge::default();
        let toolserver_condition = Family::<ToolServerConditionLabels, Gauge>::default();
        let tenant_condition = Family::<TenantConditionLabels, Gauge>::default();
        let cluster_condition = Family::<PostgresClusterConditionLabels, Gauge>::default();
        let agenttasks = AgentTaskGauges::default();
        registry.register(
            "reconcile_runs",
            "Reconciles started, per controller",
            runs.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, per controller and error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile, per controller",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "toolserver_condition",
            "1 for the current status of each condition of each ToolServer",
            toolserver_condition.clone(),
        );
        registry.register(
            "tenant_condition",
            "1 for the current status of each condition of each Tenant",
            tenant_condition.clone(),
        );
        registry.register(
            "postgrescluster_condition",
            "1 for the current status of each condition of each PostgresCluster",
            cluster_condition.clone(),
        );
        registry.register_collector(Box::new(agenttasks.clone()));
        Self {
            runs,
            failures,
            duration,
            leader,
            toolservers: ObjectSeries::new(toolserver_condition),
            tenants: ObjectSeries::new(tenant_condition),
            clusters: ObjectSeries::new(cluster_condition),
            agenttasks,
            ready: Arc::default(),
            registry: Arc::new(registry),
        }
    }

    /// Counts a reconcile and times it until the returned guard drops.
    pub fn reconcile(&self, controller: &str) -> ReconcileTimer {
        let labels = ControllerLabels {
            controller: controller.to_owned(),
        };
        self.runs.get_or_create(&labels).inc();
        ReconcileTimer {
            histogram: self.duration.get_or_create(&labels).clone(),
            start: Instant::now(),
        }
    }

    pub fn failure(&self, controller: &str, error: &str) {
        self.failures
            .get_or_create(&FailureLabels {
                controller: controller.to_owned(),
                error: error.to_owned(),
            })
            .inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the condition series of ToolServer `namespace/name` to `conditions`.
    pub fn set_toolserver_conditions(&self, namespace: &str, name: &str, conditions: &[Condition]) {
        self.toolservers.set_conditions(
            (namespace.to_owned(), name.to_owned()),
            conditions,
            |condition, status| ToolServerConditionLabels {
                namespace: namespace.to_owned(),
                toolserver: name.to_owned(),
                condition,
                status,
            },
        );
    }

    pub fn remove_toolserver(&self, namespace: &str, name: &str) {
        self.toolservers
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Removes the series of every ToolServer for which `exists(namespace, name)` is false.
    pub fn retain_toolservers(&self, exists: impl Fn(&str, &str) -> bool) {
        self.toolservers.retain(|(ns, name)| exists(ns, name));
    }

    /// Sets the condition series of Tenant `name` to `conditions`.
    pub fn set_tenant_conditions(&self, name: &str, conditions: &[Condition]) {
        self.tenants
            .set_conditions(name.to_owned(), conditions, |condition, status| {
                TenantConditionLabels {
                    tenant: name.to_owned(),
                    condition,
                    status,
                }
            });
    }

    pub fn remove_tenant(&self, name: &str) {
        self.tenants.remove(&name.to_owned());
    }

    /// Removes the series of every Tenant for which `exists(name)` is false.
    pub fn retain_tenants(&self, exists: impl Fn(&str) -> bool) {
        self.tenants.retain(|name| exists(name));
    }

    /// Sets the condition series of PostgresCluster `name` to `conditions`.
    pub fn set_postgrescluster_conditions(&self, name: &str, conditions: &[Condition]) {
        self.clusters
            .set_conditions(name.to_owned(), conditions, |condition, status| {
                PostgresClusterConditionLabels {
                    cluster: name.to_owned(),
                    condition,
                    status,
                }
            });
    }

    pub fn remove_postgrescluster(&self, name: &str) {
        self.clusters.remove(&name.to_owned());
    }

    /// Removes the series of every PostgresCluster for which `exists(name)` is false.
    pub fn retain_postgresclusters(&self, exists: impl Fn(&str) -> bool) {
        self.clusters.retain(|name| exists(name));
    }

    /// Makes `tasks` the source of the AgentTask gauges, called at each scrape: the AgentTask
    /// controller's cache, on the leader.
    pub fn count_agenttasks_with(
        &self,
        tasks: impl Fn() -> BTreeMap<AgentTaskStateLabels, TasksInState> + Send + Sync + 'static,
    ) {
        *self.agenttasks.0.lock().expect("agenttask gauges") = Some(Box::new(tasks));
    }

    /// Marks start-up (database, migrations) as done, for `/readyz`.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// `/metrics`, `/healthz` and `/readyz`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .with_state(self.clone())
    }

    /// Serves [`Metrics::router`] on `addr` until the process exits.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
        axum::serve(listener, self.router()).await
    }
}

async fn metrics(State(m): State<Metrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

async fn readyz(State(m): State<Metrics>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (axum::http::StatusCode::OK, "ok")
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

/// Runs `until` (a controller) and, once `store` holds its first full list, `update` every `period`
/// beside it; returns when `until` does. For the gauges a reconcile cannot keep current: deleted
/// objects trigger no reconcile, and ages grow between reconciles.
pub async fn refresh_while<K, F>(
    until: F,
    store: Store<K>,
    period: Duration,
    update: impl Fn(&Store<K>),
) -> F::Output
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
    F: Future,
{
    let refresh = async {
        // Before the first list the store is empty, and every object would look deleted.
        if store.wait_until_ready().await.is_err() {
            std::future::pending::<()>().await;
        }
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            update(&store);
        }
    };
    tokio::select! {
        out = until => out,
        () = refresh => unreachable!("the refresh loop never ends"),
    }
}

/// Observes a reconcile's duration when dropped.
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_and_failures_are_counted_per_controller() {
        let m = Metrics::new();
        drop(m.reconcile("tenant"));
        drop(m.reconcile("tenant"));
        m.failure("tenant", "ProvisionDatabase");
        m.set_leader(true);
        let text = m.encode();
        assert!(
            text.contains("paddock_operator_reconcile_runs_total{controller=\"tenant\"} 2"),
            "{text}"
        );
        assert!(text.contains("paddock_operator_reconcile_failures_total{controller=\"tenant\",error=\"ProvisionDatabase\"} 1"));
        assert!(text.contains(
            "paddock_operator_reconcile_duration_seconds_count{controller=\"tenant\"} 2"
        ));
        assert!(text.contains("paddock_operator_leader 1"));
    }

    fn cond(type_: &str, status: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: "Test".to_owned(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::chrono::Utc::now(),
            ),
            observed_generation: None,
        }
    }

    /// The exposition's lines that start with `prefix`, sorted.
    fn lines(m: &Metrics, prefix: &str) -> Vec<String> {
        let mut out: Vec<String> = m
            .encode()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect();
        out.sort();
        out
    }

    #[test]
    fn toolserver_conditions_follow_the_status_and_go_with_the_object() {
        let m = Metrics::new();
        m.set_toolserver_conditions(
            "acme",
            "docs",
            &[cond("Ready", "True"), cond("Verified", "Unknown")],
        );
        m.set_toolserver_conditions("acme", "wiki", &[cond("Ready", "False")]);
        m.set_toolserver_conditions(
            "acme",
            "docs",
            &[cond("Ready", "True"), cond("Verified", "False")],
        );
        let ts = "paddock_operator_toolserver_condition{";
        assert_eq!(
            lines(&m, ts),
            [
                r#"paddock_operator_toolserver_condition{namespace="acme",toolserver="docs",condition="Ready",status="True"} 1"#,
                r#"paddock_operator_toolserver_condition{namespace="acme",toolserver="docs",condition="Verified",status="False"} 1"#,
                r#"paddock_operator_toolserver_condition{namespace="acme",toolserver="wiki",condition="Ready",status="False"} 1"#,
            ],
            "the old status of Verified is gone"
        );

        // A refused ToolServer loses its Verified condition, and its series.
        m.set_toolserver_conditions("acme", "docs", &[cond("Ready", "False")]);
        assert_eq!(lines(&m, ts).len(), 2);

        m.remove_toolserver("acme", "docs");
        assert_eq!(
            lines(&m, ts),
            [
                r#"paddock_operator_toolserver_condition{namespace="acme",toolserver="wiki",condition="Ready",status="False"} 1"#
            ]
        );
        m.retain_toolservers(|ns, name| (ns, name) != ("acme", "wiki"));
        assert!(lines(&m, ts).is_empty(), "{:?}", lines(&m, ts));
    }

    #[test]
    fn tenant_conditions_follow_the_status_and_go_with_the_object() {
        let m = Metrics::new();
        m.set_tenant_conditions("acme", &[cond("Ready", "False")]);
        m.set_tenant_conditions("umbrella", &[cond("Ready", "True")]);
        m.set_tenant_conditions(
            "acme",
            &[cond("DatabaseProvisioned", "True"), cond("Ready", "True")],
        );
        let t = "paddock_operator_tenant_condition{";
        assert_eq!(
            lines(&m, t),
            [
                r#"paddock_operator_tenant_condition{tenant="acme",condition="DatabaseProvisioned",status="True"} 1"#,
                r#"paddock_operator_tenant_condition{tenant="acme",condition="Ready",status="True"} 1"#,
                r#"paddock_operator_tenant_condition{tenant="umbrella",condition="Ready",status="True"} 1"#,
            ]
        );
        m.remove_tenant("acme");
        m.retain_tenants(|name| name == "umbrella");
        assert_eq!(
            lines(&m, t),
            [
                r#"paddock_operator_tenant_condition{tenant="umbrella",condition="Ready",status="True"} 1"#
            ]
        );
        m.retain_tenants(|_| false);
        assert!(lines(&m, t).is_empty());
    }

    #[test]
    fn postgrescluster_conditions_follow_the_status_and_go_with_the_object() {
        let m = Metrics::new();
        m.set_postgrescluster_conditions("east", &[cond("Ready", "True")]);
        m.set_postgrescluster_conditions("west", &[cond("Ready", "True")]);
        m.set_postgrescluster_conditions(
            "east",
            &[cond("Ready", "False"), cond("Deleting", "True")],
        );
        let c = "paddock_operator_postgrescluster_condition{";
        assert_eq!(
            lines(&m, c),
            [
                r#"paddock_operator_postgrescluster_condition{cluster="east",condition="Deleting",status="True"} 1"#,
                r#"paddock_operator_postgrescluster_condition{cluster="east",condition="Ready",status="False"} 1"#,
                r#"paddock_operator_postgrescluster_condition{cluster="west",condition="Ready",status="True"} 1"#,
            ]
        );
        m.remove_postgrescluster("east");
        m.retain_postgresclusters(|name| name != "west");
        assert!(lines(&m, c).is_empty());
    }

    #[test]
    fn agenttask_gauges_are_read_at_each_scrape() {
        let m = Metrics::new();
        let key = |ns: &str, state: &str| AgentTaskStateLabels {
            namespace: ns.to_owned(),
            state: state.to_owned(),
        };
        let mut tasks = BTreeMap::new();
        tasks.insert(
            key("acme", "working"),
            TasksInState {
                count: 2,
                oldest_seconds: Some(90.5),
            },
        );
        tasks.insert(
            key("acme", "completed"),
            TasksInState {
                count: 3,
                oldest_seconds: None,
            },
        );
        let source = Arc::new(Mutex::new(tasks.clone()));
        let counted = source.clone();
        m.count_agenttasks_with(move || counted.lock().unwrap().clone());
        assert_eq!(
            lines(&m, "paddock_operator_agenttask"),
            [
                r#"paddock_operator_agenttask_oldest_seconds{namespace="acme",state="working"} 90.5"#,
                r#"paddock_operator_agenttasks{namespace="acme",state="completed"} 3"#,
                r#"paddock_operator_agenttasks{namespace="acme",state="working"} 2"#,
            ]
        );

        // The working tasks finished: their series go, they do not stay at their last value.
        tasks.remove(&key("acme", "working"));
        tasks.insert(
            key("acme", "completed"),
            TasksInState {
                count: 5,
                oldest_seconds: None,
            },
        );
        *source.lock().unwrap() = tasks;
        assert_eq!(
            lines(&m, "paddock_operator_agenttask"),
            [r#"paddock_operator_agenttasks{namespace="acme",state="completed"} 5"#]
        );
    }
}
