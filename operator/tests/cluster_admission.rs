//! The CRDs and admission policies on a real API server: valid fixtures are accepted, every
//! invalid fixture is refused with the message it names, and the CEL rules that need an old
//! object (immutability) or another object (the namespace's tenant) hold.
//!
//! Needs a cluster and `kubectl` on PATH, so it is ignored by default:
//!
//! ```sh
//! eval "$(e2e/controlplane/up.sh)"
//! cargo test -p paddock-operator --test cluster_admission -- --ignored
//! ```
//!
//! It creates its own namespaces and tenants with random names and deletes them again.

use paddock_testkit::operator::fixtures;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl is on PATH");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `kubectl create -f -`; `Ok(())` when created, `Err(stderr)` when refused.
fn create(manifest: &str, namespace: Option<&str>) -> Result<(), String> {
    let mut args = vec!["create", "-f", "-"];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let out = kubectl(&args, Some(manifest));
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn repo_path(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

/// Deletes what the test created, also when an assertion fails halfway.
struct Cleanup {
    namespaces: Vec<String>,
    tenants: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for t in &self.tenants {
            kubectl(
                &["delete", "tenant", t, "--ignore-not-found", "--wait=false"],
                None,
            );
        }
        for ns in &self.namespaces {
            kubectl(
                &[
                    "delete",
                    "namespace",
                    ns,
                    "--ignore-not-found",
                    "--wait=false",
                ],
                None,
            );
        }
    }
}

/// Retries `attempt` for a while: admission policies take effect a moment after creation.
fn eventually(what: &str, mut attempt: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match attempt() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
#[ignore = "needs a cluster: eval \"$(e2e/controlplane/up.sh)\" and run with --ignored"]
fn api_server_enforces_the_crd_schemas_and_admission_policies() {
    ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &repo_path("crds"),
        ],
        None,
    );
    ok(
        &[
            "wait",
            "--for=condition=Established",
            "crd/tenants.paddock.dev",
            "crd/toolservers.paddock.dev",
            "crd/agenttasks.paddock.dev",
            "crd/postgresclusters.paddock.dev",
            "--timeout=60s",
        ],
        None,
    );

    let suffix = format!(
        "{:x}{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
        std::process::id()
    );
    let tenant = format!("t{suffix}");
    let ns = format!("paddock-crd-{suffix}");
    let unclaimed = format!("{ns}-unclaimed");
    let long_name = format!("{tenant}-this-name-is-far-too-long-for-a-database-role");
    let _cleanup = Cleanup {
        namespaces: vec![ns.clone(), unclaimed.clone()],
        tenants: vec![
            tenant.clone(),
            format!("{tenant}-full"),
            format!("{tenant}-x"),
            long_name,
        ],
    };
    ok(&["create", "namespace", &ns], None);
    ok(&["create", "namespace", &unclaimed], None);
    // What the Tenant controller does for every claimed namespace.
    ok(
        &[
            "label",
            "namespace",
            &ns,
            &format!("paddock.dev/tenant={tenant}"),
        ],
        None,
    );

    let mut problems = Vec::new();

    for fixture in fixtures("valid") {
        if let Err(e) = create(&fixture.render(&tenant, &ns), None) {
            problems.push(format!("valid {} was refused: {e}", fixture.file));
        }
    }

    // Policy-dependent fixtures are checked last, once the policies are surely active.
    let (policy_cases, schema_cases): (Vec<_>, Vec<_>) = fixtures("invalid")
        .into_iter()
        .partition(|f| f.file == "toolserver-other-tenant.yaml");
    for fixture in schema_cases {
        let expect = fixture
            .expect
            .clone()
            .unwrap()
            .replace("__TENANT__", &tenant);
        match create(&fixture.render(&tenant, &ns), None) {
            Ok(()) => {
                problems.push(format!("invalid {} was accepted", fixture.file));
                kubectl(
                    &["delete", "-f", "-", "--wait=false"],
                    Some(&fixture.render(&tenant, &ns)),
                );
            }
            Err(e) if !e.contains(&expect) => problems.push(format!(
                "invalid {}: expected {expect:?} in: {}",
                fixture.file,
                e.trim()
            )),
            Err(_) => {}
        }
    }

    let long_input = format!(
        "apiVersion: paddock.dev/v1alpha1\nkind: AgentTask\nmetadata: {{name: long}}\nspec: {{toolServerRef: docs, skill: rag, input: {}}}\n",
        "x".repeat(16_001)
    );
    match create(&long_input, Some(&ns)) {
        Err(e) if e.contains("spec.input: Too long") => {}
        other => problems.push(format!("16001-character input: {other:?}")),
    }

    // Transition rules (oldSelf).
    let patch_refused = |args: &[&str], expect: &str, problems: &mut Vec<String>| {
        let out = kubectl(args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !stderr.contains(expect) {
            problems.push(format!(
                "kubectl {}: expected refusal {expect:?}, got {stderr}",
                args.join(" ")
            ));
        }
    };
    patch_refused(
        &[
            "-n",
            &ns,
            "patch",
            "agenttask",
            "question",
            "--type=merge",
            "-p",
            r#"{"spec":{"input":"changed"}}"#,
        ],
        "spec is immutable",
        &mut problems,
    );
    patch_refused(
        &[
            "-n",
            &ns,
            "patch",
            "toolserver",
            "docs",
            "--type=merge",
            "-p",
            r#"{"spec":{"tenantRef":"other"}}"#,
        ],
        "tenantRef is immutable",
        &mut problems,
    );
    ok(
        &[
            "-n",
            &ns,
            "patch",
            "toolserver",
            "docs",
            "--type=merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
        None,
    );
    ok(
        &["-n", &ns, "scale", "toolserver", "docs", "--replicas=2"],
        None,
    );
    let replicas = ok(
        &[
            "-n",
            &ns,
            "get",
            "toolserver",
            "docs",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    assert_eq!(replicas, "2", "the scale subresource writes spec.replicas");

    // Status is a subresource: the operator's writes go there, printer columns read it.
    ok(
        &[
            "-n",
            &ns,
            "patch",
            "agenttask",
            "question",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"state":"input-required","cost":"0.0123"}}"#,
        ],
        None,
    );
    let row = ok(
        &["-n", &ns, "get", "agenttask", "question", "--no-headers"],
        None,
    );
    assert!(
        row.contains("input-required") && row.contains("0.0123"),
        "printer columns show state and cost: {row}"
    );
    let header = ok(&["get", "tenant", &tenant], None);
    assert!(
        header.starts_with("NAME") && header.contains("READY") && header.contains("BUDGET"),
        "{header}"
    );
    let explain = ok(&["explain", "tenants.spec.budget.monthlyLimit"], None);
    assert!(
        explain.contains("Negative amounts are refused"),
        "kubectl explain shows the doc comment: {explain}"
    );
    let defaults = ok(
        &[
            "get",
            "tenant",
            &tenant,
            "-o",
            "jsonpath={.spec.rateLimit.requestsPerMinute}/{.spec.auth.tenantClaim}",
        ],
        None,
    );
    assert_eq!(
        defaults, "600/tenant_id",
        "the API server applies the schema defaults"
    );

    // Admission policies: namespace ownership needs the Namespace object.
    ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &repo_path("crds/admission-policy.yaml"),
        ],
        None,
    );
    for fixture in policy_cases {
        let expect = fixture
            .expect
            .clone()
            .unwrap()
            .replace("__TENANT__", &tenant);
        eventually(&fixture.file, || {
            match create(&fixture.render(&tenant, &ns), None) {
                Ok(()) => {
                    kubectl(
                        &["delete", "-f", "-", "--wait=false"],
                        Some(&fixture.render(&tenant, &ns)),
                    );
                    Err("accepted".into())
                }
                Err(e) if e.contains(&expect) => Ok(()),
                Err(e) => Err(format!("expected {expect:?} in: {e}")),
            }
        });
    }
    let task_in_unclaimed = "apiVersion: paddock.dev/v1alpha1\nkind: AgentTask\nmetadata: {name: stray}\nspec: {toolServerRef: docs, skill: rag, input: hi}\n";
    eventually("AgentTask in an unclaimed namespace", || {
        match create(task_in_unclaimed, Some(&unclaimed)) {
            Ok(()) => {
                kubectl(
                    &[
                        "-n",
                        &unclaimed,
                        "delete",
                        "agenttask",
                        "stray",
                        "--wait=false",
                    ],
                    None,
                );
                Err("accepted".into())
            }
            Err(e) if e.contains("is not claimed by any Tenant") => Ok(()),
            Err(e) => Err(e),
        }
    });
    // Metadata-only updates pass, so finalizers can always be removed.
    ok(
        &["-n", &ns, "label", "toolserver", "docs", "example=1"],
        None,
    );
    // And a valid ToolServer in its own tenant's namespace still goes through with the policies on.
    let fine = "apiVersion: paddock.dev/v1alpha1\nkind: ToolServer\nmetadata: {name: after-policy}\nspec: {tenantRef: TENANT, tools: [search]}\n"
        .replace("TENANT", &tenant);
    if let Err(e) = create(&fine, Some(&ns)) {
        problems.push(format!(
            "valid ToolServer refused once the policies were on: {e}"
        ));
    }

    assert!(
        problems.is_empty(),
        "admission problems:\n  {}",
        problems.join("\n  ")
    );
}
