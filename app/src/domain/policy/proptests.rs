//! Property tests of the compiler: random policies of several tenants on one shard,
//! with random devices, compiled, and evaluated as Headscale would filter.
//!
//! - No device of one tenant may reach a device of another (`reach::shard_pairs`).
//! - Each tenant's rules keep their meaning: the pairs the compiled policy allows within
//!   a tenant are exactly those its own policy allows (`reach::tenant_pairs`).
//! - The same for ssh rules: no ssh login across tenants, and within a tenant exactly the
//!   logins (device, device, action and local user) its own ssh rules allow
//!   (`reach::shard_ssh_logins`, `reach::tenant_ssh_logins`).
//! - The compiled policy passes the isolation check, and compiling twice gives the same
//!   bytes.

use super::compile::{compile, TenantInput};
use super::hujson::parse;
use super::isolation::{self, ShardTenants};
use super::model::{check, TenantContext};
use super::reach::{shard_pairs, shard_ssh_logins, tenant_pairs, tenant_ssh_logins, Device};
use crate::domain::routes::Prefix;
use proptest::prelude::*;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

const TAGS: [&str; 3] = ["db", "web", "ci"];
const GROUPS: [&str; 2] = ["eng", "ops"];

/// A rule as generated: sources and (destination, port; 0 for any) as indexes into the
/// tenant's vocabulary.
type GenRule = (Vec<usize>, Vec<(usize, u16)>);

/// An ssh rule as generated: sources and destinations as indexes into the tenant's ssh
/// vocabulary, local users as a bit set of `LOGINS`, and whether it is a `check` rule.
type GenSsh = (Vec<usize>, Vec<usize>, u8, bool);

const LOGINS: [&str; 3] = ["root", "autogroup:nonroot", "ubuntu"];

/// One tenant as generated: members, its tags, groups, rules (as indexes into its
/// vocabulary), devices.
#[derive(Debug, Clone)]
struct GenTenant {
    members: usize,
    tags: usize,
    groups: Vec<Vec<usize>>,
    rules: Vec<GenRule>,
    ssh: Vec<GenSsh>,
    devices: Vec<(bool, usize)>,
}

fn gen_tenant() -> impl Strategy<Value = GenTenant> {
    (1usize..=3, 0usize..=3).prop_flat_map(|(members, tags)| {
        (
            Just(members),
            Just(tags),
            prop::collection::vec(prop::collection::vec(0..members, 0..=2), 0..=2),
            prop::collection::vec(
                (
                    prop::collection::vec(0usize..64, 1..=3),
                    prop::collection::vec(
                        (0usize..64, prop_oneof![Just(0u16), Just(22), Just(443)]),
                        1..=3,
                    ),
                ),
                0..=4,
            ),
            prop::collection::vec(
                (
                    prop::collection::vec(0usize..64, 1..=2),
                    prop::collection::vec(0usize..64, 1..=2),
                    1u8..8,
                    any::<bool>(),
                ),
                0..=2,
            ),
            prop::collection::vec((any::<bool>(), 0usize..64), 0..=4),
        )
            .prop_map(|(members, tags, groups, rules, ssh, devices)| GenTenant {
                members,
                tags,
                groups,
                rules,
                ssh,
                devices,
            })
    })
}

struct Built {
    input: TenantInput,
    devices: Vec<Device>,
}

