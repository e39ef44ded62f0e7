//! The file as the operator writes it: only the fields a ToolServer's spec names, so the runtime's own
//! defaults fill in the rest and stay the runtime's to change.

use serde_yaml::Value;

use super::RuntimeConfig;

impl RuntimeConfig {
    /// YAML with only the `named` fields, in declaration order. A name is a dotted path (`search.alpha`); a
    /// section is written with only its named fields (`{}` when it is named alone), a path ending in `.*`
    /// keeps everything below it, and a path through a list applies to each element. Absent options are
    /// never written.
    pub fn render(&self, named: &[&str]) -> Result<String, serde_yaml::Error> {
        let mut value = serde_yaml::to_value(self)?;
        let paths: Vec<Vec<&str>> = named.iter().map(|p| p.split('.').collect()).collect();
        let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
        keep(&mut value, &paths);
        serde_yaml::to_string(&value)
    }
}

/// Drops what no path names from `value`; `paths` are relative to it.
fn keep(value: &mut Value, paths: &[&[&str]]) {
    if paths.iter().any(|p| p == &["*"]) {
        return;
    }
    match value {
        Value::Mapping(map) => map.retain(|key, child| {
            let Some(key) = key.as_str() else {
                return false;
            };
            let below: Vec<&[&str]> = paths
                .iter()
                .filter_map(|p| p.split_first())
                .filter(|(first, _)| **first == key)
                .map(|(_, rest)| rest)
                .collect();
            if below.is_empty() {
                return false;
            }
            keep(child, &below);
            true
        }),
        Value::Sequence(items) => items.iter_mut().for_each(|item| keep(item, paths)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{AuthConfig, IssuerConfig, JwksSource, RuntimeConfig};

    fn config() -> RuntimeConfig {
        let mut cfg = RuntimeConfig::new(AuthConfig::new(
            "http://docs.acme.svc:8080/mcp",
            vec![IssuerConfig::new(
                "https://idp.example",
                "paddock",
                JwksSource::File("/etc/paddock/jwks.json".into()),
            )],
        ));
        cfg.search.alpha = 0.65;
        cfg
    }

    #[test]
    fn only_named_fields_are_written_in_declaration_order() {
        let yaml = config()
            .render(&[
                "log_format",
                "listen",
                "auth.resource",
                "auth.issuers.issuer",
                "auth.issuers.jwks.*",
                "search.alpha",
                "a2a",
            ])
            .unwrap();
        assert_eq!(
            yaml,
            "listen: 0.0.0.0:8080\n\
             auth:\n  resource: http://docs.acme.svc:8080/mcp\n  issuers:\n  - issuer: https://idp.example\n    jwks:\n      file: /etc/paddock/jwks.json\n\
             search:\n  alpha: 0.65\n\
             a2a: {}\n\
             log_format: json\n"
        );
    }

    #[test]
    fn the_rendered_file_parses_back_with_the_defaults_filled_in() {
        let cfg = config();
        let yaml = cfg
            .render(&["auth.*", "search.alpha", "mcp.tools"])
            .unwrap();
        let back = RuntimeConfig::parse(&yaml).unwrap();
        back.validate().unwrap();
        assert_eq!(back.search.alpha, 0.65);
        assert_eq!(back.search.depth, cfg.search.depth);
        assert_eq!(back.auth.issuers[0].jwks, cfg.auth.issuers[0].jwks);
    }
}
