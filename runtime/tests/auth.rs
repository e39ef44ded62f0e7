//! Bearer authentication through the real middleware on a small axum router (driven with `oneshot`),
//! with ES256, RS256 and EdDSA keys generated per test run, JWKS from files and from a local HTTP
//! server.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use paddock_runtime::auth::{
    self, AuthConfig, AuthError, Authenticator, IssuerConfig, JwksSource, Principal, dev, scopes,
};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "paddock-test";
const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
const METADATA: &str = "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp";

// ---------------------------------------------------------------------------------------------
// Keys and tokens

struct RsaKey {
    private_pem: String,
    public_pem: String,
    jwk: Value,
}

struct EdKey {
    pkcs8: Vec<u8>,
    jwk: Value,
}

struct Keys {
    es: dev::DevSigningKey,
    rsa: RsaKey,
    ed: EdKey,
}

const RSA_KID: &str = "rsa-1";
const ED_KID: &str = "ed-1";

/// Generated once per test binary: RSA key generation is the slow part.
static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    es: dev::generate(),
    rsa: rsa_key(),
    ed: ed_key(),
});

fn rsa_key() -> RsaKey {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::{EncodePublicKey as _, LineEnding};
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public = key.to_public_key();
    RsaKey {
        private_pem: key.to_pkcs1_pem(LineEnding::LF).unwrap().to_string(),
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        jwk: json!({
            "kty": "RSA", "kid": RSA_KID, "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }),
    }
}

fn ed_key() -> EdKey {
    use ring::signature::KeyPair as _;
    let pkcs8 =
        ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    EdKey {
        pkcs8: pkcs8.as_ref().to_vec(),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": ED_KID, "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())}),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@acme.test",
        "tenant_id": "acme",
        "scope": "documents:read tasks:run",
        "iat": now(),
        "exp": now() + 300,
    })
}

fn claims_with(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c
}

#[derive(Clone, Copy)]
enum Signer {
    Es,
    Rs,
    Ed,
}

fn sign_with_kid(signer: Signer, kid: Option<&str>, claims: &Value) -> String {
    let k = &*KEYS;
    let (alg, key) = match signer {
        Signer::Es => (
            Algorithm::ES256,
            EncodingKey::from_ec_pem(k.es.private_pem.as_bytes()).unwrap(),
        ),
        Signer::Rs => (
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(k.rsa.private_pem.as_bytes()).unwrap(),
        ),
        Signer::Ed => (Algorithm::EdDSA, EncodingKey::from_ed_der(&k.ed.pkcs8)),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let token = jsonwebtoken::encode(&header, claims, &key).unwrap();
    match signer {
        // The verifier takes ES256 signatures in low-S form only; the signer may pick either.
        Signer::Es => dev::canonical_es256(&token),
        Signer::Rs | Signer::Ed => token,
    }
}

fn sign(signer: Signer, claims: &Value) -> String {
    let kid = match signer {
        Signer::Es => KEYS.es.kid.clone(),
        Signer::Rs => RSA_KID.to_owned(),
        Signer::Ed => ED_KID.to_owned(),
    };
    sign_with_kid(signer, Some(&kid), claims)
}

fn b64json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn all_public_keys() -> Value {
    json!({"keys": [KEYS.es.jwks["keys"][0].clone(), KEYS.rsa.jwk.clone(), KEYS.ed.jwk.clone()]})
}

// ---------------------------------------------------------------------------------------------
// The router under test

struct Harness {
    app: Router,
    _dir: tempfile::TempDir,
}

async fn harness_with(leeway_secs: u64) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, all_public_keys().to_string()).unwrap();
    let mut cfg = AuthConfig::new(
        RESOURCE,
        vec![IssuerConfig::new(ISSUER, AUDIENCE, JwksSource::File(path))],
    );
    cfg.leeway_secs = leeway_secs;
    let auth = Authenticator::new(cfg).await.unwrap();
    Harness {
        app: app(auth),
        _dir: dir,
    }
}

async fn harness() -> Harness {
    harness_with(0).await
}

