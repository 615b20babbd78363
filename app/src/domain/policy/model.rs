//! A tenant's policy, read from its HuJSON tree and checked in the tenant's own names.
//!
//! Every error is collected (not just the first), each with the line:column of the value
//! at fault and a plain sentence. Unknown fields are refused, as Headscale 0.27+ does.
//! What a tenant may name (DESIGN.md §2): its members' emails, its own `group:` and
//! `tag:` names (no `--`, the namespace separator), its `hosts`, the autogroups Headscale
//! supports, `*`, and IP ranges inside the subnets the tenant declared as its own — never
//! inside the tailnet ranges, which belong to every tenant on the shard.
//!
//! `ssh` rules and `sshTests` follow what Headscale 0.29 accepts and enforces
//! (docs/headscale-policy-facts.md §8): sources are members, groups, tags and the member
//! and tagged autogroups; destinations are tags, `autogroup:tagged`, `autogroup:self`,
//! and a member only from that same member; tags never reach user-owned devices. The
//! checker refuses what Headscale would refuse, in the tenant's names, so a rule that
//! saves also compiles into a shard policy Headscale takes.

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

/// What an ssh rule does with a connection it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SshAction {
    Accept,
    /// Accept once the user has logged in again with Headscale (at most `checkPeriod` ago).
    Check,
}

/// How long a `check` rule's login lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckPeriod {
    /// Log in again for every connection.
    Always,
    /// A Go duration as written (`30m`, `12h`, `1h30m`), between 1m and 168h.
    Every(String),
}

/// An `ssh` rule: who (`src`) may log in to which devices (`dst`) as which local users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshRule {
    pub pos: Pos,
    pub action: SshAction,
    pub src: Vec<Located<Principal>>,
    pub dst: Vec<Located<Principal>>,
    /// `root`, `autogroup:nonroot` (every user but root) or local user names.
    pub users: Vec<Located<String>>,
    pub check_period: Option<Located<CheckPeriod>>,
}

