//! The operator's test world: its manifest fixtures ([`fixtures`]), a database whose schema belongs to a
//! non-superuser admin role as in production ([`db`]), and a provisioned tenant with a ToolServer whose rendered
//! configuration starts a real runtime ([`world`]).
//!
//! Fixtures are Kubernetes manifests under the operator's `tests/fixtures/{valid,invalid}/`. They use two
//! placeholders, `__TENANT__` and `__NAMESPACE__`, so the cluster test can give every run its
//! own names. An invalid fixture starts with `# expect: <text>`, a part of the API server's
//! refusal message.

use std::{fs, path::PathBuf};

/// The operator crate's fixtures (this kit sits beside it in the workspace).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../operator/tests/fixtures");

pub struct Fixture {
    pub file: String,
    pub text: String,
    pub expect: Option<String>,
}

impl Fixture {
    /// The manifest with the placeholders filled in.
    pub fn render(&self, tenant: &str, namespace: &str) -> String {
        self.text
            .replace("__TENANT__", tenant)
            .replace("__NAMESPACE__", namespace)
    }

    /// `kind:` of the manifest.
    pub fn kind(&self) -> &str {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("kind: "))
            .unwrap_or_else(|| panic!("{} has no kind", self.file))
            .trim()
    }
}

pub fn fixtures(set: &str) -> Vec<Fixture> {
    let dir = PathBuf::from(FIXTURES).join(set);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("fixture is readable");
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
                .map(|e| e.trim().to_owned());
            Fixture {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                text,
                expect,
            }
        })
        .collect()
}

pub mod db;
pub mod world;
