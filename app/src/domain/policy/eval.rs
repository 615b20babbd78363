//! The evaluator of a tenant's policy, in the tenant's own names: what a source can
//! reach and through which rule (its line in the tenant's text), who can reach a target,
//! and the tenant's `tests`.
//!
//! It reasons about principals, not devices, as Tailscale's policy tests read: a source
//! is matched by a rule when the rule names it, a group it is in, an autogroup it falls
//! under, `*`, or an address range that holds it; a destination likewise, with
//! `autogroup:self` meaning the source member's own devices. A rule restricted to a
//! protocol other than TCP does not count for tests (tests speak of TCP ports).
//!
//! `sshTests` are read as Headscale 0.29 runs them (`hscontrol/policy/v2/sshtest.go`):
//! a user is accepted on a destination when some ssh rule (accept or check) lets the
//! source log in there as that user, checked when some `check` rule does, denied when
//! none does; a destination that stands for several devices (`autogroup:tagged`) must
//! hold for each of them. Like Headscale's, they look at the `ssh` rules only: whether an
//! `acls` rule also lets the source reach port 22 is for the ACL `tests`.

use super::hujson::Pos;
use super::model::{
    Autogroup, Destination, Located, Ports, Principal, SshAction, SshRule, SshTest, TenantPolicy,
};
use crate::domain::routes::Prefix;
use serde::{Deserialize, Serialize};

/// One thing a source may reach: the rule's destination and where the rule is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The rule's place in the tenant's text.
    pub line: u32,
    pub col: u32,
    /// The destination as the rule writes it (`tag:db:5432`).
    pub destination: String,
    /// `tcp`, `udp`, … or `None` for every protocol.
    pub proto: Option<String>,
}

/// One source that may reach a target, and where the rule is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reacher {
    pub line: u32,
    pub col: u32,
    pub source: String,
    pub proto: Option<String>,
}

/// The outcome of one entry of one test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// Where the entry is written.
    pub line: u32,
    pub col: u32,
    pub passed: bool,
    /// A sentence: what was expected and what the rules say.
    pub message: String,
}

/// What `src` may reach, rule by rule, in text order.
pub fn reachable_from(policy: &TenantPolicy, src: &Principal) -> Vec<Grant> {
    let mut out = Vec::new();
    for acl in &policy.acls {
        if !acl.src.iter().any(|s| src_matches(policy, &s.value, src)) {
            continue;
        }
        for d in &acl.dst {
            out.push(Grant {
                line: acl.pos.line,
                col: acl.pos.col,
                destination: destination_text(&d.value),
                proto: acl.proto.as_ref().map(|p| p.value.clone()),
            });
        }
    }
    out
}

/// Which sources (as rules write them) may reach `target` on `port` (any port: `None`).
pub fn who_reaches(policy: &TenantPolicy, target: &Principal, port: Option<u16>) -> Vec<Reacher> {
    let mut out = Vec::new();
    for acl in &policy.acls {
        let covered = acl.dst.iter().any(|d| {
            port_covered(&d.value.ports, port)
                && (dst_covers(policy, &d.value.target, target, None)
                    || d.value.target == Principal::Autogroup(Autogroup::SelfDevices)
                        && matches!(target, Principal::Member(_)))
        });
        if !covered {
            continue;
        }
        for s in &acl.src {
            out.push(Reacher {
                line: acl.pos.line,
                col: acl.pos.col,
                source: principal_text(&s.value),
                proto: acl.proto.as_ref().map(|p| p.value.clone()),
            });
        }
    }
    out
}

/// Runs the policy's tests and sshTests; one outcome per accept or deny entry of a test,
/// and per login user and destination of an sshTest.
pub fn run_tests(policy: &TenantPolicy) -> Vec<TestOutcome> {
    let mut out = run_acl_tests(policy);
    for test in &policy.ssh_tests {
        out.extend(run_ssh_test(policy, test));
    }
    out
}

fn run_acl_tests(policy: &TenantPolicy) -> Vec<TestOutcome> {
    let mut out = Vec::new();
    for test in &policy.tests {
        let src = &test.src.value;
        for (entry, expect_reach) in test
            .accept
            .iter()
            .map(|e| (e, true))
            .chain(test.deny.iter().map(|e| (e, false)))
        {
            let by = rule_allowing(policy, src, &entry.value);
            let what = format!(
                "{} → {}",
                principal_text(src),
                destination_text(&entry.value)
            );
            let (passed, message) = match (expect_reach, by) {
                (true, Some(pos)) => (
                    true,
                    format!("{what} is allowed by the rule at line {}", pos.line),
                ),
                (true, None) => (
                    false,
                    format!("{what} should be allowed, but no rule allows it"),
                ),
                (false, None) => (true, format!("{what} is denied")),
                (false, Some(pos)) => (
                    false,
                    format!(
                        "{what} should be denied, but the rule at line {} allows it",
                        pos.line
                    ),
                ),
            };
            out.push(TestOutcome {
                line: entry.pos.line,
                col: entry.pos.col,
                passed,
                message,
            });
        }
    }
    out
}

