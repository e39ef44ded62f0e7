//! The MCP tools: the registry (names, required scopes, descriptions) and the dispatch of a call.
//!
//! A call flows `tools/call` → [`call`] → argument parsing into the tool's argument type (typed, strict) →
//! the tool's family module ([`search`], [`documents`], [`usage`], [`audit`]) → one [`crate::db::TenantTx`] under the
//! caller's tenant → a structured result. Failures of the tool itself (validation, not found, store
//! unavailable) come back as `isError` results; only protocol problems become JSON-RPC errors.
//!
//! Each tool's input schema is derived from its argument type ([`input_schema`]) and its output schema from its
//! result type ([`output_schema`], built by [`ToolOutcome::ok`]), so what `tools/list` promises, what a call
//! accepts and what it answers are one definition. A nullable value is described as `anyOf` its type and `null`.

// Declared before the tool families, which use it.
macro_rules! validate {
    ($($cond:expr => $msg:expr),+ $(,)?) => {
        $( if let Err(o) = $crate::tools::check($cond, $msg) { return Ok(o); } )+
    };
}

mod audit;
mod documents;
mod search;
mod usage;

use schemars::{JsonSchema, Schema, generate::SchemaSettings, transform::RecursiveTransform};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

pub use self::{
    documents::{decode_cursor, encode_cursor},
    search::SearchSettings,
};
use crate::{
    auth::{Principal, scopes},
    db::{Db, DbError, TenantId},
    embed::Embedder,
    indexer::IndexerHandle,
    metrics::Metrics,
};

/// One tool as listed by `tools/list`.
pub struct ToolSpec {
    pub name: &'static str,
    pub scope: &'static str,
    pub describe: fn() -> Value,
}

/// Every tool this runtime knows, in listing order.
pub const ALL: &[ToolSpec] = &[
    ToolSpec {
        name: "hybrid_search",
        scope: scopes::DOCUMENTS_READ,
        describe: search::hybrid_search_spec,
    },
    ToolSpec {
        name: "search",
        scope: scopes::DOCUMENTS_READ,
        describe: search::search_spec,
    },
    ToolSpec {
        name: "get_document",
        scope: scopes::DOCUMENTS_READ,
        describe: documents::get_document_spec,
    },
    ToolSpec {
        name: "list_documents",
        scope: scopes::DOCUMENTS_READ,
        describe: documents::list_documents_spec,
    },
    ToolSpec {
        name: "upsert_document",
        scope: scopes::DOCUMENTS_WRITE,
        describe: documents::upsert_document_spec,
    },
    ToolSpec {
        name: "delete_document",
        scope: scopes::DOCUMENTS_WRITE,
        describe: documents::delete_document_spec,
    },
    ToolSpec {
        name: "usage",
        scope: scopes::USAGE_READ,
        describe: usage::usage_spec,
    },
    ToolSpec {
        name: "audit",
        scope: scopes::AUDIT_READ,
        describe: audit::audit_spec,
    },
];

/// The documents a tool's result (its structured content) returned or wrote, for the audit trail: the hits of a
/// search, the page of a listing, the one document read, written or deleted.
pub fn document_ids(tool: &str, content: &Value) -> Vec<String> {
    let ids = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["id"].as_str().map(str::to_owned))
            .collect()
    };
    match tool {
        "hybrid_search" | "search" => ids(&content["hits"]),
        "list_documents" => ids(&content["documents"]),
        "get_document" | "upsert_document" | "delete_document" => content["id"]
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

pub fn find(name: &str) -> Option<&'static ToolSpec> {
    ALL.iter().find(|t| t.name == name)
}

/// What a tool needs to run.
pub struct ToolCtx<'a> {
    pub db: &'a Db,
    pub embedder: &'a Embedder,
    pub search: &'a SearchSettings,
    pub indexer: &'a IndexerHandle,
    pub metrics: &'a Metrics,
    pub principal: &'a Principal,
    pub tenant: &'a TenantId,
}

