//! One-time handover of a token to the console, so a link can sign a person in without a token in any URL.
//!
//! `POST /console/api/handover`, behind the protected routes' bearer, tenant and Origin middleware, deposits the
//! caller's own token and answers a single-use code that lives [`TTL`] (less if the token expires sooner). The
//! demo prints `<console>#code=<code>`: a fragment, which no browser sends to a server. The console reads it,
//! clears it from the address bar and `POST`s it to `/console/api/handover/redeem`, which answers the token once.
//!
//! Nothing stored is usable alone: the row (table `console_handovers`) is keyed by sha256(code), and the token
//! is sealed with ChaCha20-Poly1305 under a key derived from the code by HKDF-SHA256, with the tenant as
//! associated data; the database never sees the code. Rows live in PostgreSQL, so a code deposited through
//! one replica is redeemed through any other. Redemption goes through `paddock_redeem_console_handover`, which
//! deletes the row as it returns it (a code works once) and only hands out rows of tenants this runtime's login
//! serves; every deposit and redemption purges the expired rows (`paddock_purge_console_handovers`). The opened
//! token is verified again before it is answered, so a code outliving its token gives nothing.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{State, rejection::BytesRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{
    aead::{self, Aad, LessSafeKey, Nonce, UnboundKey},
    hkdf,
    rand::{SecureRandom, SystemRandom},
};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{
    app::AppState,
    auth::{Principal, bearer_token},
    db::{DbError, TenantId},
};

/// Where a token is deposited.
pub(super) const PATH: &str = "/console/api/handover";
/// Where a code is redeemed.
pub(super) const REDEEM_PATH: &str = "/console/api/handover/redeem";

/// How long a code lives at most.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(120);

/// The largest redemption body read: `{"code": "<43 characters>"}` with room for whitespace.
pub const MAX_REDEEM_BYTES: usize = 1024;

/// The length of a code: 32 random bytes in unpadded base64url.
const CODE_LEN: usize = 43;

/// The longest token that can be handed over.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a handover was refused.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{0}")]
    InvalidRequest(&'static str),
    #[error("the body is too large")]
    TooLarge,
    #[error("the code is unknown, already used or expired")]
    InvalidCode,
    #[error("the handed-over token is no longer valid; sign in again")]
    TokenNoLongerValid,
    #[error("the token expires too soon to hand over")]
    TokenExpiresSoon,
    #[error("the token is too long to hand over")]
    TokenTooLong,
    #[error("failed to seal the token")]
    Seal,
    #[error("failed to store the handover")]
    Store(#[source] DbError),
    #[error("failed to redeem the handover")]
    Redeem(#[source] DbError),
}

impl IntoResponse for HandoverError {
    fn into_response(self) -> Response {
        let (status, error) = match &self {
            Self::InvalidRequest(_) | Self::TokenTooLong => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "invalid_request"),
            Self::InvalidCode => (StatusCode::BAD_REQUEST, "invalid_grant"),
            Self::TokenNoLongerValid => (StatusCode::BAD_REQUEST, "invalid_grant"),
            Self::TokenExpiresSoon => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            Self::Seal | Self::Store(_) | Self::Redeem(_) => {
                tracing::error!(error = %self, source = ?std::error::Error::source(&self), "console handover failed");
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
        };
        no_store(
            (
                status,
                Json(json!({"error": error, "error_description": self.to_string()})),
            )
                .into_response(),
        )
    }
}

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    super::with_headers(resp)
}

/// The AEAD key of a code: HKDF-SHA256 of the code, so only the code's holder can open the sealed token.
fn key_of(code: &str) -> Result<LessSafeKey, HandoverError> {
    let prk =
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"paddock console handover").extract(code.as_bytes());
    let okm = prk
        .expand(&[b"token seal v1"], &aead::CHACHA20_POLY1305)
        .map_err(|_| HandoverError::Seal)?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn digest(code: &str) -> Vec<u8> {
    Sha256::digest(code.as_bytes()).to_vec()
}

/// Seals `token` under `code`, bound to `tenant`: (nonce, ciphertext with tag).
fn seal(code: &str, tenant: &str, token: &str) -> Result<([u8; 12], Vec<u8>), HandoverError> {
    let mut nonce = [0u8; 12];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| HandoverError::Seal)?;
    let mut sealed = token.as_bytes().to_vec();
    key_of(code)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(tenant.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| HandoverError::Seal)?;
    Ok((nonce, sealed))
}

/// Opens what [`seal`] sealed; `None` if anything was altered.
fn open(code: &str, tenant: &str, nonce: &[u8], mut sealed: Vec<u8>) -> Option<String> {
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plain = key_of(code)
        .ok()?
        .open_in_place(nonce, Aad::from(tenant.as_bytes()), &mut sealed)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// A fresh code: 32 random bytes, unpadded base64url.
fn new_code() -> Result<String, HandoverError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HandoverError::Seal)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn well_formed(code: &str) -> bool {
    code.len() == CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token's `exp` claim, read without verifying the token again (the middleware just did).
fn expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()?
        .get("exp")?
        .as_i64()
}