fn app(auth: Authenticator) -> Router {
    Router::new()
        .route("/mcp", get(whoami).post(whoami))
        .route("/documents", post(write_document))
        .route_layer(from_fn_with_state(auth.clone(), auth::require_bearer))
        .layer(Extension(auth.clone()))
        .merge(auth::metadata_router(auth))
}

async fn whoami(p: Principal) -> axum::Json<Value> {
    axum::Json(json!({"tenant": p.tenant, "user": p.user, "scopes": p.scopes, "issuer": p.issuer}))
}

async fn write_document(Extension(auth): Extension<Authenticator>, p: Principal) -> Response {
    match auth.require_scope(&p, scopes::DOCUMENTS_WRITE) {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(forbidden) => forbidden,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    raw: String,
    json: Value,
}

impl Reply {
    fn www(&self) -> &str {
        self.headers
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

async fn send(app: &Router, method: &str, uri: &str, authorization: &[&str]) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for a in authorization {
        req = req.header(AUTHORIZATION, *a);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let raw = String::from_utf8(bytes.to_vec()).unwrap();
    let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        raw,
        json,
    }
}

async fn with_token(app: &Router, token: &str) -> Reply {
    send(app, "GET", "/mcp", &[&format!("Bearer {token}")]).await
}

/// The exact 401 for a refused token, and no trace of the token in the answer.
async fn assert_refused(app: &Router, token: &str, description: &str) {
    let r = with_token(app, token).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "{description}: {}",
        r.raw
    );
    assert_eq!(
        r.www(),
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{METADATA}\""
        )
    );
    assert_eq!(
        r.json,
        json!({"error": "invalid_token", "error_description": description})
    );
    if token.len() > 8 {
        assert!(
            !r.raw.contains(token) && !r.www().contains(token),
            "the answer echoes the token"
        );
        for part in token.split('.').filter(|p| p.len() > 8) {
            assert!(!r.raw.contains(part), "the answer echoes part of the token");
        }
    }
}

/// The exact 401 for a request that carries no bearer credentials.
fn assert_bare_challenge(r: &Reply) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.raw);
    assert_eq!(r.www(), format!("Bearer resource_metadata=\"{METADATA}\""));
    assert_eq!(r.json["error"], "unauthorized");
}

// ---------------------------------------------------------------------------------------------
// Accepted tokens

#[tokio::test]
async fn valid_es256_token_yields_the_principal() {
    let h = harness().await;
    let r = with_token(&h.app, &sign(Signer::Es, &claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        r.json,
        json!({"tenant": "acme", "user": "alice@acme.test", "scopes": ["documents:read", "tasks:run"], "issuer": ISSUER})
    );
}

#[tokio::test]
async fn valid_rs256_token_is_accepted() {
    let h = harness().await;
    let r = with_token(&h.app, &sign(Signer::Rs, &claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.json["tenant"], "acme");
}

#[tokio::test]
async fn valid_eddsa_token_is_accepted() {
    let h = harness().await;
    let r = with_token(&h.app, &sign(Signer::Ed, &claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.json["user"], "alice@acme.test");
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let h = harness().await;
    let token = sign(Signer::Es, &claims());
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = send(&h.app, "GET", "/mcp", &[&format!("{scheme} {token}")]).await;
        assert_eq!(r.status, StatusCode::OK, "{scheme}: {}", r.raw);
    }
}

#[tokio::test]
async fn scp_array_and_audience_arrays_are_understood() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.remove("scope");
        c.insert("scp".into(), json!(["usage:read", "documents:write"]));
        c.insert("aud".into(), json!(["another-api", AUDIENCE]));
    });
    let r = with_token(&h.app, &sign(Signer::Es, &c)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.json["scopes"], json!(["documents:write", "usage:read"]));
}

#[tokio::test]
async fn token_without_kid_uses_the_only_key_of_its_type() {
    let h = harness().await;
    let r = with_token(&h.app, &sign_with_kid(Signer::Rs, None, &claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
}

// ---------------------------------------------------------------------------------------------
// Refused tokens: time, issuer, audience

#[tokio::test]
async fn expired_token_is_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.insert("exp".into(), json!(now() - 10));
    });
    assert_refused(&h.app, &sign(Signer::Es, &c), "token expired").await;
}

