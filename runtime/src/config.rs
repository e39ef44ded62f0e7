//! The runtime's configuration file (YAML or JSON), as the operator renders it into a ConfigMap.
//!
//! The file's types, defaults and checks are the contract's ([`paddock_contract::config`]), shared with the
//! operator; this module turns a loaded file into the runtime's own settings ([`RuntimeConfigExt`]).
//!
//! Secrets stay out of the file: the database URL comes from `PADDOCK_DATABASE_URL` (the tenant's Secret)
//! when set, and provider API keys from their own variables.

use std::time::Duration;

pub use paddock_contract::config::*;

use crate::{app::Settings, db::DbConfig, tools::SearchSettings};

/// What the runtime reads from a loaded file.
pub trait RuntimeConfigExt {
    /// The database settings, with the URL from the environment taking precedence.
    fn db(&self) -> Result<DbConfig, ConfigError>;
    /// The settings the handlers consult.
    fn settings(&self) -> Settings;
}

impl RuntimeConfigExt for RuntimeConfig {
    fn db(&self) -> Result<DbConfig, ConfigError> {
        let url = std::env::var("PADDOCK_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.database.url.clone())
            .ok_or(ConfigError::NoDatabaseUrl)?;
        Ok(DbConfig {
            url,
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            statement_cache_capacity: self.database.statement_cache_capacity,
        })
    }

    fn settings(&self) -> Settings {
        let mut s = settings(&self.mcp, search_settings(&self.search), &self.limits);
        s.console = self.console.enabled;
        s.console_oauth = self.console.oauth.clone();
        if s.console {
            // The console's own requests carry the origin people open it at: the public URL's.
            let public = self.a2a.settings(&self.auth.resource).ok();
            if let Some(origin) = public.and_then(|a| origin_of(&a.public_url))
                && !s.origin_allowed(&origin)
            {
                s.allowed_origins.push(origin);
            }
        }
        s
    }
}

/// The handlers' settings from the file's `mcp:` and `limits:` sections.
pub fn settings(mcp: &McpConfig, search: SearchSettings, limits: &LimitsConfig) -> Settings {
    Settings {
        tools: mcp.tools.clone(),
        tools_page_size: mcp.tools_page_size,
        allowed_origins: mcp.allowed_origins.clone(),
        session_idle_timeout: Duration::from_millis(mcp.session_idle_timeout_ms),
        max_batch_size: mcp.max_batch_size,
        search,
        max_body_bytes: limits.max_body_bytes,
        request_timeout: Duration::from_millis(limits.request_timeout_ms),
        console: ConsoleConfig::default().enabled,
        console_oauth: None,
    }
}

/// `scheme://host[:port]` of a URL, as a browser writes it in an `Origin` header.
fn origin_of(url: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// The search tunables from the file's `search:` section.
pub fn search_settings(s: &SearchConfig) -> SearchSettings {
    SearchSettings {
        rrf_k: s.rrf_k,
        depth: s.depth,
        ef_search: s.ef_search,
        fusion: s.fusion,
        alpha: s.alpha,
        bm25: s.bm25,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_origin_is_allowed_while_the_console_is_on() {
        let yaml = "auth:\n  resource: https://docs.acme.example/mcp\n  issuers:\n    - issuer: i\n      audience: a\n      jwks: { file: /tmp/jwks.json }\n";
        let mut cfg = RuntimeConfig::parse(yaml).unwrap();
        let s = cfg.settings();
        assert!(s.console);
        assert!(s.origin_allowed("https://docs.acme.example"));
        assert!(!s.origin_allowed("https://docs.acme.example.evil"));
        cfg.a2a.public_url = Some("https://console.acme.example:8443/".into());
        assert!(
            cfg.settings()
                .origin_allowed("https://console.acme.example:8443")
        );
        cfg.console.enabled = false;
        let off = cfg.settings();
        assert!(!off.console);
        assert!(!off.origin_allowed("https://console.acme.example:8443"));
    }

    #[test]
    fn yaml_with_map_form_enums_parses_and_validates() {
        let cfg = RuntimeConfig::parse(
            "listen: 127.0.0.1:0\nauth:\n  resource: http://x/mcp\n  issuers:\n    - issuer: i\n      audience: a\n      jwks: { file: /tmp/jwks.json }\nembedding:\n  provider: local\n  model_dir: /m\nmcp:\n  tools: [search]\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.mcp.tools, ["search"]);
        assert_eq!(cfg.log_format, LogFormat::Json);
        let bad =
            RuntimeConfig::parse("auth: {resource: r, issuers: []}\nsurprise: 1\n").unwrap_err();
        assert!(bad.contains("surprise"), "{bad}");
        let mut no_tools = cfg.clone();
        no_tools.mcp.tools = vec!["drop_tables".into()];
        assert!(no_tools.validate().is_err());
    }

    #[test]
    fn the_consoles_oauth_client_is_checked() {
        let base = "auth: {resource: r, issuers: [{issuer: i, audience: a, jwks: {file: /j}}]}\n";
        let with =
            |oauth: &str| RuntimeConfig::parse(&format!("{base}console: {{oauth: {oauth}}}\n"));
        let cfg = with("{client_id: paddock-console, scope: 'documents:read tasks:run'}").unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.settings().console_oauth.unwrap().client_id,
            "paddock-console"
        );
        for bad in [
            "{client_id: ''}",
            "{client_id: 'two words'}",
            "{client_id: c, authorization_server: 'javascript:alert(1)'}",
            "{client_id: c, authorization_server: 'https://login.example/?x=1'}",
            "{client_id: c, scope: 'a  b'}",
        ] {
            let err = with(bad).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains("console.oauth"), "{bad}: {err}");
        }
        assert!(
            with("{client_id: c, secret: s}").is_err(),
            "no unknown fields"
        );
    }

    #[test]
    fn metrics_have_their_own_address() {
        let base = "auth: {resource: r, issuers: [{issuer: i, audience: a, jwks: {file: /j}}]}\n";
        let cfg = RuntimeConfig::parse(base).unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            (cfg.listen.as_str(), cfg.metrics_listen.as_str()),
            ("0.0.0.0:8080", "0.0.0.0:9090")
        );
        let same = RuntimeConfig::parse(&format!(
            "{base}listen: 0.0.0.0:8080\nmetrics_listen: 0.0.0.0:8080\n"
        ))
        .unwrap();
        let e = same.validate().unwrap_err().to_string();
        assert!(e.contains("metrics_listen"), "{e}");
        let ephemeral = RuntimeConfig::parse(&format!(
            "{base}listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n"
        ))
        .unwrap();
        ephemeral.validate().unwrap();
    }

    #[test]
    fn the_hnsw_candidate_list_stays_within_pgvectors_bounds() {
        let base = "auth: {resource: r, issuers: [{issuer: i, audience: a, jwks: {file: /j}}]}\n";
        let cfg = RuntimeConfig::parse(&format!("{base}search: {{ef_search: 200}}\n")).unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.settings().search.ef_search, 200);
        for bad in [0, 1001] {
            let cfg =
                RuntimeConfig::parse(&format!("{base}search: {{ef_search: {bad}}}\n")).unwrap();
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains("search.ef_search"), "{e}");
        }
    }

    #[test]
    fn the_documented_example_parses_and_validates() {
        let doc = include_str!("../../docs/runtime.md");
        let example = doc
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/runtime.md has a yaml example");
        let cfg = RuntimeConfig::parse(example).unwrap_or_else(|e| panic!("{e}"));
        cfg.validate().unwrap();
        let a2a = cfg.a2a.settings(&cfg.auth.resource).unwrap();
        assert_eq!(a2a.max_running_tasks, 16);
        assert_eq!(cfg.database.max_connections, 16);
    }
}
