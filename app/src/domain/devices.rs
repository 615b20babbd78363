//! Devices (Headscale nodes) as a tenant sees them: the devices list's query kept in the
//! URL, who may change which device, and the rules for names.

use serde::{Deserialize, Serialize};

use super::role::{Permission, TenantRole};

/// Rows per page of the devices list.
pub const PAGE_SIZE: u32 = 50;

/// "Expiring soon": the key expires within this many days.
pub const EXPIRING_SOON_DAYS: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Online {
    #[default]
    Any,
    Online,
    Offline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SortKey {
    #[default]
    Name,
    LastSeen,
    Owner,
    Expiry,
    Created,
}

impl SortKey {
    pub fn as_str(self) -> &'static str {
        match self {
            SortKey::Name => "name",
            SortKey::LastSeen => "last_seen",
            SortKey::Owner => "owner",
            SortKey::Expiry => "expiry",
            SortKey::Created => "created",
        }
    }

    fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "name" => SortKey::Name,
            "last_seen" => SortKey::LastSeen,
            "owner" => SortKey::Owner,
            "expiry" => SortKey::Expiry,
            "created" => SortKey::Created,
            _ => return None,
        })
    }
}

/// The devices list's search, filters, sort and page: all of it lives in the URL
/// (`?q=db&status=online&tag=tag:server&sort=last_seen&dir=desc&page=2`), so a view can
/// be bookmarked, shared and used without JavaScript. Unknown or malformed values fall
/// back to the default rather than failing the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeviceQuery {
    /// Matches name, IP, tag or owner (case-insensitive substring).
    pub q: String,
    pub online: Online,
    /// A tag in the tenant's own names (`tag:server`).
    pub tag: Option<String>,
    /// An owner's Headscale user name (`t7k2.alice`).
    pub owner: Option<String>,
    pub expiring_soon: bool,
    pub has_routes: bool,
    pub exit_node: bool,
    pub sort: SortKey,
    pub descending: bool,
    /// From 1.
    pub page: u32,
}

impl DeviceQuery {
    /// From the URL's query parameters.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> DeviceQuery {
        let flag = |k: &str| matches!(get(k), Some("1" | "on" | "true"));
        let text = |k: &str| {
            get(k)
                .map(|v| v.trim().chars().take(100).collect::<String>())
                .filter(|v| !v.is_empty())
        };
        DeviceQuery {
            q: text("q").unwrap_or_default(),
            online: match get("status") {
                Some("online") => Online::Online,
                Some("offline") => Online::Offline,
                _ => Online::Any,
            },
            tag: text("tag"),
            owner: text("owner"),
            expiring_soon: flag("expiring"),
            has_routes: flag("routes"),
            exit_node: flag("exit"),
            sort: get("sort").and_then(SortKey::parse).unwrap_or_default(),
            descending: get("dir") == Some("desc"),
            page: get("page")
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|p| (1..=100_000).contains(p))
                .unwrap_or(1),
        }
    }

    /// Back to URL parameters (defaults left out), in a stable order.
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        if !self.q.is_empty() {
            p.push(("q", self.q.clone()));
        }
        match self.online {
            Online::Any => {}
            Online::Online => p.push(("status", "online".into())),
            Online::Offline => p.push(("status", "offline".into())),
        }
        if let Some(t) = &self.tag {
            p.push(("tag", t.clone()));
        }
        if let Some(o) = &self.owner {
            p.push(("owner", o.clone()));
        }
        for (on, k) in [
            (self.expiring_soon, "expiring"),
            (self.has_routes, "routes"),
            (self.exit_node, "exit"),
        ] {
            if on {
                p.push((k, "1".into()));
            }
        }
        if self.sort != SortKey::Name {
            p.push(("sort", self.sort.as_str().into()));
        }
        if self.descending {
            p.push(("dir", "desc".into()));
        }
        if self.page > 1 {
            p.push(("page", self.page.to_string()));
        }
        p
    }

    /// `?a=b&c=d` (or empty), URL-encoded.
    pub fn to_query_string(&self) -> String {
        let params = self.to_params();
        if params.is_empty() {
            return String::new();
        }
        let mut out = String::from("?");
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(&encode(v));
        }
        out
    }

    /// The same view on another page.
    pub fn with_page(&self, page: u32) -> DeviceQuery {
        DeviceQuery {
            page: page.max(1),
            ..self.clone()
        }
    }

    /// The same filters sorted by `key`; the current key flips direction.
    pub fn sorted_by(&self, key: SortKey) -> DeviceQuery {
        DeviceQuery {
            descending: if self.sort == key {
                !self.descending
            } else {
                false
            },
            sort: key,
            page: 1,
            ..self.clone()
        }
    }
}

