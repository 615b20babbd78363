//! The isolation check of a compiled shard policy, run before every push (DESIGN.md §2).
//!
//! It reads the policy as Headscale will, from its JSON, not from the compiler's
//! internals: every name in it belongs to exactly one tenant (users `t7k2.alice@`,
//! `group:t7k2--eng`, `tag:t7k2--db`, hosts `t7k2--nas`, addresses inside one tenant's
//! declared subnets), and every rule, ssh rule, group, tag owner and route approver may
//! only name what belongs to the tenant the rule came from. Anything it cannot attribute
//! (a bare `*`, `autogroup:member`, `autogroup:danger-all`, an address in the tailnet
//! ranges) is a violation. A compiler bug therefore fails here instead of reaching a
//! shard.
//!
//! In ssh rules `autogroup:self` is always allowed as a destination (it is the source's
//! own devices) and `autogroup:member` only on a shard with one tenant; the local
//! `users` (`root`, `ubuntu`) are logins on the destination, not names of the shard.

use super::compile::Compiled;
use super::hujson::Pos;
use crate::domain::routes::Prefix;
use serde_json::Value;
use std::collections::BTreeMap;

/// The tenants of the shard, with their declared subnets.
#[derive(Debug, Clone, Default)]
pub struct ShardTenants {
    pub subnets: BTreeMap<String, Vec<Prefix>>,
}

impl ShardTenants {
    fn owner_of_prefix(&self, prefix: &Prefix) -> Option<&str> {
        let mut owners = self
            .subnets
            .iter()
            .filter(|(_, subnets)| subnets.iter().any(|s| s.contains(prefix)))
            .map(|(code, _)| code.as_str());
        let first = owners.next()?;
        owners.next().is_none().then_some(first)
    }
}

/// A breach of isolation: which tenant's rule, where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: String,
    pub pos: Option<Pos>,
    pub message: String,
}

/// Checks a compiled policy, each ACL and ssh rule against the tenant the compiler says
/// it came from.
pub fn check_all(compiled: &Compiled, tenants: &ShardTenants) -> Result<(), Vec<Violation>> {
    check_rules(
        &compiled.policy,
        &compiled.acl_sources,
        Some(&compiled.ssh_sources),
        tenants,
    )
}

/// Checks `policy` (as compiled, with `acl_sources` from the compiler). Its ssh rules
/// are each attributed to the tenant of their first source, and every other name in
/// them must be that tenant's too: a rule naming two tenants still fails, but a
/// violation cannot point at the rule's line. Prefer `check_all`.
pub fn check(
    policy: &Value,
    acl_sources: &[(String, Pos)],
    tenants: &ShardTenants,
) -> Result<(), Vec<Violation>> {
    check_rules(policy, acl_sources, None, tenants)
}