/// The tenant's policy text and inputs; `n` numbers tenants (codes, subnets, addresses).
fn build(n: usize, g: &GenTenant, next_ip: &mut u32) -> Built {
    let code = format!("t{n}aa");
    let emails: Vec<String> = (0..g.members)
        .map(|m| format!("m{m}@t{n}.example"))
        .collect();
    let subnet = format!("10.{n}.0.0/16");
    let groups: Vec<String> = GROUPS[..g.groups.len()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut vocab: Vec<String> = vec![
        "*".into(),
        "autogroup:member".into(),
        format!("10.{n}.1.0/24"),
    ];
    vocab.extend(emails.iter().cloned());
    vocab.extend(groups.iter().map(|g| format!("group:{g}")));
    vocab.extend(TAGS[..g.tags].iter().map(|t| format!("tag:{t}")));
    if g.tags > 0 {
        vocab.push("autogroup:tagged".into());
    }
    let mut dst_vocab = vocab.clone();
    dst_vocab.push("autogroup:self".into());
    let rules: Vec<_> = g
        .rules
        .iter()
        .map(|(src, dst)| {
            json!({
                "action": "accept",
                "src": src.iter().map(|i| vocab[i % vocab.len()].clone()).collect::<Vec<_>>(),
                "dst": dst.iter().map(|(i, port)| {
                    let port = if *port == 0 { "*".to_string() } else { port.to_string() };
                    format!("{}:{port}", dst_vocab[i % dst_vocab.len()])
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    // SSH: what Headscale takes (facts §8). Tags in the sources reach tags only; a
    // member as a destination only from that member alone.
    let mut ssh_src: Vec<String> = emails.clone();
    ssh_src.extend(groups.iter().map(|g| format!("group:{g}")));
    ssh_src.extend(TAGS[..g.tags].iter().map(|t| format!("tag:{t}")));
    ssh_src.push("autogroup:member".into());
    let mut ssh_dst: Vec<String> = TAGS[..g.tags].iter().map(|t| format!("tag:{t}")).collect();
    if g.tags > 0 {
        ssh_src.push("autogroup:tagged".into());
        ssh_dst.push("autogroup:tagged".into());
    }
    ssh_dst.push("autogroup:self".into());
    ssh_dst.extend(emails.iter().cloned());
    let ssh: Vec<_> = g
        .ssh
        .iter()
        .filter_map(|(src, dst, users, check)| {
            let src: Vec<String> = src
                .iter()
                .map(|i| ssh_src[i % ssh_src.len()].clone())
                .collect();
            let tagged = src
                .iter()
                .any(|s| s.starts_with("tag:") || s == "autogroup:tagged");
            let dst: Vec<String> = dst
                .iter()
                .map(|i| ssh_dst[i % ssh_dst.len()].clone())
                .filter(|d| {
                    let user_owned = d.contains('@') || d == "autogroup:self";
                    !(tagged && user_owned) && (!d.contains('@') || src.iter().all(|s| s == d))
                })
                .collect();
            let users: Vec<&str> = (0..LOGINS.len())
                .filter(|b| users & (1 << b) != 0)
                .map(|b| LOGINS[b])
                .collect();
            (!dst.is_empty()).then(|| {
                json!({
                    "action": if *check { "check" } else { "accept" },
                    "src": src,
                    "dst": dst,
                    "users": users,
                })
            })
        })
        .collect();
    let text = json!({
        "groups": groups.iter().zip(&g.groups).map(|(name, members)| {
            (format!("group:{name}"), members.iter().map(|m| emails[*m].clone()).collect::<Vec<_>>())
        }).collect::<BTreeMap<_, _>>(),
        "tagOwners": TAGS[..g.tags].iter().map(|t| (format!("tag:{t}"), vec![emails[0].clone()])).collect::<BTreeMap<_, _>>(),
        "acls": rules,
        "ssh": ssh,
    })
    .to_string();
    let subnets = vec![Prefix::parse(&subnet).unwrap()];
    let policy = check(
        &parse(&text).unwrap(),
        &TenantContext {
            members: emails.clone(),
            subnets: subnets.clone(),
            dedicated_shard: false,
        },
    )
    .unwrap_or_else(|e| panic!("generated policy refused: {e:?}\n{text}"));
    let users: BTreeMap<String, String> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| (e.clone(), format!("{code}.m{i}")))
        .collect();
    let devices: Vec<Device> = g
        .devices
        .iter()
        .map(|(tagged, k)| {
            *next_ip += 1;
            let ip = IpAddr::V4(Ipv4Addr::from(0x6440_0000 + *next_ip));
            if *tagged && g.tags > 0 {
                Device {
                    user: None,
                    tags: vec![format!("tag:{code}--{}", TAGS[k % g.tags])],
                    ip,
                }
            } else {
                Device {
                    user: Some(format!("{code}.m{}", k % g.members)),
                    tags: vec![],
                    ip,
                }
            }
        })
        .collect();
    Built {
        input: TenantInput {
            code,
            policy,
            users,
            subnets,
            device_ips: devices.iter().map(|d| d.ip).collect(),
        },
        devices,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn compiled_policies_isolate_tenants_and_keep_their_meaning(
        tenants in prop::collection::vec(gen_tenant(), 2..=3)
    ) {
        let mut next_ip = 0;
        let built: Vec<Built> = tenants.iter().enumerate().map(|(n, g)| build(n, g, &mut next_ip)).collect();
        let inputs: Vec<TenantInput> = built.iter().map(|b| b.input.clone()).collect();
        let compiled = compile(&inputs, true).expect("disjoint subnets compile");
        prop_assert_eq!(compiled.text(), compile(&inputs, true).unwrap().text());
        let shard = ShardTenants {
            subnets: inputs.iter().map(|t| (t.code.clone(), t.subnets.clone())).collect(),
        };
        prop_assert!(isolation::check_all(&compiled, &shard).is_ok());
        prop_assert!(isolation::check(&compiled.policy, &compiled.acl_sources, &shard).is_ok());

        // All devices of the shard, numbered; each tenant's own pairs in shard numbers.
        let mut all = Vec::new();
        let mut owner = Vec::new();
        let mut expected = BTreeSet::new();
        let mut expected_ssh = BTreeSet::new();
        for (t, b) in built.iter().enumerate() {
            let base = all.len();
            all.extend(b.devices.iter().cloned());
            owner.extend(std::iter::repeat_n(t, b.devices.len()));
            for (s, d) in tenant_pairs(&b.input.policy, &b.input.code, &b.input.users, &b.devices) {
                expected.insert((base + s, base + d));
            }
            for (s, d, login) in tenant_ssh_logins(&b.input.policy, &b.input.code, &b.input.users, &b.devices) {
                expected_ssh.insert((base + s, base + d, login));
            }
        }
        let got = shard_pairs(&compiled.policy, &all);
        for (s, d) in &got {
            prop_assert_eq!(owner[*s], owner[*d], "device {} reaches device {} of another tenant\n{}", s, d, compiled.text());
        }
        prop_assert_eq!(got, expected, "{}", compiled.text());
        let got_ssh = shard_ssh_logins(&compiled.policy, &all);
        for (s, d, login) in &got_ssh {
            prop_assert_eq!(owner[*s], owner[*d], "device {} logs in to device {} of another tenant ({})\n{}", s, d, login, compiled.text());
        }
        prop_assert_eq!(got_ssh, expected_ssh, "{}", compiled.text());
    }
}
