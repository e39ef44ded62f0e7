//! Reconciles against a mocked API server (tower-test), for the logic that needs no cluster: what each
//! controller asks Kubernetes for, and what it writes back.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Request, Response, StatusCode};
use kube::{
    Client,
    client::Body,
    runtime::{
        controller::Action,
        events::{Recorder, Reporter},
    },
};
use paddock_operator::{
    cluster::{self, Clusters},
    context::{Backoff, Context, Settings},
    crd::{PostgresCluster, Tenant, ToolServer},
    devissuer::DevIssuer,
    metrics::Metrics,
    names::MANAGER,
    tenant, toolserver,
};
use reqwest::Url;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tower_test::mock;

/// One request a reconcile sent.
#[derive(Clone, Debug)]
struct Sent {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

impl Sent {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

type Answer = Box<dyn Fn(&Sent) -> (StatusCode, Value) + Send>;

/// A context whose client talks to a fake API server that answers with `answer` and records every request.
/// The database pool never connects: none of these reconciles reach the database.
fn context(answer: Answer) -> (Arc<Context>, Arc<Mutex<Vec<Sent>>>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let s = Sent {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, reply) = answer(&s);
            log.lock().unwrap().push(s);
            respond.send_response(
                Response::builder()
                    .status(status)
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    let client = Client::new(service, "default");
    let pool = PgPoolOptions::new()
        .connect_lazy("postgres://paddock@127.0.0.1:9/never")
        .unwrap();
    let tenant_base = Url::parse("postgres://db.paddock.svc:5432/paddock").unwrap();
    let ctx = Context {
        client: client.clone(),
        clusters: Clusters::new(pool.clone(), tenant_base.clone(), true),
        pool,
        recorder: Recorder::new(
            client,
            Reporter {
                controller: MANAGER.into(),
                instance: None,
            },
        ),
        metrics: Metrics::new(),
        dev_issuer: DevIssuer::generate("urn:paddock:dev-issuer"),
        settings: Settings {
            runtime_image: "paddock-runtime:test".into(),
            tenant_database_url: tenant_base,
            service_url_overrides: HashMap::new(),
            http_timeout: Duration::from_secs(1),
            reconcile_concurrency: 4,
        },
        http: reqwest::Client::new(),
        backoff: Backoff::default(),
        verified: Mutex::default(),
        discovery: Mutex::default(),
    };
    (Arc::new(ctx), sent)
}

fn not_found() -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
    )
}

/// What the API server answers a status patch with: the object carrying the patched status.
fn with_status(object: &Value, patch: &Value) -> (StatusCode, Value) {
    let mut object = object.clone();
    object["status"] = patch["status"].clone();
    (StatusCode::OK, object)
}

/// The API server of a reconcile that may only report: Tenant `acme`'s status patch (answered with `stored`
/// carrying it) and events; `extra` answers anything else it knows, and the rest is not found.
fn tenant_status_api(
    stored: Value,
    extra: impl Fn(&Sent) -> Option<(StatusCode, Value)> + Send + 'static,
) -> Answer {
    Box::new(move |s| match s.method.as_str() {
        "PATCH" if s.path == "/apis/paddock.dev/v1alpha1/tenants/acme/status" => {
            with_status(&stored, &s.body)
        }
        "POST" if s.path.starts_with("/apis/events.k8s.io/") => {
            (StatusCode::CREATED, s.body.clone())
        }
        _ => extra(s).unwrap_or_else(not_found),
    })
}

/// Each request's method and path, in order.
fn requests(sent: &[Sent]) -> Vec<(&str, &str)> {
    sent.iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect()
}

/// The requests were Tenant `acme`'s status patch and its event, and nothing else.
fn assert_only_status_and_event(sent: &[Sent]) {
    assert_eq!(
        requests(sent),
        [
            ("PATCH", "/apis/paddock.dev/v1alpha1/tenants/acme/status"),
            ("POST", "/apis/events.k8s.io/v1/namespaces/default/events"),
        ],
        "only the status and its event"
    );
}

fn tenant_object(namespaces: &[&str]) -> Value {
    json!({
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "Tenant",
        "metadata": {
            "name": "acme",
            "uid": "0b9f1a52-5f0e-4d6c-9f43-2c1e2f3a4b5c",
            "generation": 3,
            "finalizers": [tenant::FINALIZER],
        },
        "spec": {
            "namespaces": namespaces,
            "auth": {
                "issuer": "https://idp.example.com",
                "audience": "paddock",
                "jwksUri": "https://idp.example.com/jwks.json",
            },
            "budget": {"monthlyLimit": "25.00"},
        },
    })
}

fn toolserver_object() -> Value {
    json!({
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "ToolServer",
        "metadata": {
            "name": "docs",
            "namespace": "acme",
            "uid": "6f1c1d4e-3a52-4f0e-9a43-0c1e2f3a4b5c",
            "generation": 2,
        },
        "spec": {"tenantRef": "acme", "tools": ["search", "get_document"]},
    })
}

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}

