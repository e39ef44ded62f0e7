//! The CRD YAML committed under `crds/` and inside the Helm chart is generated from the Rust
//! types. These tests regenerate it in memory and fail on any difference, so a change to a
//! type cannot ship with stale manifests.

use std::{collections::BTreeSet, fs, path::PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use paddock_operator::crd::{self, GeneratedFile};
use serde::Deserialize;

const REGENERATE: &str =
    "run `cargo run -p paddock-operator -- crds --dir crds --chart charts/paddock`";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate lives in the workspace root")
        .to_path_buf()
}

/// Every generated file exists in `dir` with exactly the generated text, and `dir` holds no
/// other YAML (a renamed kind must not leave its old CRD behind).
fn assert_matches_committed(dir: &str, generated: &[GeneratedFile]) {
    let dir_path = repo_root().join(dir);
    let mut problems = Vec::new();
    for file in generated {
        let path = dir_path.join(file.name);
        match fs::read_to_string(&path) {
            Err(e) => problems.push(format!("{dir}/{} cannot be read: {e}", file.name)),
            Ok(committed) if committed != file.contents => {
                let line = committed
                    .lines()
                    .zip(file.contents.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| {
                        committed.lines().count().min(file.contents.lines().count())
                    })
                    + 1;
                problems.push(format!(
                    "{dir}/{} differs from the generated text from line {line}",
                    file.name
                ));
            }
            Ok(_) => {}
        }
    }
    let expected: BTreeSet<&str> = generated.iter().map(|f| f.name).collect();
    if let Ok(entries) = fs::read_dir(&dir_path) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".yaml") && !expected.contains(name.as_str()) {
                problems.push(format!("{dir}/{name} is not generated any more; delete it"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "generated manifests drifted:\n  {}\n{REGENERATE}",
        problems.join("\n  ")
    );
}

#[test]
fn committed_crds_match_the_rust_types() {
    assert_matches_committed("crds", &crd::generated_files().unwrap());
}

#[test]
fn chart_crds_match_the_rust_types() {
    assert_matches_committed("charts/paddock/crds", &crd::crd_files().unwrap());
}

#[test]
fn chart_admission_policy_matches_the_generated_one() {
    assert_matches_committed("charts/paddock/files", &[crd::policy_file().unwrap()]);
}

#[test]
fn printed_stream_holds_the_four_crds_in_order() {
    let yaml = crd::crds_yaml().unwrap();
    let names: Vec<String> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|doc| {
            CustomResourceDefinition::deserialize(doc)
                .expect("each document is a CRD")
                .metadata
                .name
                .expect("CRDs are named")
        })
        .collect();
    assert_eq!(
        names,
        [
            "tenants.paddock.dev",
            "toolservers.paddock.dev",
            "agenttasks.paddock.dev",
            "postgresclusters.paddock.dev"
        ]
    );
}
