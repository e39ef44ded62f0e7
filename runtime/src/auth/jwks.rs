//! Key sets of trusted issuers: JWKS parsing, `kid` selection and cached refresh.
//!
//! A file source is read at start-up and re-read when its modification time changes (checked at
//! most once a second, and at once when a token names an unknown `kid`). A URL source is fetched on
//! first use, kept for a TTL, refreshed in the background once stale (stale keys keep serving, and
//! keep serving when the refresh fails), and refetched when a token names an unknown `kid`, but
//! never more often than the configured minimum interval, so forged `kid`s cannot hammer the IdP.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;

use super::AuthError;

/// Largest JWKS document accepted from a URL or file.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;
/// How often a JWKS file's modification time is looked at.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// While nothing is cached, the least time between two failed first fetches.
const INITIAL_RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The key types we verify with, one per accepted algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    P256,
    Ed25519,
}

impl KeyKind {
    /// The key type that `alg` needs; `None` for algorithms we refuse.
    pub(crate) fn for_alg(alg: Algorithm) -> Option<KeyKind> {
        match alg {
            Algorithm::RS256 => Some(KeyKind::Rsa),
            Algorithm::ES256 => Some(KeyKind::P256),
            Algorithm::EdDSA => Some(KeyKind::Ed25519),
            _ => None,
        }
    }

    fn key_algorithm(self) -> KeyAlgorithm {
        match self {
            KeyKind::Rsa => KeyAlgorithm::RS256,
            KeyKind::P256 => KeyAlgorithm::ES256,
            KeyKind::Ed25519 => KeyAlgorithm::EdDSA,
        }
    }
}

/// One public key ready for verification.
pub(crate) struct VerifyKey {
    pub(crate) kind: KeyKind,
    pub(crate) key: DecodingKey,
}

/// The usable keys of one JWKS document.
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Vec<Arc<VerifyKey>>>,
    all: Vec<Arc<VerifyKey>>,
}

/// The outcome of looking a key up.
pub(crate) enum KeyMatch {
    Found(Arc<VerifyKey>),
    /// The `kid` exists, but its key is of another type than the token's algorithm needs.
    WrongType,
    NotFound,
    /// The token has no `kid` and several keys could have signed it.
    Ambiguous,
}

impl KeySet {
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    pub(crate) fn select(&self, kid: Option<&str>, kind: KeyKind) -> KeyMatch {
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                None => KeyMatch::NotFound,
                Some(keys) => match keys.iter().find(|k| k.kind == kind) {
                    Some(k) => KeyMatch::Found(k.clone()),
                    None => KeyMatch::WrongType,
                },
            },
            None => {
                let mut candidates = self.all.iter().filter(|k| k.kind == kind);
                match (candidates.next(), candidates.next()) {
                    (Some(k), None) => KeyMatch::Found(k.clone()),
                    (None, _) => KeyMatch::NotFound,
                    (Some(_), Some(_)) => KeyMatch::Ambiguous,
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// Parses a JWKS document, keeping only public signature keys we can verify with. Symmetric
/// (`oct`) keys, encryption keys, unsupported curves and short RSA keys are skipped.
pub(crate) fn parse_jwks(bytes: &[u8]) -> Result<KeySet, String> {
    let doc: JwksDocument =
        serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut set = KeySet::default();
    for (i, value) in doc.keys.into_iter().enumerate() {
        match parse_key(value) {
            Ok((kid, key)) => {
                let key = Arc::new(key);
                if let Some(kid) = kid {
                    set.by_kid.entry(kid).or_default().push(key.clone());
                }
                set.all.push(key);
            }
            Err(reason) => tracing::debug!(index = i, reason, "skipping JWKS key"),
        }
    }
    if set.all.is_empty() {
        return Err("no usable signing key (RS256, ES256 or EdDSA)".to_owned());
    }
    Ok(set)
}

fn parse_key(value: serde_json::Value) -> Result<(Option<String>, VerifyKey), &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "unparseable or unsupported key")?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("not a signature key"),
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
    {
        return Err("key_ops does not allow verify");
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "bad RSA modulus")?;
            let significant = n.iter().skip_while(|&&b| b == 0).count();
            if significant < MIN_RSA_MODULUS_BYTES {
                return Err("RSA key shorter than 2048 bits");
            }
            KeyKind::Rsa
        }
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => KeyKind::P256,
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            KeyKind::Ed25519
        }
        AlgorithmParameters::OctetKey(_) => return Err("symmetric keys are never trusted"),
        _ => return Err("unsupported curve"),
    };
    if let Some(alg) = jwk.common.key_algorithm
        && alg != kind.key_algorithm()
    {
        return Err("key alg is not one we accept for its key type");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "invalid key material")?;
    Ok((jwk.common.key_id.clone(), VerifyKey { kind, key }))
}

/// Why a fetch is attempted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refresh {
    /// Nothing is cached yet.
    Initial,
    /// The cache is older than its TTL.
    Stale,
    /// A token names a `kid` we do not know.
    UnknownKid,
}

enum Source {
    File(PathBuf),
    Url {
        url: String,
        client: reqwest::Client,
    },
}

