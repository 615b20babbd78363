//! What an operator may enter for a shard, checked before anything is saved.

use serde::{Deserialize, Serialize};

/// The stable name of a shard (`hs-a`): lowercase DNS label, 1–63 characters.
pub fn parse_cluster_id(input: &str) -> Result<String, String> {
    let s = input.trim();
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_string())
    } else {
        Err("A cluster ID is 1 to 63 lowercase letters, digits or hyphens, like hs-eu-1.".into())
    }
}

/// An http(s) base URL without credentials, query or fragment; the trailing slash is
/// dropped so paths can be appended.
pub fn parse_base_url(what: &str, input: &str) -> Result<String, String> {
    let s = input.trim();
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("The {what} must start with http:// or https://."))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("The {what} needs a host name."));
    }
    if host.contains('@') {
        return Err(format!(
            "The {what} must not contain a user name or password."
        ));
    }
    if s.contains('?') || s.contains('#') || s.contains(char::is_whitespace) {
        return Err(format!(
            "The {what} must be a plain address without spaces, query or fragment."
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

pub fn parse_capacity(input: &str) -> Result<i32, String> {
    match input.trim().parse::<i32>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err("Node capacity is a whole number of devices from 1 to 100000.".into()),
    }
}

pub fn parse_region(input: &str) -> Result<String, String> {
    let s = input.trim();
    if !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Ok(s.to_string())
    } else {
        Err("A region is a short lowercase name like eu-west or local.".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShardStatus {
    /// Takes new tenants.
    Active,
    /// Keeps its tenants, takes no new ones.
    Draining,
    /// Not synced, takes no new tenants; its tenants' pages show it as unavailable.
    Disabled,
}

impl ShardStatus {
    pub fn parse(s: &str) -> Option<ShardStatus> {
        match s {
            "active" => Some(ShardStatus::Active),
            "draining" => Some(ShardStatus::Draining),
            "disabled" => Some(ShardStatus::Disabled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Active => "active",
            ShardStatus::Draining => "draining",
            ShardStatus::Disabled => "disabled",
        }
    }
}

/// A shard's fill as the operator sees it: `full` at or over capacity, `warning` from
/// 80 % (the same threshold the capacity bars turn amber at), else `ok`.
pub fn capacity_state(nodes: i64, capacity: i64) -> &'static str {
    if nodes >= capacity {
        "full"
    } else if nodes * 100 >= capacity * 80 {
        "warning"
    } else {
        "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_warns_from_80_percent_and_is_full_at_capacity() {
        assert_eq!(capacity_state(79, 100), "ok");
        assert_eq!(capacity_state(80, 100), "warning");
        assert_eq!(capacity_state(99, 100), "warning");
        assert_eq!(capacity_state(100, 100), "full");
        assert_eq!(capacity_state(0, 0), "full");
        assert_eq!(capacity_state(3, 2), "full");
    }

    #[test]
    fn cluster_ids_are_dns_labels() {
        assert_eq!(parse_cluster_id(" hs-a ").unwrap(), "hs-a");
        for bad in ["", "HS-A", "-a", "a-", "hs_a", &"a".repeat(64)] {
            assert!(parse_cluster_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_urls_are_plain_http_addresses() {
        assert_eq!(
            parse_base_url("API URL", "https://hs.example.com/").unwrap(),
            "https://hs.example.com"
        );
        assert_eq!(
            parse_base_url("API URL", "http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "hs.example.com",
            "ftp://x",
            "https://",
            "https://user:pw@hs.example.com",
            "https://hs.example.com/?x=1",
            "https://hs example.com",
        ] {
            assert!(parse_base_url("API URL", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn capacity_and_region_are_checked() {
        assert_eq!(parse_capacity("300").unwrap(), 300);
        for bad in ["0", "-1", "abc", "100001"] {
            assert!(parse_capacity(bad).is_err(), "{bad}");
        }
        assert!(parse_region("eu-west").is_ok());
        assert!(parse_region("EU West").is_err());
    }
}
