//! Reachability between concrete devices, as Headscale would filter it: for a compiled
//! shard policy (`shard_pairs`) and for one tenant's policy in its own names
//! (`tenant_pairs`). The property tests compare the two: compiling must keep each
//! tenant's meaning and add nothing between tenants.
//!
//! A device is owned by a user or carries tags, never both (Headscale 0.28+). A shard
//! name this module does not know (a bare `*`, `autogroup:member`) stands for every
//! device of the shard, so a compiler that let one through fails the comparison.

use super::model::{Autogroup, Principal, TenantPolicy};
use crate::domain::routes::Prefix;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The owning user's name on the shard (`t7k2.alice`), for a user's device.
    pub user: Option<String>,
    /// Shard tags (`tag:t7k2--db`), for a tagged device.
    pub tags: Vec<String>,
    pub ip: IpAddr,
}

fn in_prefix(ip: IpAddr, prefix: &Prefix) -> bool {
    let len = if ip.is_ipv4() { 32 } else { 128 };
    Prefix::parse(&format!("{ip}/{len}")).is_ok_and(|p| prefix.contains(&p))
}

fn address(text: &str) -> Option<Prefix> {
    let text = if text.contains('/') {
        text.to_string()
    } else if text.contains(':') {
        format!("{text}/128")
    } else {
        format!("{text}/32")
    };
    Prefix::parse(&text).ok()
}

/// Which devices (by index) may open connections to which, on some port.
pub fn shard_pairs(policy: &Value, devices: &[Device]) -> BTreeSet<(usize, usize)> {
    let groups: BTreeMap<&str, Vec<&str>> = policy
        .get("groups")
        .and_then(Value::as_object)
        .map(|g| {
            g.iter()
                .map(|(k, v)| {
                    let members = v
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    (k.as_str(), members)
                })
                .collect()
        })
        .unwrap_or_default();
    let hosts: BTreeMap<&str, Prefix> = policy
        .get("hosts")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.as_str(), address(v.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default();
    let user_devices = |user: &str| -> Vec<usize> {
        (0..devices.len())
            .filter(|&i| devices[i].tags.is_empty() && devices[i].user.as_deref() == Some(user))
            .collect()
    };
    let resolve = |name: &str, src: Option<usize>| -> Vec<usize> {
        if let Some(user) = name.strip_suffix('@') {
            return user_devices(user);
        }
        if let Some(members) = groups.get(name) {
            return members
                .iter()
                .filter_map(|m| m.strip_suffix('@'))
                .flat_map(user_devices)
                .collect();
        }
        if name.starts_with("tag:") {
            return (0..devices.len())
                .filter(|&i| devices[i].tags.iter().any(|t| t == name))
                .collect();
        }
        if name == "autogroup:self" {
            let Some(user) = src.and_then(|s| {
                let d = &devices[s];
                d.tags.is_empty().then_some(d.user.as_deref()).flatten()
            }) else {
                return vec![];
            };
            return user_devices(user);
        }
        if name == "autogroup:internet" {
            return vec![];
        }
        let prefix = hosts.get(name).copied().or_else(|| address(name));
        match prefix {
            Some(p) => (0..devices.len())
                .filter(|&i| in_prefix(devices[i].ip, &p))
                .collect(),
            None => (0..devices.len()).collect(),
        }
    };
    let mut pairs = BTreeSet::new();
    for acl in policy
        .get("acls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let names = |key: &str| -> Vec<String> {
            acl.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        let srcs: BTreeSet<usize> = names("src").iter().flat_map(|s| resolve(s, None)).collect();
        for dst in names("dst") {
            let target = dst.rsplit_once(':').map(|(t, _)| t).unwrap_or(&dst);
            for &s in &srcs {
                for d in resolve(target, Some(s)) {
                    pairs.insert((s, d));
                }
            }
        }
    }
    pairs
}

/// The same for one tenant's policy in its names: `users` maps members' emails to their
/// shard users, `code` is the tenant's; `devices` are the tenant's only.
pub fn tenant_pairs(
    policy: &TenantPolicy,
    code: &str,
    users: &BTreeMap<String, String>,
    devices: &[Device],
) -> BTreeSet<(usize, usize)> {
    let user_devices = |user: &str| -> Vec<usize> {
        (0..devices.len())
            .filter(|&i| devices[i].tags.is_empty() && devices[i].user.as_deref() == Some(user))
            .collect()
    };
    let member_devices = |email: &str| -> Vec<usize> {
        users
            .get(email)
            .map(|u| user_devices(u))
            .unwrap_or_default()
    };
    let resolve = |p: &Principal, src: Option<usize>| -> Vec<usize> {
        match p {
            Principal::Any => (0..devices.len()).collect(),
            Principal::Member(email) => member_devices(email),
            Principal::Group(g) => policy
                .groups
                .iter()
                .filter(|(name, _)| name.value == *g)
                .flat_map(|(_, members)| {
                    members
                        .iter()
                        .flat_map(|m| member_devices(&m.value.to_ascii_lowercase()))
                })
                .collect(),
            Principal::Tag(t) => {
                let tag = format!("tag:{code}--{t}");
                (0..devices.len())
                    .filter(|&i| devices[i].tags.contains(&tag))
                    .collect()
            }
            Principal::Host(h) => policy
                .hosts
                .iter()
                .filter(|(name, _)| name.value == *h)
                .flat_map(|(_, prefix)| {
                    (0..devices.len()).filter(|&i| in_prefix(devices[i].ip, &prefix.value))
                })
                .collect(),
            Principal::Prefix(prefix) => (0..devices.len())
                .filter(|&i| in_prefix(devices[i].ip, prefix))
                .collect(),
            Principal::Autogroup(Autogroup::Member) => (0..devices.len())
                .filter(|&i| devices[i].tags.is_empty() && devices[i].user.is_some())
                .collect(),
            Principal::Autogroup(Autogroup::Tagged) => (0..devices.len())
                .filter(|&i| !devices[i].tags.is_empty())
                .collect(),
            Principal::Autogroup(Autogroup::SelfDevices) => {
                match src.and_then(|s| {
                    let d = &devices[s];
                    d.tags.is_empty().then_some(d.user.as_deref()).flatten()
                }) {
                    Some(user) => user_devices(user),
                    None => vec![],
                }
            }
            Principal::Autogroup(Autogroup::Internet) => vec![],
        }
    };
    let mut pairs = BTreeSet::new();
    for acl in &policy.acls {
        let srcs: BTreeSet<usize> = acl
            .src
            .iter()
            .flat_map(|s| resolve(&s.value, None))
            .collect();
        for d in &acl.dst {
            for &s in &srcs {
                for t in resolve(&d.value.target, Some(s)) {
                    pairs.insert((s, t));
                }
            }
        }
    }
    pairs
}