struct Snapshot {
    keys: Arc<KeySet>,
    /// When the current keys were loaded; `None` until a URL source has been fetched once.
    loaded_at: Option<Instant>,
    /// Last fetch attempt of a URL source, successful or not.
    last_attempt: Option<Instant>,
    /// Modification time of the loaded file.
    mtime: Option<SystemTime>,
    /// Last time a file's modification time was looked at.
    checked_at: Option<Instant>,
}

/// The cached key set of one issuer.
pub(crate) struct JwksCache {
    issuer: String,
    source: Source,
    snapshot: RwLock<Snapshot>,
    /// Serialises loads, so concurrent misses cause one fetch.
    load_lock: tokio::sync::Mutex<()>,
    ttl: Duration,
    min_refresh: Duration,
}

impl JwksCache {
    /// A cache over a JWKS file, loaded now.
    pub(crate) async fn file(issuer: &str, path: &Path) -> Result<Self, AuthError> {
        let (keys, mtime) = read_file(path)
            .await
            .map_err(|reason| AuthError::LoadJwks {
                path: path.to_owned(),
                reason,
            })?;
        Ok(JwksCache {
            issuer: issuer.to_owned(),
            source: Source::File(path.to_owned()),
            snapshot: RwLock::new(Snapshot {
                keys: Arc::new(keys),
                loaded_at: Some(Instant::now()),
                last_attempt: Some(Instant::now()),
                mtime,
                checked_at: Some(Instant::now()),
            }),
            load_lock: tokio::sync::Mutex::new(()),
            ttl: Duration::MAX,
            min_refresh: Duration::ZERO,
        })
    }

    /// A cache over a JWKS URL, fetched on first use.
    pub(crate) fn url(
        issuer: &str,
        url: String,
        client: reqwest::Client,
        ttl: Duration,
        min_refresh: Duration,
    ) -> Self {
        JwksCache {
            issuer: issuer.to_owned(),
            source: Source::Url { url, client },
            snapshot: RwLock::new(Snapshot {
                keys: Arc::new(KeySet::default()),
                loaded_at: None,
                last_attempt: None,
                mtime: None,
                checked_at: None,
            }),
            load_lock: tokio::sync::Mutex::new(()),
            ttl,
            min_refresh,
        }
    }

    fn keys(&self) -> Arc<KeySet> {
        self.read().keys.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        // A poisoned lock only means a panic elsewhere while holding it; the data is still whole.
        self.snapshot.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.snapshot.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds the key for a token's `kid` and algorithm, loading or refreshing keys as needed.
    pub(crate) async fn key_for(
        self: &Arc<Self>,
        kid: Option<&str>,
        kind: KeyKind,
    ) -> Result<KeyMatch, AuthError> {
        match &self.source {
            Source::File(path) => {
                self.reload_file(path, false).await;
                let found = self.keys().select(kid, kind);
                if matches!(found, KeyMatch::NotFound) && kid.is_some() {
                    self.reload_file(path, true).await;
                    return Ok(self.keys().select(kid, kind));
                }
                Ok(found)
            }
            Source::Url { .. } => {
                let (loaded_at, last_attempt) = {
                    let s = self.read();
                    (s.loaded_at, s.last_attempt)
                };
                match loaded_at {
                    None => {
                        self.refresh_url(Refresh::Initial).await;
                        if self.read().loaded_at.is_none() {
                            return Err(AuthError::KeysUnavailable {
                                issuer: self.issuer.clone(),
                            });
                        }
                    }
                    Some(at)
                        if at.elapsed() >= self.ttl && !recent(last_attempt, self.min_refresh) =>
                    {
                        // Serve the stale keys now; refresh behind the request.
                        let this = Arc::clone(self);
                        tokio::spawn(async move { this.refresh_url(Refresh::Stale).await });
                    }
                    Some(_) => {}
                }
                let found = self.keys().select(kid, kind);
                if matches!(found, KeyMatch::NotFound) && kid.is_some() {
                    self.refresh_url(Refresh::UnknownKid).await;
                    return Ok(self.keys().select(kid, kind));
                }
                Ok(found)
            }
        }
    }

    async fn refresh_url(&self, why: Refresh) {
        let Source::Url { url, client } = &self.source else {
            return;
        };
        let queued_at = Instant::now();
        let _guard = self.load_lock.lock().await;
        {
            let s = self.read();
            // Someone else fetched while we waited for the lock: use their result.
            if s.last_attempt.is_some_and(|t| t >= queued_at) {
                return;
            }
            let skip = match why {
                Refresh::Initial => {
                    s.loaded_at.is_some()
                        || recent(s.last_attempt, INITIAL_RETRY_INTERVAL.min(self.min_refresh))
                }
                Refresh::Stale => {
                    s.loaded_at.is_some_and(|t| t.elapsed() < self.ttl)
                        || recent(s.last_attempt, self.min_refresh)
                }
                Refresh::UnknownKid => recent(s.last_attempt, self.min_refresh),
            };
            if skip {
                if why == Refresh::UnknownKid {
                    tracing::debug!(issuer = %self.issuer, "JWKS refresh for unknown kid skipped: refreshed recently");
                }
                return;
            }
        }
        let result = fetch(client, url).await;
        let mut s = self.write();
        s.last_attempt = Some(Instant::now());
        match result {
            Ok(keys) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), reason = ?why, "fetched JWKS");
                s.keys = Arc::new(keys);
                s.loaded_at = Some(Instant::now());
            }
            Err(error) => {
                let cached = s.keys.len();
                tracing::warn!(issuer = %self.issuer, %error, cached_keys = cached, "failed to fetch JWKS; keeping cached keys");
            }
        }
    }

    async fn reload_file(&self, path: &Path, force: bool) {
        if !force
            && self
                .read()
                .checked_at
                .is_some_and(|t| t.elapsed() < FILE_CHECK_INTERVAL)
        {
            return;
        }
        let _guard = self.load_lock.lock().await;
        let mtime = tokio::fs::metadata(path)
            .await
            .and_then(|m| m.modified())
            .ok();
        let known = {
            let mut s = self.write();
            s.checked_at = Some(Instant::now());
            s.mtime
        };
        if mtime.is_none() || mtime == known {
            return;
        }
        match read_file(path).await {
            Ok((keys, mtime)) => {
                tracing::info!(issuer = %self.issuer, keys = keys.len(), "reloaded JWKS file");
                let mut s = self.write();
                s.keys = Arc::new(keys);
                s.mtime = mtime;
                s.loaded_at = Some(Instant::now());
            }
            Err(error) => {
                // Remember the mtime so a broken file is not re-parsed every second; the next write
                // changes it again.
                self.write().mtime = mtime;
                tracing::warn!(issuer = %self.issuer, path = %path.display(), %error, "failed to reload JWKS file; keeping loaded keys");
            }
        }
    }
}