/// An `sshTests` entry: which local users `src` may (`accept`), may only after logging
/// in again (`check`), or may not (`deny`) log in as on each of `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTest {
    pub pos: Pos,
    /// A member or a tag.
    pub src: Located<Principal>,
    pub dst: Vec<Located<Principal>>,
    pub accept: Vec<Located<String>>,
    pub deny: Vec<Located<String>>,
    pub check: Vec<Located<String>>,
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
    pub ssh: Vec<SshRule>,
    pub ssh_tests: Vec<SshTest>,
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
        const KNOWN: [&str; 8] = [
            "groups",
            "hosts",
            "tagOwners",
            "acls",
            "autoApprovers",
            "tests",
            "ssh",
            "sshTests",
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
                "ssh" => {
                    if let Some(items) = self.array(value, "ssh") {
                        p.ssh = items.iter().filter_map(|r| self.ssh_rule(r, &p)).collect();
                    }
                }
                "sshTests" => {
                    if let Some(items) = self.array(value, "sshTests") {
                        p.ssh_tests = items.iter().filter_map(|t| self.ssh_test(t, &p)).collect();
                    }
                }
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

    /// An `ssh` rule, with Headscale's combination rules (facts §8; Headscale's
    /// `validateSSHSrcDstCombination`, `hscontrol/policy/v2/types.go` at v0.29.2).
    fn ssh_rule(&mut self, node: &Node, p: &TenantPolicy) -> Option<SshRule> {
        let fields = self.object(node, "an ssh rule")?;
        let mut action = None;
        let mut src = None;
        let mut dst = None;
        let mut users = None;
        let mut check_period = None;
        for (key, pos, value) in fields {
            match key.as_str() {
                "action" => {
                    action = self.string(value, "action").map(|a| match a.value.as_str() {
                        "accept" => Some(SshAction::Accept),
                        "check" => Some(SshAction::Check),
                        other => {
                            self.err(a.pos, format!("the action is “{other}”; ssh rules either accept or check (let in after the user logs in again)"));
                            None
                        }
                    });
                }
                "src" => src = Some(self.ssh_principals(value, p, SshSide::Src, "src")),
                "dst" => dst = Some(self.ssh_principals(value, p, SshSide::Dst, "dst")),
                "users" => users = Some(self.ssh_users(value, "users", UserList::Rule)),
                "checkPeriod" => {
                    check_period = self
                        .string(value, "checkPeriod")
                        .and_then(|s| self.check_period(&s));
                }
                other => self.unknown(
                    *pos,
                    other,
                    &["action", "src", "dst", "users", "checkPeriod"],
                ),
            }
        }
        let action = match action {
            Some(a) => a,
            None => {
                self.err(
                    node.pos,
                    "this ssh rule has no \"action\" (\"accept\" or \"check\")",
                );
                None
            }
        };
        if let (Some(SshAction::Accept), Some(period)) = (action, &check_period) {
            self.err(
                period.pos,
                "checkPeriod only goes with \"action\": \"check\" (an accept rule never asks the user to log in again)",
            );
        }
        let (Some(src), Some(dst), Some(users)) = (src, dst, users) else {
            self.err(
                node.pos,
                "an ssh rule needs src (who connects), dst (to which devices) and users (as whom they may log in)",
            );
            return None;
        };
        let tagged_src = src.iter().any(|s| {
            matches!(
                s.value,
                Principal::Tag(_) | Principal::Autogroup(Autogroup::Tagged)
            )
        });
        for d in &dst {
            let user_owned = matches!(
                d.value,
                Principal::Member(_)
                    | Principal::Autogroup(Autogroup::Member | Autogroup::SelfDevices)
            );
            if tagged_src && user_owned {
                self.err(
                    d.pos,
                    format!(
                        "tags in an ssh rule's src cannot reach devices owned by members ({}); Headscale refuses it: give the tags a rule of their own with tags or autogroup:tagged as destinations",
                        super::eval::principal_text(&d.value)
                    ),
                );
            } else if let Principal::Member(m) = &d.value {
                if src.is_empty() || src.iter().any(|s| s.value != d.value) {
                    self.err(
                        d.pos,
                        format!(
                            "{m} as an ssh destination needs {m} as the rule's only source (Headscale lets only a member reach a member's devices this way); use autogroup:self to let each member reach their own devices"
                        ),
                    );
                }
            }
        }
        Some(SshRule {
            pos: node.pos,
            action: action?,
            src,
            dst,
            users,
            check_period,
        })
    }

    fn ssh_test(&mut self, node: &Node, p: &TenantPolicy) -> Option<SshTest> {
        let fields = self.object(node, "an sshTest")?;
        let mut src = None;
        let mut src_written = false;
        let mut dst = None;
        let mut accept = Vec::new();
        let mut deny = Vec::new();
        let mut check = Vec::new();
        // Whether any login user was written (a user refused is reported on its own).
        let mut users_written = false;
        for (key, pos, value) in fields {
            if matches!(key.as_str(), "accept" | "deny" | "check") {
                users_written |= matches!(&value.value, Value::Array(items) if !items.is_empty());
            }
            match key.as_str() {
                "src" => {
                    src_written = true;
                    src = self
                        .string(value, "an sshTest's src")
                        .and_then(|s| self.ssh_test_src(&s, p));
                }
                "dst" => dst = Some(self.ssh_principals(value, p, SshSide::TestDst, "dst")),
                "accept" => accept = self.ssh_users(value, "accept", UserList::Test),
                "deny" => deny = self.ssh_users(value, "deny", UserList::Test),
                "check" => check = self.ssh_users(value, "check", UserList::Test),
                other => self.unknown(*pos, other, &["src", "dst", "accept", "deny", "check"]),
            }
        }
        if !src_written {
            self.err(
                node.pos,
                "an sshTest needs a src: a member's email or a tag",
            );
        }
        let Some(dst) = dst else {
            self.err(
                node.pos,
                "an sshTest needs dst: the devices to try, like [\"tag:server\"]",
            );
            return None;
        };
        if !users_written {
            self.err(
                node.pos,
                "an sshTest needs accept, deny or check: the local users to try, like [\"root\"]",
            );
        }
        let src = src?;
        if matches!(src.value, Principal::Tag(_)) {
            for d in &dst {
                if d.value == Principal::Autogroup(Autogroup::SelfDevices) {
                    self.err(
                        d.pos,
                        "autogroup:self in an sshTest needs a member as its src: a tag has no devices of its own",
                    );
                }
            }
        }
        Some(SshTest {
            pos: node.pos,
            src,
            dst,
            accept,
            deny,
            check,
        })
    }

    /// A test's source: one member or one tag (a test asks about one principal).
    fn ssh_test_src(
        &mut self,
        s: &Located<String>,
        p: &TenantPolicy,
    ) -> Option<Located<Principal>> {
        let principal = self.principal(s, p, Role::Source)?;
        match principal.value {
            Principal::Member(_) | Principal::Tag(_) => Some(principal),
            _ => {
                self.err(
                    s.pos,
                    format!(
                        "an sshTest's src is one member's email or one tag, not “{}”",
                        s.value
                    ),
                );
                None
            }
        }
    }

    /// The sources or destinations of an ssh rule, or the destinations of an sshTest.
    fn ssh_principals(
        &mut self,
        node: &Node,
        p: &TenantPolicy,
        side: SshSide,
        what: &str,
    ) -> Vec<Located<Principal>> {
        if matches!(&node.value, Value::Array(items) if items.is_empty()) {
            let whom = match side {
                SshSide::Src => "who may connect",
                SshSide::Dst | SshSide::TestDst => "which devices",
            };
            self.err(
                node.pos,
                format!("{what} is empty; name {whom} (an empty list would never match)"),
            );
        }
        self.strings(node, what)
            .into_iter()
            .filter_map(|s| self.ssh_principal(&s, p, side))
            .collect()
    }

    fn ssh_principal(
        &mut self,
        s: &Located<String>,
        p: &TenantPolicy,
        side: SshSide,
    ) -> Option<Located<Principal>> {
        let text = s.value.as_str();
        let src = side == SshSide::Src;
        if text == "*" {
            let message = if src {
                "ssh rules cannot use * as a source: name members, groups, tags, autogroup:member or autogroup:tagged"
            } else {
                "* cannot be an ssh destination (Headscale refuses it): name tags, autogroup:tagged or autogroup:self"
            };
            self.err(s.pos, message);
            return None;
        }
        if text == "autogroup:internet" {
            self.err(
                s.pos,
                "autogroup:internet cannot be used in ssh rules: ssh reaches devices, not the internet",
            );
            return None;
        }
        let role = if src { Role::Source } else { Role::Destination };
        let principal = self.principal(s, p, role)?;
        let ok = match (&principal.value, side) {
            (Principal::Host(_) | Principal::Prefix(_), _) => {
                self.err(s.pos, format!("ssh rules name devices by member, group or tag, not by host or address (Headscale refuses “{text}” here)"));
                return None;
            }
            (
                Principal::Member(_)
                | Principal::Group(_)
                | Principal::Tag(_)
                | Principal::Autogroup(Autogroup::Member | Autogroup::Tagged),
                SshSide::Src,
            ) => true,
            (
                Principal::Member(_)
                | Principal::Tag(_)
                | Principal::Autogroup(Autogroup::Tagged | Autogroup::SelfDevices),
                SshSide::Dst | SshSide::TestDst,
            ) => true,
            // A test is run by the portal only; nothing of it reaches the shard.
            (Principal::Autogroup(Autogroup::Member), SshSide::TestDst) => true,
            (Principal::Autogroup(Autogroup::Member), SshSide::Dst) => {
                if !self.ctx.dedicated_shard {
                    self.err(s.pos, "autogroup:member as an ssh destination needs a shard of your own: on a shared shard the portal would have to list each of your members' users instead, and Headscale takes a user as an ssh destination only when the source is that same user; use autogroup:self (each member's own devices) or tags, or ask the service operator for a dedicated shard");
                    return None;
                }
                true
            }
            (Principal::Group(_), _) => {
                self.err(s.pos, format!("{text} cannot be an ssh destination (Headscale refuses groups there): use autogroup:self for members' own devices, or tags"));
                return None;
            }
            _ => false,
        };
        if !ok {
            self.err(
                s.pos,
                format!(
                    "{text} cannot be used in an ssh rule's {}",
                    if src { "src" } else { "dst" }
                ),
            );
            return None;
        }
        Some(principal)
    }

    /// Local users to log in as: `root`, `autogroup:nonroot` (rules only), or names as
    /// Linux takes them. Headscale takes any other string as a literal user name, so a
    /// typo would silently match nobody; the portal refuses it instead.
    fn ssh_users(&mut self, node: &Node, what: &str, list: UserList) -> Vec<Located<String>> {
        if list == UserList::Rule && matches!(&node.value, Value::Array(items) if items.is_empty())
        {
            self.err(
                node.pos,
                "users is empty; list the local users they may log in as, like [\"root\"] or [\"autogroup:nonroot\"]",
            );
        }
        let mut out: Vec<Located<String>> = Vec::new();
        for u in self.strings(node, what) {
            let ok = match u.value.as_str() {
                "root" => true,
                "autogroup:nonroot" if list == UserList::Rule => true,
                "autogroup:nonroot" => {
                    self.err(u.pos, "a test tries one local user at a time: name one, like ubuntu, instead of autogroup:nonroot");
                    continue;
                }
                "*" => {
                    self.err(u.pos, "“*” is not a local user (Headscale refuses it): use autogroup:nonroot for every user but root, and root");
                    continue;
                }
                name => is_local_user(name),
            };
            if !ok {
                self.err(u.pos, format!("“{}” is not a local user name: use root, autogroup:nonroot, or a name of lowercase letters, digits, _, . and - that starts with a letter or _ (at most 32)", u.value));
                continue;
            }
            if !out.iter().any(|o| o.value == u.value) {
                out.push(u);
            }
        }
        out
    }

    /// `always`, or a Go duration (Headscale parses it with `time.ParseDuration`) from 1m
    /// (Headscale's `SSHCheckPeriod`: "min 1m") to 168h (`SSHCheckPeriodMax`).
    fn check_period(&mut self, s: &Located<String>) -> Option<Located<CheckPeriod>> {
        if s.value == "always" {
            return Some(Located {
                pos: s.pos,
                value: CheckPeriod::Always,
            });
        }
        match go_duration_seconds(&s.value) {
            None => self.err(s.pos, format!("“{}” is not a checkPeriod: write always, or a length like 30m, 12h or 1h30m (at most 168h)", s.value)),
            Some(secs) if secs < 60.0 => self.err(s.pos, format!("checkPeriod {} is shorter than a minute; use always to ask on every connection", s.value)),
            Some(secs) if secs > 168.0 * 3600.0 => self.err(s.pos, format!("checkPeriod {} is longer than 168h (one week), the most Headscale allows", s.value)),
            Some(_) => {
                return Some(Located {
                    pos: s.pos,
                    value: CheckPeriod::Every(s.value.clone()),
                })
            }
        }
        None
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

/// Where an ssh principal is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SshSide {
    Src,
    Dst,
    /// An sshTest's `dst`.
    TestDst,
}

/// Which list of local users: a rule's `users`, or a test's `accept`/`deny`/`check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserList {
    Rule,
    Test,
}

