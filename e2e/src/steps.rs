//! Steps the scenario binaries share: reading status, waiting for a Ready ToolServer, minting
//! tokens with the operator's development issuer, and MCP calls (the runtime's own client, from
//! the test kit).

use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use paddock_contract::dev::{self, MintClaims};
use paddock_testkit::McpClient;
use serde_json::{Value, json};

use crate::{
    env::{Scope, eventually},
    manifests,
};

/// The shared operator's recent log, for failure messages.
pub fn op_log(s: &Scope) -> String {
    let env = s.env.clone();
    // Called from async code on a multi-thread runtime.
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(env.operator_log_tail(15))
    })
}

/// `kubectl get WHAT -o jsonpath=PATH` (empty when the field is absent).
pub async fn jsonpath(
    s: &Scope,
    namespace: Option<&str>,
    what: &str,
    path: &str,
) -> anyhow::Result<String> {
    let jp = format!("jsonpath={path}");
    let mut args = vec!["get", what, "-o", jp.as_str()];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    Ok(s.env.kubectl.ok(&args, None).await?.trim().to_owned())
}

/// Applies `manifest` until it is refused (admission policies take effect a moment after they
/// are created); returns the refusal. An accepted object is deleted again before retrying.
pub async fn refused_eventually(
    s: &Scope,
    manifest: &str,
    namespace: &str,
) -> anyhow::Result<String> {
    let k = &s.env.kubectl;
    eventually(
        "the manifest to be refused",
        Duration::from_secs(30),
        || async {
            let out = k.run(&["apply", "-f", "-"], Some(manifest)).await?;
            if out.success {
                k.run(
                    &["delete", "-f", "-", "-n", namespace, "--wait=false"],
                    Some(manifest),
                )
                .await?;
                return Ok(None);
            }
            Ok(Some(out.stderr))
        },
    )
    .await
}

/// Waits until the operator has labelled `namespace` as belonging to `tenant`.
pub async fn wait_namespace_claimed(
    s: &Scope,
    namespace: &str,
    tenant: &str,
) -> anyhow::Result<()> {
    eventually(
        &format!("namespace {namespace} to be claimed by {tenant}"),
        Duration::from_secs(60),
        || async {
            let label = jsonpath(
                s,
                None,
                &format!("namespace/{namespace}"),
                "{.metadata.labels.paddock\\.dev/tenant}",
            )
            .await?;
            Ok((label == tenant).then_some(()))
        },
    )
    .await
}

/// A Ready ToolServer as a client sees it.
#[derive(Clone, Debug)]
pub struct ToolServerInfo {
    pub namespace: String,
    pub name: String,
    /// `status.url`.
    pub url: String,
}

/// Applies a Tenant owning `namespace` and a ToolServer `name` in it, and waits until the
/// ToolServer is Ready and Verified, its children exist and its pods run.
pub async fn ready_tenant_with_toolserver(
    s: &Scope,
    tenant: &str,
    namespace: &str,
    name: &str,
) -> anyhow::Result<ToolServerInfo> {
    let t = manifests::tenant(tenant, &[namespace], "25.00", "Delete");
    let ts = manifests::toolserver(name, namespace, tenant);
    ready_with(s, tenant, &t, namespace, name, &ts).await
}

