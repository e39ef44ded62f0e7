//! Tenant database passwords and the SCRAM-SHA-256 verifiers PostgreSQL stores for them.
//!
//! The operator sends PostgreSQL a verifier (RFC 5802/7677, the `pg_authid.rolpassword`
//! format), never the password itself, so the password cannot end up in the server's
//! statement log. The salt is derived from the role and password, which makes the verifier
//! deterministic: re-applying an unchanged tenant writes the same bytes.

use std::num::NonZeroU32;

use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use rand::{Rng as _, distributions::Alphanumeric};
use ring::{digest, hmac, pbkdf2};

/// Length of generated passwords: 40 alphanumerics, about 238 bits.
pub const PASSWORD_LEN: usize = 40;
/// PostgreSQL's default SCRAM iteration count.
const ITERATIONS: u32 = 4096;

/// A fresh random password of [`PASSWORD_LEN`] characters from `[A-Za-z0-9]`.
pub fn generate_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// Whether `s` looks like a password this module generated. A password read back from a Secret
/// (which tenant namespace admins may be able to edit) is reused only if it passes.
pub fn is_valid_password(s: &str) -> bool {
    (32..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The SCRAM-SHA-256 verifier of `password` for `role`:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
///
/// Only ASCII alphanumeric passwords are accepted by the callers, which SASLprep leaves
/// unchanged, so no normalisation is needed here.
pub fn scram_verifier(role: &str, password: &str) -> String {
    let seed = digest::digest(
        &digest::SHA256,
        format!("paddock-scram-salt\0{role}\0{password}").as_bytes(),
    );
    verifier_with_salt(password, &seed.as_ref()[..16], ITERATIONS)
}

fn verifier_with_salt(password: &str, salt: &[u8], iterations: u32) -> String {
    let (stored_key, server_key) = keys(password, salt, iterations);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

fn keys(password: &str, salt: &[u8], iterations: u32) -> (Vec<u8>, Vec<u8>) {
    let mut salted = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(iterations.max(1)).expect("at least one iteration"),
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
    let client_key = hmac::sign(&key, b"Client Key");
    let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
    let server_key = hmac::sign(&key, b"Server Key");
    (stored_key.as_ref().to_vec(), server_key.as_ref().to_vec())
}

/// Whether `password` matches a stored SCRAM-SHA-256 verifier (what a login would check).
pub fn verifier_matches(verifier: &str, password: &str) -> bool {
    let Some(rest) = verifier.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let Some((params, keys_part)) = rest.split_once('$') else {
        return false;
    };
    let Some((iterations, salt)) = params.split_once(':') else {
        return false;
    };
    let Some((stored, server)) = keys_part.split_once(':') else {
        return false;
    };
    let (Ok(iterations), Ok(salt), Ok(stored), Ok(server)) = (
        iterations.parse::<u32>(),
        B64.decode(salt),
        B64.decode(stored),
        B64.decode(server),
    ) else {
        return false;
    };
    let (want_stored, want_server) = keys(password, &salt, iterations);
    want_stored == stored && want_server == server
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3 exchange: user "user", password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==",
    /// 4096 iterations. A verifier built from our keys must reproduce the server signature the
    /// RFC shows and accept the client proof it shows, as PostgreSQL would.
    #[test]
    fn keys_reproduce_the_rfc_7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let verifier = verifier_with_salt("pencil", &salt, 4096);
        assert!(
            verifier.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{verifier}"
        );
        let (stored_key, server_key) = keys("pencil", &salt, 4096);
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message = format!(
            "n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
        );
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &server_key),
            auth_message.as_bytes(),
        );
        assert_eq!(
            B64.encode(server_signature.as_ref()),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        // The server's check: H(ClientProof XOR HMAC(StoredKey, AuthMessage)) == StoredKey.
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &stored_key),
            auth_message.as_bytes(),
        );
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature.as_ref())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            digest::digest(&digest::SHA256, &client_key).as_ref(),
            stored_key.as_slice()
        );
        assert!(verifier_matches(&verifier, "pencil"));
        assert!(!verifier_matches(&verifier, "pencil2"));
    }

    #[test]
    fn verifiers_are_deterministic_per_role_and_password() {
        let p = generate_password();
        assert_eq!(scram_verifier("r1", &p), scram_verifier("r1", &p));
        assert_ne!(
            scram_verifier("r1", &p),
            scram_verifier("r2", &p),
            "salt differs per role"
        );
        assert!(verifier_matches(&scram_verifier("r1", &p), &p));
    }

    #[test]
    fn generated_passwords_are_valid_and_distinct() {
        let (a, b) = (generate_password(), generate_password());
        assert!(is_valid_password(&a) && is_valid_password(&b));
        assert_ne!(a, b);
        for bad in [
            "short",
            "with space and enough characters to pass the length",
            "x'; DROP ROLE r; --xxxxxxxxxxxxxxxxxxx",
        ] {
            assert!(!is_valid_password(bad), "{bad:?}");
        }
        assert!(!verifier_matches("md5abc", "x") && !verifier_matches("SCRAM-SHA-256$x", "x"));
    }
}