/// The result of a tool call, before it becomes an MCP `CallToolResult`.
#[derive(Debug)]
pub enum ToolOutcome {
    Ok(Value),
    Failed(String),
}

impl ToolOutcome {
    /// A tool's result: the type whose [`output_schema`] the tool declares, as JSON.
    pub fn ok<T: Serialize + JsonSchema>(result: &T) -> Self {
        // Tool results are plain structs with string keys: serializing them cannot fail.
        ToolOutcome::Ok(serde_json::to_value(result).expect("a tool result serializes to JSON"))
    }

    /// Renders MCP's `CallToolResult`: structured content plus the same JSON as text; errors carry no
    /// `structuredContent`, since some clients validate it against the output schema even then.
    pub fn into_result(self) -> Value {
        match self {
            ToolOutcome::Ok(v) => json!({
                "content": [{ "type": "text", "text": v.to_string() }],
                "structuredContent": v,
                "isError": false,
            }),
            ToolOutcome::Failed(msg) => json!({
                "content": [{ "type": "text", "text": msg }],
                "isError": true,
            }),
        }
    }
}

/// A failure inside a tool that is the server's fault, not the caller's.
#[derive(Debug, thiserror::Error)]
#[error("tool {tool} failed")]
pub struct ToolError {
    pub tool: &'static str,
    #[source]
    pub source: DbError,
}

/// Runs one tool. `Err` is an internal failure (logged, answered with a generic JSON-RPC error).
pub async fn call(
    ctx: &ToolCtx<'_>,
    tool: &'static ToolSpec,
    args: Value,
) -> Result<ToolOutcome, ToolError> {
    let result = match tool.name {
        "hybrid_search" => with_args(args, |a| search::hybrid_search(ctx, a)).await,
        "search" => with_args(args, |a| search::lexical_search(ctx, a)).await,
        "get_document" => with_args(args, |a| documents::get_document(ctx, a)).await,
        "list_documents" => with_args(args, |a| documents::list_documents(ctx, a)).await,
        "upsert_document" => with_args(args, |a| documents::upsert_document(ctx, a)).await,
        "delete_document" => with_args(args, |a| documents::delete_document(ctx, a)).await,
        "usage" => with_args(args, |a| usage::usage(ctx, a)).await,
        "audit" => with_args(args, |a| audit::audit(ctx, a)).await,
        _ => unreachable!("every ToolSpec has an implementation"),
    };
    match result {
        Err(e) if e.is_unavailable() => Ok(ToolOutcome::Failed(
            "the document store is temporarily unavailable; retry shortly".into(),
        )),
        Err(source) => Err(ToolError {
            tool: tool.name,
            source,
        }),
        Ok(outcome) => Ok(outcome),
    }
}

async fn with_args<A, F, Fut>(args: Value, f: F) -> Result<ToolOutcome, DbError>
where
    A: DeserializeOwned,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = Result<ToolOutcome, DbError>>,
{
    match serde_json::from_value::<A>(args) {
        Ok(a) => f(a).await,
        Err(e) => Ok(ToolOutcome::Failed(format!("invalid arguments: {e}"))),
    }
}

fn check(cond: bool, msg: &str) -> Result<(), ToolOutcome> {
    if cond {
        Ok(())
    } else {
        Err(ToolOutcome::Failed(format!("invalid arguments: {msg}")))
    }
}

fn filter_ok(f: &Option<Value>) -> bool {
    f.as_ref().is_none_or(Value::is_object)
}

/// The JSON Schema (2020-12) of a tool's arguments, derived from the type [`call`] reads them into, so the
/// schema a client sees and the parser that checks its call cannot drift apart.
fn input_schema<A: JsonSchema>() -> Value {
    root_schema::<A>(schema_settings().for_deserialize())
}

