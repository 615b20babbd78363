//! Tenant identifiers: the renameable slug people see in URLs and the immutable short
//! code that namespaces everything the tenant owns on a shared shard (DESIGN.md §2).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The URL name of a tenant (`acme`). Lowercase DNS-label rules, 2–40 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantSlug(String);

impl TenantSlug {
    pub fn parse(input: &str) -> Result<TenantSlug, String> {
        let s = input.trim();
        if s.len() < 2 || s.len() > 40 {
            return Err("A tenant slug must be 2 to 40 characters long.".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(
                "A tenant slug may contain only lowercase letters, digits and hyphens.".into(),
            );
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err("A tenant slug cannot start or end with a hyphen.".into());
        }
        if s.contains("--") {
            // `--` is the namespace separator of compiled policies (`tag:t7k2--server`).
            return Err("A tenant slug cannot contain two hyphens in a row.".into());
        }
        Ok(TenantSlug(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The immutable short code of a tenant (`t7k2`): lowercase letters and digits, 4–8
/// characters, starting with a letter. It never changes, so shard-side names built from
/// it (Headscale users `t7k2.alice`, tags `tag:t7k2--server`) stay valid when the tenant
/// renames its slug.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantCode(String);

impl TenantCode {
    pub fn parse(input: &str) -> Result<TenantCode, String> {
        let s = input.trim();
        let ok_len = (4..=8).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let starts_letter = s.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        if ok_len && ok_chars && starts_letter {
            Ok(TenantCode(s.to_string()))
        } else {
            Err(
                "A tenant code is 4 to 8 lowercase letters or digits and starts with a letter."
                    .into(),
            )
        }
    }

    /// A fresh random code: `t` followed by five base-36 characters from the given
    /// random number (callers pass real randomness; tests pass fixed values).
    pub fn from_random(mut n: u64) -> TenantCode {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut s = String::from("t");
        for _ in 0..5 {
            s.push(ALPHABET[(n % 36) as usize] as char);
            n /= 36;
        }
        TenantCode(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The plans the service sells.
pub const PLANS: [&str; 3] = ["starter", "business", "enterprise"];

/// A tenant's editable settings, parsed from form input; every error is a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSettings {
    pub display_name: String,
    pub plan: String,
    pub region: String,
    pub device_quota: u32,
    pub key_quota: u32,
}

impl TenantSettings {
    pub fn parse(
        display_name: &str,
        plan: &str,
        region: &str,
        device_quota: &str,
        key_quota: &str,
    ) -> Result<TenantSettings, String> {
        let display_name = display_name.trim().to_string();
        if display_name.is_empty() || display_name.chars().count() > 80 {
            return Err("Give the tenant a display name of up to 80 characters.".into());
        }
        let plan = plan.trim().to_string();
        if !PLANS.contains(&plan.as_str()) {
            return Err("Choose the starter, business or enterprise plan.".into());
        }
        let region = crate::domain::shard::parse_region(region)?;
        let device_quota = match device_quota.trim().parse::<u32>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => return Err("The device quota is a whole number from 1 to 100000.".into()),
        };
        let key_quota = match key_quota.trim().parse::<u32>() {
            Ok(n) if n <= 100_000 => n,
            _ => return Err("The key quota is a whole number from 0 to 100000.".into()),
        };
        Ok(TenantSettings {
            display_name,
            plan,
            region,
            device_quota,
            key_quota,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_dns_label_rules() {
        assert!(TenantSlug::parse("acme").is_ok());
        assert!(TenantSlug::parse("acme-corp2").is_ok());
        assert_eq!(TenantSlug::parse(" acme ").unwrap().as_str(), "acme");
        for bad in [
            "a", "Acme", "-acme", "acme-", "ac--me", "ac me", "acme.io", "",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn codes_are_short_lowercase_and_start_with_a_letter() {
        assert!(TenantCode::parse("t7k2").is_ok());
        for bad in ["t7k", "7k2a", "T7K2", "t7k2-x", "abcdefghi"] {
            assert!(TenantCode::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn random_codes_are_valid_codes() {
        for n in [0u64, 1, 35, 36, 1_000_003, u64::MAX] {
            let code = TenantCode::from_random(n);
            assert_eq!(TenantCode::parse(code.as_str()), Ok(code));
        }
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        let ok = TenantSettings::parse(" Acme ", "business", "eu-west", "50", "0").unwrap();
        assert_eq!(
            ok,
            TenantSettings {
                display_name: "Acme".into(),
                plan: "business".into(),
                region: "eu-west".into(),
                device_quota: 50,
                key_quota: 0
            }
        );
        let err = |d: &str, p: &str, r: &str, q: &str, k: &str| {
            TenantSettings::parse(d, p, r, q, k).unwrap_err()
        };
        assert!(err(" ", "starter", "local", "1", "1").contains("display name"));
        assert!(err(&"x".repeat(81), "starter", "local", "1", "1").contains("80"));
        assert!(err("A", "gold", "local", "1", "1").contains("plan"));
        assert!(err("A", "starter", "EU West", "1", "1").contains("region"));
        assert!(err("A", "starter", "local", "0", "1").contains("device quota"));
        assert!(err("A", "starter", "local", "1.5", "1").contains("device quota"));
        assert!(err("A", "starter", "local", "1", "-1").contains("key quota"));
    }
}
