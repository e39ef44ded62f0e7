//! The database clusters the operator uses, as connection pools: the default one (the
//! operator's own database, connected and migrated at start) and one per PostgresCluster,
//! created on first use and cached until the cluster's connection settings change.
//!
//! A dead cluster must not hold up the reconciles of tenants elsewhere, so each pool is lazy
//! (creating it connects nowhere), small, and waits at most [`ACQUIRE_TIMEOUT`] for a
//! connection; a first use migrates the cluster, once per pool, within [`MIGRATE_TIMEOUT`].
//!
//! Errors become a [`ClusterProblem`], whose text names the cluster and never the DSN.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    hash::{Hash, Hasher},
    str::FromStr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt, runtime::reflector::Store};
use reqwest::Url;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::placement::ClusterView;
use crate::{
    conditions::Status,
    crd::{DEFAULT_CLUSTER, PostgresCluster, Tenant},
    tenant::build::parse_base_url,
};

/// How long a reconcile waits for a connection to a cluster before calling it unreachable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long migrating one cluster may take.
pub const MIGRATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Connections per cluster: the operator's statements are short and few.
const MAX_CONNECTIONS: u32 = 3;

/// A cluster ready for a tenant's statements: its admin pool, and the base of tenant DSNs.
#[derive(Clone, Debug)]
pub struct Handle {
    pub name: String,
    pub pool: PgPool,
    pub tenant_base: Url,
}

/// Why a cluster cannot be used now. The text is safe for a status condition.
#[derive(Debug, thiserror::Error)]
pub enum ClusterProblem {
    #[error("database cluster {0} does not exist (no PostgresCluster of that name)")]
    NotFound(String),
    #[error("database cluster {cluster}: Secret {secret} was not found")]
    SecretNotFound { cluster: String, secret: String },
    #[error("database cluster {cluster}: {problem}")]
    InvalidSecret { cluster: String, problem: String },
    #[error("database cluster {cluster} is unreachable; retrying")]
    Unreachable {
        cluster: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database cluster {cluster}: applying the migrations failed; see the operator log")]
    MigrationFailed {
        cluster: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("database cluster {cluster}: applying the migrations timed out")]
    MigrationTimedOut { cluster: String },
    #[error("failed to read PostgresCluster or Secret of cluster {0}")]
    Read(String, #[source] kube::Error),
}

impl ClusterProblem {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterProblem::NotFound(_) => "ClusterNotFound",
            ClusterProblem::SecretNotFound { .. } => "ClusterSecretNotFound",
            ClusterProblem::InvalidSecret { .. } => "ClusterSecretInvalid",
            ClusterProblem::Unreachable { .. } => "ClusterUnreachable",
            ClusterProblem::MigrationFailed { .. } | ClusterProblem::MigrationTimedOut { .. } => {
                "ClusterMigrationFailed"
            }
            ClusterProblem::Read(..) => "ReadCluster",
        }
    }

    /// A failure of the Kubernetes API rather than a state of the cluster.
    pub fn is_api_error(&self) -> bool {
        matches!(self, ClusterProblem::Read(..))
    }
}

struct Entry {
    fingerprint: u64,
    handle: Handle,
    /// Whether this pool's cluster has been migrated by this process.
    migrated: tokio::sync::Mutex<bool>,
    /// `migrated`, readable without waiting for a migration under way.
    done: AtomicBool,
}

/// Every cluster the operator knows, and the placements it made.
pub struct Clusters {
    default: Handle,
    default_accepts_new_tenants: bool,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// Held while a tenant is placed, so tenants placed at the same time see each other.
    pub placing: tokio::sync::Mutex<()>,
    /// Placements this process recorded, until the Tenant store shows them.
    recent: Mutex<HashMap<String, String>>,
    tenants: OnceLock<Store<Tenant>>,
    /// Each PostgresCluster's `Ready` status as the Tenant controller's watch last saw it.
    seen_ready: Mutex<HashMap<String, Option<String>>>,
}

impl Clusters {
    /// The registry with the default cluster: the operator's own pool (already migrated) and
    /// the base of its tenants' DSNs.
    pub fn new(pool: PgPool, tenant_base: Url, default_accepts_new_tenants: bool) -> Self {
        Self {
            default: Handle {
                name: DEFAULT_CLUSTER.to_owned(),
                pool,
                tenant_base,
            },
            default_accepts_new_tenants,
            entries: Mutex::new(HashMap::new()),
            placing: tokio::sync::Mutex::new(()),
            recent: Mutex::new(HashMap::new()),
            tenants: OnceLock::new(),
            seen_ready: Mutex::new(HashMap::new()),
        }
    }

    /// The default cluster.
    pub fn default_handle(&self) -> &Handle {
        &self.default
    }