/// The JSON Schema (2020-12) of a tool's result, derived from the type the tool serializes
/// ([`ToolOutcome::ok`]), so the schema a client validates `structuredContent` against and the JSON it gets
/// cannot drift apart. Described as serialized: a field skipped when empty is optional, any other is required.
fn output_schema<T: JsonSchema>() -> Value {
    root_schema::<T>(schema_settings().for_serialize())
}

/// The generator settings of every tool schema. Subschemas are inlined: clients read nested `properties`
/// directly, and not all of them resolve `$ref`.
fn schema_settings() -> SchemaSettings {
    SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .with_transform(RecursiveTransform(nullable_as_any_of as fn(&mut Schema)))
}

fn root_schema<T: JsonSchema>(settings: SchemaSettings) -> Value {
    let mut schema = Value::from(settings.into_generator().into_root_schema_for::<T>());
    // The Rust type's name tells a client nothing; the tool has its own title.
    if let Some(o) = schema.as_object_mut() {
        o.remove("title");
    }
    schema
}

/// Keywords that describe a value rather than constrain it: they stay beside `anyOf`, where a client shows them.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Rewrites a nullable schema, `{"type": ["string", "null"], ...}` as schemars derives it for an `Option`, into
/// `{"anyOf": [{"type": "string", ...}, {"type": "null"}]}`. Some readers of tool schemas (function-calling
/// dialects of model APIs, code generators) take `type` as a single name only; `anyOf` with a `null` branch
/// is how they spell a nullable value. The constraints move into the non-null branch, the annotations stay
/// outside.
fn nullable_as_any_of(schema: &mut Schema) {
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    let Some(Value::Array(types)) = obj.get("type") else {
        return;
    };
    let null = Value::from("null");
    if !types.contains(&null) {
        return;
    }
    let mut types: Vec<Value> = types.iter().filter(|t| **t != null).cloned().collect();
    if types.is_empty() {
        obj.insert("type".into(), null);
        return;
    }
    let mut inner = std::mem::take(obj);
    for key in ANNOTATIONS {
        if let Some(v) = inner.remove(*key) {
            obj.insert((*key).into(), v);
        }
    }
    inner.insert(
        "type".into(),
        if types.len() == 1 {
            types.remove(0)
        } else {
            Value::Array(types)
        },
    );
    // `null` is allowed by its own branch; the other one lists only what it admits.
    if let Some(Value::Array(values)) = inner.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    obj.insert("anyOf".into(), json!([inner, { "type": "null" }]));
}

