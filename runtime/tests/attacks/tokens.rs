//! Forged, altered and crafted bearer tokens against `/mcp`. Each is refused with 401 (403 for a genuine token
//! of a tenant not provisioned here), a clean body, nothing written, and no request to any address a token names.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, http::StatusCode, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::{
    ecdsa::{Signature, SigningKey, signature::Signer},
    pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding},
};
use serde_json::{Value, json};
use sqlx::PgPool;

use paddock_testkit::prelude::*;

use crate::assert_clean;

/// Signs `header.claims` with the PKCS#8 PEM P-256 key `pem`, exactly as given (any header, any claims), with the
/// signature in low-S form as the verifier requires: only what the attack changes differs from a genuine token.
fn sign_raw(pem: &str, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = SigningKey::from_pkcs8_pem(pem).unwrap();
    let sig: Signature = key.sign(input.as_bytes());
    let sig = sig.normalize_s().unwrap_or(sig);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "tenant_id": "tenant-a",
           "scope": "documents:read documents:write", "iat": now(), "exp": now() + 600})
}

fn claims_with(key: &str, value: Value) -> Value {
    let mut c = claims();
    c[key] = value;
    c
}

fn claims_without(key: &str) -> Value {
    let mut c = claims();
    c.as_object_mut().unwrap().remove(key);
    c
}

fn initialize_body() -> String {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"attacker","version":"1"}}})
    .to_string()
}

