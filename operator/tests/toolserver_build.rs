//! The ToolServer build and validate steps from the YAML fixtures: what the runtime
//! Deployment, Service and ConfigMap contain, that the rendered configuration is one the real
//! runtime loads, and that the pod hash follows every input.

use paddock_testkit::operator::fixtures;

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString, api::core::v1::ConfigMap, apimachinery::pkg::util::intstr::IntOrString,
};
use kube::CustomResourceExt;
use paddock_operator::{
    crd::{Tenant, ToolServer},
    devissuer::DevIssuer,
    names::CONFIG_HASH_ANNOTATION,
    toolserver::build::{self, Inputs, Refusal, ResolvedIssuer},
};
use paddock_runtime::{
    auth::JwksSource,
    config::{McpConfig, RuntimeConfig, SearchConfig},
    embed::ProviderKind,
};

const UID: &str = "6f1c1d4e-3a52-4f0e-9a43-0c1e2f3a4b5c";

fn fixture<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let f = fixtures("valid")
        .into_iter()
        .find(|f| f.file == file)
        .unwrap_or_else(|| panic!("no fixture {file}"));
    serde_yaml::from_str(&f.render("acme", "acme")).unwrap()
}

fn toolserver(file: &str) -> ToolServer {
    let mut ts: ToolServer = fixture(file);
    ts.metadata.uid = Some(UID.into());
    ts
}

fn tenant() -> Tenant {
    let mut t: Tenant = fixture("tenant-minimal.yaml");
    t.metadata.uid = Some("0d6ad2a4-a0f4-4c2b-8f7b-1b2c3d4e5f60".into());
    t
}

struct World {
    tenant: Tenant,
    issuers: Vec<ResolvedIssuer>,
    dev: DevIssuer,
    dev_jwks: String,
}

impl World {
    fn new() -> Self {
        let dev = DevIssuer::generate("urn:paddock:dev-issuer");
        let dev_jwks = dev.jwks_json();
        Self {
            tenant: tenant(),
            issuers: vec![ResolvedIssuer {
                issuer: "https://idp.example.com".into(),
                jwks_url: "https://idp.example.com/.well-known/jwks.json".into(),
            }],
            dev,
            dev_jwks,
        }
    }

    fn inputs<'a>(&'a self, ts: &'a ToolServer) -> Inputs<'a> {
        Inputs {
            toolserver: ts,
            tenant: &self.tenant,
            issuers: &self.issuers,
            dev_issuer: self.dev.issuer(),
            dev_jwks: &self.dev_jwks,
            default_image: "paddock/paddock-runtime:test",
        }
    }
}

/// Loads the rendered file with the runtime's own loader (which also validates it).
fn load_runtime_config(cm: &ConfigMap) -> RuntimeConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(build::CONFIG_FILE);
    std::fs::write(&path, &cm.data.as_ref().unwrap()[build::CONFIG_FILE]).unwrap();
    RuntimeConfig::load(&path)
        .unwrap_or_else(|e| panic!("the runtime refuses the rendered config: {e:?}"))
}