/// What an sshTest entry asks of a login user.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SshExpect {
    Accept,
    Deny,
    Check,
}

fn run_ssh_test(policy: &TenantPolicy, test: &SshTest) -> Vec<TestOutcome> {
    let src = &test.src.value;
    let mut out = Vec::new();
    let entries = test
        .accept
        .iter()
        .map(|u| (u, SshExpect::Accept))
        .chain(test.check.iter().map(|u| (u, SshExpect::Check)))
        .chain(test.deny.iter().map(|u| (u, SshExpect::Deny)));
    for (user, expect) in entries {
        for dst in &test.dst {
            let what = format!(
                "{} → {} as {}",
                principal_text(src),
                principal_text(&dst.value),
                user.value
            );
            let targets = ssh_targets(policy, src, &dst.value);
            let (passed, message) = if targets.is_empty() {
                (
                    false,
                    format!("{what}: {} stands for no device of this policy, so there is nothing to try", principal_text(&dst.value)),
                )
            } else {
                ssh_outcome(policy, src, &targets, &user.value, expect, &what)
            };
            out.push(TestOutcome {
                line: user.pos.line,
                col: user.pos.col,
                passed,
                message,
            });
        }
    }
    out
}

/// A test's destination as the single principals it stands for: each tag for
/// `autogroup:tagged`, the source member for `autogroup:self`.
fn ssh_targets(policy: &TenantPolicy, src: &Principal, dst: &Principal) -> Vec<Principal> {
    match dst {
        Principal::Autogroup(Autogroup::Tagged) => policy
            .tag_owners
            .iter()
            .map(|(t, _)| Principal::Tag(t.value.clone()))
            .collect(),
        Principal::Autogroup(Autogroup::SelfDevices) => match src {
            Principal::Member(_) => vec![src.clone()],
            _ => vec![],
        },
        other => vec![other.clone()],
    }
}

fn ssh_outcome(
    policy: &TenantPolicy,
    src: &Principal,
    targets: &[Principal],
    user: &str,
    expect: SshExpect,
    what: &str,
) -> (bool, String) {
    // For each target: the first rule letting the user in, and the first `check` rule.
    let found: Vec<(&Principal, Option<&SshRule>, Option<&SshRule>)> = targets
        .iter()
        .map(|t| {
            let any = ssh_rule_allowing(policy, src, t, user, false);
            let check = ssh_rule_allowing(policy, src, t, user, true);
            (t, any, check)
        })
        .collect();
    let on = |t: &Principal| {
        if targets.len() > 1 {
            format!(" on {}", principal_text(t))
        } else {
            String::new()
        }
    };
    match expect {
        SshExpect::Accept => match found.iter().find(|(_, any, _)| any.is_none()) {
            Some((t, _, _)) => (
                false,
                format!("{what} should be allowed, but no ssh rule allows it{}", on(t)),
            ),
            None => (
                true,
                format!(
                    "{what} is allowed by the ssh rule at line {}",
                    found[0].1.map(|r| r.pos.line).unwrap_or_default()
                ),
            ),
        },
        SshExpect::Check => match found.iter().find(|(_, _, check)| check.is_none()) {
            Some((t, Some(rule), None)) => (
                false,
                format!(
                    "{what} should need a fresh login, but the ssh rule at line {} lets it in without one{}",
                    rule.pos.line,
                    on(t)
                ),
            ),
            Some((t, _, _)) => (
                false,
                format!("{what} should be allowed after a fresh login, but no ssh rule allows it{}", on(t)),
            ),
            None => (
                true,
                format!(
                    "{what} is allowed after a fresh login by the ssh rule at line {}",
                    found[0].2.map(|r| r.pos.line).unwrap_or_default()
                ),
            ),
        },
        SshExpect::Deny => match found.iter().find_map(|(t, any, _)| any.map(|r| (t, r))) {
            Some((t, rule)) => (
                false,
                format!(
                    "{what} should be denied, but the ssh rule at line {} allows it{}",
                    rule.pos.line,
                    on(t)
                ),
            ),
            None => (true, format!("{what} is denied")),
        },
    }
}