fn status_patches(sent: &[Sent]) -> Vec<&Sent> {
    sent.iter()
        .filter(|s| s.method == "PATCH" && s.path.ends_with("/status"))
        .collect()
}

/// A spec that can never be provisioned is reported and left alone until it changes: no namespace, Secret
/// or database is touched.
#[tokio::test]
async fn an_invalid_tenant_is_not_ready_and_waits_for_a_change() {
    let object = tenant_object(&["kube-system"]);
    let stored = object.clone();
    let (ctx, sent) = context(tenant_status_api(stored, |_| None));
    let tenant: Tenant = serde_json::from_value(object).unwrap();

    let action = tenant::reconcile(Arc::new(tenant), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    let sent = sent.lock().unwrap().clone();
    assert_only_status_and_event(&sent);
    let patch = &sent[0];
    assert_eq!(patch.param("fieldManager"), Some(MANAGER));
    assert_eq!(patch.param("force"), Some("true"));
    let status = &patch.body["status"];
    let ready = condition(status, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("InvalidSpec"))
    );
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("kube-* system namespaces cannot be claimed")),
        "{ready}"
    );
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(sent[1].body["reason"], "InvalidSpec");
}

/// A Tenant naming a database cluster that does not exist is not placed anywhere (no status records a
/// cluster, no namespace, Secret or database is touched) and is retried, since creating the cluster resolves it.
#[tokio::test]
async fn a_tenant_naming_a_missing_cluster_is_not_placed_and_waits_for_it() {
    let mut object = tenant_object(&["acme"]);
    object["spec"]["database"] = json!({"cluster": "nowhere"});
    let stored = object.clone();
    let (ctx, sent) = context(tenant_status_api(stored, |s| {
        (s.method == "GET" && s.path == "/apis/paddock.dev/v1alpha1/postgresclusters").then(|| {
            (
                StatusCode::OK,
                json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "PostgresClusterList", "metadata": {}, "items": []}),
            )
        })
    }));
    let tenant: Tenant = serde_json::from_value(object).unwrap();

    let action = tenant::reconcile(Arc::new(tenant), ctx).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let sent = sent.lock().unwrap().clone();
    let patches = status_patches(&sent);
    assert_eq!(patches.len(), 1, "one status write: {sent:?}");
    let status = &patches[0].body["status"];
    let ready = condition(status, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("ClusterNotFound"))
    );
    assert!(
        status.get("databaseCluster").is_none() && status.get("databaseRole").is_none(),
        "nothing is recorded for a tenant that is not placed: {status}"
    );
    assert!(
        !sent.iter().any(|s| s.path.contains("/namespaces/acme")
            || s.path.starts_with("/api/v1/namespaces/acme")),
        "no namespace or Secret is touched: {sent:?}"
    );
}

/// A placed tenant whose spec now names another cluster is refused, not moved: no cluster is even listed,
/// the recorded placement stays, and the reconcile waits for the spec to change back.
#[tokio::test]
async fn a_placed_tenant_is_never_moved_by_a_spec_change() {
    let mut object = tenant_object(&["acme"]);
    object["spec"]["database"] = json!({"cluster": "west"});
    object["status"] =
        json!({"databaseCluster": "east", "databaseRole": "paddock_t_acme_1a2b3c4d"});
    let stored = object.clone();
    let (ctx, sent) = context(tenant_status_api(stored, |_| None));
    let tenant: Tenant = serde_json::from_value(object).unwrap();

    let action = tenant::reconcile(Arc::new(tenant), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    let sent = sent.lock().unwrap().clone();
    assert_only_status_and_event(&sent);
    let status = &sent[0].body["status"];
    assert_eq!(status["databaseCluster"], "east");
    let ready = condition(status, "Ready");
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("PlacementChangeRefused"))
    );
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("east") && m.contains("west")),
        "{ready}"
    );
}