#[test]
fn minimal_toolserver_renders_a_config_the_runtime_loads() {
    let world = World::new();
    let ts = toolserver("toolserver-minimal.yaml");
    build::validate(&ts, &world.tenant).unwrap();
    let cm = build::config_map(&world.inputs(&ts)).unwrap();
    assert_eq!(cm.metadata.name.as_deref(), Some("docs-runtime"));
    assert_eq!(
        cm.data.as_ref().unwrap()[build::DEV_JWKS_FILE],
        world.dev_jwks
    );

    let cfg = load_runtime_config(&cm);
    assert_eq!(cfg.listen, "0.0.0.0:8080");
    assert_eq!(cfg.metrics_listen, "0.0.0.0:9090");
    assert_eq!(cfg.auth.resource, "http://docs.acme.svc:8080/mcp");
    assert_eq!(
        cfg.auth.authorization_servers,
        ["https://idp.example.com"],
        "clients are sent to the tenant's IdP only"
    );
    let [tenant_issuer, dev] = &cfg.auth.issuers[..] else {
        panic!("expected two issuers: {:?}", cfg.auth.issuers)
    };
    assert_eq!(tenant_issuer.issuer, "https://idp.example.com");
    assert_eq!(tenant_issuer.audience, "paddock");
    assert_eq!(
        tenant_issuer.jwks,
        JwksSource::Url("https://idp.example.com/.well-known/jwks.json".into())
    );
    assert_eq!(
        (
            tenant_issuer.tenant_claim.as_str(),
            tenant_issuer.user_claim.as_str()
        ),
        ("tenant_id", "sub")
    );
    assert_eq!(dev.issuer, "urn:paddock:dev-issuer");
    assert_eq!(
        dev.audience, "http://docs.acme.svc:8080/mcp",
        "dev tokens name this server as audience"
    );
    assert_eq!(
        dev.jwks,
        JwksSource::File("/etc/paddock/dev-issuer-jwks.json".into())
    );
    assert!(
        cfg.embedding.is_none(),
        "provider none renders no embedding section"
    );
    assert_eq!(
        cfg.llm.provider, "extractive",
        "no llm section: extractive answers"
    );
    assert_eq!(cfg.mcp.tools, ["search", "get_document", "list_documents"]);
    let a2a = cfg.a2a.settings(&cfg.auth.resource).unwrap();
    assert_eq!(
        a2a.max_running_tasks, 16,
        "no a2a section: the runtime's default"
    );
    let dep = build::deployment(&world.inputs(&ts), "abc");
    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let pre_stop = pod.containers[0]
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .expect("a preStop sleep");
    assert_eq!(pre_stop.seconds, build::PRE_STOP_SLEEP_SECONDS);
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(pre_stop.seconds + a2a.drain_timeout.as_secs() as i64 + 10),
        "the kubelet waits out the preStop sleep, the runtime's default drain, and 10 s more"
    );
}

/// A spec that names no MCP or search settings leaves the runtime's defaults, which the
/// runtime owns: the file names none of them.
#[test]
fn unset_mcp_and_search_settings_keep_the_runtime_defaults() {
    let world = World::new();
    let ts = toolserver("toolserver-minimal.yaml");
    let cm = build::config_map(&world.inputs(&ts)).unwrap();
    let file = &cm.data.as_ref().unwrap()[build::CONFIG_FILE];
    assert!(
        !file.contains("session_idle_timeout_ms") && !file.contains("search:"),
        "{file}"
    );
    let cfg = load_runtime_config(&cm);
    let (mcp, search) = (McpConfig::default(), SearchConfig::default());
    assert_eq!(cfg.mcp.session_idle_timeout_ms, mcp.session_idle_timeout_ms);
    assert_eq!(
        (
            cfg.search.fusion,
            cfg.search.alpha,
            cfg.search.depth,
            cfg.search.ef_search
        ),
        (search.fusion, search.alpha, search.depth, search.ef_search)
    );
}

#[test]
fn local_embedding_points_at_the_model_in_the_image() {
    let world = World::new();
    let ts = toolserver("toolserver-local-embedding.yaml");
    build::validate(&ts, &world.tenant).unwrap();
    let cfg = load_runtime_config(&build::config_map(&world.inputs(&ts)).unwrap());
    let e = cfg.embedding.expect("embedding section");
    assert_eq!(e.provider, ProviderKind::Local);
    assert_eq!(
        e.model_dir.as_deref(),
        Some(std::path::Path::new("/models/all-MiniLM-L6-v2"))
    );
    assert_eq!((e.dimensions, e.timeout_ms), (384, 5000));
    assert_eq!(cfg.llm.provider, "extractive");
    let dep = build::deployment(&world.inputs(&ts), "h");
    let res = dep.spec.unwrap().template.spec.unwrap().containers[0]
        .resources
        .clone()
        .unwrap();
    assert_eq!(
        res.limits.unwrap()["memory"].0,
        "1Gi",
        "the local model gets more memory"
    );
}

/// Every tool the CRD offers is one the runtime serves: a tool dropped from the runtime
/// fails here, not in a crash-looping pod.
#[test]
fn every_tool_of_the_crd_is_known_to_the_runtime() {
    let schema = serde_json::to_value(paddock_operator::crd::ToolServer::crd()).unwrap();
    let tools = schema
        .pointer(
            "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/tools/items/enum",
        )
        .unwrap();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        assert!(
            paddock_runtime::tools::find(name).is_some(),
            "the CRD offers {name}, the runtime lacks it"
        );
    }
}

