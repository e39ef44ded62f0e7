//! Installs what `helm install` would, minus the operator's own Deployment (the harness runs
//! the operator as a local process): the CRDs from `crds/`, and from `helm template` of
//! `charts/paddock` the ServiceAccount, RBAC and admission policies.

use std::{path::Path, time::Duration};

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::process::Command;

use crate::{
    env::{OPERATOR_NAMESPACE, RELEASE},
    kubectl::Kubectl,
};

/// The CRD files and the names the API server registers them under.
pub const CRDS: [(&str, &str); 4] = [
    ("crds/tenant.yaml", "tenants.paddock.dev"),
    ("crds/toolserver.yaml", "toolservers.paddock.dev"),
    ("crds/agenttask.yaml", "agenttasks.paddock.dev"),
    ("crds/postgrescluster.yaml", "postgresclusters.paddock.dev"),
];

/// Kinds of the rendered chart the harness applies.
const CHART_KINDS: [&str; 7] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

/// `helm template` of the chart into [`OPERATOR_NAMESPACE`], as multi-document YAML.
pub async fn render_chart(repo: &Path) -> anyhow::Result<String> {
    let helm = std::env::var("HELM").unwrap_or_else(|_| "helm".into());
    let out = Command::new(&helm)
        .args(["template", RELEASE])
        .arg(repo.join("charts/paddock"))
        .args(["--namespace", OPERATOR_NAMESPACE])
        .output()
        .await
        .with_context(|| format!("failed to run {helm} (set HELM, see e2e/tools/build.sh)"))?;
    if !out.status.success() {
        bail!(
            "helm template failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[derive(Deserialize)]
struct Head {
    kind: Option<String>,
}

/// The documents of `yaml` whose kind is in `kinds`, joined again.
pub fn select_kinds(yaml: &str, kinds: &[&str]) -> anyhow::Result<String> {
    let mut keep = Vec::new();
    for doc in yaml.split("\n---") {
        let doc = doc.trim_start_matches("---");
        if doc.trim().is_empty() {
            continue;
        }
        let head: Head = serde_yaml::from_str(doc)
            .with_context(|| format!("unparsable document in the chart:\n{doc}"))?;
        if head.kind.as_deref().is_some_and(|k| kinds.contains(&k)) {
            keep.push(doc.trim().to_owned());
        }
    }
    Ok(keep.join("\n---\n"))
}

pub async fn install(repo: &Path, kubectl: &Kubectl) -> anyhow::Result<()> {
    let mut crds = String::new();
    for (file, _) in CRDS {
        let text = std::fs::read_to_string(repo.join(file))
            .with_context(|| format!("failed to read {file}"))?;
        crds.push_str(&text);
        crds.push_str("\n---\n");
    }
    kubectl.apply_server_side(&crds).await?;
    for (_, name) in CRDS {
        kubectl
            .wait(
                None,
                &format!("crd/{name}"),
                "condition=Established",
                Duration::from_secs(60),
            )
            .await?;
    }

    let ns = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n");
    kubectl.apply_server_side(&ns).await?;
    let chart = render_chart(repo).await?;
    let wanted = select_kinds(&chart, &CHART_KINDS)?;
    for kind in ["ServiceAccount", "ClusterRole", "ValidatingAdmissionPolicy"] {
        if !wanted.contains(&format!("kind: {kind}")) {
            bail!("the rendered chart has no {kind}");
        }
    }
    kubectl.apply_server_side(&wanted).await?;
    Ok(())
}