    /// Gives the registry the Tenant controller's store, for counting tenants per cluster.
    pub fn set_tenant_store(&self, store: Store<Tenant>) {
        let _ = self.tenants.set(store);
    }

    /// The cluster named `name`, connected and migrated.
    pub async fn handle(&self, name: &str, client: &Client) -> Result<Handle, ClusterProblem> {
        if name == DEFAULT_CLUSTER {
            return Ok(self.default.clone());
        }
        let api: Api<PostgresCluster> = Api::all(client.clone());
        match api
            .get_opt(name)
            .await
            .map_err(|e| ClusterProblem::Read(name.to_owned(), e))?
        {
            Some(pgc) => self.handle_for(&pgc, client).await,
            None => {
                self.forget(name);
                Err(ClusterProblem::NotFound(name.to_owned()))
            }
        }
    }

    /// The cluster `pgc` describes, connected and migrated.
    pub async fn handle_for(
        &self,
        pgc: &PostgresCluster,
        client: &Client,
    ) -> Result<Handle, ClusterProblem> {
        let entry = self.entry_for(pgc, client).await?;
        if entry.done.load(Ordering::Acquire) {
            return Ok(entry.handle.clone());
        }
        let mut migrated = entry.migrated.lock().await;
        if !*migrated {
            let cluster = entry.handle.name.clone();
            // Reach it first, so a dead cluster reads as unreachable rather than unmigrated.
            ping(&entry.handle).await?;
            match tokio::time::timeout(
                MIGRATE_TIMEOUT,
                paddock_contract::schema::MIGRATOR.run(&entry.handle.pool),
            )
            .await
            {
                Ok(Ok(())) => {
                    tracing::info!(cluster = %cluster, "database migrations applied");
                    *migrated = true;
                    entry.done.store(true, Ordering::Release);
                }
                Ok(Err(source)) => {
                    tracing::error!(cluster = %cluster, error = ?source, "migrating a database cluster failed");
                    return Err(ClusterProblem::MigrationFailed { cluster, source });
                }
                Err(_) => return Err(ClusterProblem::MigrationTimedOut { cluster }),
            }
        }
        Ok(entry.handle.clone())
    }