fn read_only() -> Value {
    json!({ "readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[test]
    fn the_tools_are_the_ones_the_contract_names_in_order() {
        let names: Vec<&str> = ALL.iter().map(|t| t.name).collect();
        assert_eq!(names, paddock_contract::protocol::TOOL_NAMES);
    }

    #[test]
    fn tool_specs_follow_the_mcp_rules() {
        for t in ALL {
            let spec = (t.describe)();
            assert_eq!(spec["name"], t.name);
            assert!(
                t.name.len() <= 128
                    && t.name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            );
            assert_eq!(spec["inputSchema"]["type"], "object", "{}", t.name);
            assert_eq!(spec["outputSchema"]["type"], "object", "{}", t.name);
            for hint in [
                "readOnlyHint",
                "destructiveHint",
                "idempotentHint",
                "openWorldHint",
            ] {
                assert!(spec["annotations"][hint].is_boolean(), "{} {hint}", t.name);
            }
        }
    }

    /// Clients (and the interop stage) read the constraints from `tools/list`; derived schemas must keep them.
    #[test]
    fn derived_input_schemas_keep_names_requirements_types_and_bounds() {
        let required = |name: &str| {
            let spec = (find(name).unwrap().describe)();
            let schema = &spec["inputSchema"];
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{name}"
            );
            assert_eq!(schema["additionalProperties"], false, "{name}");
            assert!(!schema.to_string().contains("$ref"), "{name}: inlined");
            assert!(schema.get("title").is_none(), "{name}");
            schema.get("required").cloned().unwrap_or(json!([]))
        };
        assert_eq!(required("hybrid_search"), json!(["query"]));
        assert_eq!(required("search"), json!(["query"]));
        assert_eq!(required("get_document"), json!(["id"]));
        assert_eq!(required("delete_document"), json!(["id"]));
        assert_eq!(required("list_documents"), json!([]));
        assert_eq!(required("upsert_document"), json!(["id", "content"]));
        assert_eq!(required("usage"), json!([]));
        assert_eq!(required("audit"), json!([]));

        let hybrid = search::hybrid_search_spec()["inputSchema"].clone();
        let p = &hybrid["properties"];
        assert_eq!(p["query"]["type"], "string");
        assert_eq!(p["query"]["minLength"], 1);
        assert_eq!(p["query"]["maxLength"], 2000);
        assert_eq!(p["query"]["description"], "What to look for.");
        assert_eq!(p["limit"]["type"], "integer");
        assert_eq!(p["limit"]["minimum"], 1);
        assert_eq!(p["limit"]["maximum"], 50);
        assert_eq!(p["limit"]["default"], 10);
        assert_eq!(p["weights"]["type"], "object");
        assert_eq!(p["weights"]["additionalProperties"], false);
        for arm in ["lexical", "vector"] {
            let w = &p["weights"]["properties"][arm];
            assert_eq!(w["type"], "number");
            assert_eq!(
                (w["minimum"].as_f64(), w["maximum"].as_f64()),
                (Some(0.0), Some(10.0))
            );
            assert_eq!(w["default"].as_f64(), Some(1.0));
        }
        assert_eq!(
            p["filter"],
            json!({
                "description": "Only documents whose metadata contains this JSON object.",
                "anyOf": [{ "type": "object", "additionalProperties": true }, { "type": "null" }]
            })
        );

        let list = documents::list_documents_spec()["inputSchema"].clone();
        assert_eq!(list["properties"]["limit"]["maximum"], 100);
        assert_eq!(list["properties"]["limit"]["default"], 20);
        assert_eq!(
            list["properties"]["cursor"],
            json!({
                "description": "Opaque cursor from a previous page.",
                "anyOf": [{ "type": "string" }, { "type": "null" }]
            })
        );
        let upsert = documents::upsert_document_spec()["inputSchema"].clone();
        assert_eq!(upsert["properties"]["id"]["maxLength"], 256);
        assert_eq!(upsert["properties"]["title"]["maxLength"], 1000);
        assert_eq!(upsert["properties"]["content"]["minLength"], 1);
        assert_eq!(
            upsert["properties"]["metadata"]["anyOf"][0]["type"],
            "object"
        );

        let usage = usage::usage_spec()["inputSchema"].clone();
        let p = &usage["properties"];
        assert_eq!(
            p["by"]["anyOf"],
            json!([{ "type": "string", "enum": ["user", "model", "task", "day"] }, { "type": "null" }])
        );
        for day in ["since", "until"] {
            assert_eq!(
                p[day]["anyOf"],
                json!([{ "type": "string" }, { "type": "null" }])
            );
            assert!(p[day]["description"].is_string(), "{day}");
        }
    }

    /// Every JSON object in `schema` with its JSON pointer.
    fn objects<'a>(schema: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
        match schema {
            Value::Object(o) => {
                out.push((at.clone(), schema));
                for (k, v) in o {
                    objects(v, format!("{at}/{k}"), out);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    objects(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_tool_schema_lists_null_among_its_types() {
        for t in ALL {
            let spec = (t.describe)();
            for which in ["inputSchema", "outputSchema"] {
                let schema = &spec[which];
                jsonschema::meta::validate(schema)
                    .unwrap_or_else(|e| panic!("{} {which}: not a valid JSON Schema: {e}", t.name));
                let mut all = Vec::new();
                objects(schema, String::new(), &mut all);
                for (at, o) in all {
                    if let Some(types) = o["type"].as_array() {
                        assert!(
                            !types.contains(&json!("null")),
                            "{} {which}{at}: {o}",
                            t.name
                        );
                    }
                }
            }
        }
    }

    // A type with each kind of nullable value schemars derives.
    #[allow(dead_code)]
    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Nullables {
        /// Described.
        #[serde(default)]
        #[schemars(length(min = 1, max = 5))]
        name: Option<String>,
        kind: Option<Kind>,
        inner: Option<Inner>,
        many: Vec<Option<i32>>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        A,
        B,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, Serialize, JsonSchema)]
    struct Inner {
        x: i32,
    }

    #[test]
    fn nullable_values_are_any_of_their_schema_and_null_with_annotations_outside() {
        let null_type = json!({ "type": "null" });
        for (which, schema) in [
            ("input", input_schema::<Nullables>()),
            ("output", output_schema::<Nullables>()),
        ] {
            let p = &schema["properties"];
            assert_eq!(
                p["name"],
                json!({
                    "description": "Described.",
                    "default": null,
                    "anyOf": [{ "type": "string", "minLength": 1, "maxLength": 5 }, null_type]
                }),
                "{which}"
            );
            assert_eq!(
                p["kind"],
                json!({ "anyOf": [{ "type": "string", "enum": ["a", "b"] }, null_type] }),
                "{which}"
            );
            assert_eq!(p["inner"]["anyOf"][1], null_type, "{which}");
            assert_eq!(p["inner"]["anyOf"][0]["required"], json!(["x"]), "{which}");
            assert_eq!(
                p["many"]["items"],
                json!({ "anyOf": [{ "type": "integer", "format": "int32" }, null_type] }),
                "{which}"
            );
        }
        // The rewritten schema admits what the type reads, and only that.
        let input = jsonschema::validator_for(&input_schema::<Nullables>()).unwrap();
        for ok in [
            json!({ "many": [] }),
            json!({ "name": null, "kind": null, "inner": null, "many": [null, 1] }),
            json!({ "name": "abc", "kind": "b", "inner": { "x": 1 }, "many": [2] }),
        ] {
            assert!(input.is_valid(&ok), "{ok}");
            assert!(serde_json::from_value::<Nullables>(ok).is_ok());
        }
        for bad in [
            json!({ "name": "", "many": [] }),
            json!({ "name": 1, "many": [] }),
            json!({ "kind": "c", "many": [] }),
            json!({ "inner": {}, "many": [] }),
            json!({ "many": ["1"] }),
        ] {
            assert!(!input.is_valid(&bad), "{bad}");
        }
    }

    /// The errors of a tool's result against the output schema the tool declares, formats included; what a
    /// client that validates `structuredContent` would refuse.
    pub(super) fn output_errors(tool: &str, structured: &Value) -> Vec<String> {
        let spec = (find(tool).unwrap().describe)();
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&spec["outputSchema"])
            .unwrap();
        validator
            .iter_errors(structured)
            .map(|e| format!("{tool}: {e} at {}", e.instance_path()))
            .collect()
    }

    /// The `structuredContent` a tool answers with when it returns `result`.
    pub(super) fn structured<T: Serialize + JsonSchema>(result: &T) -> Value {
        ToolOutcome::ok(result).into_result()["structuredContent"].clone()
    }

    #[test]
    fn output_schemas_are_derived_objects_that_require_what_the_tools_always_send() {
        let output = |name: &str| (find(name).unwrap().describe)()["outputSchema"].clone();
        for t in ALL {
            let schema = output(t.name);
            assert_eq!(
                schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{}",
                t.name
            );
            assert!(!schema.to_string().contains("$ref"), "{}: inlined", t.name);
            assert!(schema.get("title").is_none(), "{}", t.name);
        }
        for search in ["hybrid_search", "search"] {
            let s = output(search);
            assert_eq!(s["required"], json!(["hits", "mode", "degraded"]));
            assert_eq!(
                s["properties"]["mode"]["enum"],
                json!(["hybrid", "lexical"])
            );
            assert_eq!(s["properties"]["degradedReason"]["type"], "string");
            let hit = &s["properties"]["hits"]["items"];
            assert_eq!(
                hit["required"],
                json!([
                    "id", "title", "snippet", "metadata", "score", "lexical", "vector"
                ])
            );
            assert_eq!(hit["properties"]["metadata"]["type"], "object");
            for arm in ["lexical", "vector"] {
                let any_of = &hit["properties"][arm]["anyOf"];
                assert_eq!(any_of[0]["type"], "object", "{arm}");
                assert_eq!(any_of[0]["required"], json!(["rank", "score"]), "{arm}");
                assert_eq!(any_of[0]["properties"]["rank"]["type"], "integer", "{arm}");
                assert_eq!(any_of[1], json!({ "type": "null" }), "{arm}");
            }
        }
        let doc = output("get_document");
        assert_eq!(
            doc["required"],
            json!([
                "id",
                "title",
                "content",
                "metadata",
                "embedded",
                "updated_at"
            ])
        );
        assert_eq!(
            doc["properties"]["updated_at"],
            json!({ "type": "string", "format": "date-time" })
        );
        assert_eq!(doc["properties"]["metadata"]["type"], "object");
        let page = output("list_documents");
        assert_eq!(page["required"], json!(["documents"]));
        assert_eq!(page["properties"]["nextCursor"]["type"], "string");
        let summary = &page["properties"]["documents"]["items"];
        assert_eq!(
            summary["required"],
            json!(["id", "title", "metadata", "updated_at"])
        );
        assert_eq!(summary["properties"]["updated_at"]["format"], "date-time");
        assert_eq!(
            output("upsert_document")["required"],
            json!(["id", "outcome"])
        );
        assert_eq!(
            output("upsert_document")["properties"]["outcome"]["enum"],
            json!(["created", "updated", "unchanged"])
        );
        assert_eq!(
            output("delete_document")["required"],
            json!(["id", "deleted"])
        );
        let usage = output("usage");
        assert_eq!(
            usage["required"],
            json!([
                "tenant",
                "user",
                "periodStart",
                "currency",
                "budget",
                "spent",
                "reserved",
                "remaining",
                "userSpent",
                "warnAtPercent",
                "byModel"
            ])
        );
        let p = &usage["properties"];
        assert_eq!(p["periodStart"]["format"], "date");
        for money in ["budget", "spent", "reserved", "remaining", "userSpent"] {
            assert_eq!(p[money]["type"], "string", "{money}");
        }
        assert_eq!(
            p["byModel"]["items"]["required"],
            json!(["model", "calls", "inputTokens", "outputTokens", "cost"])
        );
        assert_eq!(
            p["ledger"]["required"],
            json!(["by", "since", "until", "rows", "truncated"])
        );
        assert_eq!(
            p["ledger"]["properties"]["by"]["enum"],
            json!(["user", "model", "task", "day"])
        );
        assert_eq!(
            p["ledger"]["properties"]["rows"]["items"]["required"],
            json!(["key", "calls", "inputTokens", "outputTokens", "cost"])
        );
    }

    #[test]
    fn error_results_carry_no_structured_content() {
        let r = ToolOutcome::Failed("nope".into()).into_result();
        assert_eq!(r["isError"], true);
        assert!(r.get("structuredContent").is_none());
        let ok = ToolOutcome::Ok(json!({"a": 1})).into_result();
        assert_eq!(ok["structuredContent"], json!({"a": 1}));
        assert_eq!(ok["content"][0]["text"], "{\"a\":1}");
    }
}
