//! The fuzzer's corpus (`fuzz/corpus/policy/`, see `fuzz/README.md`) run as a test, so
//! every input the fuzzer ever kept (hand-written seeds and what `cargo fuzz cmin` left)
//! is checked on every `cargo test`, without nightly or libFuzzer.
//!
//! The checks are those of `fuzz/fuzz_targets/policy.rs`, written again here (the fuzz
//! crate is a workspace of its own): the highlighter gives the text back; `validate`
//! answers a policy exactly when it reports no errors; a policy it accepts, compiled
//! beside a second fixed tenant with the generated tests, compiles and passes the
//! isolation check. Seeds named `valid-*` must be accepted and `broken-*` refused, so a
//! seed cannot silently stop exercising the path it was written for.

use super::compile::{compile, TenantInput};
use super::highlight;
use super::isolation::{self, ShardTenants};
use super::model::{TenantContext, TenantPolicy};
use super::validate;
use crate::domain::routes::Prefix;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

const MAX_LEN: usize = 64 * 1024;

const CODE: &str = "t7k2";
const MEMBERS: [&str; 2] = ["alice@acme.com", "bob@acme.com"];
const SUBNET: &str = "10.1.0.0/16";

/// The neighbour on the shard; its code makes `tag:g4x9--db` in a seed the neighbour's.
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

fn tenant(code: &str, members: &[&str], subnet: &str, policy: TenantPolicy, ip: u8) -> TenantInput {
    TenantInput {
        code: code.into(),
        policy,
        users: members
            .iter()
            .map(|m| {
                let handle = m.split('@').next().unwrap_or_default();
                (m.to_string(), format!("{code}.{handle}"))
            })
            .collect::<BTreeMap<_, _>>(),
        subnets: vec![Prefix::parse(subnet).expect("a constant subnet")],
        device_ips: vec![IpAddr::V4(Ipv4Addr::new(100, 64, 0, ip))],
    }
}

/// The fuzz target's checks; `Some(true)` when the text was accepted (and compiled and
/// isolated), `Some(false)` when refused, `None` when not a text the target looks at.
fn check_input(name: &str, data: &[u8], other: &TenantInput) -> Option<bool> {
    if data.len() > MAX_LEN {
        return None;
    }
    let text = std::str::from_utf8(data).ok()?;

    let joined: Vec<String> = highlight::lines(text)
        .into_iter()
        .map(|line| line.into_iter().map(|(_, piece)| piece).collect())
        .collect();
    assert_eq!(
        joined.join("\n"),
        text,
        "{name}: the highlighter changed the text"
    );

    let (validation, policy) = validate(text, &context(&MEMBERS, SUBNET));
    assert_eq!(
        validation.errors.is_empty(),
        policy.is_some(),
        "{name}: a policy exactly when there are no errors: {validation:?}"
    );
    let Some(policy) = policy else {
        return Some(false);
    };
    let inputs = [tenant(CODE, &MEMBERS, SUBNET, policy, 1), other.clone()];
    let compiled = compile(&inputs, true).unwrap_or_else(|e| {
        panic!("{name}: a checked policy beside a disjoint tenant was refused: {e:?}")
    });
    let shard = ShardTenants {
        subnets: inputs
            .iter()
            .map(|t| (t.code.clone(), t.subnets.clone()))
            .collect(),
    };
    if let Err(violations) = isolation::check_all(&compiled, &shard) {
        panic!(
            "{name}: isolation violated: {violations:#?}\ncompiled:\n{}",
            compiled.text()
        );
    }
    Some(true)
}

#[test]
fn the_fuzz_corpus_passes_the_fuzz_targets_checks() {
    let (v, other) = validate(OTHER_POLICY, &context(&OTHER_MEMBERS, OTHER_SUBNET));
    let other = tenant(
        OTHER_CODE,
        &OTHER_MEMBERS,
        OTHER_SUBNET,
        other.unwrap_or_else(|| panic!("the fixed neighbour policy: {v:?}")),
        2,
    );

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/policy");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();

    let mut accepted = 0;
    for path in &paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let outcome = check_input(&name, &data, &other);
        if outcome == Some(true) {
            accepted += 1;
        }
        if name.starts_with("valid-") {
            assert_eq!(outcome, Some(true), "{name}: a valid seed was refused");
        }
        if name.starts_with("broken-") {
            assert_ne!(outcome, Some(true), "{name}: a broken seed was accepted");
        }
    }
    assert!(
        paths.len() >= 20,
        "only {} files in {}",
        paths.len(),
        dir.display()
    );
    assert!(
        accepted >= 5,
        "only {accepted} accepted policies: the compile and isolation checks are barely run"
    );
}
