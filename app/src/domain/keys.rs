//! Pre-auth keys as a tenant mints and sees them: the minting form's rules, the quotas
//! that limit minting, a key's state, and the commands that use a new key.

use serde::{Deserialize, Serialize};

use super::tags::shard_tag;

/// Longest expiry a key may be given.
pub const MAX_EXPIRY_DAYS: u32 = 90;

/// What a person asked for when minting a key, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub reusable: bool,
    pub ephemeral: bool,
    pub expiry_days: u32,
    /// In the shard's names (`tag:t7k2--server`).
    pub shard_tags: Vec<String>,
    pub description: String,
}

impl KeyRequest {
    /// `tags` is a comma- or space-separated list in the tenant's names.
    pub fn parse(
        code: &str,
        reusable: bool,
        ephemeral: bool,
        expiry_days: &str,
        tags: &str,
        description: &str,
    ) -> Result<KeyRequest, String> {
        let expiry_days = match expiry_days.trim().parse::<u32>() {
            Ok(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => d,
            _ => {
                return Err(format!(
                    "A key expires after 1 to {MAX_EXPIRY_DAYS} days; enter a whole number."
                ))
            }
        };
        let mut shard_tags = Vec::new();
        for t in tags
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            let t = shard_tag(code, t)?;
            if !shard_tags.contains(&t) {
                shard_tags.push(t);
            }
        }
        shard_tags.sort();
        let description = description.trim().to_string();
        if description.chars().count() > 200 {
            return Err("Keep the description under 200 characters.".into());
        }
        Ok(KeyRequest {
            reusable,
            ephemeral,
            expiry_days,
            shard_tags,
            description,
        })
    }
}

/// A key's state as the list shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    /// Can register a device now.
    Active,
    /// A single-use key that registered its device.
    Used,
    /// Past its expiry (or expired by hand, which sets the expiry to now).
    Expired,
}

impl KeyState {
    pub fn of(reusable: bool, used: bool, expired: bool) -> KeyState {
        if expired {
            KeyState::Expired
        } else if used && !reusable {
            KeyState::Used
        } else {
            KeyState::Active
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Used => "used",
            KeyState::Expired => "expired",
        }
    }
}

/// Minting is refused when the tenant has `active` active keys of `quota`, or already
/// `devices` devices of `device_quota` (a new key would only register one more).
pub fn check_quotas(
    active: i64,
    quota: i32,
    devices: i64,
    device_quota: i32,
) -> Result<(), String> {
    if active >= i64::from(quota) {
        return Err(format!(
            "This tenant already has {active} active keys, its quota is {quota}. Expire a key \
             you no longer need, or ask the service operator for a larger quota."
        ));
    }
    if devices >= i64::from(device_quota) {
        return Err(format!(
            "This tenant already has {devices} devices, its quota is {device_quota}, so a new \
             key could not register another. Remove a device, or ask the service operator for \
             a larger quota."
        ));
    }
    Ok(())
}

/// `tailscale up` with the key, for this tenant's shard.
pub fn tailscale_up_command(login_server: &str, key: &str) -> String {
    format!("tailscale up --login-server={login_server} --authkey={key}")
}

/// K3s' built-in Tailscale integration (`--vpn-auth`), for this tenant's shard.
pub fn k3s_vpn_auth(login_server: &str, key: &str) -> String {
    format!("--vpn-auth=\"name=tailscale,joinKey={key},controlServerURL={login_server}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_request_is_checked_and_its_tags_namespaced() {
        let r =
            KeyRequest::parse("t7k2", true, false, "7", "tag:web, tag:db tag:web", " ci ").unwrap();
        assert_eq!(r.shard_tags, ["tag:t7k2--db", "tag:t7k2--web"]);
        assert_eq!((r.expiry_days, r.description.as_str()), (7, "ci"));
        for days in ["0", "91", "x", ""] {
            assert!(
                KeyRequest::parse("t7k2", false, false, days, "", "").is_err(),
                "{days}"
            );
        }
        let e = KeyRequest::parse("t7k2", false, false, "1", "tag:g4x9--db", "").unwrap_err();
        assert!(e.contains("not a valid tag"), "{e}");
        assert!(KeyRequest::parse("t7k2", false, false, "1", "", &"x".repeat(201)).is_err());
    }

    #[test]
    fn states_follow_use_and_expiry() {
        assert_eq!(KeyState::of(false, false, false), KeyState::Active);
        assert_eq!(KeyState::of(false, true, false), KeyState::Used);
        assert_eq!(KeyState::of(true, true, false), KeyState::Active);
        assert_eq!(KeyState::of(true, true, true), KeyState::Expired);
    }

    #[test]
    fn quotas_refuse_at_the_limit_with_a_sentence() {
        assert!(check_quotas(1, 2, 0, 5).is_ok());
        assert!(check_quotas(2, 2, 0, 5)
            .unwrap_err()
            .contains("2 active keys"));
        assert!(check_quotas(0, 2, 5, 5).unwrap_err().contains("5 devices"));
        assert!(check_quotas(0, 0, 0, 5).is_err(), "a quota of 0 mints none");
    }

    #[test]
    fn commands_name_the_tenants_shard() {
        assert_eq!(
            tailscale_up_command("https://hs-a.example.net", "hskey-auth-x"),
            "tailscale up --login-server=https://hs-a.example.net --authkey=hskey-auth-x"
        );
        assert_eq!(
            k3s_vpn_auth("https://hs-a.example.net", "hskey-auth-x"),
            "--vpn-auth=\"name=tailscale,joinKey=hskey-auth-x,controlServerURL=https://hs-a.example.net\""
        );
    }
}
