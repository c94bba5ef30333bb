//! Password hashing with argon2id, always off the async runtime: one hash is tens of
//! milliseconds of CPU in release builds and over a second in debug builds, which must
//! never stall a live call's audio.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::OnceCell;

use crate::config::PasswordCost;

/// Hashes and checks passwords at the configured cost.
#[derive(Clone)]
pub struct Passwords {
    cost: PasswordCost,
    /// A hash of nothing anyone knows, checked when no account matches a sign-in so
    /// that answering "no such account" takes as long as "wrong password".
    decoy: Arc<OnceCell<String>>,
}

impl Passwords {
    pub fn new(cost: PasswordCost) -> Self {
        Self { cost, decoy: Arc::new(OnceCell::new()) }
    }

    fn hasher(cost: PasswordCost) -> anyhow::Result<Argon2<'static>> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid password hashing cost {cost:?}: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// A PHC string (`$argon2id$v=19$m=...`) with a fresh random salt.
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let cost = self.cost;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let hasher = Self::hasher(cost)?;
            hasher
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
        })
        .await
        .context("the password hasher panicked")?
    }

    /// Whether `password` matches `hash`. The hash carries its own cost, so hashes made
    /// at another cost still verify.
    pub async fn verify(&self, password: &str, hash: &str) -> anyhow::Result<bool> {
        let cost = self.cost;
        let password = password.to_owned();
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || {
            let hasher = Self::hasher(cost)?;
            match hasher.verify_password(password.as_bytes(), hash.as_str()) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                Err(e) => Err(anyhow::anyhow!("checking a password against a stored hash: {e}")),
            }
        })
        .await
        .context("the password verifier panicked")?
    }

    /// Spends the time of one verification without any account to check against.
    pub async fn verify_decoy(&self, password: &str) -> anyhow::Result<()> {
        let decoy = self.decoy.get_or_try_init(|| self.hash("no account has this password")).await?.clone();
        self.verify(password, &decoy).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: PasswordCost = PasswordCost { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let passwords = Passwords::new(CHEAP);
        let hash = passwords.hash("tulips in april").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords.verify("tulips in april", &hash).await.unwrap());
        assert!(!passwords.verify("tulips in may", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_at_another_cost_still_verify() {
        let old = Passwords::new(PasswordCost { memory_kib: 128, iterations: 2, parallelism: 1 });
        let hash = old.hash("tulips in april").await.unwrap();
        assert!(Passwords::new(CHEAP).verify("tulips in april", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn a_garbled_stored_hash_is_an_error_not_a_match() {
        assert!(Passwords::new(CHEAP).verify("x", "not a hash").await.is_err());
    }
}
