//! Valid manifests (tests/fixtures/valid) read into the Rust types exactly as the API server
//! stores them: nothing is dropped, and serde's defaults are the schema's defaults.

use paddock_testkit::operator::{Fixture, fixtures};

use std::time::Duration;

use paddock_operator::crd::{
    self, AgentTask, Tenant, ToolServer, agenttask::TaskState, parse_duration,
};
use serde_json::Value;

/// Structural defaulting as the API server does it: a missing property with a default gets
/// it, then defaulting recurses into every present property (including inserted defaults).
fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    if let (Some(default), false) = (prop.get("default"), map.contains_key(name)) {
                        map.insert(name.clone(), default.clone());
                    }
                }
                for (name, v) in map.iter_mut() {
                    if let Some(prop) = props.get(name) {
                        apply_defaults(prop, v);
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties") {
                for v in map.values_mut() {
                    apply_defaults(extra, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for v in items {
                    apply_defaults(item_schema, v);
                }
            }
        }
        _ => {}
    }
}

/// Quantities are int-or-string: `cpu: 2` is stored as a number, and Rust's `Quantity` reads
/// it as the string "2". Both mean the same, so compare them as strings.
fn stringify_int_or_string(schema: &Value, value: &mut Value) {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if let Value::Number(n) = value {
            *value = Value::String(n.to_string());
        }
        return;
    }
    match value {
        Value::Object(map) => {
            for (name, v) in map.iter_mut() {
                let sub = schema
                    .get("properties")
                    .and_then(|p| p.get(name))
                    .or_else(|| schema.get("additionalProperties"));
                if let Some(sub) = sub {
                    stringify_int_or_string(sub, v);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                items
                    .iter_mut()
                    .for_each(|v| stringify_int_or_string(sub, v));
            }
        }
        _ => {}
    }
}

fn schema_of(kind: &str) -> Value {
    let (_, crd) = crd::crds()
        .into_iter()
        .find(|(_, c)| c.spec.names.kind == kind)
        .expect("known kind");
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Reads the manifest as the API server would store it (defaults applied) and through the
/// Rust type, and returns both as JSON.
fn stored_and_typed(fixture: &Fixture) -> (Value, Value) {
    let text = fixture.render("acme", "acme");
    let mut stored: Value = serde_yaml::from_str(&text).unwrap();
    let schema = schema_of(fixture.kind());
    apply_defaults(&schema, &mut stored);
    stringify_int_or_string(&schema, &mut stored);
    let typed = match fixture.kind() {
        "Tenant" => serde_json::to_value(serde_yaml::from_str::<Tenant>(&text).unwrap()),
        "ToolServer" => serde_json::to_value(serde_yaml::from_str::<ToolServer>(&text).unwrap()),
        "AgentTask" => serde_json::to_value(serde_yaml::from_str::<AgentTask>(&text).unwrap()),
        other => panic!("{}: unknown kind {other}", fixture.file),
    }
    .unwrap();
    (stored, typed)
}

#[test]
fn valid_fixtures_round_trip_through_the_types_with_schema_defaults() {
    for fixture in fixtures("valid") {
        let (stored, typed) = stored_and_typed(&fixture);
        assert_eq!(
            typed, stored,
            "{}: the Rust type and the API server disagree (a field the type drops, or a serde default that is not the schema default)",
            fixture.file
        );
    }
}

#[test]
fn minimal_tenant_gets_documented_defaults() {
    let fixture = fixtures("valid")
        .into_iter()
        .find(|f| f.file == "tenant-minimal.yaml")
        .unwrap();
    let tenant: Tenant = serde_yaml::from_str(&fixture.render("acme", "acme")).unwrap();
    let spec = tenant.spec;
    assert_eq!(spec.auth.tenant_claim, "tenant_id");
    assert_eq!(spec.auth.user_claim, "sub");
    assert_eq!(spec.budget.currency, "USD");
    assert_eq!(spec.budget.warn_at_percent, 80);
    assert!(!spec.budget.allow_extractive_fallback);
    assert_eq!(
        (spec.rate_limit.requests_per_minute, spec.rate_limit.burst),
        (600, 100)
    );
    assert!(spec.models.allowed.is_empty() && spec.models.prices.is_empty());
    assert_eq!(spec.deletion_policy, crd::tenant::DeletionPolicy::Retain);
}

#[test]
fn minimal_toolserver_gets_documented_defaults() {
    let fixture = fixtures("valid")
        .into_iter()
        .find(|f| f.file == "toolserver-minimal.yaml")
        .unwrap();
    let ts: ToolServer = serde_yaml::from_str(&fixture.render("acme", "acme")).unwrap();
    assert_eq!(ts.spec.replicas, 1);
    assert_eq!(
        ts.spec.embedding.provider,
        crd::toolserver::EmbeddingProvider::None
    );
    assert_eq!(ts.spec.embedding.dimensions, 384);
    assert_eq!(
        parse_duration(&ts.spec.embedding.timeout),
        Ok(Duration::from_secs(5))
    );
    assert!(ts.spec.llm.is_none());
    assert!(ts.spec.a2a.enabled);
}

/// Every duration the fixtures and defaults use is one the operator can parse.
#[test]
fn durations_in_valid_fixtures_parse() {
    let mut seen = 0;
    for fixture in fixtures("valid") {
        let text = fixture.render("acme", "acme");
        let timeouts: Vec<String> = match fixture.kind() {
            "ToolServer" => {
                let ts: ToolServer = serde_yaml::from_str(&text).unwrap();
                std::iter::once(ts.spec.embedding.timeout)
                    .chain(ts.spec.llm.map(|l| l.timeout))
                    .collect()
            }
            "AgentTask" => vec![
                serde_yaml::from_str::<AgentTask>(&text)
                    .unwrap()
                    .spec
                    .timeout,
            ],
            _ => vec![],
        };
        for t in timeouts {
            parse_duration(&t).unwrap_or_else(|e| panic!("{}: {e}", fixture.file));
            seen += 1;
        }
    }
    assert!(
        seen >= 6,
        "expected the fixtures to carry durations, saw {seen}"
    );
}

#[test]
fn task_states_use_the_a2a_spelling() {
    let states = [
        (TaskState::InputRequired, "input-required"),
        (TaskState::AuthRequired, "auth-required"),
        (TaskState::Canceled, "canceled"),
    ];
    for (state, text) in states {
        assert_eq!(
            serde_json::to_value(state).unwrap(),
            Value::String(text.into())
        );
    }
    assert!(TaskState::Rejected.is_terminal() && !TaskState::InputRequired.is_terminal());
}

/// Every invalid fixture says what refusal it expects; the cluster test checks it for real.
#[test]
fn invalid_fixtures_name_their_expected_refusal() {
    for fixture in fixtures("invalid") {
        assert!(
            fixture.expect.as_deref().is_some_and(|e| !e.is_empty()),
            "{} must start with `# expect: <part of the API server's message>`",
            fixture.file
        );
        let _: Value = serde_yaml::from_str(&fixture.render("acme", "acme"))
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", fixture.file));
    }
}