fn recent(at: Option<Instant>, within: Duration) -> bool {
    at.is_some_and(|t| t.elapsed() < within)
}

async fn read_file(path: &Path) -> Result<(KeySet, Option<SystemTime>), String> {
    let meta = tokio::fs::metadata(path).await.map_err(|e| e.to_string())?;
    if meta.len() > MAX_JWKS_BYTES as u64 {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
    Ok((parse_jwks(&bytes)?, meta.modified().ok()))
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeySet, String> {
    let mut resp = client
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading body failed: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    parse_jwks(&body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ec_jwk(kid: &str) -> serde_json::Value {
        let key = paddock_contract::dev::generate();
        let mut jwk = key.jwks["keys"][0].clone();
        jwk["kid"] = json!(kid);
        jwk
    }

    #[test]
    fn symmetric_and_encryption_keys_are_never_trusted() {
        let doc = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "use": "enc", "kid": "enc",
             "x": ec_jwk("x")["x"], "y": ec_jwk("x")["y"]},
        ]});
        let err = parse_jwks(doc.to_string().as_bytes()).err().unwrap();
        assert!(err.contains("no usable signing key"), "{err}");
    }

    #[test]
    fn short_rsa_keys_are_skipped() {
        // A 1024-bit modulus.
        let n = URL_SAFE_NO_PAD.encode([0xC5u8; 128]);
        let doc =
            json!({"keys": [{"kty": "RSA", "n": n, "e": "AQAB", "kid": "short"}, ec_jwk("ok")]});
        let set = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(matches!(
            set.select(Some("short"), KeyKind::Rsa),
            KeyMatch::NotFound
        ));
        assert!(matches!(
            set.select(Some("ok"), KeyKind::P256),
            KeyMatch::Found(_)
        ));
    }

    #[test]
    fn key_alg_must_fit_the_key_type() {
        let mut jwk = ec_jwk("a");
        jwk["alg"] = json!("ES384");
        let doc = json!({"keys": [jwk]});
        assert!(parse_jwks(doc.to_string().as_bytes()).is_err());
    }

    #[test]
    fn kid_selection_distinguishes_missing_wrong_type_and_ambiguous() {
        let doc = json!({"keys": [ec_jwk("a"), ec_jwk("b")]});
        let set = parse_jwks(doc.to_string().as_bytes()).unwrap();
        assert!(matches!(
            set.select(Some("a"), KeyKind::P256),
            KeyMatch::Found(_)
        ));
        assert!(matches!(
            set.select(Some("a"), KeyKind::Rsa),
            KeyMatch::WrongType
        ));
        assert!(matches!(
            set.select(Some("zz"), KeyKind::P256),
            KeyMatch::NotFound
        ));
        assert!(matches!(
            set.select(None, KeyKind::P256),
            KeyMatch::Ambiguous
        ));
        let one = parse_jwks(json!({"keys": [ec_jwk("a")]}).to_string().as_bytes()).unwrap();
        assert!(matches!(
            one.select(None, KeyKind::P256),
            KeyMatch::Found(_)
        ));
    }

    #[test]
    fn malformed_documents_are_errors_not_panics() {
        for doc in ["", "null", "{}", "{\"keys\": 3}", "[1,2]"] {
            assert!(parse_jwks(doc.as_bytes()).is_err(), "{doc}");
        }
    }
}