/// The first ssh rule (a `check` rule, when `only_check`) that lets `src` log in to
/// `target` as `user`.
fn ssh_rule_allowing<'p>(
    policy: &'p TenantPolicy,
    src: &Principal,
    target: &Principal,
    user: &str,
    only_check: bool,
) -> Option<&'p SshRule> {
    policy.ssh.iter().find(|rule| {
        (!only_check || rule.action == SshAction::Check)
            && rule.src.iter().any(|s| src_matches(policy, &s.value, src))
            && rule
                .dst
                .iter()
                .any(|d| dst_covers(policy, &d.value, target, Some(src)))
            && ssh_user_allowed(rule, user)
    })
}

/// Whether a rule's `users` let one log in as `user`: root only by name, anyone else by
/// name or through `autogroup:nonroot` (Headscale's `sshUserMapAllows`).
fn ssh_user_allowed(rule: &SshRule, user: &str) -> bool {
    rule.users
        .iter()
        .any(|u| u.value == user || (user != "root" && u.value == "autogroup:nonroot"))
}

/// The first rule that lets `src` reach every port of `dst` over TCP, if any (for a
/// deny entry: any port of it).
fn rule_allowing(policy: &TenantPolicy, src: &Principal, dst: &Destination) -> Option<Pos> {
    policy
        .acls
        .iter()
        .filter(|acl| {
            acl.proto
                .as_ref()
                .is_none_or(|p| p.value.eq_ignore_ascii_case("tcp"))
        })
        .filter(|acl| acl.src.iter().any(|s| src_matches(policy, &s.value, src)))
        .find(|acl| {
            acl.dst.iter().any(|d: &Located<Destination>| {
                dst_covers(policy, &d.value.target, &dst.target, Some(src))
                    && ports_cover(&d.value.ports, &dst.ports)
            })
        })
        .map(|acl| acl.pos)
}

fn members_of<'p>(policy: &'p TenantPolicy, group: &str) -> impl Iterator<Item = String> + 'p {
    let group = group.to_string();
    policy
        .groups
        .iter()
        .filter(move |(g, _)| g.value == group)
        .flat_map(|(_, members)| members.iter().map(|m| m.value.to_ascii_lowercase()))
}

fn host_prefix(policy: &TenantPolicy, host: &str) -> Option<Prefix> {
    policy
        .hosts
        .iter()
        .find(|(h, _)| h.value == host)
        .map(|(_, p)| p.value)
}

/// The address range a principal stands for, when it is one.
fn as_prefix(policy: &TenantPolicy, p: &Principal) -> Option<Prefix> {
    match p {
        Principal::Prefix(prefix) => Some(*prefix),
        Principal::Host(h) => host_prefix(policy, h),
        _ => None,
    }
}

/// Whether a rule's source `rule` includes `who`.
fn src_matches(policy: &TenantPolicy, rule: &Principal, who: &Principal) -> bool {
    names_include(policy, rule, who)
}

/// Whether a rule's destination `rule` includes `target` (for `src`, which matters for
/// `autogroup:self`).
fn dst_covers(
    policy: &TenantPolicy,
    rule: &Principal,
    target: &Principal,
    src: Option<&Principal>,
) -> bool {
    if *rule == Principal::Autogroup(Autogroup::SelfDevices) {
        return matches!((src, target), (Some(Principal::Member(a)), Principal::Member(b)) if a == b);
    }
    names_include(policy, rule, target)
}

fn names_include(policy: &TenantPolicy, outer: &Principal, inner: &Principal) -> bool {
    if outer == inner {
        return true;
    }
    match (outer, inner) {
        (Principal::Any, Principal::Autogroup(Autogroup::Internet)) => false,
        (Principal::Any, _) => true,
        (Principal::Group(g), Principal::Member(m)) => members_of(policy, g).any(|x| x == *m),
        (Principal::Autogroup(Autogroup::Member), Principal::Member(_)) => true,
        (Principal::Autogroup(Autogroup::Member), Principal::Group(_)) => true,
        (Principal::Autogroup(Autogroup::Tagged), Principal::Tag(_)) => true,
        (Principal::Group(outer), Principal::Group(inner)) => {
            let outer: Vec<String> = members_of(policy, outer).collect();
            members_of(policy, inner).all(|m| outer.contains(&m))
        }
        _ => match (as_prefix(policy, outer), as_prefix(policy, inner)) {
            (Some(o), Some(i)) => o.contains(&i),
            _ => false,
        },
    }
}