    /// The cached pool of `pgc`, or a new one when there is none or its settings changed.
    async fn entry_for(
        &self,
        pgc: &PostgresCluster,
        client: &Client,
    ) -> Result<Arc<Entry>, ClusterProblem> {
        let name = pgc.name_any();
        let secret_ref = &pgc.spec.admin_secret_ref;
        let secret_name = format!("{}/{}", secret_ref.namespace, secret_ref.name);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &secret_ref.namespace);
        let secret = secrets
            .get_opt(&secret_ref.name)
            .await
            .map_err(|e| ClusterProblem::Read(name.clone(), e))?
            .ok_or_else(|| ClusterProblem::SecretNotFound {
                cluster: name.clone(),
                secret: secret_name.clone(),
            })?;
        let invalid = |problem: String| ClusterProblem::InvalidSecret {
            cluster: name.clone(),
            problem,
        };
        let dsn = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&secret_ref.key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .ok_or_else(|| {
                invalid(format!(
                    "Secret {secret_name} has no key {:?} holding a DSN",
                    secret_ref.key
                ))
            })?;
        let (admin, tenant_base) = connection_urls(
            dsn.trim(),
            pgc.spec.database.as_deref(),
            pgc.spec.tenant_url.as_deref(),
        )
        .map_err(|p| {
            invalid(format!(
                "Secret {secret_name} key {:?}: {p}",
                secret_ref.key
            ))
        })?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (admin.as_str(), tenant_base.as_str()).hash(&mut hasher);
        let fingerprint = hasher.finish();
        let mut entries = self.entries.lock().expect("clusters lock");
        if let Some(e) = entries.get(&name)
            && e.fingerprint == fingerprint
        {
            return Ok(e.clone());
        }
        let options = PgConnectOptions::from_str(admin.as_str())
            .map_err(|_| invalid("the DSN is not a valid PostgreSQL URL".to_owned()))?
            .application_name("paddock-operator");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .min_connections(0)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        let entry = Arc::new(Entry {
            fingerprint,
            handle: Handle {
                name: name.clone(),
                pool,
                tenant_base,
            },
            migrated: tokio::sync::Mutex::new(false),
            done: AtomicBool::new(false),
        });
        if let Some(old) = entries.insert(name.clone(), entry.clone()) {
            tracing::info!(cluster = %name, "the cluster's connection settings changed; reconnecting");
            let pool = old.handle.pool.clone();
            tokio::spawn(async move { pool.close().await });
        }
        Ok(entry)
    }

    /// Drops the pool of a cluster that no longer exists.
    pub fn forget(&self, name: &str) {
        if let Some(old) = self.entries.lock().expect("clusters lock").remove(name) {
            let pool = old.handle.pool.clone();
            tokio::spawn(async move { pool.close().await });
        }
    }

    /// The clusters as placement sees them: the default one and each PostgresCluster.
    pub fn views(&self, clusters: &[PostgresCluster]) -> Vec<ClusterView> {
        let mut views = vec![ClusterView {
            name: DEFAULT_CLUSTER.to_owned(),
            accepts_new_tenants: self.default_accepts_new_tenants,
            ready: true,
            deleting: false,
        }];
        views.extend(clusters.iter().map(|c| ClusterView {
            name: c.name_any(),
            accepts_new_tenants: c.spec.accepts_new_tenants,
            ready: c.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == Status::True.as_str())
            }),
            deleting: c.metadata.deletion_timestamp.is_some(),
        }));
        views
    }

    /// Tenants per cluster, leaving out `except`: what the Tenant store shows, plus the
    /// placements this process made that it does not show yet.
    pub fn tenant_counts(&self, except: &str) -> BTreeMap<String, usize> {
        let mut on: HashMap<String, String> = HashMap::new();
        if let Some(store) = self.tenants.get() {
            for t in store.state() {
                if let Some(c) = placed_cluster(&t) {
                    on.insert(t.name_any(), c);
                }
            }
        }
        let mut recent = self.recent.lock().expect("clusters lock");
        // A placement the store shows is no longer needed here.
        recent.retain(|tenant, _| !on.contains_key(tenant));
        for (tenant, cluster) in recent.iter() {
            on.insert(tenant.clone(), cluster.clone());
        }
        let mut counts = BTreeMap::new();
        for (tenant, cluster) in on {
            if tenant != except {
                *counts.entry(cluster).or_insert(0) += 1;
            }
        }
        counts
    }

    /// The tenants placed on `cluster`: those `listed` (a fresh list of every Tenant) records there,
    /// and those this process placed there that the list does not show yet. Sorted.
    pub fn placed_on(&self, cluster: &str, listed: &[Tenant]) -> Vec<String> {
        let mut placed: BTreeSet<String> = listed
            .iter()
            .filter(|t| placed_cluster(t).as_deref() == Some(cluster))
            .map(ResourceExt::name_any)
            .collect();
        let listed: HashSet<String> = listed.iter().map(ResourceExt::name_any).collect();
        placed.extend(
            self.recent
                .lock()
                .expect("clusters lock")
                .iter()
                .filter(|(tenant, on)| *on == cluster && !listed.contains(*tenant))
                .map(|(tenant, _)| tenant.clone()),
        );
        placed.into_iter().collect()
    }

    /// Remembers that `tenant` was placed on `cluster`, until the store shows it.
    pub fn record_placement(&self, tenant: &str, cluster: &str) {
        self.recent
            .lock()
            .expect("clusters lock")
            .insert(tenant.to_owned(), cluster.to_owned());
    }

    /// Whether `pgc` is new to the watch or its `Ready` status changed since the watch last saw it:
    /// only then do its tenants need a reconcile (its tenant count changes often and means
    /// nothing to them).
    pub fn readiness_changed(&self, pgc: &PostgresCluster) -> bool {
        let ready = pgc.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .map(|c| c.status.clone())
        });
        let mut seen = self.seen_ready.lock().expect("clusters lock");
        seen.insert(pgc.name_any(), ready.clone()) != Some(ready)
    }

    /// The Tenants (from the store) placed on, or naming, `cluster`.
    pub fn tenants_of(&self, cluster: &str) -> Vec<String> {
        let Some(store) = self.tenants.get() else {
            return vec![];
        };
        store
            .state()
            .iter()
            .filter(|t| {
                placed_cluster(t).as_deref() == Some(cluster)
                    || requested_cluster(t) == Some(cluster)
            })
            .map(|t| t.name_any())
            .collect()
    }
}

/// The cluster a Tenant's status records. A Tenant provisioned before clusters existed has a
/// role but no cluster: it is on the default one.
pub fn placed_cluster(t: &Tenant) -> Option<String> {
    let status = t.status.as_ref()?;
    status.database_cluster.clone().or_else(|| {
        status
            .database_role
            .as_ref()
            .map(|_| DEFAULT_CLUSTER.to_owned())
    })
}

/// The cluster a Tenant's spec names.
pub fn requested_cluster(t: &Tenant) -> Option<&str> {
    t.spec.database.as_ref()?.cluster.as_deref()
}

/// Waits for one round trip to the cluster; the server's version.
pub async fn ping(handle: &Handle) -> Result<String, ClusterProblem> {
    sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&handle.pool)
        .await
        .map_err(|source| ClusterProblem::Unreachable {
            cluster: handle.name.clone(),
            source,
        })
}

