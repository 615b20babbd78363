//! Reachability between concrete devices, as Headscale would filter it: for a compiled
//! shard policy (`shard_pairs`) and for one tenant's policy in its own names
//! (`tenant_pairs`). The property tests compare the two: compiling must keep each
//! tenant's meaning and add nothing between tenants.
//!
//! The same for Tailscale SSH logins (`shard_ssh_logins`, `tenant_ssh_logins`): which
//! device may log in to which, with which action and local user.
//!
//! A device is owned by a user or carries tags, never both (Headscale 0.28+). A shard
//! name this module does not know (a bare `*`, `autogroup:member`) stands for every
//! device of the shard, so a compiler that let one through fails the comparison.

use super::model::{Autogroup, Principal, SshAction, TenantPolicy};
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

/// A compiled policy's names, resolved to devices as Headscale would.
struct ShardNames<'a> {
    groups: BTreeMap<&'a str, Vec<&'a str>>,
    hosts: BTreeMap<&'a str, Prefix>,
    devices: &'a [Device],
}

impl<'a> ShardNames<'a> {
    fn of(policy: &'a Value, devices: &'a [Device]) -> ShardNames<'a> {
        let groups = policy
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
        let hosts = policy
            .get("hosts")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), address(v.as_str()?)?)))
                    .collect()
            })
            .unwrap_or_default();
        ShardNames {
            groups,
            hosts,
            devices,
        }
    }

    fn user_devices(&self, user: &str) -> Vec<usize> {
        let devices = self.devices;
        (0..devices.len())
            .filter(|&i| devices[i].tags.is_empty() && devices[i].user.as_deref() == Some(user))
            .collect()
    }

    /// The devices a name stands for (`src`: the source device, for `autogroup:self`).
    fn resolve(&self, name: &str, src: Option<usize>) -> Vec<usize> {
        let devices = self.devices;
        if let Some(user) = name.strip_suffix('@') {
            return self.user_devices(user);
        }
        if let Some(members) = self.groups.get(name) {
            return members
                .iter()
                .filter_map(|m| m.strip_suffix('@'))
                .flat_map(|u| self.user_devices(u))
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
            return self.user_devices(user);
        }
        if name == "autogroup:internet" {
            return vec![];
        }
        if name == "autogroup:member" {
            // Every user's device on the shard, whichever tenant's.
            return (0..devices.len())
                .filter(|&i| devices[i].tags.is_empty() && devices[i].user.is_some())
                .collect();
        }
        let prefix = self.hosts.get(name).copied().or_else(|| address(name));
        match prefix {
            Some(p) => (0..devices.len())
                .filter(|&i| in_prefix(devices[i].ip, &p))
                .collect(),
            None => (0..devices.len()).collect(),
        }
    }
}

fn names(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Which devices (by index) may open connections to which, on some port.
pub fn shard_pairs(policy: &Value, devices: &[Device]) -> BTreeSet<(usize, usize)> {
    let shard = ShardNames::of(policy, devices);
    let mut pairs = BTreeSet::new();
    for acl in policy
        .get("acls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let srcs: BTreeSet<usize> = names(acl, "src")
            .iter()
            .flat_map(|s| shard.resolve(s, None))
            .collect();
        for dst in names(acl, "dst") {
            let target = dst.rsplit_once(':').map(|(t, _)| t).unwrap_or(&dst);
            for &s in &srcs {
                for d in shard.resolve(target, Some(s)) {
                    pairs.insert((s, d));
                }
            }
        }
    }
    pairs
}

/// A login over Tailscale SSH: source device, destination device, and the rule's
/// action and local user (`accept root`, `check autogroup:nonroot`).
pub type SshLogin = (usize, usize, String);

/// Which devices may log in to which over Tailscale SSH, as whom, by the `ssh` rules.
pub fn shard_ssh_logins(policy: &Value, devices: &[Device]) -> BTreeSet<SshLogin> {
    let shard = ShardNames::of(policy, devices);
    let mut logins = BTreeSet::new();
    for rule in policy
        .get("ssh")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let action = rule.get("action").and_then(Value::as_str).unwrap_or("");
        let srcs: BTreeSet<usize> = names(rule, "src")
            .iter()
            .flat_map(|s| shard.resolve(s, None))
            .collect();
        for dst in names(rule, "dst") {
            for &s in &srcs {
                for d in shard.resolve(&dst, Some(s)) {
                    for user in names(rule, "users") {
                        logins.insert((s, d, format!("{action} {user}")));
                    }
                }
            }
        }
    }
    logins
}