/// Percent-encoding for a query value (unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Which devices a person sees in a tenant: all of them (roles that read everything) or
/// only their own (members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceScope {
    All,
    Own,
}

impl DeviceScope {
    pub fn of(role: TenantRole) -> DeviceScope {
        if role.allows(Permission::ViewAll) {
            DeviceScope::All
        } else {
            DeviceScope::Own
        }
    }
}

/// Whether `role` may change a device (rename, tags, expire, delete, routes): device
/// managers any device of the tenant, auditors none, everyone else their own.
pub fn may_change_device(role: TenantRole, own: bool) -> bool {
    if role.allows(Permission::ManageDevices) {
        true
    } else if role == TenantRole::Auditor {
        false
    } else {
        own
    }
}

/// A device name as Headscale's MagicDNS needs it: one DNS label, 1–63 characters of
/// a–z, 0–9 and `-`, not starting or ending with `-`. Upper case is lowered.
pub fn parse_device_name(input: &str) -> Result<String, String> {
    let name = input.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err("Enter a name for the device.".into());
    }
    if name.len() > 63 {
        return Err("A device name has at most 63 characters.".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(
            "A device name may use only letters, digits and hyphens (it becomes a DNS name)."
                .into(),
        );
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("A device name cannot start or end with a hyphen.".into());
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn query(pairs: &[(&str, &str)]) -> DeviceQuery {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DeviceQuery::from_params(|k| m.get(k).map(|v| v.as_str()))
    }

    #[test]
    fn the_url_round_trips_and_defaults_stay_out_of_it() {
        assert_eq!(
            query(&[]),
            DeviceQuery {
                page: 1,
                ..Default::default()
            }
        );
        assert_eq!(query(&[]).to_query_string(), "");
        let q = query(&[
            ("q", " db 1 "),
            ("status", "online"),
            ("tag", "tag:server"),
            ("owner", "t7k2.alice"),
            ("expiring", "1"),
            ("routes", "on"),
            ("exit", "true"),
            ("sort", "last_seen"),
            ("dir", "desc"),
            ("page", "3"),
        ]);
        assert_eq!(q.q, "db 1");
        assert_eq!(q.online, Online::Online);
        assert!(q.expiring_soon && q.has_routes && q.exit_node && q.descending);
        assert_eq!((q.sort, q.page), (SortKey::LastSeen, 3));
        let s = q.to_query_string();
        assert_eq!(
            s,
            "?q=db%201&status=online&tag=tag:server&owner=t7k2.alice&expiring=1&routes=1&exit=1&sort=last_seen&dir=desc&page=3"
        );
    }

    #[test]
    fn nonsense_in_the_url_falls_back_to_defaults() {
        let q = query(&[("status", "maybe"), ("sort", "drop table"), ("page", "-1")]);
        assert_eq!((q.online, q.sort, q.page), (Online::Any, SortKey::Name, 1));
        assert_eq!(query(&[("page", "0")]).page, 1);
        assert_eq!(query(&[("q", &"x".repeat(500))]).q.len(), 100);
    }

    #[test]
    fn sorting_by_the_current_key_flips_and_resets_the_page() {
        let q = query(&[("page", "4")]);
        let by_name = q.sorted_by(SortKey::Name);
        assert!(by_name.descending && by_name.page == 1);
        let by_seen = by_name.sorted_by(SortKey::LastSeen);
        assert!(!by_seen.descending);
    }

    #[test]
    fn members_see_and_change_only_their_own_devices_auditors_change_none() {
        assert_eq!(DeviceScope::of(TenantRole::Member), DeviceScope::Own);
        assert_eq!(DeviceScope::of(TenantRole::Auditor), DeviceScope::All);
        assert!(may_change_device(TenantRole::Member, true));
        assert!(!may_change_device(TenantRole::Member, false));
        assert!(!may_change_device(TenantRole::Auditor, true));
        assert!(may_change_device(TenantRole::ItAdmin, false));
        assert!(may_change_device(TenantRole::NetworkAdmin, true));
        assert!(!may_change_device(TenantRole::NetworkAdmin, false));
    }

    #[test]
    fn device_names_are_dns_labels() {
        assert_eq!(parse_device_name(" Laptop-2 ").unwrap(), "laptop-2");
        for bad in ["", "-a", "a-", "a_b", "a.b", "é", &"a".repeat(64)] {
            assert!(parse_device_name(bad).is_err(), "{bad}");
        }
    }
}