/// A ToolServer whose Tenant does not exist gets no children (it had none to remove) and says why.
#[tokio::test]
async fn a_toolserver_of_a_missing_tenant_is_refused() {
    let object = toolserver_object();
    let stored = object.clone();
    let (ctx, sent) = context(Box::new(move |s| match s.method.as_str() {
        "PATCH"
            if s.path == "/apis/paddock.dev/v1alpha1/namespaces/acme/toolservers/docs/status" =>
        {
            with_status(&stored, &s.body)
        }
        "POST" if s.path.starts_with("/apis/events.k8s.io/") => {
            (StatusCode::CREATED, s.body.clone())
        }
        _ => not_found(),
    }));
    let ts: ToolServer = serde_json::from_value(object).unwrap();

    let action = toolserver::reconcile(Arc::new(ts), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    let sent = sent.lock().unwrap().clone();
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("GET", "/apis/paddock.dev/v1alpha1/tenants/acme")
    );
    assert!(
        !sent
            .iter()
            .any(|s| s.method == "DELETE" || (s.method == "PATCH" && !s.path.ends_with("/status"))),
        "nothing is applied or deleted: {sent:?}"
    );
    let patches = status_patches(&sent);
    assert_eq!(patches.len(), 1);
    let status = &patches[0].body["status"];
    let ready = condition(status, "Ready");
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["reason"].as_str(),
            ready["message"].as_str()
        ),
        (
            Some("False"),
            Some("TenantNotFound"),
            Some("Tenant acme does not exist")
        )
    );
    assert_eq!(status["url"], "http://docs.acme.svc:8080");
    assert_eq!(status["observedGeneration"], 2);
}

/// The children are applied server-side under the operator's field manager, each at its own path, and the
/// Deployment that is not ready yet leaves the ToolServer progressing.
#[tokio::test]
async fn a_toolservers_children_are_applied_server_side_under_one_field_manager() {
    let ts_object = toolserver_object();
    let tenant = tenant_object(&["acme"]);
    let stored = ts_object.clone();
    let (ctx, sent) = context(Box::new(move |s| {
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", "/apis/paddock.dev/v1alpha1/tenants/acme") => (StatusCode::OK, tenant.clone()),
            ("GET", "/api/v1/namespaces/acme/secrets/paddock-db-acme") => (
                StatusCode::OK,
                json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "paddock-db-acme", "namespace": "acme"},
                    "data": {"PADDOCK_DATABASE_URL": "cG9zdGdyZXM6Ly94"},
                }),
            ),
            ("PATCH", "/apis/paddock.dev/v1alpha1/namespaces/acme/toolservers/docs/status") => {
                with_status(&stored, &s.body)
            }
            ("PATCH", _) => (StatusCode::OK, s.body.clone()),
            ("POST", p) if p.starts_with("/apis/events.k8s.io/") => {
                (StatusCode::CREATED, s.body.clone())
            }
            _ => not_found(),
        }
    }));
    let ts: ToolServer = serde_json::from_value(ts_object).unwrap();

    let action = toolserver::reconcile(Arc::new(ts), ctx).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(30)));
    let sent = sent.lock().unwrap().clone();
    let applied: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.method == "PATCH" && !s.path.ends_with("/status"))
        .collect();
    let paths: Vec<&str> = applied.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/acme/configmaps/docs-runtime",
            "/api/v1/namespaces/acme/services/docs",
            "/apis/apps/v1/namespaces/acme/deployments/docs",
        ]
    );
    for s in &applied {
        assert_eq!(s.content_type, "application/apply-patch+yaml", "{}", s.path);
        assert_eq!(s.param("fieldManager"), Some(MANAGER), "{}", s.path);
        assert_eq!(s.param("force"), Some("true"), "{}", s.path);
    }
    let deployment = &applied[2].body;
    assert_eq!(
        (
            deployment["apiVersion"].as_str(),
            deployment["kind"].as_str()
        ),
        (Some("apps/v1"), Some("Deployment"))
    );
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["uid"],
        "6f1c1d4e-3a52-4f0e-9a43-0c1e2f3a4b5c"
    );
    let status = &status_patches(&sent)[0].body["status"];
    assert_eq!(condition(status, "Ready")["reason"], "Progressing");
    assert_eq!(condition(status, "IssuersResolved")["status"], "True");
    assert_eq!(condition(status, "Verified")["reason"], "NotReady");
}

