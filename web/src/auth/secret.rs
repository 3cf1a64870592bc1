//! The secret values of the web view and how they are made and compared: random ids and tokens,
//! API tokens stored as their SHA-256, passwords hashed with argon2id. Every comparison of a
//! secret a client sent is made in constant time. Nothing here stores or logs a secret.

use argon2::{Argon2, PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The prefix of an API token as it is given to a person (`drover_<64 hex>`).
pub const TOKEN_PREFIX: &str = "drover_";
/// The prefix of a stored token hash (`sha256:<64 hex>`).
pub const TOKEN_HASH_PREFIX: &str = "sha256:";

/// 32 random bytes from the operating system's generator (through `rand`'s thread generator,
/// seeded by it), as 64 lowercase hex digits: session ids, CSRF tokens, API tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// Whether two secrets are equal, in time that depends on their lengths only.
pub fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A new API token: what the person is given once, and what is stored.
pub fn new_token() -> (String, String) {
    let token = format!("{TOKEN_PREFIX}{}", random_hex());
    let stored = token_hash(&token);
    (token, stored)
}

/// The stored form of an API token: `sha256:<64 hex>`. Tokens are 256 random bits, so a fast
/// hash is enough; a slow one would only slow every API call.
pub fn token_hash(token: &str) -> String {
    format!("{TOKEN_HASH_PREFIX}{}", hex::encode(Sha256::digest(token.as_bytes())))
}

/// Whether `stored` is a well-formed token hash.
pub fn is_token_hash(stored: &str) -> bool {
    stored
        .strip_prefix(TOKEN_HASH_PREFIX)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// A password's argon2id PHC string (default parameters, a random salt).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let hash: PasswordHash =
        Argon2::default().hash_password(password.as_bytes()).map_err(|e| HashError(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `phc` is an argon2id PHC string this module can verify against.
pub fn is_password_hash(phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| h.algorithm == argon2::ARGON2ID_IDENT)
}

/// Whether `password` matches the PHC string `phc`. CPU-bound (tens of milliseconds): call it
/// off the async threads.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// A hash no password is known for, made once per process: unknown names and users without a
/// password are verified against it, so that they take as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_hex()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_hash_round_trips_and_refuses_another_password() {
        let phc = hash_password("correct horse").expect("hashed");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(is_password_hash(&phc));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        // A new salt every time.
        assert_ne!(phc, hash_password("correct horse").expect("hashed"));
    }

    #[test]
    fn tokens_are_random_and_stored_as_their_sha256() {
        let (token, stored) = new_token();
        assert!(token.starts_with("drover_") && token.len() == 7 + 64, "{token}");
        assert!(is_token_hash(&stored), "{stored}");
        assert_eq!(token_hash(&token), stored);
        assert!(!stored.contains(&token[7..]));
        assert_ne!(new_token().0, token);
        assert!(!is_token_hash("sha256:XYZ"));
        assert!(!is_token_hash(&format!("md5:{}", &stored[7..])));
    }

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        let a = random_hex();
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &random_hex()));
        assert!(!same(&a, &a[..63]));
        assert!(!same(&a, ""));
    }
}