fn port_covered(ports: &Ports, port: Option<u16>) -> bool {
    match (ports, port) {
        (Ports::Any, _) | (_, None) => true,
        (Ports::List(list), Some(p)) => list.iter().any(|(a, b)| *a <= p && p <= *b),
    }
}

/// Whether a rule's ports cover every port of a test's entry.
fn ports_cover(rule: &Ports, wanted: &Ports) -> bool {
    match (rule, wanted) {
        (Ports::Any, _) => true,
        (Ports::List(_), Ports::Any) => false,
        (Ports::List(have), Ports::List(want)) => want.iter().all(|(a, b)| {
            // A wanted range is covered when the rule's ranges cover each of its ports.
            (*a..=*b).all(|p| have.iter().any(|(x, y)| *x <= p && p <= *y))
        }),
    }
}

pub fn principal_text(p: &Principal) -> String {
    match p {
        Principal::Any => "*".into(),
        Principal::Member(m) => m.clone(),
        Principal::Group(g) => format!("group:{g}"),
        Principal::Tag(t) => format!("tag:{t}"),
        Principal::Host(h) => h.clone(),
        Principal::Prefix(p) => p.to_string(),
        Principal::Autogroup(a) => match a {
            Autogroup::Member => "autogroup:member".into(),
            Autogroup::Tagged => "autogroup:tagged".into(),
            Autogroup::SelfDevices => "autogroup:self".into(),
            Autogroup::Internet => "autogroup:internet".into(),
        },
    }
}

