//! Vendor credentials sealed at rest: ChaCha20-Poly1305 under `INTEGRATIONS_KEY`, a fresh
//! nonce per value, and the owner of the value (for example `google:42`) bound in as
//! associated data so a sealed token copied to another tenant's row does not open. It never
//! logs or returns a secret in an error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The nonce's length in bytes (ChaCha20-Poly1305's 96 bits).
const NONCE_LEN: usize = 12;
/// The sealed format's version, first in every sealed value.
const PREFIX: &str = "v1.";

/// Why a key was refused or a value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("INTEGRATIONS_KEY must be 32 bytes written in base64 (make one with `openssl rand -base64 32`)")]
    BadKey,
    #[error("a sealed credential could not be opened (another key, or another owner)")]
    Unopenable,
}

/// The key credentials are sealed with. `Debug` never shows it.
#[derive(Clone)]
pub struct SealingKey(Key);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    /// Reads a key written as base64 of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| SealError::BadKey)?;
        let key = Key::try_from(bytes.as_slice()).map_err(|_| SealError::BadKey)?;
        Ok(Self(key))
    }

    /// Seals `secret` for `owner`; the result is plain ASCII, safe for a text column.
    pub fn seal(&self, secret: &str, owner: &str) -> String {
        let cipher = ChaCha20Poly1305::new(&self.0);
        let nonce = Nonce::generate();
        // Encryption with a valid key and an in-memory buffer cannot fail; an empty value
        // is the safe answer should the library ever say otherwise.
        let sealed = cipher.encrypt(&nonce, Payload { msg: secret.as_bytes(), aad: owner.as_bytes() });
        let Ok(ciphertext) = sealed else { return String::new() };
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens what [`SealingKey::seal`] made for the same `owner`.
    pub fn open(&self, sealed: &str, owner: &str) -> Result<String, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Unopenable)?;
        let bytes = STANDARD.decode(body).map_err(|_| SealError::Unopenable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Unopenable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| SealError::Unopenable)?;
        let cipher = ChaCha20Poly1305::new(&self.0);
        let plain = cipher
            .decrypt(&nonce, Payload { msg: ciphertext, aad: owner.as_bytes() })
            .map_err(|_| SealError::Unopenable)?;
        String::from_utf8(plain).map_err(|_| SealError::Unopenable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_sealed_value_opens_for_its_owner_only() {
        let key = SealingKey::from_base64(KEY).unwrap();
        let sealed = key.seal("1//refresh-token", "google:1");
        assert!(!sealed.contains("refresh"), "{sealed}");
        assert_eq!(key.open(&sealed, "google:1").unwrap(), "1//refresh-token");
        assert_eq!(key.open(&sealed, "google:2"), Err(SealError::Unopenable));
    }

    #[test]
    fn sealing_twice_gives_different_text() {
        let key = SealingKey::from_base64(KEY).unwrap();
        assert_ne!(key.seal("same", "o"), key.seal("same", "o"));
    }

    #[test]
    fn another_key_or_a_damaged_value_does_not_open() {
        let key = SealingKey::from_base64(KEY).unwrap();
        let other = SealingKey::from_base64("HxwdHhsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=").unwrap();
        let sealed = key.seal("secret", "o");
        assert_eq!(other.open(&sealed, "o"), Err(SealError::Unopenable));
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(key.open(&damaged, "o"), Err(SealError::Unopenable));
        assert_eq!(key.open("plain", "o"), Err(SealError::Unopenable));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(SealingKey::from_base64("c2hvcnQ=").unwrap_err(), SealError::BadKey);
        assert_eq!(SealingKey::from_base64("not base64!").unwrap_err(), SealError::BadKey);
    }
}
