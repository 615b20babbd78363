//! Secrets the client handles: the shard's API key and a freshly minted pre-auth key.
//!
//! Neither type implements `Display`, `Serialize` or a revealing `Debug`, so a secret
//! cannot slip into a log line, an error message or a JSON response by accident; the
//! plain text is reached only through an explicit `expose()`.

use std::fmt;

/// A Headscale API key (`hskey-api-…`), as sent in `Authorization: Bearer …`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Surrounding whitespace is dropped: keys read from files end with a newline, and
    /// Headscale keys never contain whitespace.
    pub fn new(key: impl Into<String>) -> Self {
        let key: String = key.into();
        ApiKey(key.trim().to_string())
    }

    /// The plain key, for the `Authorization` header only.
    pub(super) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// The full pre-auth key, returned by Headscale exactly once, at creation (0.28+ stores
/// only a bcrypt hash). The portal shows it to the person once and never stores it.
#[derive(Clone, PartialEq, Eq)]
pub struct PreAuthKeySecret(String);

impl PreAuthKeySecret {
    pub(super) fn new(key: String) -> Self {
        PreAuthKeySecret(key)
    }

    /// The key to hand to `tailscale up --authkey=…`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PreAuthKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PreAuthKeySecret({})",
            super::types::mask_pre_auth_key(&self.0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_key_debug_output_hides_the_key() {
        let key = ApiKey::new("hskey-api-abcdefghijkl-supersecretpart\n");
        assert_eq!(key.expose(), "hskey-api-abcdefghijkl-supersecretpart");
        let shown = format!("{key:?} {:#?}", Some(&key));
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(!shown.contains("abcdefghijkl"), "{shown}");
    }

    #[test]
    fn pre_auth_key_debug_output_shows_only_the_prefix() {
        let secret = PreAuthKeySecret::new("hskey-auth-AbCdEfGhIjKl-topsecretremainder".into());
        let shown = format!("{secret:?}");
        assert_eq!(shown, "PreAuthKeySecret(hskey-auth-AbCdEfGhIjKl-***)");
        let legacy = PreAuthKeySecret::new("0123456789abcdef0123456789abcdef".into());
        assert_eq!(format!("{legacy:?}"), "PreAuthKeySecret(***)");
    }
}
