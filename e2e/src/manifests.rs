//! The manifests scenarios apply, written as YAML the way a user writes them.

/// A Tenant claiming `namespaces`, with a monthly budget and deletion policy.
pub fn tenant(
    name: &str,
    namespaces: &[&str],
    monthly_limit: &str,
    deletion_policy: &str,
) -> String {
    let ns = namespaces
        .iter()
        .map(|n| format!("    - {n}\n"))
        .collect::<String>();
    format!(
        r#"apiVersion: paddock.dev/v1alpha1
kind: Tenant
metadata:
  name: {name}
spec:
  displayName: End-to-end tenant {name}
  namespaces:
{ns}  auth:
    issuer: https://idp.{name}.example.com
    jwksUri: https://idp.{name}.example.com/jwks.json
    audience: paddock
  budget:
    monthlyLimit: "{monthly_limit}"
    currency: USD
  rateLimit:
    requestsPerMinute: 6000
    burst: 1000
  deletionPolicy: {deletion_policy}
"#
    )
}

/// A ToolServer for `tenant` in `namespace` with lexical search only (no embedding provider).
pub fn toolserver(name: &str, namespace: &str, tenant: &str) -> String {
    format!(
        r#"apiVersion: paddock.dev/v1alpha1
kind: ToolServer
metadata:
  name: {name}
  namespace: {namespace}
spec:
  tenantRef: {tenant}
  replicas: 1
  tools: [hybrid_search, get_document, list_documents, upsert_document]
  embedding:
    provider: none
"#
    )
}

/// An AgentTask against ToolServer `toolserver`.
pub fn agent_task(
    name: &str,
    namespace: &str,
    toolserver: &str,
    input: &str,
    budget: Option<&str>,
) -> String {
    let budget = budget
        .map(|b| format!("  budget: \"{b}\"\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: paddock.dev/v1alpha1
kind: AgentTask
metadata:
  name: {name}
  namespace: {namespace}
spec:
  toolServerRef: {toolserver}
  skill: rag
  input: {input:?}
{budget}  timeout: 2m
"#
    )
}

/// A Tenant that may use `models`, each priced `(name, input per 1K, output per 1K)`.
pub fn tenant_with_models(
    name: &str,
    namespace: &str,
    monthly_limit: &str,
    models: &[(&str, &str, &str)],
) -> String {
    let allowed = models
        .iter()
        .map(|(m, _, _)| format!("      - {m}\n"))
        .collect::<String>();
    let prices = models
        .iter()
        .map(|(m, i, o)| format!("      {m}:\n        inputPer1kTokens: \"{i}\"\n        outputPer1kTokens: \"{o}\"\n"))
        .collect::<String>();
    format!(
        "{}  models:\n    allowed:\n{allowed}    prices:\n{prices}",
        tenant(name, &[namespace], monthly_limit, "Delete")
    )
}

/// A ToolServer whose tasks call the OpenAI-compatible model server at `endpoint`.
pub fn toolserver_with_llm(
    name: &str,
    namespace: &str,
    tenant: &str,
    endpoint: &str,
    model: &str,
) -> String {
    format!(
        "{}  llm:\n    provider: openai\n    endpoint: {endpoint}\n    model: {model}\n    timeout: 10m\n",
        toolserver(name, namespace, tenant)
    )
}

/// An AgentTask that asks for a specific model.
pub fn agent_task_with_model(
    name: &str,
    namespace: &str,
    toolserver: &str,
    input: &str,
    budget: &str,
    model: &str,
) -> String {
    format!(
        "{}  model: {model}\n",
        agent_task(name, namespace, toolserver, input, Some(budget))
    )
}
