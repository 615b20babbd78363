//! The policy compiler (DESIGN.md §2): every tenant's checked policy on a shard, in the
//! tenant's own names, becomes the one Headscale policy of the shard.
//!
//! - Names get the tenant's namespace: `group:eng` → `group:t7k2--eng`, `tag:db` →
//!   `tag:t7k2--db`, host `nas` → `t7k2--nas`; a member's email → its Headscale user
//!   `t7k2.alice@` (a user without an email is written with a trailing `@`). `--` never
//!   occurs in a tenant's names (`tags::is_name`) and codes are `[a-z0-9]`, so a shard name
//!   has exactly one owner.
//! - `*`, `autogroup:member` and `autogroup:tagged` become the tenant's own principals:
//!   its members' users, its tags, and (for `*`) its declared subnets. A raw `*` on a
//!   shared shard would open every tenant to every other.
//! - A rule whose sources or destinations come to nothing (a tenant with no members on
//!   the shard yet) is left out: there is nobody it could let in.
//! - Tenants' own `tests` are run by the portal (`eval::run_tests`) when a tenant saves,
//!   not by the shard: Headscale 0.29 runs a policy's tests against the nodes it has
//!   and fails a test whose principal has no node yet, which would let one tenant's test
//!   block every tenant's push (and 0.28 refuses a `tests` section at all). For shards
//!   that run tests (`with_tests`) the compiler adds generated ones, by address, which
//!   always resolve: one device of each tenant may not reach one device of the next
//!   tenant (in code order, so n tenants cost n tests, not n²). The portal's own
//!   isolation check (`isolation::check_all`) covers every pair before any push.
//! - `ssh` rules are namespaced the same way: `autogroup:member` and `autogroup:tagged`
//!   sources become the tenant's users and tags, `autogroup:self` stays (it only ever
//!   means the source's own devices), a member becomes its user. `autogroup:member` as a
//!   destination stays only on a shard with one tenant (the model lets only tenants on a
//!   dedicated shard write it): expanded to users, Headscale would refuse it, since it
//!   takes a user as an ssh destination only from that same user. Tenants' `sshTests`
//!   stay with the portal, for the same reason as `tests`.
//! - Subnets and auto-approved routes of two tenants on one shard may not overlap
//!   (Headscale elects one primary router per prefix for the whole shard).
//!
//! The output is deterministic: tenants in code order, each tenant's rules in text
//! order, objects with sorted keys; the same inputs give the same bytes.

use super::hujson::Pos;
use super::model::{
    Acl, Autogroup, CheckPeriod, Destination, Ports, Principal, SshAction, TenantPolicy,
};
use crate::domain::routes::Prefix;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// One tenant's part of a shard policy.
#[derive(Debug, Clone)]
pub struct TenantInput {
    /// The tenant's immutable code (`t7k2`).
    pub code: String,
    pub policy: TenantPolicy,
    /// Members that have a Headscale user on the shard: email (lower case) → user name
    /// (`t7k2.alice`). Members without one yet are left out of the compiled policy.
    pub users: BTreeMap<String, String>,
    /// The subnets the tenant declared as its own.
    pub subnets: Vec<Prefix>,
    /// Addresses of the tenant's devices on the shard (for generated tests).
    pub device_ips: Vec<IpAddr>,
}

/// A problem that involves more than one tenant, found while compiling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// The tenant whose policy (or setting) has to change.
    pub code: String,
    /// Where in that tenant's text, when it is a rule.
    pub pos: Option<Pos>,
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pos {
            Some(pos) => write!(
                f,
                "{}: line {}, column {}: {}",
                self.code, pos.line, pos.col, self.message
            ),
            None => write!(f, "{}: {}", self.code, self.message),
        }
    }
}

/// The shard's policy and where each of its rules came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The policy as Headscale takes it.
    pub policy: Value,
    /// For each entry of `policy.acls`: the tenant and the rule's place in its text.
    pub acl_sources: Vec<(String, Pos)>,
    /// For each entry of `policy.ssh`: the tenant and the rule's place in its text.
    pub ssh_sources: Vec<(String, Pos)>,
}

