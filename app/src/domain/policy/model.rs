//! A tenant's policy, read from its HuJSON tree and checked in the tenant's own names.
//!
//! Every error is collected (not just the first), each with the line:column of the value
//! at fault and a plain sentence. Unknown fields are refused, as Headscale 0.27+ does.
//! What a tenant may name (DESIGN.md §2): its members' emails, its own `group:` and
//! `tag:` names (no `--`, the namespace separator), its `hosts`, the autogroups Headscale
//! supports, `*`, and IP ranges inside the subnets the tenant declared as its own — never
//! inside the tailnet ranges, which belong to every tenant on the shard.

use super::hujson::{Node, Pos, Value};
use crate::domain::routes::Prefix;
use crate::domain::tags::is_name;

/// A value with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub pos: Pos,
    pub value: T,
}

/// A problem in the tenant's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub pos: Pos,
    pub message: String,
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.pos.line, self.pos.col, self.message
        )
    }
}

/// Someone or something a rule names, in the tenant's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `*`: everything of the tenant (the compiler expands it; never the whole shard).
    Any,
    /// A member, by email.
    Member(String),
    Group(String),
    Tag(String),
    Host(String),
    Autogroup(Autogroup),
    Prefix(Prefix),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autogroup {
    /// Every member's devices (not tagged ones).
    Member,
    /// Every tagged device of the tenant.
    Tagged,
    /// The source's own devices (destinations only).
    SelfDevices,
    /// The internet through exit nodes (destinations only).
    Internet,
}

/// Ports of a destination: `*` or a list of single ports and ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    Any,
    List(Vec<(u16, u16)>),
}