/// [`ready_tenant_with_toolserver`] with the given manifests.
pub async fn ready_with(
    s: &Scope,
    tenant: &str,
    tenant_yaml: &str,
    namespace: &str,
    name: &str,
    ts_yaml: &str,
) -> anyhow::Result<ToolServerInfo> {
    let k = &s.env.kubectl;
    s.track_tenant(tenant);
    k.apply(tenant_yaml).await?;
    k.wait(
        None,
        &format!("tenant/{tenant}"),
        "condition=Ready",
        Duration::from_secs(90),
    )
    .await
    .with_context(|| {
        format!(
            "tenant {tenant} never became Ready; operator log:\n{}",
            op_log(s)
        )
    })?;
    wait_namespace_claimed(s, namespace, tenant).await?;
    eventually(
        "the ToolServer to be admitted",
        Duration::from_secs(30),
        || async {
            Ok(k.run(&["apply", "-f", "-"], Some(ts_yaml))
                .await?
                .success
                .then_some(()))
        },
    )
    .await?;
    for cond in ["condition=Ready", "condition=Verified"] {
        if let Err(e) = k
            .wait(
                Some(namespace),
                &format!("toolserver/{name}"),
                cond,
                Duration::from_secs(120),
            )
            .await
        {
            let conditions = jsonpath(
                s,
                Some(namespace),
                &format!("toolserver/{name}"),
                "{.status.conditions}",
            )
            .await
            .unwrap_or_default();
            bail!(
                "toolserver {namespace}/{name} never got {cond} ({e:#}); its conditions: {conditions}; operator log:\n{}",
                op_log(s)
            );
        }
    }
    for child in [
        format!("deployment/{name}"),
        format!("service/{name}"),
        format!("configmap/{name}-runtime"),
    ] {
        k.ok(&["get", &child, "-n", namespace], None)
            .await
            .with_context(|| format!("the ToolServer has no {child}"))?;
    }
    let selector = format!("paddock.dev/toolserver={name}");
    k.ok(
        &[
            "wait",
            "pods",
            "-n",
            namespace,
            "-l",
            &selector,
            "--for=jsonpath={.status.phase}=Running",
            "--timeout=60s",
        ],
        None,
    )
    .await
    .context("the ToolServer's pods are not Running")?;
    let url = jsonpath(
        s,
        Some(namespace),
        &format!("toolserver/{name}"),
        "{.status.url}",
    )
    .await?;
    ensure!(url.starts_with("http://"), "status.url is not set: {url:?}");
    Ok(ToolServerInfo {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        url,
    })
}

/// The runtime config the operator rendered for `ts`.
async fn runtime_config(s: &Scope, ts: &ToolServerInfo) -> anyhow::Result<Value> {
    let text = s
        .env
        .kubectl
        .ok(
            &[
                "get",
                "configmap",
                &format!("{}-runtime", ts.name),
                "-n",
                &ts.namespace,
                "-o",
                "jsonpath={.data.runtime\\.yaml}",
            ],
            None,
        )
        .await?;
    serde_yaml::from_str(&text).context("the runtime ConfigMap does not hold YAML")
}

/// The development issuer's signing key (PKCS#8 PEM) from its Secret in the operator namespace.
async fn dev_key(s: &Scope) -> anyhow::Result<String> {
    let api: Api<Secret> = Api::namespaced(s.env.client.clone(), &s.env.operator_namespace);
    for secret in api.list(&Default::default()).await?.items {
        if let Some(pem) = secret
            .data
            .as_ref()
            .and_then(|d| d.get(dev::SIGNING_KEY_FILE))
        {
            return Ok(String::from_utf8(pem.0.clone())?);
        }
    }
    bail!(
        "no Secret in {} holds {}",
        s.env.operator_namespace,
        dev::SIGNING_KEY_FILE
    )
}

/// A token from the operator's development issuer for `tenant`, with `scope`, whose audience
/// is the ToolServer the runtime config names.
pub async fn mint(
    s: &Scope,
    ts: &ToolServerInfo,
    tenant: &str,
    scope: &str,
) -> anyhow::Result<String> {
    mint_for_audience(s, ts, tenant, scope).await
}

