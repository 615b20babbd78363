//! Tenant policies end to end, against a real Headscale shard and real tailscaled
//! clients: two tenants on one shard, two devices each. What a tenant saves through the
//! portal's server functions is compiled with the other tenant's policy, pushed, and
//! the clients see exactly their own tenant's devices; a tenant that opens everything
//! (`*` → `*:*`) still sees only its own, and one that denies everything loses its own
//! peers while the other tenant is unaffected. Policies naming another tenant's tag, an
//! address in the tailnet range or an overlapping subnet are refused and the live
//! policy is unchanged.
//!
//! Ports: shard slot 9 (see tests/sync.rs for the port variables).

mod common;

use common::{add_shard, app_pool, secrets};

use app::data::policies::mark_dirty;
use app::data::sync::mark_due;
use app::headscale::{NewPreAuthKey, UserId};
use common::stack::Stack;
use common::{Idp, TestApp};
use reqwest::StatusCode;
use server::jobs::policy::{PolicyPusher, PushOutcome, PushSettings};
use server::jobs::sync::{SyncSettings, SyncWorker};
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn form<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// The first Tailscale address of daemon `name`.
async fn address(stack: &Stack, name: &str) -> String {
    let status: serde_json::Value =
        serde_json::from_str(&stack.status_json(name).await).expect("status JSON");
    status["Self"]["TailscaleIPs"][0]
        .as_str()
        .expect("an address")
        .to_string()
}

/// Pushes the shard now (no debounce) and returns what happened.
async fn push(pusher: &PolicyPusher, owner: &PgPool, shard: Uuid) -> PushOutcome {
    mark_dirty(&app_pool(owner), shard).await.unwrap();
    let (pushed, outcome) = pusher
        .push_next()
        .await
        .expect("claim")
        .expect("the shard was due");
    assert_eq!(pushed, shard);
    outcome
}

