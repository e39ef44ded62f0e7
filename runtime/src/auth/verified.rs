//! Tokens verified recently, so a client that sends the same bearer token with every request pays for its
//! signature once, not per request (an ES256 verification is most of what authentication costs).
//!
//! An entry is keyed by the SHA-256 digest of the token's exact bytes and only ever written after a full
//! verification succeeded, so a token is accepted from here only if those very bytes were accepted before.
//! A verification depends on nothing but the token, its issuer's key and the clock, so a hit checks the
//! two that can change: the token's `exp` and `nbf` against the clock (with the same leeway and the same
//! comparisons as the full check), and that the key which verified it is still the key the issuer's JWKS
//! selects for the token. A JWKS reload that drops or replaces the key ends every entry it verified, exactly
//! when it would start refusing the token without the cache.

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::Principal;
use super::jwks::{KeyKind, VerifyKey};

/// Entries kept, the least recently used evicted first. Each holds a principal and a key reference (a few
/// hundred bytes), so a full cache stays within a few megabytes.
const CAPACITY: usize = 10_000;

pub(super) type Digest = [u8; 32];

/// What one successful verification established.
pub(super) struct Verified {
    pub(super) principal: Principal,
    /// Index of the issuer (in the authenticator's list) whose key verified the token.
    pub(super) issuer: usize,
    /// The token's `kid` and the key type its algorithm needs: how the key was selected.
    pub(super) kid: Option<String>,
    pub(super) kind: KeyKind,
    /// The key that verified the signature; a reloaded key set holds new keys, never this one.
    pub(super) key: Arc<VerifyKey>,
    pub(super) exp: u64,
    pub(super) nbf: Option<u64>,
}

impl Verified {
    /// Whether the token's validity window, widened by `leeway` seconds, holds at `now` (seconds since the
    /// epoch): the comparisons jsonwebtoken's validation makes.
    pub(super) fn is_current(&self, now: u64, leeway: u64) -> bool {
        let expired = self.exp < now.saturating_sub(leeway);
        let immature = self.nbf.is_some_and(|nbf| nbf > now + leeway);
        !expired && !immature
    }

    /// Whether `key` is the very key that verified the token.
    pub(super) fn verified_by(&self, key: &Arc<VerifyKey>) -> bool {
        Arc::ptr_eq(&self.key, key)
    }
}

/// The cache of verified tokens. Cheap to share; safe for concurrent use.
pub(super) struct VerifiedTokens {
    cache: quick_cache::sync::Cache<Digest, Arc<Verified>>,
}

impl VerifiedTokens {
    pub(super) fn new() -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(CAPACITY),
        }
    }

    pub(super) fn digest(token: &str) -> Digest {
        Sha256::digest(token.as_bytes()).into()
    }

    pub(super) fn get(&self, digest: &Digest) -> Option<Arc<Verified>> {
        self.cache.get(digest)
    }

    pub(super) fn insert(&self, digest: Digest, verified: Verified) {
        self.cache.insert(digest, Arc::new(verified));
    }

    /// Forgets a token, e.g. one whose entry no longer holds.
    pub(super) fn remove(&self, digest: &Digest) {
        self.cache.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(exp: u64, nbf: Option<u64>) -> Verified {
        let jwk = serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk).unwrap();
        Verified {
            principal: Principal {
                tenant: "acme".into(),
                user: "alice".into(),
                scopes: Default::default(),
                issuer: "https://issuer.test".into(),
                token_id: None,
            },
            issuer: 0,
            kid: None,
            kind: KeyKind::Ed25519,
            key: Arc::new(VerifyKey {
                kind: KeyKind::Ed25519,
                key: jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
            }),
            exp,
            nbf,
        }
    }

    #[test]
    fn an_entry_holds_exactly_while_its_token_would_pass_the_time_checks() {
        let v = verified(1_000, Some(900));
        // Without leeway: valid from nbf to exp inclusive, as jsonwebtoken compares.
        assert!(!v.is_current(899, 0), "before nbf");
        assert!(v.is_current(900, 0));
        assert!(v.is_current(1_000, 0));
        assert!(!v.is_current(1_001, 0), "after exp");
        // The leeway widens both ends.
        assert!(v.is_current(870, 30));
        assert!(!v.is_current(869, 30));
        assert!(v.is_current(1_030, 30));
        assert!(!v.is_current(1_031, 30));
        // No nbf: valid from the start of time.
        assert!(verified(1_000, None).is_current(0, 0));
    }

    #[test]
    fn only_the_verifying_key_itself_vouches_for_an_entry() {
        let v = verified(1_000, None);
        assert!(v.verified_by(&v.key.clone()));
        // The same key material, loaded again (as a JWKS reload does), is another key.
        let reloaded = verified(1_000, None).key;
        assert!(!v.verified_by(&reloaded));
    }

    #[test]
    fn entries_are_keyed_by_the_exact_token() {
        let cache = VerifiedTokens::new();
        let d = VerifiedTokens::digest("a.b.c");
        cache.insert(d, verified(1_000, None));
        assert!(cache.get(&d).is_some());
        assert!(cache.get(&VerifiedTokens::digest("a.b.C")).is_none());
        assert!(cache.get(&VerifiedTokens::digest("a.b.c ")).is_none());
        cache.remove(&d);
        assert!(cache.get(&d).is_none());
    }
}