#[test]
fn full_toolserver_renders_providers_and_secret_references() {
    let mut world = World::new();
    world.tenant.spec.models.allowed = vec!["llama3.2".into()];
    let ts = toolserver("toolserver-full.yaml");
    build::validate(&ts, &world.tenant).unwrap();
    let inputs = world.inputs(&ts);
    let cfg = load_runtime_config(&build::config_map(&inputs).unwrap());
    let e = cfg.embedding.expect("embedding section");
    assert_eq!(
        (e.provider, e.endpoint.as_deref(), e.model.as_deref()),
        (
            ProviderKind::OpenAi,
            Some("http://ollama.models.svc:11434/v1"),
            Some("all-minilm")
        )
    );
    assert_eq!(e.timeout_ms, 1500);
    assert!(e.api_key.is_none(), "API keys never enter the ConfigMap");
    let llm = &cfg.llm;
    assert_eq!(
        (
            llm.provider.as_str(),
            llm.endpoint.as_deref(),
            llm.model.as_deref()
        ),
        (
            "openai",
            Some("http://ollama.models.svc:11434/v1"),
            Some("llama3.2")
        )
    );
    assert_eq!(
        (llm.api_key_env.as_str(), llm.timeout_ms),
        (build::LLM_API_KEY_ENV, 90_000)
    );
    let a2a = cfg.a2a.settings(&cfg.auth.resource).unwrap();
    assert_eq!(a2a.max_running_tasks, 8, "spec.a2a.maxRunningTasks");
    assert_eq!(
        a2a.drain_timeout,
        std::time::Duration::from_secs(120),
        "spec.a2a.drainTimeoutSeconds"
    );
    assert_eq!(
        cfg.mcp.session_idle_timeout_ms,
        12 * 3600 * 1000,
        "spec.mcp.sessionIdleTimeout"
    );
    let search = &cfg.search;
    assert_eq!(
        (
            search.fusion,
            search.alpha,
            search.rrf_k,
            search.depth,
            search.ef_search
        ),
        (paddock_runtime::search::Fusion::Convex, 0.65, 30.0, 60, 80),
        "spec.search"
    );

    let dep = build::deployment(&inputs, "abc");
    let pod = dep.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        pod.termination_grace_period_seconds,
        Some(build::PRE_STOP_SLEEP_SECONDS + 130)
    );
    let c = &pod.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.example.com/paddock/paddock-runtime:0.1.0"),
        "spec.image wins"
    );
    let env: BTreeMap<&str, (&str, &str)> = c
        .env
        .iter()
        .flatten()
        .filter_map(|e| {
            let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
            Some((e.name.as_str(), (r.name.as_str(), r.key.as_str())))
        })
        .collect();
    assert_eq!(
        env["PADDOCK_DATABASE_URL"],
        ("paddock-db-acme", "PADDOCK_DATABASE_URL")
    );
    assert_eq!(
        env[build::EMBEDDING_API_KEY_ENV],
        ("embedding-key", "api-key")
    );
    assert_eq!(env[build::LLM_API_KEY_ENV], ("llm-key", "api-key"));
    let res = c.resources.as_ref().unwrap();
    assert_eq!(
        res.limits.as_ref().unwrap()["cpu"].0,
        "2",
        "spec.resources wins"
    );
    assert_eq!(dep.spec.as_ref().unwrap().replicas, Some(2));
}