#[tokio::test]
async fn leeway_tolerates_small_clock_skew() {
    // Default leeway (30 s) accepts a token that expired 10 s ago; leeway 0 does not.
    let c = claims_with(|c| {
        c.insert("exp".into(), json!(now() - 10));
    });
    let token = sign(Signer::Es, &c);
    assert_eq!(
        with_token(&harness_with(30).await.app, &token).await.status,
        StatusCode::OK
    );
    assert_refused(&harness_with(0).await.app, &token, "token expired").await;
}

#[tokio::test]
async fn token_not_yet_valid_is_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.insert("nbf".into(), json!(now() + 120));
    });
    assert_refused(&h.app, &sign(Signer::Es, &c), "token not yet valid").await;
}

#[tokio::test]
async fn nbf_of_the_wrong_type_is_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.insert("nbf".into(), json!("tomorrow"));
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token has an invalid nbf claim",
    )
    .await;
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.remove("exp");
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token has no valid exp claim",
    )
    .await;
    let c = claims_with(|c| {
        c.insert("exp".into(), json!("never"));
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token has no valid exp claim",
    )
    .await;
}

#[tokio::test]
async fn token_for_another_audience_is_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.insert("aud".into(), json!("some-other-api"));
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token audience does not match this resource",
    )
    .await;
    let c = claims_with(|c| {
        c.remove("aud");
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token has no valid aud claim",
    )
    .await;
}

#[tokio::test]
async fn token_from_an_unknown_issuer_is_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.insert("iss".into(), json!("https://evil.test"));
    });
    assert_refused(&h.app, &sign(Signer::Es, &c), "unknown token issuer").await;
    let c = claims_with(|c| {
        c.remove("iss");
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token is missing the iss claim",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Refused tokens: algorithms, keys, signatures, shape

#[tokio::test]
async fn alg_none_is_refused() {
    let h = harness().await;
    let payload = b64json(&claims());
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "kid": KEYS.es.kid}),
        json!({"alg": "None"}),
    ] {
        assert_refused(
            &h.app,
            &format!("{}.{payload}.", b64json(&header)),
            "unsigned tokens are not accepted",
        )
        .await;
        assert_refused(
            &h.app,
            &format!("{}.{payload}.c2ln", b64json(&header)),
            "unsigned tokens are not accepted",
        )
        .await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // The classic key-confusion attack: the verifier's public key used as an HMAC secret.
    let h = harness().await;
    let secrets = [
        KEYS.rsa.public_pem.clone().into_bytes(),
        all_public_keys().to_string().into_bytes(),
        serde_json::to_vec(&KEYS.es.jwks["keys"][0]).unwrap(),
    ];
    for (secret, kid) in secrets
        .iter()
        .zip([RSA_KID, KEYS.es.kid.as_str(), KEYS.es.kid.as_str()])
    {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some(kid.to_owned());
            let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(secret))
                .unwrap();
            assert_refused(&h.app, &token, "HMAC-signed tokens are not accepted").await;
        }
    }
}

#[tokio::test]
async fn algorithm_must_match_the_key_type_of_its_kid() {
    // An RS256 signature claiming the EC key's kid.
    let h = harness().await;
    let token = sign_with_kid(Signer::Rs, Some(&KEYS.es.kid), &claims());
    assert_refused(
        &h.app,
        &token,
        "token algorithm does not match the signing key",
    )
    .await;
}

#[tokio::test]
async fn unsupported_algorithms_are_refused() {
    let h = harness().await;
    let payload = b64json(&claims());
    for alg in ["RS384", "PS256", "ES384", "ES512", "XYZ"] {
        let header = b64json(&json!({"alg": alg, "kid": RSA_KID}));
        assert_refused(
            &h.app,
            &format!("{header}.{payload}.c2lnbmF0dXJl"),
            "unsupported token algorithm",
        )
        .await;
    }
}

#[tokio::test]
async fn unknown_kid_is_refused() {
    let h = harness().await;
    let token = sign_with_kid(Signer::Es, Some("no-such-key"), &claims());
    assert_refused(&h.app, &token, "unknown signing key").await;
}