/// A task whose timeout never parses is rejected without calling its ToolServer, and waits for a change.
#[tokio::test]
async fn an_agenttask_with_an_unparsable_timeout_is_rejected_without_a_call() {
    let object = json!({
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {
            "name": "ask",
            "namespace": "acme",
            "uid": "2d6b0c1e-9a52-4f0e-9a43-0c1e2f3a4b5c",
            "generation": 1,
            "finalizers": [paddock_operator::agenttask::FINALIZER],
        },
        "spec": {"toolServerRef": "docs", "skill": "rag", "input": "q", "timeout": "whenever"},
    });
    let stored = object.clone();
    let (ctx, sent) = context(Box::new(move |s| match s.method.as_str() {
        "PATCH" if s.path == "/apis/paddock.dev/v1alpha1/namespaces/acme/agenttasks/ask/status" => {
            with_status(&stored, &s.body)
        }
        "POST" if s.path.starts_with("/apis/events.k8s.io/") => {
            (StatusCode::CREATED, s.body.clone())
        }
        _ => not_found(),
    }));
    let task: paddock_operator::crd::AgentTask = serde_json::from_value(object).unwrap();

    let action = paddock_operator::agenttask::reconcile(Arc::new(task), ctx)
        .await
        .unwrap();

    assert_eq!(action, Action::await_change());
    let sent = sent.lock().unwrap().clone();
    assert!(
        !sent.iter().any(|s| s.path.contains("/toolservers/")),
        "the ToolServer is never read: {sent:?}"
    );
    let status = &status_patches(&sent)[0].body["status"];
    assert_eq!(status["state"], "rejected");
    let failed = condition(status, "Failed");
    assert_eq!(
        (failed["status"].as_str(), failed["reason"].as_str()),
        (Some("True"), Some("InvalidSpec"))
    );
}

fn postgres_cluster(deleting: bool) -> Value {
    let mut object = json!({
        "apiVersion": "paddock.dev/v1alpha1",
        "kind": "PostgresCluster",
        "metadata": {"name": "east", "uid": "9b1f0c2e-5a6d-4e7f-8a9b-0c1d2e3f4a5b", "generation": 1},
        "spec": {"adminSecretRef": {"namespace": "paddock-system", "name": "east-superuser", "key": "uri"}},
        "status": {"tenants": 1},
    });
    if deleting {
        object["metadata"]["deletionTimestamp"] = json!("2026-12-06T12:00:00Z");
        object["metadata"]["finalizers"] = json!([cluster::FINALIZER]);
    }
    object
}

/// A Tenant named `name` whose status places it on `cluster`.
fn placed_tenant(name: &str, cluster: &str) -> Value {
    let mut t = tenant_object(&[name]);
    t["metadata"]["name"] = json!(name);
    t["status"] =
        json!({"databaseCluster": cluster, "databaseRole": format!("paddock_t_{name}_1a2b3c4d")});
    t
}

/// The API server of a deleted PostgresCluster `east`: every Tenant is `tenants`; a status patch and
/// a JSON patch of the object (its finalizer) are answered with the object.
fn deleted_cluster_api(stored: Value, tenants: Vec<Value>) -> Answer {
    Box::new(move |s| match s.method.as_str() {
        "GET" if s.path == "/apis/paddock.dev/v1alpha1/tenants" => (
            StatusCode::OK,
            json!({"apiVersion": "paddock.dev/v1alpha1", "kind": "TenantList", "metadata": {}, "items": tenants}),
        ),
        "PATCH" if s.path == "/apis/paddock.dev/v1alpha1/postgresclusters/east/status" => {
            with_status(&stored, &s.body)
        }
        "PATCH" if s.path == "/apis/paddock.dev/v1alpha1/postgresclusters/east" => {
            (StatusCode::OK, stored.clone())
        }
        "POST" if s.path.starts_with("/apis/events.k8s.io/") => {
            (StatusCode::CREATED, s.body.clone())
        }
        _ => not_found(),
    })
}