/// A local server that counts every request: a token naming it as its key source must never reach it.
async fn counting_key_server(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let router = Router::new().fallback(get(move || {
        let counter = counter.clone();
        let jwks = jwks.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            axum::Json(jwks)
        }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/jwks.json"), hits)
}

#[sqlx::test(migrations = "../migrations")]
async fn forged_altered_and_crafted_tokens_are_refused_cleanly(admin: PgPool) {
    provision_tenant(&admin, "tenant-a", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    let kid = keys.kid.clone();
    let es = |extra: Value| {
        let mut h = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
        h.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        h
    };
    let genuine = sign_raw(&keys.pem, &es(json!({})), &claims());
    let attacker = paddock_runtime::auth::dev::generate();
    let attacker_jwks = attacker.jwks.clone();
    let (key_url, key_server_hits) = counting_key_server(attacker_jwks.clone()).await;

    // The victim's public key, as an attacker would use it for an HMAC "signature".
    let public_pem = SigningKey::from_pkcs8_pem(&keys.pem)
        .unwrap()
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let hs256 = {
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, public_pem.as_bytes()),
            input.as_bytes(),
        );
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
    };
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": alg, "typ": "JWT"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        )
    };
    let (signed, signature) = genuine.rsplit_once('.').unwrap();
    let flipped = {
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[17] ^= 0x01;
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
    };
    let high_s = {
        use p256::elliptic_curve::PrimeField;
        let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
        let (r, s) = sig.split_scalars();
        let twin = Signature::from_scalars(r.to_repr(), (-*s).to_repr()).unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin.to_bytes()))
    };

    let attacks: Vec<(&str, String)> = vec![
        ("alg none", unsigned("none")),
        ("alg NoNe", unsigned("NoNe")),
        ("HS256 keyed with the issuer's public key", hs256),
        (
            "expired",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("exp", json!(now() - 3600)),
            ),
        ),
        (
            "nbf in the future",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("nbf", json!(now() + 3600)),
            ),
        ),
        (
            "no exp",
            sign_raw(&keys.pem, &es(json!({})), &claims_without("exp")),
        ),
        (
            "exp as a string",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("exp", json!("9999999999")),
            ),
        ),
        (
            "another audience",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("aud", json!("someone-else")),
            ),
        ),
        (
            "another issuer",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("iss", json!("https://evil.example")),
            ),
        ),
        (
            "kid with a path",
            sign_raw(
                &keys.pem,
                &es(json!({"kid": "../../../../etc/passwd"})),
                &claims(),
            ),
        ),
        (
            "kid with SQL",
            sign_raw(&keys.pem, &es(json!({"kid": "' OR '1'='1"})), &claims()),
        ),
        (
            "kid of the wrong type",
            sign_raw(&keys.pem, &es(json!({"kid": {"$ne": null}})), &claims()),
        ),
        (
            "jku naming the attacker's keys",
            sign_raw(
                &attacker.private_pem,
                &es(json!({"kid": attacker.kid, "jku": key_url})),
                &claims(),
            ),
        ),
        (
            "x5u naming the attacker's keys",
            sign_raw(
                &attacker.private_pem,
                &es(json!({"kid": attacker.kid, "x5u": key_url})),
                &claims(),
            ),
        ),
        (
            "the attacker's key embedded as jwk",
            sign_raw(
                &attacker.private_pem,
                &es(json!({"kid": attacker.kid, "jwk": attacker_jwks["keys"][0]})),
                &claims(),
            ),
        ),
        (
            "a stranger's key under the issuer's kid",
            sign_raw(&attacker.private_pem, &es(json!({})), &claims()),
        ),
        (
            "truncated signature",
            genuine[..genuine.len() - 10].to_owned(),
        ),
        ("no signature", format!("{signed}.")),
        ("a flipped signature bit", flipped),
        ("the high-S twin of a genuine signature", high_s),
        ("four segments", format!("{genuine}.x")),
        (
            "an oversized header",
            sign_raw(
                &keys.pem,
                &es(json!({"pad": "A".repeat(64 * 1024)})),
                &claims(),
            ),
        ),
        ("not base64", "@@@.@@@.@@@".to_owned()),
        // Crafted tenant claims, all validly signed.
        (
            "tenant with SQL",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!("tenant-a' OR '1'='1")),
            ),
        ),
        (
            "tenant in another case",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!("Tenant-A")),
            ),
        ),
        (
            "tenant with a look-alike letter",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!("ten\u{0430}nt-a")),
            ),
        ),
        (
            "tenant overlong",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!("a".repeat(64))),
            ),
        ),
        (
            "tenant empty",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!("")),
            ),
        ),
        (
            "tenant a number",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!(7)),
            ),
        ),
        (
            "tenant an array",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!(["tenant-a"])),
            ),
        ),
        (
            "tenant an object",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", json!({"id": "tenant-a"})),
            ),
        ),
        (
            "tenant null",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("tenant_id", Value::Null),
            ),
        ),
        (
            "no tenant",
            sign_raw(&keys.pem, &es(json!({})), &claims_without("tenant_id")),
        ),
        (
            "user with a NUL",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("sub", json!("mal\u{0}lory")),
            ),
        ),
        (
            "user empty",
            sign_raw(&keys.pem, &es(json!({})), &claims_with("sub", json!(""))),
        ),
        (
            "user a number",
            sign_raw(&keys.pem, &es(json!({})), &claims_with("sub", json!(1))),
        ),
        (
            "scope a number",
            sign_raw(&keys.pem, &es(json!({})), &claims_with("scope", json!(5))),
        ),
        (
            "scope with a NUL",
            sign_raw(
                &keys.pem,
                &es(json!({})),
                &claims_with("scope", json!("documents:read\u{0}tasks:admin")),
            ),
        ),
    ];
    for (what, token) in &attacks {
        let r = app.post_raw(token, None, None, initialize_body()).await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let challenge = r.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert_clean(r.status, &r.body);
    }
    assert_eq!(
        key_server_hits.load(Ordering::SeqCst),
        0,
        "no key was fetched from an address a token named"
    );
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM mcp_sessions")
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(sessions, 0, "no refused token wrote anything");

    // The genuine token, for contrast, opens a session.
    let r = app.post_raw(&genuine, None, None, initialize_body()).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
}

/// A genuine token for a tenant not provisioned here is refused with 403, and counted under the empty tenant
/// label: whatever tenant names signed tokens carry, the metric's label set stays bounded.
#[sqlx::test(migrations = "../migrations")]
async fn a_genuine_token_of_an_unprovisioned_tenant_is_refused_without_naming_it_in_metrics(
    admin: PgPool,
) {
    provision_tenant(&admin, "tenant-a", 6000, 1000).await;
    let keys = keys();
    let app = app(runtime_pool(&admin).await, &keys).await;
    for i in 0..5 {
        let token = keys.token(&format!("nobody-{i}"), RW);
        let r = app.post_raw(&token, None, None, initialize_body()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_clean(r.status, &r.body);
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &app.state.registry).unwrap();
    assert!(!text.contains("nobody-"), "{text}");
    assert!(
        text.contains(r#"paddock_request_rejections_total{reason="unknown_tenant",tenant=""} 5"#),
        "{text}"
    );
}