impl Compiled {
    /// The bytes pushed to the shard (pretty, keys sorted).
    pub fn text(&self) -> String {
        serde_json::to_string_pretty(&self.policy).expect("a JSON value always serializes")
    }
}

/// The policy of a tenant that never saved one: like Tailscale's default, everything of
/// the tenant may reach everything of the tenant, and nothing else.
pub fn default_policy() -> TenantPolicy {
    TenantPolicy {
        acls: vec![Acl {
            pos: Pos { line: 1, col: 1 },
            src: vec![super::model::Located {
                pos: Pos { line: 1, col: 1 },
                value: Principal::Any,
            }],
            proto: None,
            dst: vec![super::model::Located {
                pos: Pos { line: 1, col: 1 },
                value: Destination {
                    target: Principal::Any,
                    ports: Ports::Any,
                },
            }],
        }],
        ..TenantPolicy::default()
    }
}

/// The text of the default policy, as the editor shows it for a tenant without one.
pub const DEFAULT_POLICY_TEXT: &str = r#"{
  // Everything of this tenant may reach everything of this tenant.
  // Nothing here can ever reach another tenant's devices.
  "acls": [
    {"action": "accept", "src": ["*"], "dst": ["*:*"]},
  ],
}
"#;

/// Compiles the tenants' policies into the shard's one policy; `with_tests` adds the
/// generated cross-tenant tests (for shards that run tests: Headscale 0.29+).
pub fn compile(tenants: &[TenantInput], with_tests: bool) -> Result<Compiled, Vec<CompileError>> {
    let mut sorted: Vec<&TenantInput> = tenants.iter().collect();
    sorted.sort_by(|a, b| a.code.cmp(&b.code));
    let errors = cross_tenant_conflicts(&sorted);
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut groups = Map::new();
    let mut hosts = Map::new();
    let mut tag_owners = Map::new();
    let mut acls = Vec::new();
    let mut acl_sources = Vec::new();
    let mut ssh = Vec::new();
    let mut ssh_sources = Vec::new();
    let single_tenant = sorted.len() == 1;
    let mut routes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut exit_node = Vec::new();
    let mut tests = Vec::new();

    for t in &sorted {
        let n = Names::of(t);
        for (name, members) in &t.policy.groups {
            let users: Vec<Value> = members
                .iter()
                .filter_map(|m| n.user(&m.value))
                .map(Value::String)
                .collect();
            groups.insert(n.group(&name.value), Value::Array(users));
        }
        for (name, prefix) in &t.policy.hosts {
            hosts.insert(n.host(&name.value), Value::String(prefix.value.to_string()));
        }
        for (name, owners) in &t.policy.tag_owners {
            let owners = dedup(owners.iter().flat_map(|o| n.expand(&o.value, Side::Owner)));
            tag_owners.insert(n.tag(&name.value), json!(owners));
        }
        for acl in &t.policy.acls {
            let src = dedup(acl.src.iter().flat_map(|s| n.expand(&s.value, Side::Src)));
            // Headscale takes `autogroup:self` only from users and groups: such
            // destinations become a rule of their own, from the users and groups.
            let (own, other): (Vec<_>, Vec<_>) = acl
                .dst
                .iter()
                .partition(|d| d.value.target == Principal::Autogroup(Autogroup::SelfDevices));
            let people: Vec<String> = src
                .iter()
                .filter(|s| s.ends_with('@') || s.starts_with("group:"))
                .cloned()
                .collect();
            for (src, dsts) in [(src, other), (people, own)] {
                let dst = dedup(dsts.iter().flat_map(|d| {
                    let ports = d.value.ports.to_string();
                    n.expand(&d.value.target, Side::Dst)
                        .into_iter()
                        .map(move |target| format!("{target}:{ports}"))
                }));
                if src.is_empty() || dst.is_empty() {
                    continue;
                }
                let mut rule = Map::new();
                rule.insert("action".into(), json!("accept"));
                if let Some(proto) = &acl.proto {
                    rule.insert("proto".into(), json!(proto.value));
                }
                rule.insert("src".into(), json!(src));
                rule.insert("dst".into(), json!(dst));
                acls.push(Value::Object(rule));
                acl_sources.push((t.code.clone(), acl.pos));
            }
        }
        for rule in &t.policy.ssh {
            let src = dedup(rule.src.iter().flat_map(|s| n.expand(&s.value, Side::Src)));
            let dst = dedup(
                rule.dst
                    .iter()
                    .flat_map(|d| n.ssh_destination(&d.value, single_tenant)),
            );
            if src.is_empty() || dst.is_empty() {
                continue;
            }
            let mut entry = Map::new();
            let action = match rule.action {
                SshAction::Accept => "accept",
                SshAction::Check => "check",
            };
            entry.insert("action".into(), json!(action));
            entry.insert("src".into(), json!(src));
            entry.insert("dst".into(), json!(dst));
            let users = dedup(rule.users.iter().map(|u| u.value.clone()));
            entry.insert("users".into(), json!(users));
            match rule.check_period.as_ref().map(|p| &p.value) {
                Some(CheckPeriod::Always) => {
                    entry.insert("checkPeriod".into(), json!("always"));
                }
                Some(CheckPeriod::Every(period)) => {
                    entry.insert("checkPeriod".into(), json!(period));
                }
                None => {}
            }
            ssh.push(Value::Object(entry));
            ssh_sources.push((t.code.clone(), rule.pos));
        }
        for (prefix, approvers) in &t.policy.auto_approve_routes {
            let entry = routes.entry(prefix.value.to_string()).or_default();
            entry.extend(
                approvers
                    .iter()
                    .flat_map(|a| n.expand(&a.value, Side::Owner)),
            );
        }
        exit_node.extend(
            t.policy
                .auto_approve_exit
                .iter()
                .flat_map(|a| n.expand(&a.value, Side::Owner)),
        );
    }
    if with_tests {
        tests.extend(generated_tests(&sorted));
    }

    let mut policy = Map::new();
    if !groups.is_empty() {
        policy.insert("groups".into(), Value::Object(groups));
    }
    if !hosts.is_empty() {
        policy.insert("hosts".into(), Value::Object(hosts));
    }
    if !tag_owners.is_empty() {
        policy.insert("tagOwners".into(), Value::Object(tag_owners));
    }
    // An empty list of rules is a policy that lets nothing through, which is what a
    // shard without tenants (or whose tenants allow nothing) must have.
    policy.insert("acls".into(), Value::Array(acls));
    let exit_node = dedup(exit_node.into_iter());
    if !routes.is_empty() || !exit_node.is_empty() {
        let mut approvers = Map::new();
        if !routes.is_empty() {
            let routes: Map<String, Value> = routes
                .into_iter()
                .map(|(prefix, who)| (prefix, json!(dedup(who.into_iter()))))
                .collect();
            approvers.insert("routes".into(), Value::Object(routes));
        }
        if !exit_node.is_empty() {
            approvers.insert("exitNode".into(), json!(exit_node));
        }
        policy.insert("autoApprovers".into(), Value::Object(approvers));
    }
    if !ssh.is_empty() {
        policy.insert("ssh".into(), Value::Array(ssh));
    }
    if !tests.is_empty() {
        policy.insert("tests".into(), Value::Array(tests));
    }
    Ok(Compiled {
        policy: Value::Object(policy),
        acl_sources,
        ssh_sources,
    })
}