/// The operator's admin URL (with `database` in place of the DSN's) and the base of tenant
/// DSNs (`tenant_url`, else the admin URL; its credentials are replaced per tenant).
pub fn connection_urls(
    dsn: &str,
    database: Option<&str>,
    tenant_url: Option<&str>,
) -> Result<(Url, Url), String> {
    let mut admin = parse_base_url(dsn)
        .map_err(|_| "the value is not a postgres:// URL with a host".to_owned())?;
    if let Some(db) = database {
        admin.set_path(&format!("/{db}"));
    }
    let tenant_base = match tenant_url {
        Some(u) => parse_base_url(u)
            .map_err(|_| "spec.tenantUrl is not a postgres:// URL with a host".to_owned())?,
        None => admin.clone(),
    };
    Ok((admin, tenant_base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(status: serde_json::Value) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "paddock.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": "acme"},
            "spec": {"namespaces": ["acme"], "auth": {"issuer": "https://idp.example.com", "audience": "paddock"},
                     "budget": {"monthlyLimit": "10"}, "database": {"cluster": "east"}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_tenant_provisioned_before_clusters_existed_is_on_the_default_cluster() {
        // The upgrade path: such a tenant has a role in status and no cluster.
        let legacy = tenant(serde_json::json!({"databaseRole": "paddock_t_acme_1a2b3c4d"}));
        assert_eq!(placed_cluster(&legacy).as_deref(), Some(DEFAULT_CLUSTER));
        let placed = tenant(serde_json::json!({"databaseCluster": "east", "databaseRole": "r"}));
        assert_eq!(placed_cluster(&placed).as_deref(), Some("east"));
        assert_eq!(placed_cluster(&tenant(serde_json::json!({}))), None);
        assert_eq!(requested_cluster(&placed), Some("east"));
    }

    #[tokio::test]
    async fn only_a_change_of_a_clusters_readiness_concerns_its_tenants() {
        let clusters = Clusters::new(
            PgPoolOptions::new()
                .connect_lazy("postgres://x@127.0.0.1:9/x")
                .unwrap(),
            Url::parse("postgres://db/x").unwrap(),
            true,
        );
        let pgc = |ready: Option<&str>, tenants: i32| -> PostgresCluster {
            let conditions: Vec<serde_json::Value> = ready
                .map(|r| vec![serde_json::json!({"type": "Ready", "status": r, "reason": "R", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"})])
                .unwrap_or_default();
            serde_json::from_value(serde_json::json!({
                "apiVersion": "paddock.dev/v1alpha1", "kind": "PostgresCluster", "metadata": {"name": "east"},
                "spec": {"adminSecretRef": {"namespace": "db", "name": "s"}},
                "status": {"conditions": conditions, "tenants": tenants},
            }))
            .unwrap()
        };
        assert!(clusters.readiness_changed(&pgc(None, 0)), "a new cluster");
        assert!(!clusters.readiness_changed(&pgc(None, 0)));
        assert!(
            clusters.readiness_changed(&pgc(Some("True"), 0)),
            "became Ready"
        );
        assert!(
            !clusters.readiness_changed(&pgc(Some("True"), 7)),
            "only its count changed"
        );
        assert!(
            clusters.readiness_changed(&pgc(Some("False"), 7)),
            "went down"
        );
        assert!(
            clusters.readiness_changed(&pgc(Some("True"), 7)),
            "came back"
        );
    }

    #[test]
    fn a_cloudnative_pg_superuser_uri_gets_the_application_database() {
        let (admin, base) = connection_urls(
            "postgresql://postgres:s3cret@pg-one-rw.db:5432/*",
            Some("app"),
            None,
        )
        .unwrap();
        assert_eq!(
            admin.as_str(),
            "postgresql://postgres:s3cret@pg-one-rw.db:5432/app"
        );
        assert_eq!(base, admin);
    }

    #[test]
    fn tenants_may_reach_the_cluster_through_another_address() {
        let (admin, base) = connection_urls(
            "postgres://admin:pw@10.0.0.5:5432/paddock",
            None,
            Some("postgres://pooler.db.svc:6432/paddock?sslmode=require"),
        )
        .unwrap();
        assert_eq!(admin.host_str(), Some("10.0.0.5"));
        assert_eq!(base.host_str(), Some("pooler.db.svc"));
        assert_eq!(base.query(), Some("sslmode=require"));
    }

    #[test]
    fn a_value_that_is_no_postgres_url_is_refused_without_echoing_it() {
        for bad in [
            "host=db user=x password=hunter2",
            "mysql://u:hunter2@h/db",
            "",
        ] {
            let e = connection_urls(bad, None, None).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(connection_urls("postgres://h/db", None, Some("http://x")).is_err());
    }
}