#[test]
fn deployment_runs_the_runtime_locked_down_with_probes() {
    let world = World::new();
    let ts = toolserver("toolserver-minimal.yaml");
    let dep = build::deployment(&world.inputs(&ts), "0123abcd");
    assert_eq!(dep.metadata.name.as_deref(), Some("docs"));
    assert_eq!(dep.metadata.namespace.as_deref(), Some("acme"));
    let owner = &dep.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str(),
            owner.controller
        ),
        ("ToolServer", "docs", UID, Some(true))
    );
    let labels = dep.metadata.labels.as_ref().unwrap();
    for (k, v) in [
        ("app.kubernetes.io/managed-by", "paddock-operator"),
        ("app.kubernetes.io/name", "paddock-runtime"),
        ("app.kubernetes.io/instance", "docs"),
        ("paddock.dev/tenant", "acme"),
        ("paddock.dev/toolserver", "docs"),
    ] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "label {k}");
    }

    let spec = dep.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap(),
        &BTreeMap::from([
            ("app.kubernetes.io/instance".to_owned(), "docs".to_owned()),
            (
                "app.kubernetes.io/name".to_owned(),
                "paddock-runtime".to_owned()
            ),
        ])
    );
    let template = &spec.template;
    let annotations = template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap();
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION], "0123abcd");
    let pod = template.spec.as_ref().unwrap();
    assert_eq!(pod.automount_service_account_token, Some(false));
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(psc.run_as_user, Some(65532));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );

    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some("paddock/paddock-runtime:test"));
    assert_eq!(
        c.args.as_ref().unwrap(),
        &["serve", "--config", "/etc/paddock/runtime.yaml"]
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_ref().unwrap(),
        &["ALL"]
    );
    assert_eq!(c.ports.as_ref().unwrap()[0].container_port, 8080);
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .path
            .clone()
            .unwrap()
    };
    assert_eq!(probe_path(&c.liveness_probe), "/healthz");
    assert_eq!(probe_path(&c.readiness_probe), "/readyz");
    assert_eq!(probe_path(&c.startup_probe), "/healthz");
    let res = c.resources.as_ref().unwrap();
    assert!(
        res.requests.as_ref().unwrap().contains_key("cpu")
            && res.limits.as_ref().unwrap().contains_key("memory")
    );
    let mounts: BTreeMap<&str, &str> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.as_str(), m.name.as_str()))
        .collect();
    assert_eq!(
        mounts,
        BTreeMap::from([("/etc/paddock", "config"), ("/tmp", "tmp")])
    );
    let config_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "config")
        .unwrap();
    assert_eq!(
        config_volume.config_map.as_ref().unwrap().name,
        "docs-runtime"
    );
    // The DSN reaches the container from the Secret, never as a literal value.
    assert!(
        c.env
            .iter()
            .flatten()
            .all(|e| e.value.as_deref().is_none_or(|v| !v.contains("postgres")))
    );

    let svc = build::service(&world.inputs(&ts));
    let s = svc.spec.unwrap();
    assert_eq!(
        s.selector.unwrap(),
        spec.selector.match_labels.clone().unwrap()
    );
    assert_eq!(s.ports.unwrap()[0].port, 8080);
    assert_eq!(build::service_url(&ts), "http://docs.acme.svc:8080");
}

/// The runtime's metrics name every tenant with its budget and spend: the pod declares their port for the
/// scraper, and the Service, which the tenant's clients reach, carries the protocol port only.
#[test]
fn the_metrics_port_is_on_the_pod_and_not_on_the_service() {
    let world = World::new();
    let ts = toolserver("toolserver-minimal.yaml");
    let cfg = load_runtime_config(&build::config_map(&world.inputs(&ts)).unwrap());
    let dep = build::deployment(&world.inputs(&ts), "0123abcd");
    let pod = dep.spec.unwrap().template.spec.unwrap();
    let ports: BTreeMap<String, i32> = pod.containers[0]
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(
        ports,
        BTreeMap::from([("http".to_owned(), 8080), ("metrics".to_owned(), 9090)])
    );
    // The runtime listens where the pod says.
    assert_eq!(cfg.listen, format!("0.0.0.0:{}", ports["http"]));
    assert_eq!(cfg.metrics_listen, format!("0.0.0.0:{}", ports["metrics"]));

    let svc = build::service(&world.inputs(&ts)).spec.unwrap();
    let svc_ports = svc.ports.unwrap();
    assert_eq!(svc_ports.len(), 1, "{svc_ports:?}");
    assert_eq!(svc_ports[0].name.as_deref(), Some("http"));
    assert_eq!(svc_ports[0].port, 8080);
    assert_eq!(
        svc_ports[0].target_port,
        Some(IntOrString::String("http".to_owned()))
    );
}