/// Subnets and auto-approved routes: no two tenants of a shard may overlap.
fn cross_tenant_conflicts(sorted: &[&TenantInput]) -> Vec<CompileError> {
    let mut errors = Vec::new();
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            for sa in &a.subnets {
                for sb in &b.subnets {
                    if sa.overlaps(sb) {
                        errors.push(CompileError {
                            code: b.code.clone(),
                            pos: None,
                            message: format!(
                                "the subnet {sb} overlaps {sa}, which another tenant on this shard declared; \
                                 Headscale routes each address range for the whole shard, so two tenants cannot share one"
                            ),
                        });
                    }
                }
            }
            for (ra, _) in &a.policy.auto_approve_routes {
                for (rb, _) in &b.policy.auto_approve_routes {
                    if ra.value.overlaps(&rb.value) && !ra.value.is_exit() {
                        errors.push(CompileError {
                            code: b.code.clone(),
                            pos: Some(rb.pos),
                            message: format!(
                                "the route {} overlaps {}, which another tenant on this shard approves",
                                rb.value, ra.value
                            ),
                        });
                    }
                }
            }
        }
    }
    errors
}

/// One test per tenant with a device: its first device may not reach the first device
/// of the next tenant with one (in code order, wrapping around). By address, so the test
/// always resolves on the shard; on a single port, as Headscale's tests require.
fn generated_tests(sorted: &[&TenantInput]) -> Vec<Value> {
    let firsts: Vec<IpAddr> = sorted
        .iter()
        .filter_map(|t| t.device_ips.iter().min().copied())
        .collect();
    if firsts.len() < 2 {
        return vec![];
    }
    (0..firsts.len())
        .map(|i| {
            let next = firsts[(i + 1) % firsts.len()];
            json!({"src": firsts[i].to_string(), "deny": [format!("{next}:22"), format!("{next}:443")]})
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
    /// tagOwners and autoApprovers: users, groups and tags only.
    Owner,
}

/// A tenant's names on the shard.
struct Names<'a> {
    t: &'a TenantInput,
}

impl<'a> Names<'a> {
    fn of(t: &'a TenantInput) -> Names<'a> {
        Names { t }
    }

    fn code(&self) -> &str {
        &self.t.code
    }

    fn user(&self, email: &str) -> Option<String> {
        self.t
            .users
            .get(&email.to_ascii_lowercase())
            .map(|u| format!("{u}@"))
    }

    fn group(&self, name: &str) -> String {
        format!("group:{}--{name}", self.code())
    }

    fn tag(&self, name: &str) -> String {
        format!("tag:{}--{name}", self.code())
    }

    fn host(&self, name: &str) -> String {
        format!("{}--{name}", self.code())
    }

    fn users(&self) -> Vec<String> {
        self.t.users.values().map(|u| format!("{u}@")).collect()
    }

    fn tags(&self) -> Vec<String> {
        self.t
            .policy
            .tag_owners
            .iter()
            .map(|(t, _)| self.tag(&t.value))
            .collect()
    }

    /// What a principal stands for on the shard.
    fn expand(&self, p: &Principal, side: Side) -> Vec<String> {
        match p {
            Principal::Any => {
                let mut all = self.users();
                all.extend(self.tags());
                if side != Side::Owner {
                    all.extend(self.t.subnets.iter().map(|s| s.to_string()));
                }
                all
            }
            Principal::Member(email) => self.user(email).into_iter().collect(),
            Principal::Group(g) => vec![self.group(g)],
            Principal::Tag(t) => vec![self.tag(t)],
            Principal::Host(h) => vec![self.host(h)],
            Principal::Prefix(prefix) => vec![prefix.to_string()],
            Principal::Autogroup(Autogroup::Member) => self.users(),
            Principal::Autogroup(Autogroup::Tagged) => self.tags(),
            Principal::Autogroup(Autogroup::SelfDevices) => vec!["autogroup:self".into()],
            Principal::Autogroup(Autogroup::Internet) => vec!["autogroup:internet".into()],
        }
    }
}

impl Names<'_> {
    /// What an ssh destination stands for on the shard. `autogroup:member` is kept only
    /// when the tenant is alone on the shard. The checker allows it only to a tenant
    /// with a dedicated shard; should such a policy still meet other tenants on one
    /// shard, it is left out: the rule then lets in less, never other tenants' devices,
    /// and the other tenants' pushes are not held up.
    fn ssh_destination(&self, p: &Principal, single_tenant: bool) -> Vec<String> {
        match p {
            Principal::Autogroup(Autogroup::Member) if single_tenant => {
                vec!["autogroup:member".into()]
            }
            Principal::Autogroup(Autogroup::Member) => vec![],
            other => self.expand(other, Side::Dst),
        }
    }
}

/// A shard's message (Headscale's error) in one tenant's names: `tag:t7k2--db` →
/// `tag:db`, `group:t7k2--eng` → `group:eng`, `t7k2--nas` → `nas`, `t7k2.alice@` → the
/// member's email; `users` maps emails to user names as in `TenantInput`.
pub fn to_tenant_names(message: &str, code: &str, users: &BTreeMap<String, String>) -> String {
    let mut out = message.to_string();
    // Longest user names first, so `t7k2.al@` never eats part of `t7k2.alice@`.
    let mut by_len: Vec<(&String, &String)> = users.iter().collect();
    by_len.sort_by_key(|(_, user)| std::cmp::Reverse(user.len()));
    for (email, user) in by_len {
        out = out.replace(&format!("{user}@"), email);
    }
    out.replace(&format!("tag:{code}--"), "tag:")
        .replace(&format!("group:{code}--"), "group:")
        .replace(&format!("{code}--"), "")
}

/// Keeps the first of each name, in order.
fn dedup(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    names.filter(|n| seen.insert(n.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::hujson::parse;
    use crate::domain::policy::isolation::{self, ShardTenants};
    use crate::domain::policy::model::{check, TenantContext};

    pub(crate) fn tenant(
        code: &str,
        members: &[&str],
        subnets: &[&str],
        text: &str,
    ) -> TenantInput {
        let members: Vec<String> = members.iter().map(|m| m.to_string()).collect();
        let subnets: Vec<Prefix> = subnets.iter().map(|s| Prefix::parse(s).unwrap()).collect();
        let ctx = TenantContext {
            members: members.clone(),
            subnets: subnets.clone(),
            dedicated_shard: false,
        };
        let policy = check(&parse(text).unwrap(), &ctx).unwrap_or_else(|e| panic!("{e:?}"));
        TenantInput {
            code: code.into(),
            policy,
            users: members
                .iter()
                .map(|m| {
                    (
                        m.clone(),
                        format!("{code}.{}", m.split('@').next().unwrap()),
                    )
                })
                .collect(),
            subnets,
            device_ips: vec![],
        }
    }

    fn shard(tenants: &[TenantInput]) -> ShardTenants {
        ShardTenants {
            subnets: tenants
                .iter()
                .map(|t| (t.code.clone(), t.subnets.clone()))
                .collect(),
        }
    }

    const ACME: &str = r#"{
      "groups": {"group:eng": ["alice@acme.com"]},
      "hosts": {"nas": "10.1.2.3"},
      "tagOwners": {"tag:db": ["group:eng"]},
      "acls": [
        {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432", "nas:80,443"]},
        {"action": "accept", "src": ["*"], "dst": ["autogroup:self:*", "autogroup:tagged:22"]},
      ],
      "autoApprovers": {"routes": {"10.1.0.0/16": ["tag:db"]}},
      "tests": [{"src": "alice@acme.com", "accept": ["tag:db:5432"], "deny": ["nas:22"]}],
    }"#;
    const GLOBEX: &str = r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}"#;

    fn two() -> Vec<TenantInput> {
        let mut acme = tenant(
            "t7k2",
            &["alice@acme.com", "bob@acme.com"],
            &["10.1.0.0/16"],
            ACME,
        );
        acme.device_ips = vec!["100.64.0.3".parse().unwrap(), "100.64.0.1".parse().unwrap()];
        let mut globex = tenant("g4x9", &["gina@globex.com"], &["10.2.0.0/16"], GLOBEX);
        globex.device_ips = vec!["100.64.0.2".parse().unwrap()];
        vec![acme, globex]
    }

    #[test]
    fn names_are_namespaced_and_wildcards_stay_in_the_tenant() {
        let c = compile(&two(), true).unwrap();
        let expected = json!({
            "groups": {"group:t7k2--eng": ["t7k2.alice@"]},
            "hosts": {"t7k2--nas": "10.1.2.3/32"},
            "tagOwners": {"tag:t7k2--db": ["group:t7k2--eng"]},
            "acls": [
                {"action": "accept", "src": ["g4x9.gina@", "10.2.0.0/16"],
                 "dst": ["g4x9.gina@:*", "10.2.0.0/16:*"]},
                {"action": "accept", "src": ["group:t7k2--eng"],
                 "dst": ["tag:t7k2--db:5432", "t7k2--nas:80,443"]},
                {"action": "accept", "src": ["t7k2.alice@", "t7k2.bob@", "tag:t7k2--db", "10.1.0.0/16"],
                 "dst": ["tag:t7k2--db:22"]},
                {"action": "accept", "src": ["t7k2.alice@", "t7k2.bob@"],
                 "dst": ["autogroup:self:*"]},
            ],
            "autoApprovers": {"routes": {"10.1.0.0/16": ["tag:t7k2--db"]}},
            "tests": [
                {"src": "100.64.0.2", "deny": ["100.64.0.1:22", "100.64.0.1:443"]},
                {"src": "100.64.0.1", "deny": ["100.64.0.2:22", "100.64.0.2:443"]},
            ],
        });
        assert_eq!(c.policy, expected, "{}", c.text());
        assert_eq!(
            c.acl_sources
                .iter()
                .map(|(c, p)| (c.as_str(), p.line))
                .collect::<Vec<_>>(),
            [("g4x9", 1), ("t7k2", 6), ("t7k2", 7), ("t7k2", 7)]
        );
        isolation::check_all(&c, &shard(&two())).unwrap();
    }

    #[test]
    fn shard_messages_read_in_the_tenants_names() {
        let t = &two()[0];
        assert_eq!(
            to_tenant_names(
                "dst=\"tag:t7k2--db\": tag not found; t7k2.alice@ in group:t7k2--eng, host t7k2--nas",
                "t7k2",
                &t.users
            ),
            "dst=\"tag:db\": tag not found; alice@acme.com in group:eng, host nas"
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes_in_any_order() {
        let a = compile(&two(), true).unwrap().text();
        let mut reversed = two();
        reversed.reverse();
        assert_eq!(a, compile(&reversed, true).unwrap().text());
    }

    #[test]
    fn overlapping_subnets_or_routes_of_two_tenants_are_refused() {
        let ts = vec![
            tenant("t7k2", &["alice@acme.com"], &["10.42.0.0/16"], GLOBEX),
            tenant("g4x9", &["gina@globex.com"], &["10.42.1.0/24"], GLOBEX),
        ];
        let e = compile(&ts, true).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].code, "t7k2", "the later tenant in code order is told");
        assert!(
            e[0].message.contains("10.42.0.0/16 overlaps 10.42.1.0/24"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn a_tenant_without_members_on_the_shard_compiles_to_no_rules() {
        let mut ts = two();
        ts[1].users.clear();
        ts[1].subnets.clear();
        let c = compile(&ts, false).unwrap();
        assert!(c.acl_sources.iter().all(|(code, _)| code == "t7k2"));
        assert!(
            c.policy.get("tests").is_none(),
            "no tests for shards that do not run them"
        );
        assert!(!c.text().contains("g4x9"));
    }

    #[test]
    fn the_isolation_check_catches_what_a_broken_compiler_would_emit() {
        let ts = two();
        let c = compile(&ts, true).unwrap();
        let tampered = |f: &dyn Fn(&mut Value)| {
            let mut p = c.policy.clone();
            f(&mut p);
            isolation::check(&p, &c.acl_sources, &shard(&ts))
                .unwrap_err()
                .remove(0)
        };
        let v = tampered(&|p| p["acls"][0]["src"] = json!(["*"]));
        assert_eq!(v.code, "g4x9");
        assert!(v.message.contains("source *"), "{v:?}");
        let v = tampered(&|p| p["acls"][0]["dst"] = json!(["t7k2.alice@:22"]));
        assert!(v.message.contains("destination t7k2.alice@:22"), "{v:?}");
        let v = tampered(&|p| p["acls"][0]["dst"] = json!(["10.1.0.5:22"]));
        assert!(v.message.contains("10.1.0.5:22"), "{v:?}");
        let v = tampered(&|p| p["acls"][0]["dst"] = json!(["100.64.0.1:22"]));
        assert!(v.message.contains("100.64.0.1:22"), "{v:?}");
        let v = tampered(&|p| p["acls"][0]["dst"] = json!(["autogroup:internet:*"]));
        assert!(v.message.contains("autogroup:internet"), "{v:?}");
        let v = tampered(&|p| p["groups"]["group:t7k2--eng"] = json!(["g4x9.gina@"]));
        assert!(v.message.contains("names g4x9.gina@"), "{v:?}");
        let v = tampered(&|p| p["autoApprovers"]["routes"]["10.1.0.0/16"] = json!(["g4x9.gina@"]));
        assert!(
            v.message
                .contains("10.1.0.0/16 may be approved by g4x9.gina@"),
            "{v:?}"
        );
        let v = tampered(&|p| p["hosts"]["t7k2--nas"] = json!("10.2.0.9/32"));
        assert!(
            v.message.contains("not inside this tenant's subnets"),
            "{v:?}"
        );
    }

    const SSH_TENANT: &str = r#"{
      "groups": {"group:eng": ["alice@acme.com"]},
      "tagOwners": {"tag:server": ["group:eng"], "tag:ci": []},
      "ssh": [
        {"action": "accept", "src": ["group:eng", "tag:ci"], "dst": ["tag:server"], "users": ["root"]},
        {"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self", "autogroup:tagged"], "users": ["autogroup:nonroot", "ubuntu"], "checkPeriod": "1h"},
        {"action": "accept", "src": ["bob@acme.com"], "dst": ["bob@acme.com"], "users": ["bob"]},
        {"action": "accept", "src": ["carol@acme.com"], "dst": ["tag:ci"], "users": ["root"]},
      ],
      "sshTests": [{"src": "alice@acme.com", "dst": ["tag:server"], "accept": ["root"]}],
    }"#;

    /// Acme with ssh rules (carol has no user on the shard yet) beside Globex.
    fn with_ssh() -> Vec<TenantInput> {
        let mut acme = tenant(
            "t7k2",
            &["alice@acme.com", "bob@acme.com", "carol@acme.com"],
            &["10.1.0.0/16"],
            SSH_TENANT,
        );
        acme.users.remove("carol@acme.com");
        let globex = tenant("g4x9", &["gina@globex.com"], &["10.2.0.0/16"], GLOBEX);
        vec![acme, globex]
    }

    #[test]
    fn ssh_rules_are_namespaced_and_stay_in_the_tenant() {
        let c = compile(&with_ssh(), true).unwrap();
        let expected = json!({
            "groups": {"group:t7k2--eng": ["t7k2.alice@"]},
            "tagOwners": {"tag:t7k2--server": ["group:t7k2--eng"], "tag:t7k2--ci": []},
            "acls": [
                {"action": "accept", "src": ["g4x9.gina@", "10.2.0.0/16"],
                 "dst": ["g4x9.gina@:*", "10.2.0.0/16:*"]},
            ],
            "ssh": [
                {"action": "accept", "src": ["group:t7k2--eng", "tag:t7k2--ci"],
                 "dst": ["tag:t7k2--server"], "users": ["root"]},
                {"action": "check", "src": ["t7k2.alice@", "t7k2.bob@"],
                 "dst": ["autogroup:self", "tag:t7k2--server", "tag:t7k2--ci"],
                 "users": ["autogroup:nonroot", "ubuntu"], "checkPeriod": "1h"},
                {"action": "accept", "src": ["t7k2.bob@"], "dst": ["t7k2.bob@"], "users": ["bob"]},
            ],
        });
        assert_eq!(c.policy, expected, "{}", c.text());
        assert_eq!(
            c.ssh_sources
                .iter()
                .map(|(c, p)| (c.as_str(), p.line))
                .collect::<Vec<_>>(),
            [("t7k2", 5), ("t7k2", 6), ("t7k2", 7)],
            "carol's rule names nobody on the shard and is left out"
        );
        assert!(!c.text().contains("sshTests"), "the portal runs them");
        let shard = shard(&with_ssh());
        isolation::check_all(&c, &shard).unwrap();
        isolation::check(&c.policy, &c.acl_sources, &shard).unwrap();
        let mut reversed = with_ssh();
        reversed.reverse();
        assert_eq!(c.text(), compile(&reversed, true).unwrap().text());
    }

    #[test]
    fn autogroup_member_as_an_ssh_destination_only_on_a_shard_of_its_own() {
        let text = r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:member", "autogroup:self"], "users": ["root"]}]}"#;
        let ctx = TenantContext {
            members: vec!["alice@acme.com".into()],
            subnets: vec![],
            dedicated_shard: true,
        };
        let mut acme = tenant("t7k2", &["alice@acme.com"], &["10.1.0.0/16"], GLOBEX);
        acme.policy = check(&parse(text).unwrap(), &ctx).unwrap();
        let alone = compile(std::slice::from_ref(&acme), true).unwrap();
        assert_eq!(
            alone.policy["ssh"],
            json!([{"action": "accept", "src": ["t7k2.alice@"],
                    "dst": ["autogroup:member", "autogroup:self"], "users": ["root"]}])
        );
        isolation::check_all(&alone, &shard(std::slice::from_ref(&acme))).unwrap();

        // Beside another tenant it would name every member of the shard: left out.
        let ts = vec![
            acme,
            tenant("g4x9", &["gina@globex.com"], &["10.2.0.0/16"], GLOBEX),
        ];
        let shared = compile(&ts, true).unwrap();
        assert_eq!(shared.policy["ssh"][0]["dst"], json!(["autogroup:self"]));
        isolation::check_all(&shared, &shard(&ts)).unwrap();
        let mut tampered = shared.clone();
        tampered.policy["ssh"][0]["dst"] = json!(["autogroup:member"]);
        let v = isolation::check_all(&tampered, &shard(&ts)).unwrap_err();
        assert!(
            v[0].message.contains("destination autogroup:member"),
            "{v:?}"
        );
    }

    #[test]
    fn the_isolation_check_catches_a_tampered_ssh_rule() {
        let ts = with_ssh();
        let c = compile(&ts, true).unwrap();
        let tampered = |f: &dyn Fn(&mut Value)| {
            let mut t = c.clone();
            f(&mut t.policy);
            isolation::check_all(&t, &shard(&ts)).unwrap_err().remove(0)
        };
        let v = tampered(&|p| p["ssh"][0]["src"] = json!(["g4x9.gina@"]));
        assert_eq!((v.code.as_str(), v.pos.map(|p| p.line)), ("t7k2", Some(5)));
        assert!(v.message.contains("source g4x9.gina@"), "{v:?}");
        let v = tampered(&|p| p["ssh"][1]["src"] = json!(["autogroup:member"]));
        assert!(v.message.contains("source autogroup:member"), "{v:?}");
        let v = tampered(&|p| p["ssh"][1]["dst"] = json!(["tag:g4x9--db"]));
        assert!(v.message.contains("destination tag:g4x9--db"), "{v:?}");
        let v = tampered(&|p| p["ssh"][2]["dst"] = json!(["autogroup:tagged"]));
        assert!(v.message.contains("destination autogroup:tagged"), "{v:?}");
        let v = tampered(&|p| p["ssh"][2]["src"] = json!([]));
        assert!(v.message.contains("no sources"), "{v:?}");
        let v = tampered(&|p| {
            let extra = p["ssh"][0].clone();
            p["ssh"].as_array_mut().unwrap().push(extra);
        });
        assert!(v.message.contains("4 ssh rules but 3 sources"), "{v:?}");

        // The older check, without the compiler's attribution, still refuses a rule
        // naming two tenants.
        let mut p = c.policy.clone();
        p["ssh"][0]["dst"] = json!(["tag:g4x9--db"]);
        let v = isolation::check(&p, &c.acl_sources, &shard(&ts)).unwrap_err();
        assert!(v[0].message.contains("destination tag:g4x9--db"), "{v:?}");
        let mut p = c.policy.clone();
        p["ssh"][0]["src"] = json!(["*"]);
        assert!(isolation::check(&p, &c.acl_sources, &shard(&ts)).is_err());
    }
}
