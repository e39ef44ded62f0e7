//! Who a request speaks for: the rules a tenant name, a user id and a scope token follow, and the scopes that gate
//! the runtime's tools and routes. The operator checks Tenant names with the same rule the runtime applies to the
//! tenant claim of every token, so a name that passes one passes the other.

/// The scopes that gate the runtime's tools and routes.
pub mod scopes {
    /// Search and read a tenant's documents.
    pub const DOCUMENTS_READ: &str = "documents:read";
    /// Add, change and delete a tenant's documents.
    pub const DOCUMENTS_WRITE: &str = "documents:write";
    /// Start A2A tasks and follow their progress.
    pub const TASKS_RUN: &str = "tasks:run";
    /// Cancel or inspect any task of the tenant.
    pub const TASKS_ADMIN: &str = "tasks:admin";
    /// Read the tenant's usage and budget.
    pub const USAGE_READ: &str = "usage:read";
    /// Read the tenant's audit trail: every user's tool calls and A2A methods.
    pub const AUDIT_READ: &str = "audit:read";

    /// Every scope the runtime knows, as advertised in the protected-resource metadata.
    pub const ALL: [&str; 6] = [
        DOCUMENTS_READ,
        DOCUMENTS_WRITE,
        TASKS_RUN,
        TASKS_ADMIN,
        USAGE_READ,
        AUDIT_READ,
    ];
}

/// Whether `s` is a DNS-1123 label (`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`), the form of a
/// Kubernetes object name and so of a tenant name.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    alnum(b[0]) && alnum(b[b.len() - 1]) && b.iter().all(|&c| alnum(c) || c == b'-')
}

/// Whether `s` is a usable user identifier: 1 to 256 characters, none of them a control character.
pub fn is_valid_user(s: &str) -> bool {
    let n = s.chars().count();
    (1..=256).contains(&n) && !s.chars().any(char::is_control)
}

/// Whether `s` is one OAuth scope token (RFC 6749 §3.3: `1*NQCHAR`).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels_follow_kubernetes_rules() {
        for ok in ["a", "acme", "acme-corp", "a1", "0", "x".repeat(63).as_str()] {
            assert!(is_dns1123_label(ok), "{ok:?} should be accepted");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            "acme-",
            "acme corp",
            "acme.corp",
            "acme_corp",
            "acme'; DROP TABLE tenants;--",
            "ümlaut",
            "x".repeat(64).as_str(),
        ] {
            assert!(!is_dns1123_label(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn user_ids_are_bounded_and_printable() {
        assert!(is_valid_user("alice@example.com"));
        assert!(is_valid_user(&"é".repeat(256)));
        assert!(!is_valid_user(""));
        assert!(!is_valid_user(&"a".repeat(257)));
        assert!(!is_valid_user("alice\nbob"));
        assert!(!is_valid_user("alice\u{7f}"));
    }

    #[test]
    fn scope_tokens_exclude_spaces_quotes_and_backslashes() {
        assert!(is_scope_token("documents:read"));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("a\"b"));
        assert!(!is_scope_token("a\\b"));
    }
}
