//! Names and labels the operator derives from its objects: the tenant's PostgreSQL role, the
//! names of the Secrets and children it creates, and the labels it puts on all of them.
//!
//! PostgreSQL role names are the one place where a Kubernetes name flows into SQL text (roles
//! cannot be bound as parameters), so [`RoleName`] can only be built from a whitelist of
//! characters and is always written quoted.

use std::{collections::BTreeMap, fmt};

use sha2::{Digest, Sha256};

/// Field manager of every server-side apply, and the `app.kubernetes.io/managed-by` value.
pub const MANAGER: &str = "paddock-operator";
/// `app.kubernetes.io/managed-by`, set on everything the operator creates.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label selector for the objects this operator manages (what its watches filter on).
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=paddock-operator";
/// Label naming the ToolServer a child belongs to.
pub const TOOLSERVER_LABEL: &str = "paddock.dev/toolserver";
/// Annotation on the runtime pod template: a hash of the ConfigMap and Secret contents, so pods
/// roll when either changes.
pub const CONFIG_HASH_ANNOTATION: &str = "paddock.dev/config-hash";

/// Prefix of every tenant role.
const ROLE_PREFIX: &str = "paddock_t_";
/// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;
/// Hex digits of the name's SHA-256 kept in the role name (32 bits).
const HASH_HEX: usize = 8;

/// A PostgreSQL role name made only of `[a-z0-9_]`, at most 63 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleName(String);

/// A string that is not a role name the operator would create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid role name {0:?}: expected 1 to 63 characters from [a-z0-9_], starting with a letter"
)]
pub struct InvalidRoleName(pub String);

impl RoleName {
    /// The role for tenant `tenant`: `paddock_t_<sanitised>_<hash>`.
    ///
    /// - `<sanitised>` is the name with every character outside `[a-z0-9]` replaced by `_`,
    ///   cut so the whole fits in 63 bytes; it only makes the role recognisable.
    /// - `<hash>` is the first 8 hex digits of the SHA-256 of the exact name, so names that
    ///   sanitise or truncate to the same text (`a-b` and `a.b`, or two long names sharing a
    ///   prefix) still get different roles.
    pub fn for_tenant(tenant: &str) -> Self {
        let digest = Sha256::digest(tenant.as_bytes());
        let hash: String = hex(&digest)[..HASH_HEX].to_owned();
        let room = MAX_IDENTIFIER_BYTES - ROLE_PREFIX.len() - 1 - HASH_HEX;
        let sanitised: String = tenant
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '_'
                }
            })
            .take(room)
            .collect();
        Self(format!("{ROLE_PREFIX}{sanitised}_{hash}"))
    }

    /// Accepts a role name read back from somewhere (status, a Secret) only if it could have
    /// been produced here.
    pub fn parse(s: &str) -> Result<Self, InvalidRoleName> {
        let ok = !s.is_empty()
            && s.len() <= MAX_IDENTIFIER_BYTES
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidRoleName(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier, ready to be placed in statement text.
    pub fn quoted(&self) -> String {
        quote_ident(&self.0)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// PostgreSQL's `quote_ident`, always quoting: `"` + the text with `"` doubled + `"`.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// PostgreSQL's `quote_literal` for a `standard_conforming_strings` session: `'` + the text
/// with `'` doubled + `'`. Backslashes are literal in such strings.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Name of the Secret holding a tenant's database credentials, in each of its namespaces.
pub fn db_secret_name(tenant: &str) -> String {
    format!("paddock-db-{tenant}")
}

/// Name of a ToolServer's runtime ConfigMap.
pub fn runtime_config_map_name(toolserver: &str) -> String {
    format!("{toolserver}-runtime")
}

/// Labels on everything created for a tenant (Secrets).
pub fn tenant_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        ("app.kubernetes.io/part-of".to_owned(), "paddock".to_owned()),
        (crate::crd::TENANT_LABEL.to_owned(), tenant.to_owned()),
    ])
}

/// Selector labels of a ToolServer's pods. Immutable on a Deployment, so keep them stable.
pub fn toolserver_selector(toolserver: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "paddock-runtime".to_owned(),
        ),
        (
            "app.kubernetes.io/instance".to_owned(),
            toolserver.to_owned(),
        ),
    ])
}

/// Labels on a ToolServer's children and pods.
pub fn toolserver_labels(toolserver: &str, tenant: &str) -> BTreeMap<String, String> {
    let mut labels = toolserver_selector(toolserver);
    labels.extend(tenant_labels(tenant));
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        "toolserver".to_owned(),
    );
    labels.insert(TOOLSERVER_LABEL.to_owned(), toolserver.to_owned());
    labels
}

/// `k=v,k=v` form of a label map, as `status.selector` and label selectors spell it.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_keep_the_tenant_readable_and_end_in_a_hash() {
        let role = RoleName::for_tenant("acme");
        assert!(role.as_str().starts_with("paddock_t_acme_"), "{role}");
        assert_eq!(role.as_str().len(), "paddock_t_acme_".len() + 8);
        assert_eq!(
            RoleName::parse(role.as_str()),
            Ok(role.clone()),
            "derived names parse back"
        );
        assert_eq!(
            RoleName::for_tenant("acme"),
            role,
            "derivation is deterministic"
        );
    }

    #[test]
    fn names_differing_only_in_sanitised_characters_get_different_roles() {
        let pairs = [
            ("a-b", "a.b"),
            ("a-b", "a_b"),
            ("x-1", "x 1"),
            ("team-a", "team/a"),
        ];
        for (a, b) in pairs {
            let (ra, rb) = (RoleName::for_tenant(a), RoleName::for_tenant(b));
            // Same readable part...
            assert_eq!(
                ra.as_str()[..ra.as_str().len() - 8],
                rb.as_str()[..rb.as_str().len() - 8]
            );
            // ...different role.
            assert_ne!(ra, rb, "{a} and {b} collide");
        }
    }

    #[test]
    fn long_names_are_cut_to_63_bytes_and_stay_distinct() {
        let long_a = format!("{}a", "x".repeat(200));
        let long_b = format!("{}b", "x".repeat(200));
        let (ra, rb) = (RoleName::for_tenant(&long_a), RoleName::for_tenant(&long_b));
        assert_eq!(ra.as_str().len(), MAX_IDENTIFIER_BYTES);
        assert_eq!(rb.as_str().len(), MAX_IDENTIFIER_BYTES);
        assert_ne!(ra, rb);
        // The longest valid Tenant name (63 characters) also fits.
        let max = "a".repeat(63);
        assert!(RoleName::for_tenant(&max).as_str().len() <= MAX_IDENTIFIER_BYTES);
        // Multi-byte characters are replaced, never split.
        let r = RoleName::for_tenant(&"é".repeat(100));
        assert!(r.as_str().len() <= MAX_IDENTIFIER_BYTES && RoleName::parse(r.as_str()).is_ok());
    }

    #[test]
    fn hostile_names_cannot_reach_sql_text() {
        for name in [
            "acme\"; DROP ROLE postgres; --",
            "a'b",
            "",
            "UPPER",
            "x\u{0}y",
        ] {
            let role = RoleName::for_tenant(name);
            assert!(
                RoleName::parse(role.as_str()).is_ok(),
                "{name:?} gave {role}"
            );
            assert!(!role.quoted()[1..role.quoted().len() - 1].contains('"'));
        }
        for bad in ["", "Robert", "a-b", "a\"b", "1abc", &"a".repeat(64)] {
            assert!(RoleName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn quoting_doubles_the_quote_character() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "'a\\b'");
    }
}