/// `POST /console/api/handover`: deposits the caller's token, answers `{code, expires_in}`.
pub(super) async fn deposit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Response {
    match deposit_token(&state, &principal, &headers).await {
        Ok((code, ttl)) => no_store(
            (
                StatusCode::CREATED,
                Json(json!({"code": code, "expires_in": ttl})),
            )
                .into_response(),
        ),
        Err(e) => e.into_response(),
    }
}

async fn deposit_token(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
) -> Result<(String, i64), HandoverError> {
    let token = bearer_token(headers)
        .map_err(|_| HandoverError::InvalidRequest("a bearer token is required"))?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(HandoverError::TokenTooLong);
    }
    let tenant = TenantId::parse(&principal.tenant)
        .map_err(|_| HandoverError::InvalidRequest("the token names no valid tenant"))?;
    let now = chrono::Utc::now().timestamp();
    // A code never outlives its token; one with less than a few seconds left would be useless on arrival.
    let ttl = match expiry(token) {
        Some(exp) => (exp - now).min(TTL.as_secs() as i64),
        None => TTL.as_secs() as i64,
    };
    if ttl < 5 {
        return Err(HandoverError::TokenExpiresSoon);
    }
    let code = new_code()?;
    let (nonce, sealed) = seal(&code, tenant.as_str(), token)?;
    async {
        let mut tx = state.db.begin(&tenant).await?;
        sqlx::query(
            "INSERT INTO console_handovers (code_sha256, tenant_id, nonce, sealed, expires_at) \
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))",
        )
        .bind(digest(&code))
        .bind(tenant.as_str())
        .bind(nonce.as_slice())
        .bind(&sealed)
        .bind(ttl as f64)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok::<_, DbError>(())
    }
    .await
    .map_err(HandoverError::Store)?;
    // Housekeeping: the code is stored whether or not this succeeds, and the next call retries it.
    if let Err(e) = sqlx::query("SELECT paddock_purge_console_handovers()")
        .execute(state.db.pool())
        .await
    {
        tracing::warn!(error = %e, "failed to purge expired console handovers");
    }
    Ok((code, ttl))
}

/// `POST /console/api/handover/redeem` with `{"code": "..."}`: answers `{access_token, token_type}` once.
/// The route carries a body limit of [`MAX_REDEEM_BYTES`], so a larger body is refused before it is read (413,
/// which the server answers in its one shape for every route).
pub(super) async fn redeem(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        return HandoverError::TooLarge.into_response();
    };
    match redeem_code(&state, &headers, &body).await {
        Ok(token) => {
            no_store(Json(json!({"access_token": token, "token_type": "Bearer"})).into_response())
        }
        Err(e) => e.into_response(),
    }
}

async fn redeem_code(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, HandoverError> {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_body {
        return Err(HandoverError::InvalidRequest(
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    if body.len() > MAX_REDEEM_BYTES {
        return Err(HandoverError::TooLarge);
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Redeem {
        code: String,
    }
    let Ok(Redeem { code }) = serde_json::from_slice::<Redeem>(body) else {
        return Err(HandoverError::InvalidRequest(
            "the body must be {\"code\": \"...\"}",
        ));
    };
    if !well_formed(&code) {
        return Err(HandoverError::InvalidRequest(
            "the code must be 43 characters of base64url",
        ));
    }
    let row: Option<(String, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT tenant_id, nonce, sealed FROM paddock_redeem_console_handover($1)")
            .bind(digest(&code))
            .fetch_optional(state.db.pool())
            .await
            .map_err(|e| HandoverError::Redeem(e.into()))?;
    let (tenant, nonce, sealed) = row.ok_or(HandoverError::InvalidCode)?;
    let token = open(&code, &tenant, &nonce, sealed).ok_or(HandoverError::InvalidCode)?;
    // The token may have expired (or its issuer's keys rotated) since it was deposited.
    match state.auth.authenticate(&token).await {
        Ok(p) if p.tenant == tenant => Ok(token),
        _ => Err(HandoverError::TokenNoLongerValid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_token_opens_with_its_code_and_tenant_only() {
        let code = new_code().unwrap();
        assert!(well_formed(&code));
        let (nonce, sealed) = seal(&code, "acme", "header.payload.signature").unwrap();
        assert!(
            !sealed.windows(7).any(|w| w == b"payload"),
            "the token is not stored in clear"
        );
        assert_eq!(
            open(&code, "acme", &nonce, sealed.clone()).as_deref(),
            Some("header.payload.signature")
        );
        let other = new_code().unwrap();
        assert_eq!(open(&other, "acme", &nonce, sealed.clone()), None);
        assert_eq!(open(&code, "globex", &nonce, sealed.clone()), None);
        let mut altered = sealed;
        altered[0] ^= 1;
        assert_eq!(open(&code, "acme", &nonce, altered), None);
    }

    #[test]
    fn codes_are_43_characters_of_base64url() {
        assert!(!well_formed(""));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&format!("{}=", "a".repeat(42))));
        assert!(!well_formed(&format!("{}+", "a".repeat(42))));
        assert!(well_formed(
            &"a-_"
                .repeat(14)
                .chars()
                .chain("Z".chars())
                .collect::<String>()
        ));
    }
}
