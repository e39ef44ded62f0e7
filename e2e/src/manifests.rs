//! The manifests scenarios apply, written as YAML the way a user writes them.

/// A Tenant claiming `namespaces`, with a monthly budget and deletion policy.
pub fn tenant(name: &str, namespaces: &[&str], monthly_limit: &str, deletion_policy: &str) -> String {
    let ns = namespaces.iter().map(|n| format!("    - {n}\n")).collect::<String>();
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
pub fn agent_task(name: &str, namespace: &str, toolserver: &str, input: &str, budget: Option<&str>) -> String {
    let budget = budget.map(|b| format!("  budget: \"{b}\"\n")).unwrap_or_default();
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