/// A PostgresCluster gets the finalizer that guards its deletion before anything else is done.
#[tokio::test]
async fn a_postgrescluster_is_guarded_by_its_finalizer_first() {
    let object = postgres_cluster(false);
    let stored = object.clone();
    let (ctx, sent) = context(Box::new(move |s| match s.method.as_str() {
        "PATCH" if s.path == "/apis/paddock.dev/v1alpha1/postgresclusters/east" => {
            (StatusCode::OK, stored.clone())
        }
        _ => not_found(),
    }));
    let pgc: PostgresCluster = serde_json::from_value(object).unwrap();

    let action = cluster::reconcile(Arc::new(pgc), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1, "only the finalizer is added: {sent:?}");
    assert_eq!(sent[0].content_type, "application/json-patch+json");
    assert_eq!(
        sent[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [cluster::FINALIZER]},
        ])
    );
}

/// Deleting a PostgresCluster that tenants are placed on waits for them: the finalizer stays, the
/// `Deleting` condition names them (and only them), and the wait is no failure.
#[tokio::test]
async fn a_deleted_postgrescluster_stays_while_tenants_are_placed_on_it() {
    let object = postgres_cluster(true);
    let tenants = vec![
        placed_tenant("acme", "east"),
        placed_tenant("globex", "default"),
        placed_tenant("initech", "east"),
    ];
    let (ctx, sent) = context(deleted_cluster_api(object.clone(), tenants));
    let pgc: PostgresCluster = serde_json::from_value(object).unwrap();

    // Ok: waiting for tenants is not a failure (no error policy, no failure metric, no backoff).
    let action = cluster::reconcile(Arc::new(pgc), ctx).await.unwrap();

    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let sent = sent.lock().unwrap().clone();
    assert!(
        !sent
            .iter()
            .any(|s| s.path == "/apis/paddock.dev/v1alpha1/postgresclusters/east"),
        "the finalizer stays: {sent:?}"
    );
    let patches = status_patches(&sent);
    assert_eq!(patches.len(), 1, "one status write: {sent:?}");
    let status = &patches[0].body["status"];
    assert_eq!(status["tenants"], 2);
    let deleting = condition(status, "Deleting");
    assert_eq!(
        (deleting["status"].as_str(), deleting["reason"].as_str()),
        (Some("True"), Some("TenantsPlaced"))
    );
    let message = deleting["message"].as_str().unwrap();
    assert!(
        message.contains("the 2 tenants placed on this cluster (acme, initech)"),
        "{message}"
    );
    assert!(
        sent.iter().any(|s| s.method == "POST"
            && s.path.starts_with("/apis/events.k8s.io/")
            && s.body["reason"] == "TenantsPlaced"),
        "an event says why: {sent:?}"
    );
}

/// A deleted PostgresCluster no tenant is placed on loses its finalizer, and nothing else is written.
#[tokio::test]
async fn a_deleted_postgrescluster_without_tenants_is_released() {
    let object = postgres_cluster(true);
    let (ctx, sent) = context(deleted_cluster_api(
        object.clone(),
        vec![placed_tenant("globex", "default")],
    ));
    let pgc: PostgresCluster = serde_json::from_value(object).unwrap();

    let action = cluster::reconcile(Arc::new(pgc), ctx).await.unwrap();

    assert_eq!(action, Action::await_change());
    let sent = sent.lock().unwrap().clone();
    assert_eq!(
        requests(&sent),
        [
            ("GET", "/apis/paddock.dev/v1alpha1/tenants"),
            ("PATCH", "/apis/paddock.dev/v1alpha1/postgresclusters/east"),
        ]
    );
    assert_eq!(
        sent[1].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": cluster::FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
}