#[tokio::test]
async fn token_signed_by_a_stranger_key_with_a_known_kid_is_refused() {
    let h = harness().await;
    let stranger = dev::generate();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(KEYS.es.kid.clone());
    let token = dev::canonical_es256(
        &jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_ec_pem(stranger.private_pem.as_bytes()).unwrap(),
        )
        .unwrap(),
    );
    assert_refused(&h.app, &token, "invalid token signature").await;
}

/// For every valid ES256 signature (r, s), (r, n - s) verifies too. Only the low-S form is accepted, so a token
/// has one valid byte string, and its high-S twin is refused even though it carries a genuine signature.
#[tokio::test]
async fn a_high_s_es256_signature_is_refused_although_it_verifies() {
    use p256::elliptic_curve::PrimeField;
    let h = harness().await;
    let token = sign(Signer::Es, &claims());
    assert_eq!(with_token(&h.app, &token).await.status, StatusCode::OK);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let low =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    let (r, s) = low.split_scalars();
    let high_s = -*s;
    let high = p256::ecdsa::Signature::from_scalars(r.to_repr(), high_s.to_repr()).unwrap();
    assert!(high.normalize_s().is_some(), "the twin is the high-S form");
    let twin = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(high.to_bytes()));
    assert_refused(
        &h.app,
        &twin,
        "ES256 signature is not in canonical (low-S) form",
    )
    .await;
    // The original still stands.
    assert_eq!(with_token(&h.app, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let h = harness().await;
    let token = sign(Signer::Es, &claims());
    // Accepted first, so the refusals below cannot come from its earlier verification.
    assert_eq!(with_token(&h.app, &token).await.status, StatusCode::OK);
    let parts: Vec<&str> = token.split('.').collect();
    let forged = b64json(&claims_with(|c| {
        c.insert("tenant_id".into(), json!("globex"));
    }));
    assert_refused(
        &h.app,
        &format!("{}.{forged}.{}", parts[0], parts[2]),
        "invalid token signature",
    )
    .await;
    // Also with the RSA key, and with a flipped signature byte.
    let token = sign(Signer::Rs, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    assert_refused(
        &h.app,
        &format!("{}.{forged}.{}", parts[0], parts[2]),
        "invalid token signature",
    )
    .await;
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
    assert_refused(&h.app, &flipped, "invalid token signature").await;
}

#[tokio::test]
async fn malformed_tokens_are_refused() {
    let h = harness().await;
    let good = sign(Signer::Es, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "abc".to_owned(),
        "a.b".to_owned(),
        format!("{good}.extra"),
        format!("{}.{}", parts[0], parts[1]),
        "!!!.???.###".to_owned(),
        format!("{}.not-base64-json.{}", parts[0], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("not json"),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", b64json(&json!(["ES256"])), parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            b64json(&json!({"alg": "ES256", "kid": 7})),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}", parts[0], b64json(&json!("a string")), parts[2]),
    ];
    for token in cases {
        assert_refused(&h.app, &token, "malformed token").await;
    }
    assert_refused(
        &h.app,
        &format!(
            "{}.{}.{}",
            b64json(&json!({"typ": "JWT"})),
            parts[1],
            parts[2]
        ),
        "token header has no alg",
    )
    .await;
    assert_refused(
        &h.app,
        &format!("{}.{}.", parts[0], parts[1]),
        "token has no signature",
    )
    .await;
    let crit = b64json(&json!({"alg": "ES256", "kid": KEYS.es.kid, "crit": ["exp"]}));
    assert_refused(
        &h.app,
        &format!("{crit}.{}.{}", parts[1], parts[2]),
        "token header has unsupported critical parameters",
    )
    .await;
    assert_refused(&h.app, &"a".repeat(17 * 1024), "token too large").await;
}

// ---------------------------------------------------------------------------------------------
// Refused tokens: claims

#[tokio::test]
async fn sql_in_the_tenant_claim_is_refused() {
    let h = harness().await;
    for tenant in [
        json!("acme'; DROP TABLE tenants;--"),
        json!("Acme"),
        json!("acme corp"),
        json!(""),
        json!(42),
        json!(null),
    ] {
        let c = claims_with(|c| {
            c.insert("tenant_id".into(), tenant.clone());
        });
        assert_refused(&h.app, &sign(Signer::Es, &c), "invalid tenant claim").await;
    }
    let c = claims_with(|c| {
        c.remove("tenant_id");
    });
    assert_refused(
        &h.app,
        &sign(Signer::Es, &c),
        "token is missing the tenant claim",
    )
    .await;
}

#[tokio::test]
async fn control_characters_in_the_user_claim_are_refused() {
    let h = harness().await;
    let c = claims_with(|c| {
        c.insert("sub".into(), json!("alice\r\nX-Injected: 1"));
    });
    assert_refused(&h.app, &sign(Signer::Es, &c), "invalid user claim").await;
}

// ---------------------------------------------------------------------------------------------
// Where the token may come from

#[tokio::test]
async fn missing_authorization_header_gets_a_bare_challenge() {
    let h = harness().await;
    let r = send(&h.app, "GET", "/mcp", &[]).await;
    assert_bare_challenge(&r);
    assert_eq!(
        r.json["error_description"],
        "a bearer token is required in the Authorization header"
    );
}

#[tokio::test]
async fn basic_scheme_gets_a_bare_challenge() {
    let h = harness().await;
    let r = send(&h.app, "GET", "/mcp", &["Basic YWxpY2U6c2VjcmV0"]).await;
    assert_bare_challenge(&r);
    assert!(!r.raw.contains("YWxpY2U6c2VjcmV0"));
}

#[tokio::test]
async fn token_in_the_query_string_is_ignored() {
    let h = harness().await;
    let token = sign(Signer::Es, &claims());
    for uri in [
        format!("/mcp?access_token={token}"),
        format!("/mcp?token={token}"),
    ] {
        let r = send(&h.app, "GET", &uri, &[]).await;
        assert_bare_challenge(&r);
        assert!(!r.raw.contains(&token));
    }
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let h = harness().await;
    let token = sign(Signer::Es, &claims());
    let r = send(
        &h.app,
        "GET",
        "/mcp",
        &[&format!("Bearer {token}"), &format!("Bearer {token}")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.www(),
        format!(
            "Bearer error=\"invalid_request\", error_description=\"more than one Authorization header\", resource_metadata=\"{METADATA}\""
        )
    );
}

#[tokio::test]
async fn bearer_without_a_token_is_a_bad_request() {
    let h = harness().await;
    let r = send(&h.app, "GET", "/mcp", &["Bearer "]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json["error"], "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// Scopes and metadata

#[tokio::test]
async fn missing_scope_gets_403_with_the_scope_named() {
    let h = harness().await;
    let r = send(
        &h.app,
        "POST",
        "/documents",
        &[&format!("Bearer {}", sign(Signer::Es, &claims()))],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.www(),
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"documents:write\", resource_metadata=\"{METADATA}\""
        )
    );
    assert_eq!(r.json["error"], "insufficient_scope");

    let c = claims_with(|c| {
        c.insert("scope".into(), json!("documents:read documents:write"));
    });
    let r = send(
        &h.app,
        "POST",
        "/documents",
        &[&format!("Bearer {}", sign(Signer::Es, &c))],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn metadata_is_served_at_both_well_known_paths() {
    let h = harness().await;
    let want = json!({
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["documents:read", "documents:write", "tasks:run", "tasks:admin", "usage:read", "audit:read"],
        "resource_name": "Paddock",
    });
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = send(&h.app, "GET", path, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.json, want, "{path}");
    }
}

/// Clients parse `authorization_servers` as URLs: an issuer that is only a name is not advertised, and a
/// configured authorization server that is not a URL is a configuration error.
#[tokio::test]
async fn only_url_issuers_are_advertised_as_authorization_servers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, all_public_keys().to_string()).unwrap();
    let issuers = vec![
        IssuerConfig::new("paddock-dev", AUDIENCE, JwksSource::File(path.clone())),
        IssuerConfig::new(
            "urn:paddock:dev-issuer",
            AUDIENCE,
            JwksSource::File(path.clone()),
        ),
    ];
    let auth = Authenticator::new(AuthConfig::new(
        "http://127.0.0.1:8080/mcp",
        issuers.clone(),
    ))
    .await
    .unwrap();
    let r = send(
        &app(auth),
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json.get("authorization_servers").is_none(), "{}", r.json);
    assert_eq!(r.json["resource"], "http://127.0.0.1:8080/mcp");

    let mut with_url = issuers.clone();
    with_url.push(IssuerConfig::new(ISSUER, AUDIENCE, JwksSource::File(path)));
    let auth = Authenticator::new(AuthConfig::new("http://127.0.0.1:8080/mcp", with_url))
        .await
        .unwrap();
    let r = send(
        &app(auth),
        "GET",
        "/.well-known/oauth-protected-resource/mcp",
        &[],
    )
    .await;
    assert_eq!(r.json["authorization_servers"], json!([ISSUER]));

    let mut cfg = AuthConfig::new("http://127.0.0.1:8080/mcp", issuers);
    cfg.authorization_servers = vec!["login".into()];
    let err = Authenticator::new(cfg)
        .await
        .expect_err("a non-URL authorization server is refused");
    assert!(err.to_string().contains("not an http(s) URL"), "{err}");
}

#[tokio::test]
async fn metadata_echoes_the_resource_exactly_with_its_trailing_slash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, all_public_keys().to_string()).unwrap();
    let mut cfg = AuthConfig::new(
        "https://paddock.example/mcp/",
        vec![IssuerConfig::new(ISSUER, AUDIENCE, JwksSource::File(path))],
    );
    cfg.authorization_servers = vec!["https://login.example".into()];
    let auth = Authenticator::new(cfg).await.unwrap();
    assert_eq!(
        auth.metadata_url(),
        "https://paddock.example/.well-known/oauth-protected-resource/mcp/"
    );
    let app = app(auth);
    let r = send(
        &app,
        "GET",
        "/.well-known/oauth-protected-resource/mcp/",
        &[],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["resource"], "https://paddock.example/mcp/");
    assert_eq!(
        r.json["authorization_servers"],
        json!(["https://login.example"])
    );
    let r = send(&app, "GET", "/mcp", &[]).await;
    assert_eq!(
        r.www(),
        "Bearer resource_metadata=\"https://paddock.example/.well-known/oauth-protected-resource/mcp/\""
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[tokio::test]
async fn unusable_configurations_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("jwks.json");
    std::fs::write(&good, all_public_keys().to_string()).unwrap();
    let hmac_only = dir.path().join("hmac.json");
    std::fs::write(
        &hmac_only,
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}).to_string(),
    )
    .unwrap();

    let issuer = |jwks| IssuerConfig::new(ISSUER, AUDIENCE, jwks);
    let cases = [
        AuthConfig::new(RESOURCE, vec![]),
        AuthConfig::new("not a url", vec![issuer(JwksSource::File(good.clone()))]),
        AuthConfig::new(
            RESOURCE,
            vec![issuer(JwksSource::File(dir.path().join("missing.json")))],
        ),
        AuthConfig::new(RESOURCE, vec![issuer(JwksSource::File(hmac_only))]),
        AuthConfig::new(
            RESOURCE,
            vec![issuer(JwksSource::Url("http://idp.example/jwks".into()))],
        ),
        AuthConfig::new(
            RESOURCE,
            vec![
                issuer(JwksSource::File(good.clone())),
                issuer(JwksSource::File(good.clone())),
            ],
        ),
        AuthConfig::new(
            RESOURCE,
            vec![IssuerConfig::new(ISSUER, "", JwksSource::File(good))],
        ),
    ];
    for cfg in cases {
        let desc = format!("{cfg:?}");
        let err = Authenticator::new(cfg).await.unwrap_err();
        assert!(
            matches!(err, AuthError::Config(_) | AuthError::LoadJwks { .. }),
            "{desc}: {err}"
        );
    }
}

