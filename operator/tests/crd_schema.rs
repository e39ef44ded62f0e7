//! Properties of the generated OpenAPI schemas that the API server or our own conventions
//! demand, checked on every CRD so a new field cannot silently break them.

use paddock_operator::crd;
use serde_json::{Map, Value};

/// Each CRD's `openAPIV3Schema`, as JSON, with its kind.
fn schemas() -> Vec<(String, Value)> {
    crd::crds()
        .into_iter()
        .map(|(_, crd)| {
            let version = &crd.spec.versions[0];
            let schema = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            (
                crd.spec.names.kind.clone(),
                serde_json::to_value(schema).unwrap(),
            )
        })
        .collect()
}

/// Calls `visit(path, node)` on every schema node below (and including) `node`.
fn walk(path: &str, node: &Value, visit: &mut dyn FnMut(&str, &Map<String, Value>)) {
    let Some(obj) = node.as_object() else { return };
    visit(path, obj);
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            walk(&format!("{path}.{name}"), prop, visit);
        }
    }
    if let Some(items) = obj.get("items") {
        walk(&format!("{path}[]"), items, visit);
    }
    if let Some(extra) = obj.get("additionalProperties") {
        walk(&format!("{path}{{}}"), extra, visit);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        for (i, sub) in obj
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            walk(&format!("{path}<{key}{i}>"), sub, visit);
        }
    }
}

/// Every field is documented: the description is what `kubectl explain` shows.
#[test]
fn every_property_has_a_description() {
    let mut missing = Vec::new();
    for (kind, schema) in schemas() {
        walk(&kind, &schema, &mut |path, node| {
            for (name, prop) in node
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                let described = prop
                    .get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|d| !d.trim().is_empty());
                if !described {
                    missing.push(format!("{path}.{name}"));
                }
            }
        });
    }
    assert!(
        missing.is_empty(),
        "properties without a description:\n  {}",
        missing.join("\n  ")
    );
}

/// The API server refuses CRDs whose schema is not structural: every node needs a type,
/// and `anyOf`/`oneOf`/`allOf` may only add validation, never structure. The one form we
/// allow is int-or-string (quantities), which the API server special-cases.
#[test]
fn schemas_are_structural() {
    let mut problems = Vec::new();
    for (kind, schema) in schemas() {
        walk(&kind, &schema, &mut |path, node| {
            if path.contains("<anyOf") {
                return; // checked with its parent below
            }
            let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
            let preserve =
                node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
            if !node.contains_key("type") && !int_or_string && !preserve {
                problems.push(format!("{path}: no type"));
            }
            if let Some(t) = node.get("type")
                && !t.is_string()
            {
                problems.push(format!("{path}: type must be one string, got {t}"));
            }
            for key in [
                "oneOf",
                "allOf",
                "not",
                "$ref",
                "definitions",
                "$defs",
                "$schema",
                "const",
            ] {
                if node.contains_key(key) {
                    problems.push(format!("{path}: `{key}` is not allowed"));
                }
            }
            if let Some(any_of) = node.get("anyOf") {
                let expected = serde_json::json!([{"type": "integer"}, {"type": "string"}]);
                if !int_or_string || any_of != &expected {
                    problems.push(format!("{path}: anyOf outside int-or-string: {any_of}"));
                }
            }
            if let Some(values) = node.get("enum").and_then(Value::as_array)
                && values.iter().any(Value::is_null)
            {
                problems.push(format!("{path}: null inside enum"));
            }
        });
    }
    assert!(
        problems.is_empty(),
        "non-structural schema:\n  {}",
        problems.join("\n  ")
    );
}

/// The API server estimates the worst-case cost of each CEL rule from the schema and refuses
/// rules over budget. Unbounded strings, lists or maps under a rule make the estimate huge,
/// so everything a rule can see must have maxLength / maxItems / maxProperties (or be an enum).
/// The root rules only read `metadata.name`, whose bound the API server knows.
#[test]
fn everything_under_a_cel_rule_is_bounded() {
    let mut problems = Vec::new();
    for (kind, schema) in schemas() {
        walk(&kind, &schema, &mut |path, node| {
            if path == kind || !node.contains_key("x-kubernetes-validations") {
                return;
            }
            walk(path, &Value::Object(node.clone()), &mut |inner, n| {
                let bounded = match n.get("type").and_then(Value::as_str) {
                    Some("string") => n.contains_key("maxLength") || n.contains_key("enum"),
                    Some("array") => n.contains_key("maxItems"),
                    Some("object") => {
                        !n.contains_key("additionalProperties") || n.contains_key("maxProperties")
                    }
                    _ => true,
                };
                if !bounded {
                    problems.push(format!("{inner} (under the rule at {path})"));
                }
            });
        });
    }
    assert!(
        problems.is_empty(),
        "unbounded values under CEL rules:\n  {}",
        problems.join("\n  ")
    );
}

/// A `map` list merges by its keys, so every key must always be present.
#[test]
fn list_map_keys_are_required() {
    let mut problems = Vec::new();
    for (kind, schema) in schemas() {
        walk(&kind, &schema, &mut |path, node| {
            let Some(keys) = node
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
            else {
                return;
            };
            let required: Vec<&Value> = node["items"]
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect();
            for key in keys {
                if !required.contains(&key) {
                    problems.push(format!("{path}: list-map key {key} is not required"));
                }
            }
        });
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Printer columns point at fields that exist, so `kubectl get` never shows a column that is
/// always empty because of a typo.
#[test]
fn printer_columns_point_at_schema_fields() {
    for (_, crd) in crd::crds() {
        let version = &crd.spec.versions[0];
        let schema = serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        for column in version.additional_printer_columns.iter().flatten() {
            let path = column.json_path.split("[?").next().unwrap();
            if path.starts_with(".metadata.") {
                continue;
            }
            let mut node = &schema;
            for part in path.trim_start_matches('.').split('.') {
                node = node
                    .get("properties")
                    .and_then(|p| p.get(part))
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: column {} points at missing field {path}",
                            crd.spec.names.kind, column.name
                        )
                    });
            }
        }
    }
}

#[test]
fn kinds_share_the_paddock_category_and_have_short_names() {
    let names: Vec<_> = crd::crds()
        .into_iter()
        .map(|(_, crd)| {
            assert_eq!(crd.spec.group, "paddock.dev");
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["paddock".to_owned()][..])
            );
            let version = &crd.spec.versions[0];
            assert!(
                version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some()),
                "status subresource"
            );
            (
                crd.spec.names.kind,
                crd.spec.scope,
                crd.spec.names.short_names.unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "Tenant".to_owned(),
                "Cluster".to_owned(),
                vec!["tn".to_owned()]
            ),
            (
                "ToolServer".to_owned(),
                "Namespaced".to_owned(),
                vec!["ts".to_owned()]
            ),
            (
                "AgentTask".to_owned(),
                "Namespaced".to_owned(),
                vec!["at".to_owned()]
            ),
            (
                "PostgresCluster".to_owned(),
                "Cluster".to_owned(),
                vec!["pgc".to_owned()]
            ),
        ]
    );
}