fn check_rules(
    policy: &Value,
    acl_sources: &[(String, Pos)],
    ssh_sources: Option<&[(String, Pos)]>,
    tenants: &ShardTenants,
) -> Result<(), Vec<Violation>> {
    let mut out = Vec::new();
    let hosts: BTreeMap<String, Prefix> = policy
        .get("hosts")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| Some((k.clone(), Prefix::parse(v.as_str()?).ok()?)))
                .collect()
        })
        .unwrap_or_default();
    let owner = |name: &str| -> Option<String> { owner_of(name, &hosts, tenants) };
    let mut bad = |code: &str, pos: Option<Pos>, message: String| {
        out.push(Violation {
            code: code.to_string(),
            pos,
            message,
        })
    };

    // Hosts: a tenant's host names only its own addresses.
    for (name, prefix) in &hosts {
        let Some(code) = namespace(name) else {
            bad("", None, format!("host {name} has no tenant namespace"));
            continue;
        };
        if tenants.owner_of_prefix(prefix) != Some(code) {
            bad(
                code,
                None,
                format!("host {name} ({prefix}) is not inside this tenant's subnets"),
            );
        }
    }
    // Groups and tag owners: only their own tenant's principals.
    for (section, prefix) in [("groups", "group:"), ("tagOwners", "tag:")] {
        let Some(entries) = policy.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, members) in entries {
            let code = name.strip_prefix(prefix).and_then(namespace).unwrap_or("");
            for m in members.as_array().into_iter().flatten() {
                let m = m.as_str().unwrap_or("");
                if owner(m).as_deref() != Some(code) || code.is_empty() {
                    bad(code, None, format!("{section} {name} names {m}"));
                }
            }
        }
    }
    // Rules.
    let acls = policy
        .get("acls")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if acls.len() != acl_sources.len() {
        bad(
            "",
            None,
            format!(
                "{} rules but {} sources known",
                acls.len(),
                acl_sources.len()
            ),
        );
    }
    let single_tenant = tenants.subnets.len() <= 1;
    for (acl, (code, pos)) in acls.iter().zip(acl_sources) {
        for src in strings(acl.get("src")) {
            if owner(&src).as_deref() != Some(code) {
                bad(
                    code,
                    Some(*pos),
                    format!("the rule's source {src} is not this tenant's"),
                );
            }
        }
        for dst in strings(acl.get("dst")) {
            let target = dst.rsplit_once(':').map(|(t, _)| t).unwrap_or(&dst);
            let ok = match target {
                "autogroup:self" => true,
                "autogroup:internet" => single_tenant,
                t => owner(t).as_deref() == Some(code),
            };
            if !ok {
                bad(
                    code,
                    Some(*pos),
                    format!("the rule's destination {dst} is not this tenant's"),
                );
            }
        }
    }
    // SSH rules: sources and destinations of the rule's tenant only.
    let ssh = policy
        .get("ssh")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let attributed: Vec<(String, Option<Pos>)> = match ssh_sources {
        Some(sources) => {
            if ssh.len() != sources.len() {
                bad(
                    "",
                    None,
                    format!(
                        "{} ssh rules but {} sources known",
                        ssh.len(),
                        sources.len()
                    ),
                );
            }
            sources
                .iter()
                .map(|(code, pos)| (code.clone(), Some(*pos)))
                .collect()
        }
        None => ssh
            .iter()
            .map(|rule| {
                let first = strings(rule.get("src")).into_iter().next();
                (first.and_then(|s| owner(&s)).unwrap_or_default(), None)
            })
            .collect(),
    };
    for (rule, (code, pos)) in ssh.iter().zip(&attributed) {
        let src = strings(rule.get("src"));
        if src.is_empty() {
            bad(code, *pos, "the ssh rule has no sources".into());
        }
        for s in src {
            if code.is_empty() || owner(&s).as_deref() != Some(code.as_str()) {
                bad(
                    code,
                    *pos,
                    format!("the ssh rule's source {s} is not this tenant's"),
                );
            }
        }
        for dst in strings(rule.get("dst")) {
            let ok = match dst.as_str() {
                "autogroup:self" => true,
                "autogroup:member" => single_tenant,
                t => !code.is_empty() && owner(t).as_deref() == Some(code.as_str()),
            };
            if !ok {
                bad(
                    code,
                    *pos,
                    format!("the ssh rule's destination {dst} is not this tenant's"),
                );
            }
        }
    }
    // Route approvers: a route belongs to the tenant whose subnet holds it, and only
    // that tenant's principals may approve it.
    if let Some(routes) = policy
        .pointer("/autoApprovers/routes")
        .and_then(Value::as_object)
    {
        for (route, approvers) in routes {
            let code = Prefix::parse(route)
                .ok()
                .and_then(|p| tenants.owner_of_prefix(&p).map(str::to_string));
            for a in strings(Some(approvers)) {
                if code.is_none() || owner(&a) != code {
                    bad(
                        code.as_deref().unwrap_or(""),
                        None,
                        format!("the route {route} may be approved by {a}"),
                    );
                }
            }
        }
    }
    for a in strings(policy.pointer("/autoApprovers/exitNode")) {
        if owner(&a).is_none() {
            bad("", None, format!("exit nodes may be approved by {a}"));
        }
    }
    if out.is_empty() {
        Ok(())
    } else {
        Err(out)
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `t7k2--x` → `t7k2`.
fn namespace(name: &str) -> Option<&str> {
    let (code, rest) = name.split_once("--")?;
    (!code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !rest.is_empty()
        && !rest.contains("--"))
    .then_some(code)
}

/// The tenant a shard name belongs to, or `None` when it belongs to none or to several.
fn owner_of(
    name: &str,
    hosts: &BTreeMap<String, Prefix>,
    tenants: &ShardTenants,
) -> Option<String> {
    if let Some(user) = name.strip_suffix('@') {
        let (code, handle) = user.split_once('.')?;
        return (!handle.is_empty() && tenants.subnets.contains_key(code))
            .then(|| code.to_string());
    }
    let code = if let Some(g) = name.strip_prefix("group:") {
        namespace(g)
    } else if let Some(t) = name.strip_prefix("tag:") {
        namespace(t)
    } else if hosts.contains_key(name) {
        namespace(name)
    } else {
        let text = if name.contains('/') {
            name.to_string()
        } else if name.contains(':') {
            format!("{name}/128")
        } else {
            format!("{name}/32")
        };
        return Prefix::parse(&text)
            .ok()
            .and_then(|p| tenants.owner_of_prefix(&p).map(str::to_string));
    }?;
    tenants.subnets.contains_key(code).then(|| code.to_string())
}
