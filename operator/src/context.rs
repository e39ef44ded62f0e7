//! What every reconcile gets: the Kubernetes client, the admin database pool of the default
//! cluster and the registry of every cluster, the event recorder, metrics, the development issuer, settings, and per-object retry backoff.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use kube::{
    Client, Resource,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder},
        finalizer,
    },
};
use reqwest::Url;
use sqlx::PgPool;

use crate::{cluster::Clusters, devissuer::DevIssuer, metrics::Metrics};

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Image of ToolServer Deployments without `spec.image`.
    pub runtime_image: String,
    /// Tenant DSNs are this URL with the tenant's credentials (host, port, database, TLS mode).
    pub tenant_database_url: Url,
    /// Test-only: base URLs to call instead of a ToolServer's Service URL, keyed `namespace/name`.
    pub service_url_overrides: HashMap<String, String>,
    /// Timeout of one call from the operator to a runtime or an issuer.
    pub http_timeout: Duration,
    /// Reconciles each controller runs at once.
    pub reconcile_concurrency: u16,
}

impl Settings {
    /// Each controller's configuration. Its reconciles are bounded: unbounded, ten thousand
    /// Tenants applied at once ran ten thousand reconciles whose requests the API server refused
    /// (429), the leader Lease's renewals among them, and the operator lost its leadership.
    pub fn controller_config(&self) -> kube::runtime::controller::Config {
        kube::runtime::controller::Config::default().concurrency(self.reconcile_concurrency)
    }

    /// The base URL the operator calls for ToolServer `namespace/name`: the override if one is
    /// set, otherwise `service_url`.
    pub fn call_url(&self, namespace: &str, name: &str, service_url: &str) -> String {
        self.service_url_overrides
            .get(&format!("{namespace}/{name}"))
            .cloned()
            .unwrap_or_else(|| service_url.to_owned())
    }
}

/// Parses one `--service-url-override` value, `namespace/name=http://host:port`.
pub fn parse_override(s: &str) -> Result<(String, String), String> {
    let (key, url) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected namespace/name=URL"))?;
    let (ns, name) = key
        .split_once('/')
        .ok_or_else(|| format!("{s:?}: expected namespace/name=URL"))?;
    if ns.is_empty() || name.is_empty() {
        return Err(format!("{s:?}: namespace and name must not be empty"));
    }
    let parsed = Url::parse(url).map_err(|e| format!("{s:?}: invalid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{s:?}: the URL must be http or https"));
    }
    Ok((key.to_owned(), url.trim_end_matches('/').to_owned()))
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    /// The default cluster's admin pool (the operator's own database).
    pub pool: PgPool,
    /// Every database cluster tenants may be placed on, the default one included.
    pub clusters: Clusters,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub dev_issuer: DevIssuer,
    pub settings: Settings,
    pub http: reqwest::Client,
    pub backoff: Backoff,
    /// ToolServers verified recently: key → (config hash, when).
    pub verified: Mutex<HashMap<String, (String, Instant)>>,
    /// Issuer discovery results: issuer → (JWKS URL or a reason, when).
    pub discovery: Mutex<HashMap<String, Discovered>>,
}

/// One issuer's discovery: its JWKS URL or why there is none, and when that was learnt.
pub type Discovered = (Result<String, String>, Instant);

impl Context {
    /// Publishes an event about `obj`. Failing to publish is logged, never fatal.
    pub async fn event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: impl Into<String>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note.into(), 1000)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "failed to publish an event");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Per-object exponential backoff for failed reconciles: 2 s, 4 s, ... up to 5 minutes,
/// reset by a successful reconcile.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    const BASE: Duration = Duration::from_secs(2);
    const MAX: Duration = Duration::from_secs(300);

    /// Records a failure of `key` and returns how long to wait before the next attempt.
    pub fn next(&self, key: &str) -> Duration {
        let mut map = self.failures.lock().expect("backoff lock");
        let n = map.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        Self::delay(*n)
    }

    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff lock").remove(key);
    }

    fn delay(failures: u32) -> Duration {
        Self::BASE
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(Self::MAX)
    }
}

/// The outcome of kube-runtime's `finalizer` helper, with one of its errors that is not a failure: a second
/// reconcile that raced the first to removing the finalizer finds the object already gone (404).
pub fn finalizer_outcome<E>(
    result: Result<Action, finalizer::Error<E>>,
) -> Result<Action, finalizer::Error<E>>
where
    E: std::error::Error + 'static,
{
    match result {
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(e))) if e.code == 404 => {
            Ok(Action::await_change())
        }
        other => other,
    }
}

/// The failure-metric label of a `finalizer` error: the inner error's own for apply and cleanup failures.
pub fn finalizer_label<E>(
    e: &finalizer::Error<E>,
    inner: impl Fn(&E) -> &'static str,
) -> &'static str
where
    E: std::error::Error + 'static,
{
    match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => inner(e),
        finalizer::Error::AddFinalizer(_) => "AddFinalizer",
        finalizer::Error::RemoveFinalizer(_) => "RemoveFinalizer",
        _ => "Finalizer",
    }
}

/// `kind/namespace/name` (or `kind/name`), the key of an object in the backoff and caches.
pub fn key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    let meta = obj.meta();
    match &meta.namespace {
        Some(ns) => format!(
            "{}/{ns}/{}",
            K::kind(&()),
            meta.name.as_deref().unwrap_or_default()
        ),
        None => format!(
            "{}/{}",
            K::kind(&()),
            meta.name.as_deref().unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let b = Backoff::default();
        let delays: Vec<u64> = (0..10).map(|_| b.next("Tenant/acme").as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(b.next("Tenant/other").as_secs(), 2, "keys are independent");
        b.reset("Tenant/acme");
        assert_eq!(b.next("Tenant/acme").as_secs(), 2);
    }

    #[test]
    fn overrides_parse_and_apply_only_to_their_toolserver() {
        let (k, v) = parse_override("acme/docs=http://127.0.0.1:18080/").unwrap();
        assert_eq!(
            (k.as_str(), v.as_str()),
            ("acme/docs", "http://127.0.0.1:18080")
        );
        for bad in [
            "acme/docs",
            "docs=http://x",
            "/docs=http://x",
            "acme/docs=ftp://x",
            "acme/docs=::",
        ] {
            assert!(parse_override(bad).is_err(), "{bad}");
        }
        let settings = Settings {
            runtime_image: "img".into(),
            tenant_database_url: Url::parse("postgres://h/db").unwrap(),
            service_url_overrides: HashMap::from([(k, v)]),
            http_timeout: Duration::from_secs(5),
            reconcile_concurrency: 1,
        };
        assert_eq!(
            settings.call_url("acme", "docs", "http://docs.acme.svc:8080"),
            "http://127.0.0.1:18080"
        );
        assert_eq!(
            settings.call_url("acme", "other", "http://other.acme.svc:8080"),
            "http://other.acme.svc:8080"
        );
    }
}
