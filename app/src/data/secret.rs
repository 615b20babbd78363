//! Secrets at rest (shard API keys): AES-256-GCM with a key from configuration.
//!
//! Sealed form: version byte `1`, 12-byte random nonce, ciphertext with its 16-byte tag.
//! The version byte leaves room for key rotation.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;

const VERSION: u8 = 1;

pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the secret key must be exactly 32 bytes")]
    BadKey,
    #[error("the sealed value is damaged or was sealed with another key")]
    Unseal,
}

impl SecretBox {
    pub fn new(key: &[u8]) -> Result<SecretBox, SecretError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| SecretError::BadKey)?;
        Ok(SecretBox { cipher })
    }

    pub fn seal(&self, plaintext: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            // AES-GCM encryption only fails for inputs beyond 64 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + 12 + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<String, SecretError> {
        if sealed.len() < 1 + 12 + 16 || sealed[0] != VERSION {
            return Err(SecretError::Unseal);
        }
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&sealed[1..13]), &sealed[13..])
            .map_err(|_| SecretError::Unseal)?;
        String::from_utf8(plain).map_err(|_| SecretError::Unseal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key() {
        let a = SecretBox::new(&[7u8; 32]).unwrap();
        let b = SecretBox::new(&[8u8; 32]).unwrap();
        let sealed = a.seal("hskey-api-secret");
        assert!(
            !sealed.windows(6).any(|w| w == b"hskey-"),
            "plaintext leaked"
        );
        assert_eq!(a.open(&sealed).unwrap(), "hskey-api-secret");
        assert_eq!(b.open(&sealed), Err(SecretError::Unseal));
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let a = SecretBox::new(&[7u8; 32]).unwrap();
        assert_ne!(a.seal("x"), a.seal("x"));
    }

    #[test]
    fn damaged_values_and_bad_keys_are_refused() {
        let a = SecretBox::new(&[7u8; 32]).unwrap();
        let mut sealed = a.seal("secret");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(a.open(&sealed), Err(SecretError::Unseal));
        assert_eq!(a.open(b"short"), Err(SecretError::Unseal));
        assert_eq!(SecretBox::new(&[0u8; 16]).unwrap_err(), SecretError::BadKey);
    }
}