pub fn destination_text(d: &Destination) -> String {
    format!("{}:{}", principal_text(&d.target), d.ports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::policy::hujson::parse;
    use crate::domain::policy::model::{check, TenantContext};

    fn policy(text: &str) -> TenantPolicy {
        let ctx = TenantContext {
            members: vec!["alice@acme.com".into(), "bob@acme.com".into()],
            subnets: vec![Prefix::parse("10.1.0.0/16").unwrap()],
            dedicated_shard: false,
        };
        check(&parse(text).unwrap(), &ctx).unwrap()
    }

    const TEXT: &str = r#"{
      "groups": {"group:eng": ["alice@acme.com"]},
      "hosts": {"nas": "10.1.2.3"},
      "tagOwners": {"tag:db": ["group:eng"], "tag:web": []},
      "acls": [
        {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432"]},
        {"action": "accept", "src": ["autogroup:member"], "dst": ["tag:web:80,443", "autogroup:self:*"]},
        {"action": "accept", "proto": "udp", "src": ["bob@acme.com"], "dst": ["10.1.0.0/16:53"]},
      ],
      "tests": [
        {"src": "alice@acme.com", "accept": ["tag:db:5432", "tag:web:443", "alice@acme.com:22"], "deny": ["tag:db:22", "bob@acme.com:22"]},
        {"src": "bob@acme.com", "accept": ["tag:db:5432", "nas:53"]},
      ],
    }"#;

    #[test]
    fn sources_reach_what_their_rules_name_with_the_rules_lines() {
        let p = policy(TEXT);
        let alice = reachable_from(&p, &Principal::Member("alice@acme.com".into()));
        let lines: Vec<(u32, &str)> = alice
            .iter()
            .map(|g| (g.line, g.destination.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (6, "tag:db:5432"),
                (7, "tag:web:80,443"),
                (7, "autogroup:self:*")
            ]
        );
        let bob = reachable_from(&p, &Principal::Member("bob@acme.com".into()));
        assert_eq!(bob.len(), 3);
        assert_eq!(bob[2].proto.as_deref(), Some("udp"));
        let web = reachable_from(&p, &Principal::Tag("web".into()));
        assert!(web.is_empty(), "tags are not members");
    }

    #[test]
    fn who_reaches_a_target_and_port() {
        let p = policy(TEXT);
        let db = who_reaches(&p, &Principal::Tag("db".into()), Some(5432));
        assert_eq!(db.len(), 1);
        assert_eq!((db[0].line, db[0].source.as_str()), (6, "group:eng"));
        assert!(who_reaches(&p, &Principal::Tag("db".into()), Some(22)).is_empty());
        let nas = who_reaches(&p, &Principal::Host("nas".into()), Some(53));
        assert_eq!(nas[0].source, "bob@acme.com");
    }

    #[test]
    fn tests_pass_and_fail_with_reasons() {
        let p = policy(TEXT);
        let outcomes = run_tests(&p);
        let failed: Vec<&str> = outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.message.as_str())
            .collect();
        assert_eq!(
            failed,
            [
                "bob@acme.com → tag:db:5432 should be allowed, but no rule allows it",
                "bob@acme.com → nas:53 should be allowed, but no rule allows it",
            ],
            "the udp rule does not count for a test"
        );
        assert_eq!(outcomes.len(), 7);
        assert!(
            outcomes[2].message.contains("rule at line 7"),
            "{:?}",
            outcomes[2]
        );
    }

    const SSH: &str = r#"{
      "groups": {"group:eng": ["alice@acme.com"]},
      "tagOwners": {"tag:server": ["group:eng"], "tag:ci": []},
      "ssh": [
        {"action": "accept", "src": ["group:eng"], "dst": ["tag:server"], "users": ["root"]},
        {"action": "check", "src": ["autogroup:member"], "dst": ["tag:server", "autogroup:self"], "users": ["autogroup:nonroot"]},
        {"action": "accept", "src": ["tag:ci"], "dst": ["tag:ci"], "users": ["deploy"]},
      ],
      "sshTests": [
        {"src": "alice@acme.com", "dst": ["tag:server"], "accept": ["root", "ubuntu"], "check": ["ubuntu", "root"], "deny": ["admin"]},
        {"src": "bob@acme.com", "dst": ["tag:server", "autogroup:self", "autogroup:tagged"], "accept": ["root"], "check": ["ubuntu"]},
        {"src": "tag:ci", "dst": ["tag:ci"], "accept": ["deploy"], "deny": ["root"]},
      ],
    }"#;

    #[test]
    fn ssh_tests_say_who_logs_in_where_as_whom_and_by_which_rule() {
        let p = policy(SSH);
        let owned = run_tests(&p);
        assert_eq!(
            owned.iter().map(|o| (o.passed, o.message.as_str())).collect::<Vec<_>>(),
            [
                (true, "alice@acme.com → tag:server as root is allowed by the ssh rule at line 5"),
                (true, "alice@acme.com → tag:server as ubuntu is allowed by the ssh rule at line 6"),
                (true, "alice@acme.com → tag:server as ubuntu is allowed after a fresh login by the ssh rule at line 6"),
                (false, "alice@acme.com → tag:server as root should need a fresh login, but the ssh rule at line 5 lets it in without one"),
                (false, "alice@acme.com → tag:server as admin should be denied, but the ssh rule at line 6 allows it"),
                (false, "bob@acme.com → tag:server as root should be allowed, but no ssh rule allows it"),
                (false, "bob@acme.com → autogroup:self as root should be allowed, but no ssh rule allows it"),
                (false, "bob@acme.com → autogroup:tagged as root should be allowed, but no ssh rule allows it on tag:server"),
                (true, "bob@acme.com → tag:server as ubuntu is allowed after a fresh login by the ssh rule at line 6"),
                (true, "bob@acme.com → autogroup:self as ubuntu is allowed after a fresh login by the ssh rule at line 6"),
                (false, "bob@acme.com → autogroup:tagged as ubuntu should be allowed after a fresh login, but no ssh rule allows it on tag:ci"),
                (true, "tag:ci → tag:ci as deploy is allowed by the ssh rule at line 7"),
                (true, "tag:ci → tag:ci as root is denied"),
            ]
        );
        // Each outcome points at the login user it is about.
        assert_eq!((owned[3].line, owned[3].col), (10, 108));
    }

    #[test]
    fn a_failing_ssh_test_keeps_a_policy_from_being_saved() {
        let ctx = TenantContext {
            members: vec!["alice@acme.com".into(), "bob@acme.com".into()],
            subnets: vec![],
            dedicated_shard: false,
        };
        let (v, _) = crate::domain::policy::validate(SSH, &ctx);
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert!(!v.saveable());
        let passing = r#"{
          "tagOwners": {"tag:server": []},
          "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["tag:server"], "users": ["root"]}],
          "sshTests": [{"src": "bob@acme.com", "dst": ["tag:server"], "accept": ["root"], "deny": ["ubuntu"]}],
        }"#;
        let (v, _) = crate::domain::policy::validate(passing, &ctx);
        assert!(v.saveable(), "{v:?}");
        assert_eq!(v.tests.len(), 2);
        let untagged = r#"{"sshTests": [{"src": "bob@acme.com", "dst": ["autogroup:tagged"], "deny": ["root"]}]}"#;
        let (v, _) = crate::domain::policy::validate(untagged, &ctx);
        assert!(!v.saveable());
        assert_eq!(
            v.tests[0].message,
            "bob@acme.com → autogroup:tagged as root: autogroup:tagged stands for no device of this policy, so there is nothing to try"
        );
    }
}