/// As written in a policy: `*`, or `22,80-90,443`.
impl std::fmt::Display for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ports::Any => f.write_str("*"),
            Ports::List(list) => {
                for (i, (a, b)) in list.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    if a == b {
                        write!(f, "{sep}{a}")?;
                    } else {
                        write!(f, "{sep}{a}-{b}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub target: Principal,
    pub ports: Ports,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub pos: Pos,
    pub src: Vec<Located<Principal>>,
    pub proto: Option<Located<String>>,
    pub dst: Vec<Located<Destination>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyTest {
    pub pos: Pos,
    pub src: Located<Principal>,
    pub accept: Vec<Located<Destination>>,
    pub deny: Vec<Located<Destination>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TenantPolicy {
    pub groups: Vec<(Located<String>, Vec<Located<String>>)>,
    pub hosts: Vec<(Located<String>, Located<Prefix>)>,
    pub tag_owners: Vec<(Located<String>, Vec<Located<Principal>>)>,
    pub acls: Vec<Acl>,
    pub auto_approve_routes: Vec<(Located<Prefix>, Vec<Located<Principal>>)>,
    pub auto_approve_exit: Vec<Located<Principal>>,
    pub tests: Vec<PolicyTest>,
}

/// What a tenant's names may refer to.
#[derive(Debug, Clone, Default)]
pub struct TenantContext {
    /// Members' emails (lower case).
    pub members: Vec<String>,
    /// The subnets the tenant declared as its own.
    pub subnets: Vec<Prefix>,
    /// Whether the tenant's shard is dedicated to it. Only then may it use
    /// `autogroup:internet`: Headscale shows every exit node of the shard to a device
    /// allowed the internet, whichever tenant the exit node belongs to.
    pub dedicated_shard: bool,
}

const TAILNET_RANGES: [&str; 2] = ["100.64.0.0/10", "fd7a:115c:a1e0::/48"];
const PROTOCOLS: [&str; 8] = [
    "tcp",
    "udp",
    "icmp",
    "ipv6-icmp",
    "sctp",
    "gre",
    "esp",
    "ah",
];

/// Reads and checks a tenant's policy. `Err` holds every problem found, in text order.
pub fn check(root: &Node, ctx: &TenantContext) -> Result<TenantPolicy, Vec<PolicyError>> {
    let mut c = Checker {
        ctx,
        errors: Vec::new(),
    };
    let policy = c.policy(root);
    if c.errors.is_empty() {
        Ok(policy)
    } else {
        c.errors.sort_by_key(|e| e.pos);
        Err(c.errors)
    }
}

/// A principal named in the tenant's terms (`alice@acme.com`, `group:eng`, `tag:db`, a
/// host, an address), for the preview; the sentence says what is wrong with it.
pub fn principal_of(
    policy: &TenantPolicy,
    ctx: &TenantContext,
    text: &str,
) -> Result<Principal, String> {
    let mut c = Checker {
        ctx,
        errors: Vec::new(),
    };
    let located = Located {
        pos: Pos::default(),
        value: text.trim().to_string(),
    };
    match c.principal(&located, policy, Role::Destination) {
        Some(p) if c.errors.is_empty() => Ok(p.value),
        _ => Err(c
            .errors
            .into_iter()
            .next()
            .map(|e| e.message)
            .unwrap_or_else(|| format!("“{text}” names nothing in this policy"))),
    }
}

struct Checker<'a> {
    ctx: &'a TenantContext,
    errors: Vec<PolicyError>,
}

impl Checker<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(PolicyError {
            pos,
            message: message.into(),
        });
    }

    fn object<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [(String, Pos, Node)]> {
        match &node.value {
            Value::Object(fields) => Some(fields),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be an object, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn array<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n [Node]> {
        match &node.value {
            Value::Array(items) => Some(items),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a list, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<Located<String>> {
        match &node.value {
            Value::String(s) => Some(Located {
                pos: node.pos,
                value: s.clone(),
            }),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a string, not {}", node.kind()),
                );
                None
            }
        }
    }

    fn strings(&mut self, node: &Node, what: &str) -> Vec<Located<String>> {
        self.array(node, what)
            .map(|items| items.iter().filter_map(|i| self.string(i, what)).collect())
            .unwrap_or_default()
    }

    fn unknown(&mut self, pos: Pos, key: &str, known: &[&str]) {
        self.err(
            pos,
            format!("unknown field “{key}” (known here: {})", known.join(", ")),
        );
    }

    fn policy(&mut self, root: &Node) -> TenantPolicy {
        let mut p = TenantPolicy::default();
        let Some(fields) = self.object(root, "the policy") else {
            return p;
        };
        const KNOWN: [&str; 7] = [
            "groups",
            "hosts",
            "tagOwners",
            "acls",
            "autoApprovers",
            "tests",
            "ssh",
        ];
        // Names first, so rules can be checked against them wherever they are written.
        for (key, _, value) in fields {
            match key.as_str() {
                "groups" => p.groups = self.groups(value),
                "hosts" => p.hosts = self.hosts(value),
                _ => {}
            }
        }
        for (key, _, value) in fields {
            if key == "tagOwners" {
                p.tag_owners = self.tag_owners(value, &p);
            }
        }
        for (key, key_pos, value) in fields {
            match key.as_str() {
                "groups" | "hosts" | "tagOwners" => {}
                "acls" => {
                    if let Some(items) = self.array(value, "acls") {
                        p.acls = items.iter().filter_map(|a| self.acl(a, &p)).collect();
                    }
                }
                "autoApprovers" => self.auto_approvers(value, &mut p),
                "tests" => {
                    if let Some(items) = self.array(value, "tests") {
                        p.tests = items.iter().filter_map(|t| self.test(t, &p)).collect();
                    }
                }
                "ssh" => self.err(
                    *key_pos,
                    "ssh rules are not supported by the portal yet; remove the ssh section",
                ),
                other => self.unknown(*key_pos, other, &KNOWN),
            }
        }
        p
    }

    fn groups(&mut self, node: &Node) -> Vec<(Located<String>, Vec<Located<String>>)> {
        let Some(fields) = self.object(node, "groups") else {
            return vec![];
        };
        let mut out = Vec::new();
        for (key, pos, value) in fields {
            let name = key.strip_prefix("group:").unwrap_or("");
            if !is_name(name) {
                self.err(*pos, format!("“{key}” is not a group name: write group: and then lowercase letters, digits and single hyphens"));
                continue;
            }
            let members = self.strings(value, "a group's members");
            for m in &members {
                if !self.is_member(&m.value) {
                    self.err(
                        m.pos,
                        format!(
                            "{} is not a member of this tenant; groups list members' emails",
                            m.value
                        ),
                    );
                }
            }
            out.push((
                Located {
                    pos: *pos,
                    value: name.to_string(),
                },
                members,
            ));
        }
        out
    }

    fn hosts(&mut self, node: &Node) -> Vec<(Located<String>, Located<Prefix>)> {
        let Some(fields) = self.object(node, "hosts") else {
            return vec![];
        };
        let mut out = Vec::new();
        for (key, pos, value) in fields {
            if !is_name(key) {
                self.err(*pos, format!("“{key}” is not a host name: use lowercase letters, digits and single hyphens"));
                continue;
            }
            let Some(s) = self.string(value, "a host's address") else {
                continue;
            };
            let text = if s.value.contains('/') {
                s.value.clone()
            } else if s.value.contains(':') {
                format!("{}/128", s.value)
            } else {
                format!("{}/32", s.value)
            };
            match Prefix::parse(&text) {
                Ok(prefix) => {
                    if self.ip_allowed(s.pos, &prefix) {
                        out.push((
                            Located {
                                pos: *pos,
                                value: key.clone(),
                            },
                            Located {
                                pos: s.pos,
                                value: prefix,
                            },
                        ));
                    }
                }
                Err(m) => self.err(s.pos, m),
            }
        }
        out
    }

    fn tag_owners(
        &mut self,
        node: &Node,
        p: &TenantPolicy,
    ) -> Vec<(Located<String>, Vec<Located<Principal>>)> {
        let Some(fields) = self.object(node, "tagOwners") else {
            return vec![];
        };
        let mut out = Vec::new();
        for (key, pos, value) in fields {
            let name = key.strip_prefix("tag:").unwrap_or("");
            if !is_name(name) {
                self.err(*pos, format!("“{key}” is not a tag: write tag: and then lowercase letters, digits and single hyphens"));
                continue;
            }
            let owners = self
                .strings(value, "a tag's owners")
                .into_iter()
                .filter_map(|o| self.principal(&o, p, Role::Owner))
                .collect();
            out.push((
                Located {
                    pos: *pos,
                    value: name.to_string(),
                },
                owners,
            ));
        }
        out
    }

    fn acl(&mut self, node: &Node, p: &TenantPolicy) -> Option<Acl> {
        let fields = self.object(node, "an acl rule")?;
        let mut action = None;
        let mut src = None;
        let mut dst = None;
        let mut proto = None;
        for (key, pos, value) in fields {
            match key.as_str() {
                "action" => action = self.string(value, "action"),
                "src" => src = Some(self.principals(value, p, Role::Source, "src")),
                "dst" => dst = Some(self.destinations(value, p, "dst")),
                "proto" => {
                    if let Some(s) = self.string(value, "proto") {
                        if PROTOCOLS.contains(&s.value.as_str()) {
                            proto = Some(s);
                        } else {
                            self.err(
                                s.pos,
                                format!(
                                    "“{}” is not a protocol Headscale knows ({})",
                                    s.value,
                                    PROTOCOLS.join(", ")
                                ),
                            );
                        }
                    }
                }
                other => self.unknown(*pos, other, &["action", "src", "proto", "dst"]),
            }
        }
        match &action {
            Some(a) if a.value == "accept" => {}
            Some(a) => self.err(
                a.pos,
                format!(
                    "the action is “{}”; rules only accept (everything not accepted is denied)",
                    a.value
                ),
            ),
            None => self.err(node.pos, "this rule has no \"action\": \"accept\""),
        }
        let (Some(src), Some(dst)) = (src, dst) else {
            self.err(node.pos, "a rule needs both src and dst");
            return None;
        };
        if let Some(p) = &proto {
            if !["tcp", "udp", "sctp"].contains(&p.value.as_str()) {
                for d in dst.iter().filter(|d| d.value.ports != Ports::Any) {
                    self.err(
                        d.pos,
                        format!("{} has no ports: write this destination with :*", p.value),
                    );
                }
            }
        }
        Some(Acl {
            pos: node.pos,
            src,
            proto,
            dst,
        })
    }

    fn test(&mut self, node: &Node, p: &TenantPolicy) -> Option<PolicyTest> {
        let fields = self.object(node, "a test")?;
        let mut src = None;
        let mut accept = Vec::new();
        let mut deny = Vec::new();
        for (key, pos, value) in fields {
            match key.as_str() {
                "src" => {
                    src = self
                        .string(value, "a test's src")
                        .and_then(|s| self.principal(&s, p, Role::Source));
                }
                "accept" => accept = self.destinations(value, p, "accept"),
                "deny" => deny = self.destinations(value, p, "deny"),
                other => self.unknown(*pos, other, &["src", "accept", "deny"]),
            }
        }
        let Some(src) = src else {
            self.err(node.pos, "a test needs a src");
            return None;
        };
        Some(PolicyTest {
            pos: node.pos,
            src,
            accept,
            deny,
        })
    }

    fn auto_approvers(&mut self, node: &Node, p: &mut TenantPolicy) {
        let Some(fields) = self.object(node, "autoApprovers") else {
            return;
        };
        for (key, pos, value) in fields {
            match key.as_str() {
                "routes" => {
                    let Some(routes) = self.object(value, "autoApprovers.routes") else {
                        continue;
                    };
                    for (route, rpos, owners) in routes {
                        let prefix = match Prefix::parse(route) {
                            Ok(prefix) if self.ip_allowed(*rpos, &prefix) => prefix,
                            Ok(_) => continue,
                            Err(m) => {
                                self.err(*rpos, m);
                                continue;
                            }
                        };
                        let owners = self.principals(owners, p, Role::Owner, "route approvers");
                        p.auto_approve_routes.push((
                            Located {
                                pos: *rpos,
                                value: prefix,
                            },
                            owners,
                        ));
                    }
                }
                "exitNode" => {
                    p.auto_approve_exit =
                        self.principals(value, p, Role::Owner, "exit node approvers");
                }
                other => self.unknown(*pos, other, &["routes", "exitNode"]),
            }
        }
    }

    fn principals(
        &mut self,
        node: &Node,
        p: &TenantPolicy,
        role: Role,
        what: &str,
    ) -> Vec<Located<Principal>> {
        self.strings(node, what)
            .into_iter()
            .filter_map(|s| self.principal(&s, p, role))
            .collect()
    }

    fn destinations(
        &mut self,
        node: &Node,
        p: &TenantPolicy,
        what: &str,
    ) -> Vec<Located<Destination>> {
        self.strings(node, what)
            .into_iter()
            .filter_map(|s| {
                // `host:port`; the last colon splits (IPv6 addresses contain colons).
                let Some((target, ports)) = s.value.rsplit_once(':') else {
                    self.err(
                        s.pos,
                        format!(
                            "“{}” has no ports: write it as target:ports, like tag:db:5432 or *:*",
                            s.value
                        ),
                    );
                    return None;
                };
                let ports = self.ports(s.pos, ports)?;
                let target = self.principal(
                    &Located {
                        pos: s.pos,
                        value: target.to_string(),
                    },
                    p,
                    Role::Destination,
                )?;
                Some(Located {
                    pos: s.pos,
                    value: Destination {
                        target: target.value,
                        ports,
                    },
                })
            })
            .collect()
    }

    fn ports(&mut self, pos: Pos, text: &str) -> Option<Ports> {
        if text == "*" {
            return Some(Ports::Any);
        }
        let mut list = Vec::new();
        for part in text.split(',') {
            let range = match part.split_once('-') {
                Some((a, b)) => a.parse::<u16>().ok().zip(b.parse::<u16>().ok()),
                None => part.parse::<u16>().ok().map(|p| (p, p)),
            };
            match range {
                Some((a, b)) if a <= b && a > 0 => list.push((a, b)),
                _ => {
                    self.err(pos, format!("“{text}” are not ports: write *, a port (22), a list (80,443) or a range (8000-8999)"));
                    return None;
                }
            }
        }
        Some(Ports::List(list))
    }

    fn principal(
        &mut self,
        s: &Located<String>,
        p: &TenantPolicy,
        role: Role,
    ) -> Option<Located<Principal>> {
        let text = s.value.as_str();
        let pos = s.pos;
        let principal = if text == "*" {
            Principal::Any
        } else if let Some(name) = text.strip_prefix("group:") {
            if !p.groups.iter().any(|(g, _)| g.value == name) {
                self.err(
                    pos,
                    format!("{text} is not defined in this policy's groups"),
                );
                return None;
            }
            Principal::Group(name.to_string())
        } else if let Some(name) = text.strip_prefix("tag:") {
            if !is_name(name) {
                self.err(pos, format!("“{text}” is not one of this tenant's tags (tags of other tenants cannot be named)"));
                return None;
            }
            if role != Role::Owner && !p.tag_owners.iter().any(|(t, _)| t.value == name) {
                self.err(
                    pos,
                    format!("{text} is not defined in this policy's tagOwners"),
                );
                return None;
            }
            Principal::Tag(name.to_string())
        } else if let Some(kind) = text.strip_prefix("autogroup:") {
            let group = match (kind, role) {
                ("member", _) => Autogroup::Member,
                ("tagged", _) => Autogroup::Tagged,
                ("self", Role::Destination) => Autogroup::SelfDevices,
                ("internet", Role::Destination) if self.ctx.dedicated_shard => Autogroup::Internet,
                ("internet", Role::Destination) => {
                    self.err(pos, "autogroup:internet (using exit nodes) needs a shard of your own: on a shared shard it would show other tenants' exit nodes to your devices; ask the service operator for a dedicated shard");
                    return None;
                }
                ("self" | "internet", _) => {
                    self.err(pos, format!("{text} can only be a destination"));
                    return None;
                }
                _ => {
                    self.err(pos, format!("{text} is not an autogroup Headscale supports here (autogroup:member, autogroup:tagged, autogroup:self, autogroup:internet)"));
                    return None;
                }
            };
            Principal::Autogroup(group)
        } else if text.contains('@') {
            if !self.is_member(text) {
                self.err(pos, format!("{text} is not a member of this tenant"));
                return None;
            }
            Principal::Member(text.to_ascii_lowercase())
        } else if p.hosts.iter().any(|(h, _)| h.value == text) {
            Principal::Host(text.to_string())
        } else if text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_hexdigit() || c == ':')
            && (text.contains('.') || text.contains(':'))
        {
            let with_len = if text.contains('/') {
                text.to_string()
            } else if text.contains(':') {
                format!("{text}/128")
            } else {
                format!("{text}/32")
            };
            match Prefix::parse(&with_len) {
                Ok(prefix) if self.ip_allowed(pos, &prefix) => Principal::Prefix(prefix),
                Ok(_) => return None,
                Err(m) => {
                    self.err(pos, m);
                    return None;
                }
            }
        } else {
            self.err(pos, format!("“{text}” is not a member's email, group:, tag:, host, autogroup:, * or an address"));
            return None;
        };
        Some(Located {
            pos,
            value: principal,
        })
    }

    fn is_member(&self, email: &str) -> bool {
        let email = email.to_ascii_lowercase();
        self.ctx.members.contains(&email)
    }

    /// Raw addresses: never in the tailnet ranges; only inside the tenant's subnets.
    fn ip_allowed(&mut self, pos: Pos, prefix: &Prefix) -> bool {
        for range in TAILNET_RANGES {
            let tailnet = Prefix::parse(range).expect("constant");
            if prefix.overlaps(&tailnet) {
                self.err(pos, format!("{prefix} is inside the tailnet range {range}, which every tenant on the shard shares; name devices by member, group or tag instead"));
                return false;
            }
        }
        if !self.ctx.subnets.iter().any(|s| s.contains(prefix)) {
            self.err(
                pos,
                format!("{prefix} is not inside a subnet this tenant declared as its own"),
            );
            return false;
        }
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Destination,
    /// tagOwners and autoApprovers entries.
    Owner,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::hujson::parse;

    fn ctx() -> TenantContext {
        TenantContext {
            members: vec!["alice@acme.com".into(), "bob@acme.com".into()],
            subnets: vec![Prefix::parse("10.1.0.0/16").unwrap()],
            dedicated_shard: true,
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match check(&parse(text).unwrap(), &ctx()) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_good_policy_reads_with_its_names() {
        let text = r#"{
          // Engineers reach the database.
          "groups": {"group:eng": ["alice@acme.com", "Bob@acme.com"]},
          "hosts": {"nas": "10.1.2.3"},
          "tagOwners": {"tag:db": ["group:eng"]},
          "acls": [
            {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432", "nas:80,443", "10.1.0.0/24:*"]},
            {"action": "accept", "proto": "tcp", "src": ["autogroup:member"], "dst": ["autogroup:self:*", "autogroup:internet:*"]},
          ],
          "autoApprovers": {"routes": {"10.1.0.0/16": ["tag:db"]}, "exitNode": ["alice@acme.com"]},
          "tests": [{"src": "alice@acme.com", "accept": ["tag:db:5432"], "deny": ["nas:22"]}],
        }"#;
        let p = check(&parse(text).unwrap(), &ctx()).unwrap();
        assert_eq!(p.acls.len(), 2);
        assert_eq!(
            p.acls[0].dst[1].value.ports,
            Ports::List(vec![(80, 80), (443, 443)])
        );
        assert_eq!(p.acls[0].src[0].value, Principal::Group("eng".into()));
        assert_eq!(
            p.tests[0].deny[0].value.target,
            Principal::Host("nas".into())
        );
        assert_eq!(p.auto_approve_routes.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "{\n  \"acls\": [\n    {\"action\": \"drop\", \"src\": [\"tag:g4x9--db\"], \"dst\": [\"100.64.0.7:22\"]},\n    {\"action\": \"accept\", \"src\": [\"mallory@evil.com\"], \"dst\": [\"group:ops:*\"], \"extra\": 1},\n  ],\n  \"postures\": {},\n}";
        let e = errors(text);
        assert_eq!(e.len(), 7, "{e:#?}");
        assert!(
            e[0].starts_with("line 3, column 16:") && e[0].contains("“drop”"),
            "{}",
            e[0]
        );
        assert!(e
            .iter()
            .any(|m| m.contains("tag:g4x9--db") && m.contains("other tenants")));
        assert!(e
            .iter()
            .any(|m| m.contains("100.64.0.7/32 is inside the tailnet range")));
        assert!(e
            .iter()
            .any(|m| m.contains("mallory@evil.com is not a member")));
        assert!(e.iter().any(|m| m.contains("group:ops is not defined")));
        assert!(e.iter().any(|m| m.contains("unknown field “extra”")));
        assert!(e
            .iter()
            .any(|m| m.starts_with("line 6, column 3:") && m.contains("“postures”")));
    }

    #[test]
    fn addresses_only_inside_the_tenants_subnets_and_never_the_tailnet() {
        assert!(errors(
            r#"{"acls": [{"action": "accept", "src": ["10.1.9.0/24"], "dst": ["10.1.0.1:22"]}]}"#
        )
        .is_empty());
        let e = errors(
            r#"{"acls": [{"action": "accept", "src": ["10.2.0.0/16"], "dst": ["fd7a:115c:a1e0::1:22"]}]}"#,
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("not inside a subnet this tenant declared"));
        assert!(e[1].contains("fd7a:115c:a1e0::1/128 is inside the tailnet range"));
        let e = errors(r#"{"autoApprovers": {"routes": {"10.42.0.0/16": ["alice@acme.com"]}}}"#);
        assert!(
            e[0].contains("10.42.0.0/16 is not inside a subnet"),
            "{e:?}"
        );
    }

    #[test]
    fn tags_must_be_owned_and_ports_well_formed() {
        let e = errors(
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:web:80", "*:0", "*:9-1", "alice@acme.com"]}]}"#,
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("tag:web is not defined in this policy's tagOwners"));
        assert!(e.iter().filter(|m| m.contains("are not ports")).count() == 2);
        assert!(e.iter().any(|m| m.contains("has no ports")));
    }

    #[test]
    fn the_internet_only_from_a_dedicated_shard_and_ports_only_where_they_exist() {
        let text = r#"{"acls": [
          {"action": "accept", "src": ["*"], "dst": ["autogroup:internet:*"]},
          {"action": "accept", "proto": "icmp", "src": ["*"], "dst": ["*:22", "*:*"]},
        ]}"#;
        let shared = TenantContext {
            dedicated_shard: false,
            ..ctx()
        };
        let e: Vec<String> = check(&parse(text).unwrap(), &shared)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("needs a shard of your own"), "{}", e[0]);
        assert!(
            e[1].starts_with("line 3, column 71: icmp has no ports"),
            "{}",
            e[1]
        );
        assert_eq!(errors(text).len(), 1, "dedicated: only the icmp port");
    }

    #[test]
    fn autogroups_self_and_internet_are_destinations_only() {
        let e = errors(
            r#"{"acls": [{"action": "accept", "src": ["autogroup:self", "autogroup:admin"], "dst": ["*:*"]}]}"#,
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("can only be a destination"));
        assert!(e[1].contains("not an autogroup Headscale supports"));
    }
}