/// A tenant's names, resolved to the tenant's devices.
struct TenantNames<'a> {
    policy: &'a TenantPolicy,
    code: &'a str,
    users: &'a BTreeMap<String, String>,
    devices: &'a [Device],
}

impl TenantNames<'_> {
    fn user_devices(&self, user: &str) -> Vec<usize> {
        let devices = self.devices;
        (0..devices.len())
            .filter(|&i| devices[i].tags.is_empty() && devices[i].user.as_deref() == Some(user))
            .collect()
    }

    fn member_devices(&self, email: &str) -> Vec<usize> {
        self.users
            .get(email)
            .map(|u| self.user_devices(u))
            .unwrap_or_default()
    }

    fn resolve(&self, p: &Principal, src: Option<usize>) -> Vec<usize> {
        let devices = self.devices;
        match p {
            Principal::Any => (0..devices.len()).collect(),
            Principal::Member(email) => self.member_devices(email),
            Principal::Group(g) => self
                .policy
                .groups
                .iter()
                .filter(|(name, _)| name.value == *g)
                .flat_map(|(_, members)| {
                    members
                        .iter()
                        .flat_map(|m| self.member_devices(&m.value.to_ascii_lowercase()))
                })
                .collect(),
            Principal::Tag(t) => {
                let tag = format!("tag:{}--{t}", self.code);
                (0..devices.len())
                    .filter(|&i| devices[i].tags.contains(&tag))
                    .collect()
            }
            Principal::Host(h) => self
                .policy
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
                    Some(user) => self.user_devices(user),
                    None => vec![],
                }
            }
            Principal::Autogroup(Autogroup::Internet) => vec![],
        }
    }
}

/// The same for one tenant's policy in its names: `users` maps members' emails to their
/// shard users, `code` is the tenant's; `devices` are the tenant's only.
pub fn tenant_pairs(
    policy: &TenantPolicy,
    code: &str,
    users: &BTreeMap<String, String>,
    devices: &[Device],
) -> BTreeSet<(usize, usize)> {
    let names = TenantNames {
        policy,
        code,
        users,
        devices,
    };
    let mut pairs = BTreeSet::new();
    for acl in &policy.acls {
        let srcs: BTreeSet<usize> = acl
            .src
            .iter()
            .flat_map(|s| names.resolve(&s.value, None))
            .collect();
        for d in &acl.dst {
            for &s in &srcs {
                for t in names.resolve(&d.value.target, Some(s)) {
                    pairs.insert((s, t));
                }
            }
        }
    }
    pairs
}

/// The ssh logins one tenant's own policy allows, like `tenant_pairs`.
pub fn tenant_ssh_logins(
    policy: &TenantPolicy,
    code: &str,
    users: &BTreeMap<String, String>,
    devices: &[Device],
) -> BTreeSet<SshLogin> {
    let names = TenantNames {
        policy,
        code,
        users,
        devices,
    };
    let mut logins = BTreeSet::new();
    for rule in &policy.ssh {
        let action = match rule.action {
            SshAction::Accept => "accept",
            SshAction::Check => "check",
        };
        let srcs: BTreeSet<usize> = rule
            .src
            .iter()
            .flat_map(|s| names.resolve(&s.value, None))
            .collect();
        for d in &rule.dst {
            for &s in &srcs {
                for t in names.resolve(&d.value, Some(s)) {
                    for user in &rule.users {
                        logins.insert((s, t, format!("{action} {}", user.value)));
                    }
                }
            }
        }
    }
    logins
}