/// A local user name as `useradd` takes it by default (`[a-z_][a-z0-9_.-]*`, at most 32).
fn is_local_user(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name.len() <= 32
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// The length of a Go duration (`time.ParseDuration`: `300ms`, `1.5h`, `2h45m`, `0`) in
/// seconds; `None` when Go would refuse it or it is negative.
fn go_duration_seconds(text: &str) -> Option<f64> {
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = rest;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if !number.bytes().any(|b| b.is_ascii_digit()) || number.matches('.').count() > 1 {
            return None;
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number.parse::<f64>().ok()? * scale;
        rest = after;
    }
    Some(total)
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

    const SSH_NAMES: &str = r#""groups": {"group:eng": ["alice@acme.com"]},
          "hosts": {"nas": "10.1.2.3"},
          "tagOwners": {"tag:server": ["group:eng"], "tag:ci": []},"#;

    fn ssh_errors(rules: &str) -> Vec<String> {
        errors(&format!("{{\n{SSH_NAMES}\n\"ssh\": [\n{rules}\n]}}"))
    }

    #[test]
    fn ssh_rules_and_tests_read_with_their_names() {
        let text = r#"{
          "groups": {"group:eng": ["alice@acme.com"]},
          "tagOwners": {"tag:server": ["group:eng"], "tag:ci": []},
          "ssh": [
            {"action": "accept", "src": ["group:eng", "tag:ci"], "dst": ["tag:server"], "users": ["root", "autogroup:nonroot"]},
            {"action": "check", "src": ["autogroup:member"], "dst": ["autogroup:self"], "users": ["ubuntu", "ubuntu"], "checkPeriod": "1h30m"},
            {"action": "check", "src": ["alice@acme.com"], "dst": ["Alice@acme.com", "autogroup:tagged"], "users": ["deploy_1"], "checkPeriod": "always"},
            {"action": "accept", "src": ["autogroup:tagged"], "dst": ["autogroup:tagged"], "users": ["ci-runner"]},
          ],
          "sshTests": [
            {"src": "alice@acme.com", "dst": ["tag:server", "autogroup:self"], "accept": ["root"], "deny": ["mallory"], "check": ["ubuntu"]},
            {"src": "tag:ci", "dst": ["autogroup:member"], "deny": ["root"]},
          ],
        }"#;
        let p = check(&parse(text).unwrap(), &ctx()).unwrap();
        assert_eq!(p.ssh.len(), 4);
        let r = &p.ssh[0];
        assert_eq!((r.pos.line, r.pos.col), (5, 13));
        assert_eq!(r.action, SshAction::Accept);
        assert_eq!(
            r.src.iter().map(|s| s.value.clone()).collect::<Vec<_>>(),
            [Principal::Group("eng".into()), Principal::Tag("ci".into())]
        );
        assert_eq!(r.dst[0].value, Principal::Tag("server".into()));
        assert_eq!(r.users[1].value, "autogroup:nonroot");
        assert_eq!(p.ssh[1].users.len(), 1, "a user named twice is kept once");
        assert_eq!(
            p.ssh[1].check_period.as_ref().map(|c| c.value.clone()),
            Some(CheckPeriod::Every("1h30m".into()))
        );
        assert_eq!(
            p.ssh[2].dst[0].value,
            Principal::Member("alice@acme.com".into())
        );
        assert_eq!(
            p.ssh[2].check_period.as_ref().map(|c| c.value.clone()),
            Some(CheckPeriod::Always)
        );
        assert_eq!(p.ssh_tests.len(), 2);
        let t = &p.ssh_tests[0];
        assert_eq!(t.src.value, Principal::Member("alice@acme.com".into()));
        assert_eq!(t.dst[1].value, Principal::Autogroup(Autogroup::SelfDevices));
        assert_eq!(
            (
                t.accept[0].value.as_str(),
                t.deny[0].value.as_str(),
                t.check[0].value.as_str()
            ),
            ("root", "mallory", "ubuntu")
        );
        assert_eq!(
            p.ssh_tests[1].dst[0].value,
            Principal::Autogroup(Autogroup::Member),
            "tests may name autogroup:member on any shard: only the portal runs them"
        );
    }

    #[test]
    fn ssh_sources_and_destinations_are_what_headscale_takes() {
        let e = ssh_errors(
            r#"{"action": "accept", "src": ["*", "nas", "10.1.0.0/24", "autogroup:self"], "dst": ["tag:server"], "users": ["root"]},
{"action": "accept", "src": ["alice@acme.com"], "dst": ["*", "nas", "group:eng", "autogroup:internet", "tag:web"], "users": ["root"]},
{"action": "accept", "src": [], "dst": [], "users": []},"#,
        );
        assert_eq!(
            e,
            [
                "line 6, column 30: ssh rules cannot use * as a source: name members, groups, tags, autogroup:member or autogroup:tagged",
                "line 6, column 35: ssh rules name devices by member, group or tag, not by host or address (Headscale refuses “nas” here)",
                "line 6, column 42: ssh rules name devices by member, group or tag, not by host or address (Headscale refuses “10.1.0.0/24” here)",
                "line 6, column 57: autogroup:self can only be a destination",
                "line 7, column 57: * cannot be an ssh destination (Headscale refuses it): name tags, autogroup:tagged or autogroup:self",
                "line 7, column 62: ssh rules name devices by member, group or tag, not by host or address (Headscale refuses “nas” here)",
                "line 7, column 69: group:eng cannot be an ssh destination (Headscale refuses groups there): use autogroup:self for members' own devices, or tags",
                "line 7, column 82: autogroup:internet cannot be used in ssh rules: ssh reaches devices, not the internet",
                "line 7, column 104: tag:web is not defined in this policy's tagOwners",
                "line 8, column 29: src is empty; name who may connect (an empty list would never match)",
                "line 8, column 40: dst is empty; name which devices (an empty list would never match)",
                "line 8, column 53: users is empty; list the local users they may log in as, like [\"root\"] or [\"autogroup:nonroot\"]",
            ]
        );
    }

    #[test]
    fn tags_never_reach_members_and_a_member_only_from_itself() {
        let e = ssh_errors(
            r#"{"action": "accept", "src": ["tag:ci"], "dst": ["autogroup:self", "tag:server"], "users": ["root"]},
{"action": "accept", "src": ["autogroup:tagged", "alice@acme.com"], "dst": ["alice@acme.com"], "users": ["root"]},
{"action": "accept", "src": ["group:eng"], "dst": ["alice@acme.com"], "users": ["root"]},
{"action": "accept", "src": ["alice@acme.com", "bob@acme.com"], "dst": ["bob@acme.com"], "users": ["root"]},"#,
        );
        let tags = "; Headscale refuses it: give the tags a rule of their own with tags or autogroup:tagged as destinations";
        let alone = " (Headscale lets only a member reach a member's devices this way); use autogroup:self to let each member reach their own devices";
        assert_eq!(
            e,
            [
                format!("line 6, column 49: tags in an ssh rule's src cannot reach devices owned by members (autogroup:self){tags}"),
                format!("line 7, column 77: tags in an ssh rule's src cannot reach devices owned by members (alice@acme.com){tags}"),
                format!("line 8, column 52: alice@acme.com as an ssh destination needs alice@acme.com as the rule's only source{alone}"),
                format!("line 9, column 73: bob@acme.com as an ssh destination needs bob@acme.com as the rule's only source{alone}"),
            ]
        );
    }

    #[test]
    fn autogroup_member_as_an_ssh_destination_needs_a_dedicated_shard() {
        let text = r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:member"], "users": ["root"]}]}"#;
        assert!(errors(text).is_empty(), "dedicated shard");
        let shared = TenantContext {
            dedicated_shard: false,
            ..ctx()
        };
        let e = check(&parse(text).unwrap(), &shared).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!((e[0].pos.line, e[0].pos.col), (1, 68));
        assert!(
            e[0].message
                .starts_with("autogroup:member as an ssh destination needs a shard of your own")
                && e[0]
                    .message
                    .contains("use autogroup:self (each member's own devices) or tags"),
            "{}",
            e[0].message
        );
        let tagged = r#"{"tagOwners": {"tag:ci": []}, "ssh": [{"action": "accept", "src": ["tag:ci"], "dst": ["autogroup:member"], "users": ["root"]}]}"#;
        assert!(errors(tagged)[0].contains(
            "tags in an ssh rule's src cannot reach devices owned by members (autogroup:member)"
        ));
    }

    #[test]
    fn actions_users_and_check_periods_are_checked() {
        let e = ssh_errors(
            r#"{"action": "deny", "src": ["alice@acme.com"], "dst": ["tag:server"], "users": ["*", "Admin", "autogroup:root", "a-very-long-user-name-of-33-chars"]},
{"action": "accept", "src": ["alice@acme.com"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "12h"},
{"action": "check", "src": ["alice@acme.com"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "169h"},
{"action": "check", "src": ["alice@acme.com"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "30s"},
{"action": "check", "src": ["alice@acme.com"], "dst": ["tag:server"], "users": ["root"], "checkPeriod": "12 hours"},
{"src": ["alice@acme.com"], "dst": ["tag:server"], "acceptEnv": ["GIT_*"]},"#,
        );
        assert_eq!(
            e,
            [
                "line 6, column 12: the action is “deny”; ssh rules either accept or check (let in after the user logs in again)",
                "line 6, column 80: “*” is not a local user (Headscale refuses it): use autogroup:nonroot for every user but root, and root",
                "line 6, column 85: “Admin” is not a local user name: use root, autogroup:nonroot, or a name of lowercase letters, digits, _, . and - that starts with a letter or _ (at most 32)",
                "line 6, column 94: “autogroup:root” is not a local user name: use root, autogroup:nonroot, or a name of lowercase letters, digits, _, . and - that starts with a letter or _ (at most 32)",
                "line 6, column 112: “a-very-long-user-name-of-33-chars” is not a local user name: use root, autogroup:nonroot, or a name of lowercase letters, digits, _, . and - that starts with a letter or _ (at most 32)",
                "line 7, column 106: checkPeriod only goes with \"action\": \"check\" (an accept rule never asks the user to log in again)",
                "line 8, column 105: checkPeriod 169h is longer than 168h (one week), the most Headscale allows",
                "line 9, column 105: checkPeriod 30s is shorter than a minute; use always to ask on every connection",
                "line 10, column 105: “12 hours” is not a checkPeriod: write always, or a length like 30m, 12h or 1h30m (at most 168h)",
                "line 11, column 1: this ssh rule has no \"action\" (\"accept\" or \"check\")",
                "line 11, column 1: an ssh rule needs src (who connects), dst (to which devices) and users (as whom they may log in)",
                "line 11, column 52: unknown field “acceptEnv” (known here: action, src, dst, users, checkPeriod)",
            ]
        );
    }

    #[test]
    fn go_durations_read_as_go_reads_them() {
        for (text, secs) in [
            ("0", 0.0),
            ("30m", 1800.0),
            ("1h30m", 5400.0),
            ("1.5h", 5400.0),
            ("+2h", 7200.0),
            ("90s", 90.0),
            ("1h0m0.5s", 3600.5),
            ("1500ms", 1.5),
        ] {
            assert_eq!(go_duration_seconds(text), Some(secs), "{text}");
        }
        for text in ["", "h", "12", "-1h", "1d", "1..5h", ".h", "12 h"] {
            assert_eq!(go_duration_seconds(text), None, "{text}");
        }
        assert!(is_local_user("_apt") && is_local_user("ci-runner.2"));
        assert!(!is_local_user("1abc") && !is_local_user("-x") && !is_local_user(""));
    }

    #[test]
    fn ssh_tests_name_one_member_or_tag_and_users_to_try() {
        let e = errors(
            r#"{
  "groups": {"group:eng": ["alice@acme.com"]},
  "tagOwners": {"tag:ci": []},
  "sshTests": [
    {"src": "group:eng", "dst": ["tag:ci"], "accept": ["root"]},
    {"src": "tag:ci", "dst": ["autogroup:self", "*"], "accept": ["autogroup:nonroot", "*"]},
    {"src": "alice@acme.com", "dst": ["tag:ci"]},
    {"src": "alice@acme.com", "accept": ["root"], "proto": "tcp"},
  ],
}"#,
        );
        assert_eq!(
            e,
            [
                "line 5, column 13: an sshTest's src is one member's email or one tag, not “group:eng”",
                "line 6, column 31: autogroup:self in an sshTest needs a member as its src: a tag has no devices of its own",
                "line 6, column 49: * cannot be an ssh destination (Headscale refuses it): name tags, autogroup:tagged or autogroup:self",
                "line 6, column 66: a test tries one local user at a time: name one, like ubuntu, instead of autogroup:nonroot",
                "line 6, column 87: “*” is not a local user (Headscale refuses it): use autogroup:nonroot for every user but root, and root",
                "line 7, column 5: an sshTest needs accept, deny or check: the local users to try, like [\"root\"]",
                "line 8, column 5: an sshTest needs dst: the devices to try, like [\"tag:server\"]",
                "line 8, column 51: unknown field “proto” (known here: src, dst, accept, deny, check)",
            ]
        );
    }
}