#[test]
fn the_pod_hash_follows_the_config_and_the_secret() {
    let world = World::new();
    let ts = toolserver("toolserver-minimal.yaml");
    let cm = build::config_map(&world.inputs(&ts)).unwrap();
    let secret = BTreeMap::from([(
        "PADDOCK_DATABASE_URL".to_owned(),
        ByteString(b"postgres://a:b@h/db".to_vec()),
    )]);
    let base = build::config_hash(&cm, &[("paddock-db-acme", &secret)]);
    assert_eq!(
        base,
        build::config_hash(&cm, &[("paddock-db-acme", &secret)]),
        "deterministic"
    );
    assert_eq!(base.len(), 64);

    // Another tool → another config → another hash.
    let mut other = ts.clone();
    other.spec.tools.pop();
    let cm2 = build::config_map(&world.inputs(&other)).unwrap();
    assert_ne!(
        base,
        build::config_hash(&cm2, &[("paddock-db-acme", &secret)])
    );

    // A rotated password → another hash.
    let rotated = BTreeMap::from([(
        "PADDOCK_DATABASE_URL".to_owned(),
        ByteString(b"postgres://a:c@h/db".to_vec()),
    )]);
    assert_ne!(
        base,
        build::config_hash(&cm, &[("paddock-db-acme", &rotated)])
    );

    // A new development key → another hash (its JWKS is in the ConfigMap).
    let world2 = World::new();
    let cm3 = build::config_map(&world2.inputs(&ts)).unwrap();
    assert_ne!(
        base,
        build::config_hash(&cm3, &[("paddock-db-acme", &secret)])
    );

    // Shifting bytes between fields is not a collision.
    let a = BTreeMap::from([("ab".to_owned(), ByteString(b"c".to_vec()))]);
    let b = BTreeMap::from([("a".to_owned(), ByteString(b"bc".to_vec()))]);
    assert_ne!(
        build::config_hash(&cm, &[("s", &a)]),
        build::config_hash(&cm, &[("s", &b)])
    );

    let dep = build::deployment(&world.inputs(&ts), &base);
    let annotations = dep
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(annotations[CONFIG_HASH_ANNOTATION], base);
}

#[test]
fn a_toolserver_outside_its_tenants_namespaces_is_refused() {
    let world = World::new();
    let mut ts = toolserver("toolserver-minimal.yaml");
    ts.metadata.namespace = Some("globex".into());
    assert_eq!(
        build::validate(&ts, &world.tenant),
        Err(Refusal::NamespaceNotOwned {
            namespace: "globex".into(),
            tenant: "acme".into()
        })
    );
    let mut ts = toolserver("toolserver-minimal.yaml");
    ts.spec.tenant_ref = "someone-else".into();
    assert!(matches!(
        build::validate(&ts, &world.tenant),
        Err(Refusal::NamespaceNotOwned { .. })
    ));
}

/// Tracing is off unless the spec asks for it; asked, the runtime's file names the endpoint and ratio.
#[test]
fn a_toolservers_tracing_reaches_the_runtime_config() {
    let world = World::new();
    let mut ts = toolserver("toolserver-minimal.yaml");
    let cm = build::config_map(&world.inputs(&ts)).unwrap();
    assert!(!cm.data.as_ref().unwrap()[build::CONFIG_FILE].contains("tracing"));
    assert_eq!(load_runtime_config(&cm).tracing.otlp_endpoint, None);

    ts.spec.tracing = Some(
        serde_yaml::from_str(
            "{otlpEndpoint: 'http://collector.observability:4318', sampleRatio: '0.25'}",
        )
        .unwrap(),
    );
    let cfg = load_runtime_config(&build::config_map(&world.inputs(&ts)).unwrap());
    assert_eq!(
        cfg.tracing.otlp_endpoint.as_deref(),
        Some("http://collector.observability:4318")
    );
    assert_eq!(cfg.tracing.sample_ratio, Some(0.25));

    ts.spec.tracing = Some(
        serde_yaml::from_str("{otlpEndpoint: 'http://collector:4318', sampleRatio: '1.5'}")
            .unwrap(),
    );
    let err = build::config_map(&world.inputs(&ts)).unwrap_err();
    assert!(
        err.to_string().contains("spec.tracing.sampleRatio"),
        "{err}"
    );
}