/// Replaces a JWKS file, its modification time moved ahead so the change shows even on file
/// systems with coarse timestamps.
fn rewrite_jwks(path: &std::path::Path, jwks: &Value) {
    std::fs::write(path, jwks.to_string()).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
}

#[tokio::test]
async fn jwks_file_is_reloaded_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, KEYS.es.jwks.to_string()).unwrap();
    let auth = Authenticator::new(AuthConfig::new(
        RESOURCE,
        vec![IssuerConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::File(path.clone()),
        )],
    ))
    .await
    .unwrap();
    let app = app(auth);
    let rs = sign(Signer::Rs, &claims());
    assert_refused(&app, &rs, "unknown signing key").await;

    rewrite_jwks(&path, &all_public_keys());
    assert_eq!(with_token(&app, &rs).await.status, StatusCode::OK);
    assert_eq!(
        with_token(&app, &sign(Signer::Es, &claims())).await.status,
        StatusCode::OK
    );
}

/// Waits until the clock, in whole seconds as tokens count it, is past `t`.
async fn sleep_past(t: u64) {
    while now() <= t {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_accepted_token_is_refused_once_it_expires() {
    let h = harness().await;
    let exp = now() + 1;
    let token = sign(
        Signer::Es,
        &claims_with(|c| {
            c.insert("exp".into(), json!(exp));
        }),
    );
    assert_eq!(with_token(&h.app, &token).await.status, StatusCode::OK);
    assert_eq!(with_token(&h.app, &token).await.status, StatusCode::OK);
    sleep_past(exp).await;
    assert_refused(&h.app, &token, "token expired").await;
}

#[tokio::test]
async fn an_accepted_token_is_refused_once_its_key_leaves_the_jwks_file() {
    let h = harness().await;
    let es = sign(Signer::Es, &claims());
    let rs = sign(Signer::Rs, &claims());
    assert_eq!(with_token(&h.app, &es).await.status, StatusCode::OK);
    assert_eq!(with_token(&h.app, &rs).await.status, StatusCode::OK);

    // The ES256 key is withdrawn.
    rewrite_jwks(
        &h._dir.path().join("jwks.json"),
        &json!({"keys": [KEYS.rsa.jwk.clone(), KEYS.ed.jwk.clone()]}),
    );
    // The file is looked at again at most once a second.
    let changed = now();
    sleep_past(changed + 1).await;
    assert_refused(&h.app, &es, "unknown signing key").await;
    assert_eq!(with_token(&h.app, &rs).await.status, StatusCode::OK);
}

#[tokio::test]
async fn dev_keypair_and_minted_tokens_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let files = dev::generate_keypair(dir.path()).unwrap();
    let auth = Authenticator::new(AuthConfig::new(
        RESOURCE,
        vec![IssuerConfig::new(
            "paddock-dev",
            RESOURCE,
            JwksSource::File(files.jwks.clone()),
        )],
    ))
    .await
    .unwrap();
    let app = app(auth);
    let claims = dev::MintClaims {
        issuer: "paddock-dev".into(),
        audience: RESOURCE.into(),
        tenant: "acme".into(),
        user: "task-runner".into(),
        scopes: vec![scopes::DOCUMENTS_READ.into(), scopes::TASKS_RUN.into()],
        ttl: Duration::from_secs(600),
    };
    let token = dev::mint(&files.signing_key, &files.kid, &claims).unwrap();
    let r = with_token(&app, &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(
        r.json,
        json!({"tenant": "acme", "user": "task-runner", "scopes": ["documents:read", "tasks:run"], "issuer": "paddock-dev"})
    );
    // A token for another audience from the same dev issuer is refused.
    let other = dev::mint(
        &files.signing_key,
        &files.kid,
        &dev::MintClaims {
            audience: "elsewhere".into(),
            ..claims
        },
    )
    .unwrap();
    assert_refused(&app, &other, "token audience does not match this resource").await;
}

// ---------------------------------------------------------------------------------------------
// JWKS over HTTP

struct JwksServer {
    url: String,
    jwks: Arc<Mutex<Value>>,
    hits: Arc<AtomicUsize>,
    fail: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks_server(initial: Value) -> JwksServer {
    let jwks = Arc::new(Mutex::new(initial));
    let hits = Arc::new(AtomicUsize::new(0));
    let fail = Arc::new(AtomicBool::new(false));
    let (j, h, f) = (jwks.clone(), hits.clone(), fail.clone());
    let router = Router::new().route(
        "/jwks.json",
        get(move || {
            let (j, h, f) = (j.clone(), h.clone(), f.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                if f.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let body = j.lock().unwrap().clone();
                axum::Json(body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    JwksServer {
        url: format!("http://{addr}/jwks.json"),
        jwks,
        hits,
        fail,
        task,
    }
}

async fn url_app(server: &JwksServer, ttl_secs: u64, min_refresh_secs: u64) -> Router {
    let mut cfg = AuthConfig::new(
        RESOURCE,
        vec![IssuerConfig::new(
            ISSUER,
            AUDIENCE,
            JwksSource::Url(server.url.clone()),
        )],
    );
    cfg.leeway_secs = 0;
    cfg.jwks_cache_ttl_secs = ttl_secs;
    cfg.jwks_refresh_min_interval_secs = min_refresh_secs;
    app(Authenticator::new(cfg).await.unwrap())
}

#[tokio::test]
async fn jwks_url_is_fetched_lazily_and_a_rotated_kid_is_accepted_after_refresh() {
    let server = jwks_server(KEYS.es.jwks.clone()).await;
    let app = url_app(&server, 300, 0).await;
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "URL JWKS must be fetched lazily"
    );

    assert_eq!(
        with_token(&app, &sign(Signer::Es, &claims())).await.status,
        StatusCode::OK
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    // The issuer rotates: a new RSA key appears.
    *server.jwks.lock().unwrap() = all_public_keys();
    let r = with_token(&app, &sign(Signer::Rs, &claims())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // Known keys come from the cache.
    for _ in 0..3 {
        assert_eq!(
            with_token(&app, &sign(Signer::Es, &claims())).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_kid_refreshes_are_rate_limited() {
    let server = jwks_server(KEYS.es.jwks.clone()).await;
    let app = url_app(&server, 300, 30).await;
    assert_eq!(
        with_token(&app, &sign(Signer::Es, &claims())).await.status,
        StatusCode::OK
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);

    *server.jwks.lock().unwrap() = all_public_keys();
    // Within the 30 s window a storm of unknown kids causes no fetch at all.
    assert_refused(&app, &sign(Signer::Rs, &claims()), "unknown signing key").await;
    for i in 0..20 {
        let token = sign_with_kid(Signer::Es, Some(&format!("forged-{i}")), &claims());
        assert_refused(&app, &token, "unknown signing key").await;
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn jwks_fetch_failure_keeps_serving_cached_keys() {
    let server = jwks_server(KEYS.es.jwks.clone()).await;
    // TTL 0: every request finds the cache stale and triggers a background refresh.
    let app = url_app(&server, 0, 0).await;
    let token = sign(Signer::Es, &claims());
    assert_eq!(with_token(&app, &token).await.status, StatusCode::OK);

    server.fail.store(true, Ordering::SeqCst);
    let before = server.hits.load(Ordering::SeqCst);
    assert_eq!(with_token(&app, &token).await.status, StatusCode::OK);
    // Wait for the background refresh to hit the failing server.
    for _ in 0..100 {
        if server.hits.load(Ordering::SeqCst) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        server.hits.load(Ordering::SeqCst) > before,
        "a refresh should have been attempted"
    );
    assert_eq!(with_token(&app, &token).await.status, StatusCode::OK);
    // An unknown kid forces a (failing) refresh and is still refused; the cached key still works.
    assert_refused(&app, &sign(Signer::Rs, &claims()), "unknown signing key").await;
    assert_eq!(with_token(&app, &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unreachable_jwks_with_nothing_cached_is_503_not_401() {
    let server = jwks_server(KEYS.es.jwks.clone()).await;
    server.fail.store(true, Ordering::SeqCst);
    let app = url_app(&server, 300, 30).await;
    let r = with_token(&app, &sign(Signer::Es, &claims())).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.raw);
    assert_eq!(r.json["error"], "temporarily_unavailable");
    assert!(r.headers.get(WWW_AUTHENTICATE).is_none());
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}