/// The host names of the peers `tailscale status --json` shows on daemon `name`.
async fn peers(stack: &Stack, name: &str) -> BTreeSet<String> {
    let status: serde_json::Value =
        serde_json::from_str(&stack.status_json(name).await).expect("status JSON");
    status["Peer"]
        .as_object()
        .map(|peers| {
            peers
                .values()
                .filter_map(|p| p["HostName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn eventually_peers(stack: &Stack, name: &str, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let got = peers(stack, name).await;
        if got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} sees {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn save(app: &TestApp, slug: &str, text: &str, based_on: Option<i32>) -> reqwest::Response {
    let based = based_on.map(|n| n.to_string()).unwrap_or_default();
    app.same_origin_post("/api/save_policy")
        .form(&form(&[
            ("slug", slug),
            ("text", text),
            ("comment", "from the test"),
            ("based_on", &based),
        ]))
        .send()
        .await
        .unwrap()
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn tenants_on_one_shard_reach_only_their_own_devices(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-pol", 9).await;
    let acme = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    acme.sign_in("alice").await; // acme admin
    let globex = acme.another_browser("gina").await; // globex admin
    let bob = acme.another_browser("bob").await; // acme member
    let worker = SyncWorker::new(
        app_pool(&owner),
        secrets(),
        SyncSettings::new(Duration::from_secs(1), 2),
    );
    assert!(mark_due(&app_pool(&owner), shard).await.unwrap());
    worker.run_due_once().await.expect("sync"); // the members' users
    let pusher = PolicyPusher::new(app_pool(&owner), secrets(), PushSettings::default());

    // Nothing saved yet: each tenant has the default policy (its own devices only).
    let first = push(&pusher, &owner, shard).await;
    assert!(matches!(first, PushOutcome::Pushed { .. }), "{first:?}");
    let client = real.client();
    let live = client.get_policy().await.unwrap().expect("a policy").policy;
    assert!(
        live.contains("t7k2.alice@") && live.contains("g4x9.gina@"),
        "{live}"
    );
    assert!(!live.contains("\"*\""), "never a bare *: {live}");

    // Two devices per tenant, by reusable keys of alice and gina.
    let users = client.list_users().await.unwrap();
    let user_id = |name: &str| {
        users
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("{name} on the shard"))
            .id
    };
    for (user, daemons) in [("t7k2.alice", ["a1", "a2"]), ("g4x9.gina", ["g1", "g2"])] {
        let key = client
            .create_pre_auth_key(&NewPreAuthKey {
                user: Some(UserId(user_id(user).0)),
                reusable: true,
                ephemeral: false,
                expiration: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
                acl_tags: vec![],
            })
            .await
            .expect("key");
        for d in daemons {
            stack
                .join(d, &real, key.secret.expose(), &format!("{d}-host"))
                .await;
        }
    }
    eventually_peers(&stack, "a1", &["a2-host"]).await;
    eventually_peers(&stack, "g1", &["g2-host"]).await;

    // Globex opens everything; acme writes a rule of its own. Still apart.
    let res = save(
        &globex,
        "globex",
        r#"{"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#,
        None,
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let res = save(
        &acme,
        "acme",
        r#"{
          // Acme's admin reaches everything of acme's.
          "acls": [{"action": "accept", "src": ["alice@acme.example"], "dst": ["*:*"]}],
          "tests": [{"src": "alice@acme.example", "accept": ["bob@acme.example:22"]}],
        }"#,
        None,
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let outcome = push(&pusher, &owner, shard).await;
    assert!(
        matches!(&outcome, PushOutcome::Pushed { rejected, .. } if rejected.is_empty()),
        "{outcome:?}"
    );
    eventually_peers(&stack, "a1", &["a2-host"]).await;
    eventually_peers(&stack, "g1", &["g2-host"]).await;
    eventually_peers(&stack, "g2", &["g1-host"]).await;
    // Reach, not just sight: a pong within each tenant, none across.
    let (a2, g1, g2) = (
        address(&stack, "a2").await,
        address(&stack, "g1").await,
        address(&stack, "g2").await,
    );
    for (from, to, what) in [
        ("a1", &a2, "acme reaches acme"),
        ("g1", &g2, "globex reaches globex"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !stack.ping(from, to).await {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert!(!stack.ping("a1", &g1).await, "acme never reaches globex");
    assert!(!stack.ping("g2", &a2).await, "globex never reaches acme");
    let live_revisions: Vec<(String, Option<i32>)> = sqlx::query_as(
        "select t.slug, l.revision from shard_policy_live l join tenant t on t.id = l.tenant_id
          order by t.slug",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        live_revisions,
        [
            ("acme".to_string(), Some(1)),
            ("globex".to_string(), Some(1))
        ]
    );

    // Refused with a sentence, and nothing changes: another tenant's tag, the tailnet
    // range, a failing test, a member (not an editor), a stale base revision.
    let before = client.get_policy().await.unwrap().unwrap();
    for (text, says) in [
        (
            r#"{"acls":[{"action":"accept","src":["*"],"dst":["tag:t7k2--db:22"]}]}"#,
            "tags of other tenants cannot be named",
        ),
        (
            r#"{"acls":[{"action":"accept","src":["*"],"dst":["100.64.0.1:22"]}]}"#,
            "inside the tailnet range",
        ),
        (
            r#"{"acls":[{"action":"accept","src":["alice@acme.example"],"dst":["*:*"]}]}"#,
            "not a member of this tenant",
        ),
        (
            r#"{"acls":[], "tests":[{"src":"gina@globex.example","accept":["gina@globex.example:22"]}]}"#,
            "should be allowed, but no rule allows it",
        ),
    ] {
        let res = save(&globex, "globex", text, Some(1)).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{text}");
        let body = res.text().await.unwrap();
        assert!(body.contains(says), "{text}: {body}");
    }
    let res = save(&bob, "acme", r#"{"acls":[]}"#, Some(1)).await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "a member reads, never edits"
    );
    let res = save(&acme, "acme", r#"{"acls":[]}"#, None).await;
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "based on an old revision"
    );

    // Subnets: acme declares 10.42.0.0/16; globex may not take an overlapping range.
    let subnets = |app: &TestApp, slug: &'static str, value: &'static str| {
        app.same_origin_post("/api/set_subnets")
            .form(&form(&[("slug", slug), ("subnets", value)]))
            .send()
    };
    assert_eq!(
        subnets(&acme, "acme", "10.42.0.0/16")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = subnets(&globex, "globex", "10.42.7.0/24").await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("overlaps 10.42.0.0/16"));
    let res = subnets(&globex, "globex", "100.100.0.0/16").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let declared: Vec<String> =
        sqlx::query_scalar("select unnest(subnets)::text from tenant where slug = 'globex'")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert!(declared.is_empty());
    // Pushed again, the shard's policy is byte for byte what it was: nothing refused
    // reached it. Then acme's new subnet goes live in acme's rules.
    let outcome = push(&pusher, &owner, shard).await;
    assert!(matches!(outcome, PushOutcome::Pushed { .. }), "{outcome:?}");
    let after = client.get_policy().await.unwrap().unwrap();
    assert!(after.policy.contains("10.42.0.0/16:*"), "{}", after.policy);
    let without_subnet = |text: &str| {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        for acl in v["acls"].as_array_mut().unwrap() {
            for side in ["src", "dst"] {
                acl[side]
                    .as_array_mut()
                    .unwrap()
                    .retain(|x| !x.as_str().unwrap().starts_with("10.42.0.0/16"));
            }
        }
        v
    };
    assert_eq!(
        without_subnet(&before.policy),
        without_subnet(&after.policy),
        "only acme's subnet was added"
    );

    // Globex denies everything: its devices lose each other; acme's keep theirs.
    let res = save(&globex, "globex", r#"{"acls":[]}"#, Some(1)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let outcome = push(&pusher, &owner, shard).await;
    assert!(matches!(outcome, PushOutcome::Pushed { .. }), "{outcome:?}");
    eventually_peers(&stack, "g1", &[]).await;
    eventually_peers(&stack, "a1", &["a2-host"]).await;

    // The history has both of globex's revisions; revert to the first opens it again.
    let page = globex.get("/t/globex/policy").await.text().await.unwrap();
    assert!(
        page.contains("Revision 2") && page.contains("Revision 1"),
        "{page}"
    );
    let res = globex
        .same_origin_post("/api/revert_policy")
        .form(&form(&[
            ("slug", "globex"),
            ("revision", "1"),
            ("based_on", "2"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    push(&pusher, &owner, shard).await;
    eventually_peers(&stack, "g1", &["g2-host"]).await;
    let audit: i64 =
        sqlx::query_scalar("select count(*) from audit_event where action = 'policy.saved'")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(audit, 4);

    // SSH: acme lets members into their own devices as non-root users. Its sshTests run
    // in the portal; the shard takes the namespaced rule, and it names acme's only.
    let res = save(
        &acme,
        "acme",
        r#"{
          "acls": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self:22"]}],
          "ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"],
                   "users": ["autogroup:nonroot"]}],
          "sshTests": [{"src": "alice@acme.example", "dst": ["autogroup:self"],
                        "accept": ["alice"], "deny": ["root"]}],
        }"#,
        Some(1),
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let outcome = push(&pusher, &owner, shard).await;
    assert!(
        matches!(&outcome, PushOutcome::Pushed { rejected, .. } if rejected.is_empty()),
        "{outcome:?}"
    );
    let live: serde_json::Value =
        serde_json::from_str(&client.get_policy().await.unwrap().unwrap().policy).unwrap();
    let ssh = live["ssh"].as_array().expect("an ssh section on the shard");
    assert_eq!(ssh.len(), 1, "{ssh:?}");
    let src: Vec<&str> = ssh[0]["src"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        !src.is_empty() && src.iter().all(|s| s.starts_with("t7k2.")),
        "only acme's users: {src:?}"
    );
    assert_eq!(ssh[0]["dst"], serde_json::json!(["autogroup:self"]));
    assert_eq!(ssh[0]["users"], serde_json::json!(["autogroup:nonroot"]));
    // An sshTest that fails is refused and changes nothing.
    let res = save(
        &acme,
        "acme",
        r#"{"ssh": [{"action": "accept", "src": ["autogroup:member"], "dst": ["autogroup:self"],
                     "users": ["root"]}],
            "sshTests": [{"src": "alice@acme.example", "dst": ["autogroup:self"], "deny": ["root"]}]}"#,
        Some(2),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A rule that would let an acme member into devices of the whole shard is refused.
    let res = save(
        &acme,
        "acme",
        r#"{"ssh": [{"action": "accept", "src": ["alice@acme.example"], "dst": ["autogroup:member"],
                     "users": ["root"]}]}"#,
        Some(2),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let newest: i32 = sqlx::query_scalar(
        "select max(revision) from policy_revision r join tenant t on t.id = r.tenant_id
          where t.slug = 'acme'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(newest, 2);
}

/// A revision the shard itself refuses (Headscale 0.28 does not know the protocol
/// `ipv6-icmp`, which 0.29 and the portal's checks accept) is marked refused with the
/// shard's reason, the previous policy stays in force for that tenant, and the other
/// tenant's new revision goes live in the same push.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_revision_the_shard_refuses_holds_back_no_other_tenant(owner: PgPool) {
    let bin = std::env::var("TEST_HS028_BIN").expect(
        "TEST_HS028_BIN: the Headscale 0.28 binary (dev/test builds it with ensure_headscale_version)",
    );
    let stack = Stack::new();
    let real = stack.start_shard_with("hs-pol28", 10, &bin).await;
    let acme = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    acme.sign_in("alice").await;
    let globex = acme.another_browser("gina").await;
    let pusher = PolicyPusher::new(app_pool(&owner), secrets(), PushSettings::default());
    let first = push(&pusher, &owner, shard).await;
    assert!(matches!(first, PushOutcome::Pushed { .. }), "{first:?}");

    let res = save(
        &acme,
        "acme",
        r#"{"acls":[{"action":"accept","proto":"ipv6-icmp","src":["*"],"dst":["*:*"]}]}"#,
        None,
    )
    .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the portal's checks accept it"
    );
    let res = save(
        &globex,
        "globex",
        r#"{"acls":[{"action":"accept","src":["gina@globex.example"],"dst":["*:22"]}]}"#,
        None,
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let outcome = push(&pusher, &owner, shard).await;
    let PushOutcome::Pushed { rejected, .. } = &outcome else {
        panic!("the push must go through for globex: {outcome:?}");
    };
    assert_eq!(rejected, &[("t7k2".to_string(), 1)]);
    let (reason,): (Option<String>,) = sqlx::query_as(
        "select rejected_reason from policy_revision r join tenant t on t.id = r.tenant_id
          where t.slug = 'acme' and r.revision = 1",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let reason = reason.expect("a reason");
    assert!(reason.to_lowercase().contains("ipv6-icmp"), "{reason}");
    assert!(
        !reason.contains("g4x9"),
        "nothing of the other tenant: {reason}"
    );
    let live: Vec<(String, Option<i32>)> = sqlx::query_as(
        "select t.slug, l.revision from shard_policy_live l join tenant t on t.id = l.tenant_id
          order by t.slug",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        live,
        [("acme".to_string(), None), ("globex".to_string(), Some(1))],
        "acme keeps the default, globex's revision is live"
    );
    let policy = real.client().get_policy().await.unwrap().unwrap().policy;
    assert!(
        policy.contains("g4x9.gina@:22") && !policy.contains("ipv6-icmp"),
        "{policy}"
    );
    let page = acme.get("/t/acme/policy").await.text().await.unwrap();
    assert!(
        page.contains("The shard refused it"),
        "shown in the history"
    );

    // Fixed by the next revision: it goes live.
    let res = save(
        &acme,
        "acme",
        r#"{"acls":[{"action":"accept","proto":"icmp","src":["*"],"dst":["*:*"]}]}"#,
        Some(1),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let outcome = push(&pusher, &owner, shard).await;
    assert!(
        matches!(&outcome, PushOutcome::Pushed { rejected, .. } if rejected.is_empty()),
        "{outcome:?}"
    );
}