/// The console is on unless the spec switches it off; switched off, the runtime's file says so.
#[test]
fn a_toolserver_can_switch_the_console_off() {
    let world = World::new();
    let mut ts = toolserver("toolserver-minimal.yaml");
    let cm = build::config_map(&world.inputs(&ts)).unwrap();
    assert!(!cm.data.as_ref().unwrap()[build::CONFIG_FILE].contains("console"));
    assert!(load_runtime_config(&cm).console.enabled);

    ts.spec.console = Some(serde_yaml::from_str("{enabled: false}").unwrap());
    let cm = build::config_map(&world.inputs(&ts)).unwrap();
    assert!(cm.data.as_ref().unwrap()[build::CONFIG_FILE].contains("console:\n  enabled: false"));
    assert!(!load_runtime_config(&cm).console.enabled);

    ts.spec.console = Some(serde_yaml::from_str("{}").unwrap());
    assert!(
        load_runtime_config(&build::config_map(&world.inputs(&ts)).unwrap())
            .console
            .enabled
    );
}

/// The console's OAuth sign-in reaches the runtime's file as `console.oauth`, and only when the spec sets it.
#[test]
fn a_toolserver_names_the_consoles_oauth_client() {
    let world = World::new();
    let mut ts = toolserver("toolserver-minimal.yaml");
    assert_eq!(
        load_runtime_config(&build::config_map(&world.inputs(&ts)).unwrap())
            .console
            .oauth,
        None
    );
    ts.spec.console = Some(
        serde_yaml::from_str(
            "{oauth: {clientId: paddock-console, authorizationServer: 'https://login.acme.example/realms/acme'}}",
        )
        .unwrap(),
    );
    let cfg = load_runtime_config(&build::config_map(&world.inputs(&ts)).unwrap());
    assert!(cfg.console.enabled);
    let oauth = cfg.console.oauth.expect("console.oauth");
    assert_eq!(oauth.client_id, "paddock-console");
    assert_eq!(
        oauth.authorization_server.as_deref(),
        Some("https://login.acme.example/realms/acme")
    );
    assert_eq!(oauth.scope, None);
}

#[test]
fn specs_the_runtime_cannot_serve_are_refused_with_the_field() {
    let world = World::new();
    let mut ts = toolserver("toolserver-local-embedding.yaml");
    ts.spec.embedding.dimensions = 768;
    let err = build::validate(&ts, &world.tenant).unwrap_err();
    assert!(
        err.to_string().contains("spec.embedding.dimensions"),
        "{err}"
    );

    let mut ts = toolserver("toolserver-minimal.yaml");
    ts.spec.llm = Some(
        serde_yaml::from_str("{provider: openai, endpoint: 'http://x:1/v1', model: gpt-4o}")
            .unwrap(),
    );
    let err = build::validate(&ts, &world.tenant).unwrap_err();
    assert!(
        err.to_string().contains("spec.llm.model") && err.to_string().contains("models.allowed"),
        "{err}"
    );
}

#[test]
fn ready_follows_the_deployment_status() {
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus};
    use paddock_operator::conditions::Status;
    let dep = |generation: i64, observed: i64, ready: i32, updated: i32| Deployment {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            generation: Some(generation),
            ..Default::default()
        },
        status: Some(DeploymentStatus {
            observed_generation: Some(observed),
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            updated_replicas: Some(updated),
            ..Default::default()
        }),
        ..Default::default()
    };
    let r = build::deployment_ready(&dep(2, 2, 2, 2), 2);
    assert_eq!(
        (r.status, r.reason, r.message.as_str()),
        (Status::True, "Available", "2/2 replicas ready")
    );
    assert_eq!(
        build::deployment_ready(&dep(2, 2, 1, 2), 2).reason,
        "Progressing"
    );
    assert_eq!(
        build::deployment_ready(&dep(3, 2, 2, 2), 2).status,
        Status::False,
        "stale status is not ready"
    );
    assert_eq!(
        build::deployment_ready(&dep(2, 2, 2, 1), 2).status,
        Status::False,
        "old pods are not enough"
    );
    assert_eq!(
        build::deployment_ready(&dep(1, 1, 0, 0), 0).reason,
        "ScaledToZero"
    );
}
