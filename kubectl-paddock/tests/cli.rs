//! The plugin as kubectl runs it, without a cluster: every subcommand explains itself, and a kubeconfig that
//! cannot be read is a one-line error, not a panic. The subcommands against a cluster are exercised by the
//! end-to-end suite (`e2e/tests/scenarios.rs`, `kubectl_paddock_walkthrough`).

use std::process::{Command, Output};

fn plugin(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-paddock"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("the plugin runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_subcommand_has_help_with_examples() {
    let top = plugin(&["--help"]);
    assert!(top.status.success());
    let text = stdout(&top);
    assert!(text.contains("Usage: kubectl paddock"), "{text}");
    for sub in ["token", "status", "usage", "logs"] {
        assert!(text.contains(sub), "--help lists {sub}: {text}");
        let help = plugin(&[sub, "--help"]);
        assert!(help.status.success(), "{sub} --help");
        let help = stdout(&help);
        assert!(
            help.contains("Examples:") && help.contains(&format!("kubectl paddock {sub}")),
            "{sub} --help shows examples: {help}"
        );
    }
}

#[test]
fn an_unreadable_kubeconfig_is_a_one_line_error() {
    let out = plugin(&["status"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_arguments_are_refused_before_any_request() {
    let out = plugin(&["token", "acme", "--ttl", "2d"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outside 1s to 24h"), "{err}");
    let out = plugin(&["usage", "acme", "--by", "tenant"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--by"));
}
