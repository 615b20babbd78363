//! Fuzzes a tenant's policy text the way the editor and the save path see it.
//!
//! For any UTF-8 input (at most 64 KiB; the editor's texts are far smaller):
//! - the highlighter's pieces, joined with `\n` between lines, give the text back;
//! - `validate` (HuJSON parse, check, the tenant's tests) answers without panicking, and
//!   answers a policy exactly when it reports no errors;
//! - a policy it accepts, compiled with a second fixed tenant on the same shard (with
//!   the generated cross-tenant tests), compiles, and the compiled policy passes
//!   `isolation::check_all`. The two tenants' subnets are disjoint and the check keeps every
//!   address and route inside the tenant's own subnet, so a compile error or an
//!   isolation violation here is a bug in the checker or the compiler.
//!
//! `app/src/domain/policy/corpus_tests.rs` runs the same checks over the seed corpus in
//! the normal test suite.
#![no_main]

use app::domain::policy::compile::{compile, TenantInput};
use app::domain::policy::model::{TenantContext, TenantPolicy};
use app::domain::policy::{highlight, isolation, validate};
use app::domain::routes::Prefix;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

const MAX_LEN: usize = 64 * 1024;

/// The fuzzed tenant: code `t7k2`, two members, one subnet, on a shared shard.
const CODE: &str = "t7k2";
const MEMBERS: [&str; 2] = ["alice@acme.com", "bob@acme.com"];
const SUBNET: &str = "10.1.0.0/16";

/// Its neighbour on the shard: code `g4x9` (so `tag:g4x9--db` in a fuzzed text names
/// the neighbour's tag), its own subnet and a policy using every section.
const OTHER_CODE: &str = "g4x9";
const OTHER_MEMBERS: [&str; 2] = ["carol@globex.com", "dan@globex.com"];
const OTHER_SUBNET: &str = "10.2.0.0/16";
const OTHER_POLICY: &str = r#"{
  "groups": {"group:eng": ["carol@globex.com", "dan@globex.com"]},
  "hosts": {"nas": "10.2.0.10"},
  "tagOwners": {"tag:db": ["group:eng"]},
  "acls": [
    {"action": "accept", "src": ["group:eng"], "dst": ["tag:db:5432", "nas:445"]},
    {"action": "accept", "src": ["*"], "dst": ["*:*", "autogroup:self:22"]},
  ],
  "autoApprovers": {"routes": {"10.2.1.0/24": ["tag:db"]}, "exitNode": ["group:eng"]},
  "tests": [{"src": "carol@globex.com", "accept": ["tag:db:5432"]}],
}"#;

fn context(members: &[&str], subnet: &str) -> TenantContext {
    TenantContext {
        members: members.iter().map(|m| m.to_string()).collect(),
        subnets: vec![Prefix::parse(subnet).expect("a constant subnet")],
        dedicated_shard: false,
    }
}

/// Members' Headscale users on the shard: `alice@acme.com` → `t7k2.alice`.
fn users(code: &str, members: &[&str]) -> BTreeMap<String, String> {
    members
        .iter()
        .map(|m| {
            let handle = m.split('@').next().unwrap_or_default();
            (m.to_string(), format!("{code}.{handle}"))
        })
        .collect()
}

fn tenant(code: &str, members: &[&str], subnet: &str, policy: TenantPolicy, ip: u8) -> TenantInput {
    TenantInput {
        code: code.into(),
        policy,
        users: users(code, members),
        subnets: vec![Prefix::parse(subnet).expect("a constant subnet")],
        device_ips: vec![IpAddr::V4(Ipv4Addr::new(100, 64, 0, ip))],
    }
}

fn other_tenant() -> &'static TenantInput {
    static OTHER: OnceLock<TenantInput> = OnceLock::new();
    OTHER.get_or_init(|| {
        let (v, policy) = validate(OTHER_POLICY, &context(&OTHER_MEMBERS, OTHER_SUBNET));
        let policy = policy.unwrap_or_else(|| panic!("the fixed neighbour policy: {v:?}"));
        tenant(OTHER_CODE, &OTHER_MEMBERS, OTHER_SUBNET, policy, 2)
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_LEN {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let joined: Vec<String> = highlight::lines(text)
        .into_iter()
        .map(|line| line.into_iter().map(|(_, piece)| piece).collect())
        .collect();
    assert_eq!(
        joined.join("\n"),
        text,
        "the highlighter lost or added text"
    );

    let (validation, policy) = validate(text, &context(&MEMBERS, SUBNET));
    assert_eq!(
        validation.errors.is_empty(),
        policy.is_some(),
        "a policy exactly when there are no errors: {validation:?}"
    );
    let Some(policy) = policy else {
        return;
    };

    let inputs = [
        tenant(CODE, &MEMBERS, SUBNET, policy, 1),
        other_tenant().clone(),
    ];
    let compiled = compile(&inputs, true)
        .unwrap_or_else(|e| panic!("a checked policy beside a disjoint tenant was refused: {e:?}"));
    let shard = isolation::ShardTenants {
        subnets: inputs
            .iter()
            .map(|t| (t.code.clone(), t.subnets.clone()))
            .collect(),
    };
    if let Err(violations) = isolation::check_all(&compiled, &shard) {
        panic!(
            "isolation violated: {violations:#?}\ncompiled:\n{}",
            compiled.text()
        );
    }
});