/// A development-issuer token for `tenant` accepted by `ts` if (and only if) the tenant matches.
pub async fn mint_for_audience(
    s: &Scope,
    ts: &ToolServerInfo,
    tenant: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let cfg = runtime_config(s, ts).await?;
    let issuer = cfg["auth"]["issuers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["jwks"].get("file").is_some())
        .ok_or_else(|| anyhow!("the runtime config trusts no development issuer: {cfg}"))?;
    let pem = dev_key(s).await?;
    let key = dev::from_pem(&pem).map_err(|e| anyhow!("{e}"))?;
    let claims = MintClaims {
        issuer: issuer["issuer"].as_str().unwrap_or_default().to_owned(),
        audience: issuer["audience"].as_str().unwrap_or_default().to_owned(),
        tenant: tenant.to_owned(),
        user: "e2e-user".to_owned(),
        scopes: scope.split_whitespace().map(str::to_owned).collect(),
        ttl: Duration::from_secs(1800),
    };
    dev::mint_with_pem(&key.private_pem, &key.kid, &claims).map_err(|e| anyhow!("{e}"))
}

/// An MCP session with the ToolServer, through its Service URL.
pub async fn connect(s: &Scope, ts: &ToolServerInfo, token: &str) -> anyhow::Result<McpClient> {
    let (http, base) = s
        .env
        .toolserver_http(&ts.namespace, &ts.name, &ts.url)
        .await?;
    McpClient::connect(http, &format!("{base}/mcp"), token)
        .await
        .map_err(|e| anyhow!("MCP initialize at {base}/mcp failed: {e}"))
}

/// Upserts documents `(id, title, content)` and checks each was created.
pub async fn ingest(
    mcp: &McpClient,
    tenant: &str,
    docs: &[(&str, &str, &str)],
) -> anyhow::Result<()> {
    for (id, title, content) in docs {
        let out = mcp
            .call_tool(
                "upsert_document",
                json!({"id": id, "title": title, "content": content}),
            )
            .await
            .map_err(|e| anyhow!("upsert_document {id} for {tenant} failed: {e}"))?;
        ensure!(out["outcome"] == "created", "upsert_document {id}: {out}");
    }
    Ok(())
}

/// The question the AgentTask scenarios ask, answered by [`load_refund_policy`]'s document.
pub const REFUND_QUESTION: &str = "How long do customers have to ask for a refund?";

/// Loads the one document the AgentTask scenarios ask about, through MCP with a writer's token.
pub async fn load_refund_policy(
    s: &Scope,
    ts: &ToolServerInfo,
    tenant: &str,
) -> anyhow::Result<()> {
    let writer = mint(s, ts, tenant, "documents:read documents:write").await?;
    let mcp = connect(s, ts, &writer).await?;
    ingest(
        &mcp,
        tenant,
        &[(
            "p1",
            "Refund policy",
            "Refunds are granted within 30 days of purchase with a receipt.",
        )],
    )
    .await
}

/// Ids of the `hybrid_search` hits for `query`, best first.
pub async fn search(mcp: &McpClient, query: &str) -> anyhow::Result<Vec<String>> {
    let out = mcp
        .call_tool("hybrid_search", json!({"query": query, "limit": 10}))
        .await
        .map_err(|e| anyhow!("hybrid_search failed: {e}"))?;
    Ok(out["hits"]
        .as_array()
        .ok_or_else(|| anyhow!("hybrid_search returned no hits array: {out}"))?
        .iter()
        .filter_map(|h| h["id"].as_str().map(str::to_owned))
        .collect())
}

/// The `paddock-runtime` binary (`PADDOCK_RUNTIME_BIN`).
pub fn runtime_bin() -> anyhow::Result<String> {
    std::env::var("PADDOCK_RUNTIME_BIN").map_err(|_| anyhow!("PADDOCK_RUNTIME_BIN is not set"))
}

/// A token minted the way the README shows: the development key from its Secret, written to a
/// file, and `paddock-runtime token`.
pub async fn cli_token(
    s: &Scope,
    ts: &ToolServerInfo,
    tenant: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let cfg = runtime_config(s, ts).await?;
    let issuer = cfg["auth"]["issuers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["jwks"].get("file").is_some())
        .ok_or_else(|| anyhow!("the runtime config trusts no development issuer: {cfg}"))?
        .clone();
    let key = s.env.work_dir.join(format!("{}-signing-key.pem", s.id));
    std::fs::write(&key, dev_key(s).await?)?;
    let out = tokio::process::Command::new(runtime_bin()?)
        .arg("token")
        .arg("--key")
        .arg(&key)
        .args(["--issuer", issuer["issuer"].as_str().unwrap_or_default()])
        .args([
            "--audience",
            issuer["audience"].as_str().unwrap_or_default(),
        ])
        .args(["--tenant", tenant, "--scope", scope])
        .output()
        .await
        .context("failed to run paddock-runtime token")?;
    let _ = std::fs::remove_file(&key);
    ensure!(
        out.status.success(),
        "paddock-runtime token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// A bare MCP `initialize` with `token`: the HTTP status and the `WWW-Authenticate` header.
pub async fn raw_initialize(
    s: &Scope,
    ts: &ToolServerInfo,
    token: &str,
) -> anyhow::Result<(u16, String)> {
    let (http, base) = s
        .env
        .toolserver_http(&ts.namespace, &ts.name, &ts.url)
        .await?;
    let resp = http
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "paddock-e2e", "version": "0"}}}))
        .send()
        .await?;
    let www = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((resp.status().as_u16(), www))
}
