//! Devices and pre-auth keys through the portal's server functions and pages, against
//! a real Headscale shard and a real tailscaled: a member mints a key, a device joins
//! with it, and the device is found, renamed, expired and deleted in the portal; quotas
//! refuse minting without touching the shard; and no action reaches another tenant's
//! device or key, or another member's.

mod common;

use common::{add_shard, app_pool, secrets};

use app::api::keys::MintedKey;
use app::data::sync::mark_due;
use app::headscale::{HeadscaleErrorKind, NodeId};
use common::stack::Stack;
use common::{Idp, TestApp};
use reqwest::StatusCode;
use server::jobs::sync::{SyncSettings, SyncWorker};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The TestApp portal's secret key, so the worker can open what the portal sealed.
async fn sync(worker: &SyncWorker, owner: &PgPool, shard: Uuid) {
    assert!(mark_due(&app_pool(owner), shard).await.unwrap());
    worker.run_due_once().await.expect("sync");
}

async fn node_id(owner: &PgPool, name: &str) -> Option<(i64, bool)> {
    sqlx::query_as("select node_id, online from node where given_name = $1 and removed_at is null")
        .bind(name)
        .fetch_optional(owner)
        .await
        .unwrap()
}

fn form<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<(&'a str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_member_mints_a_key_and_manages_the_device_that_joined_with_it(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-dev-a", 6).await;
    let app = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    app.sign_in("bob").await; // an acme member
    let worker = SyncWorker::new(
        app_pool(&owner),
        secrets(),
        SyncSettings::new(Duration::from_secs(1), 2),
    );
    sync(&worker, &owner, shard).await; // bob's user on the shard

    // Mint: the key comes back once, with commands for this shard.
    let res = app
        .same_origin_post("/api/create_key")
        .form(&form(&[
            ("slug", "acme"),
            ("expiry_days", "1"),
            ("description", "laptop"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let minted: MintedKey = res.json().await.unwrap();
    assert!(minted.key.starts_with("hskey-auth-"), "{}", minted.prefix);
    assert_eq!(
        minted.tailscale_up,
        format!(
            "tailscale up --login-server={} --authkey={}",
            real.url, minted.key
        )
    );
    assert!(minted.k3s.contains(&format!(
        "joinKey={},controlServerURL={}",
        minted.key, real.url
    )));
    let keys_page = app.get("/t/acme/keys").await.text().await.unwrap();
    assert!(keys_page.contains(&minted.prefix) && keys_page.contains("laptop"));
    assert!(
        !keys_page.contains(&minted.key),
        "the full key is never shown again"
    );
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from pre_auth_key where key_prefix = $1 and tenant_id is not null",
    )
    .bind(&minted.prefix)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(stored, 1);

    // A real device joins with it and shows up online.
    stack.join("bob", &real, &minted.key, "bob-laptop").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (id, _) = loop {
        sync(&worker, &owner, shard).await;
        if let Some(found) = node_id(&owner, "bob-laptop").await.filter(|n| n.1) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the device never showed up online"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let list = app.get("/t/acme/devices").await.text().await.unwrap();
    assert!(
        list.contains("bob-laptop") && list.contains("online"),
        "{list}"
    );
    let none = app
        .get("/t/acme/devices?q=nothing-like-it")
        .await
        .text()
        .await
        .unwrap();
    assert!(none.contains("No device matches these filters."));
    let by_ip = app
        .get("/t/acme/devices?q=100.64")
        .await
        .text()
        .await
        .unwrap();
    assert!(by_ip.contains("bob-laptop"));

    // Rename: a bad name is refused; a good one reaches the shard and the client.
    let node = id.to_string();
    let post = |path: &'static str, extra: &[(&'static str, &'static str)]| {
        let mut f = form(&[("slug", "acme"), ("node_id", &node)]);
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        app.same_origin_post(path).form(&f).send()
    };
    let res = post("/api/rename_device", &[("name", "Bad Name!")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = post("/api/rename_device", &[("name", "bob-work")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let client = real.client();
    assert_eq!(
        client.get_node(NodeId(id as u64)).await.unwrap().given_name,
        "bob-work"
    );
    assert!(
        node_id(&owner, "bob-work").await.is_some(),
        "written through to the mirror"
    );
    // The client learns its new name at its next map update.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = stack.status_json("bob").await;
        if status.contains("bob-work") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client never saw its new name: {status}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Expire: the shard expires the node.
    let res = post("/api/expire_device", &[]).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let expired = client.get_node(NodeId(id as u64)).await.unwrap();
    assert!(expired.is_expired(time::OffsetDateTime::now_utc() + time::Duration::seconds(1)));

    // Delete: only with the name typed; then gone from the shard and the list.
    let res = post("/api/delete_device", &[("confirm", "bob")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        client.get_node(NodeId(id as u64)).await.is_ok(),
        "not deleted"
    );
    let res = post("/api/delete_device", &[("confirm", "bob-work")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        client.get_node(NodeId(id as u64)).await.unwrap_err().kind(),
        HeadscaleErrorKind::NotFound
    );
    assert!(node_id(&owner, "bob-work").await.is_none());

    // Each change is in the audit log with what it changed; the refused rename and the
    // refused delete are not.
    let events: Vec<(String, String, serde_json::Value)> = sqlx::query_as(
        "select action, target, detail from audit_event
          where action like 'device.%' or action like 'key.%' order by id",
    )
    .fetch_all(&owner)
    .await
    .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "key.created",
            "device.renamed",
            "device.expired",
            "device.deleted"
        ],
        "{events:?}"
    );
    assert_eq!(events[1].1, "bob-work");
    assert_eq!(events[1].2["before"], "bob-laptop");
    assert_eq!(events[1].2["after"], "bob-work");
    assert_eq!(events[3].1, "bob-work");
    // The minted key is named by its prefix, never written out.
    assert_eq!(events[0].1, format!("hskey-auth-{}-…", minted.prefix));
    let everything = format!("{events:?}");
    assert!(!everything.contains(&minted.key), "{everything}");

    // Quota: at the key quota, minting is refused and nothing is made on the shard.
    let before = client.list_pre_auth_keys().await.unwrap().len();
    sqlx::query("update tenant set key_quota = 0 where slug = 'acme'")
        .execute(&owner)
        .await
        .unwrap();
    let res = app
        .same_origin_post("/api/create_key")
        .form(&form(&[("slug", "acme"), ("expiry_days", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("its quota is 0"));
    assert_eq!(client.list_pre_auth_keys().await.unwrap().len(), before);
}

/// Interactive registration: a real `tailscale up` without a key prints a URL; an
/// admin pastes it and chooses the member; the device is that member's. An unknown or
/// malformed ID, or a tenant at its device quota, is refused and registers nothing.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn an_admin_registers_a_waiting_device_to_a_member(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-dev-b", 7).await;
    let app = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    app.sign_in("alice").await; // acme admin
    let bob = app.another_browser("bob").await; // acme member
    let worker = SyncWorker::new(
        app_pool(&owner),
        secrets(),
        SyncSettings::new(Duration::from_secs(1), 2),
    );
    sync(&worker, &owner, shard).await; // both members' users

    let (pending, url) = stack.up_interactive("bobs", &real, "bob-desktop").await;
    assert!(url.contains("/register/"), "{url}");
    let register = |registration: &str, owner_field: &str| {
        app.same_origin_post("/api/register_device")
            .form(&form(&[
                ("slug", "acme"),
                ("registration", registration),
                ("owner", owner_field),
            ]))
            .send()
    };
    // Unknown and malformed IDs: a sentence, nothing registered.
    let res = register("hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA", "t7k2.bob")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text().await.unwrap().contains("No device is waiting"));
    let res = register("not-an-id", "t7k2.bob").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // At the device quota: refused before the shard is asked.
    sqlx::query("update tenant set device_quota = 1 where slug = 'acme'")
        .execute(&owner)
        .await
        .unwrap();
    sqlx::query(
        "insert into node (shard_id, node_id, tenant_id, given_name, name, user_name, online, register_method)
         select $1, 999, id, 'placeholder', 'placeholder', 't7k2.alice', false, 'cli' from tenant where slug = 'acme'",
    )
    .bind(shard)
    .execute(&owner)
    .await
    .unwrap();
    let res = register(&url, "t7k2.bob").await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(res.text().await.unwrap().contains("its quota is 1"));
    assert!(real.client().list_nodes().await.unwrap().is_empty());
    sqlx::query("update tenant set device_quota = 100 where slug = 'acme'")
        .execute(&owner)
        .await
        .unwrap();

    // The whole URL, for bob.
    let res = register(&url, "t7k2.bob").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let node_id: i64 = res.json().await.unwrap();
    let node = real
        .client()
        .get_node(NodeId(node_id as u64))
        .await
        .unwrap();
    assert_eq!(node.user.map(|u| u.name).as_deref(), Some("t7k2.bob"));
    let out = tokio::time::timeout(Duration::from_secs(60), pending.wait_with_output())
        .await
        .expect("tailscale up finishes once registered")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Bob sees it as his; it is in the mirror at once.
    let page = bob.get("/t/acme/devices").await.text().await.unwrap();
    assert!(page.contains("bob-desktop"), "{page}");
    let page = bob.get(&format!("/t/acme/devices/{node_id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
}

/// Mints a key for the signed-in person of `who` in `slug`; returns the full key.
async fn mint(who: &TestApp, slug: &str) -> String {
    let res = who
        .same_origin_post("/api/create_key")
        .form(&form(&[("slug", slug), ("expiry_days", "1")]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<MintedKey>().await.unwrap().key
}

/// Routes: a device's advertised subnet route is approved; the same prefix from another
/// tenant on the shard is refused with the reason (Headscale elects one router per
/// prefix for the whole shard); an exit node is approved as both exit routes. Tags: only
/// the tenant's own, only those the shard's policy defines, only by device managers.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn routes_never_overlap_between_tenants_and_tags_stay_in_the_tenants_namespace(
    owner: PgPool,
) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-dev-c", 8).await;
    let app = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    app.sign_in("alice").await; // acme admin
    let gina = app.another_browser("gina").await; // globex admin
    let bob = app.another_browser("bob").await; // acme member
    let worker = SyncWorker::new(
        app_pool(&owner),
        secrets(),
        SyncSettings::new(Duration::from_secs(1), 2),
    );
    sync(&worker, &owner, shard).await;

    let alice_key = mint(&app, "acme").await;
    let gina_key = mint(&gina, "globex").await;
    stack
        .join_with(
            "alices",
            &real,
            &alice_key,
            "acme-router",
            &[
                "--advertise-routes=10.42.0.0/16,192.168.50.0/24",
                "--advertise-exit-node",
            ],
        )
        .await;
    stack
        .join_with(
            "ginas",
            &real,
            &gina_key,
            "globex-router",
            &["--advertise-routes=10.42.0.0/16"],
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let (acme_node, globex_node) = loop {
        sync(&worker, &owner, shard).await;
        let ids: Vec<(String, i64)> = sqlx::query_as(
            "select given_name, node_id from node where cardinality(available_routes) > 0 order by given_name",
        )
        .fetch_all(&owner)
        .await
        .unwrap();
        if ids.len() == 2 {
            break (ids[0].1, ids[1].1);
        }
        assert!(
            Instant::now() < deadline,
            "routers never advertised: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let route = |who: &TestApp, slug: &str, node: i64, route: &str, approve: &str| {
        let node = node.to_string();
        let f = form(&[
            ("slug", slug),
            ("node_id", &node),
            ("route", route),
            ("approve", approve),
        ]);
        who.same_origin_post("/api/set_device_route")
            .form(&f)
            .send()
    };
    let client = real.client();
    let approved = |id: i64| {
        let client = client.clone();
        async move {
            client
                .get_node(NodeId(id as u64))
                .await
                .unwrap()
                .approved_routes
        }
    };

    // Acme first: approved.
    let res = route(&app, "acme", acme_node, "10.42.0.0/16", "true")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(approved(acme_node).await, ["10.42.0.0/16"]);
    // Globex, same prefix: refused with the reason, nothing approved on the shard.
    let res = route(&gina, "globex", globex_node, "10.42.0.0/16", "true")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("overlaps 10.42.0.0/16") && body.contains("another tenant"),
        "{body}"
    );
    assert!(
        !body.contains("acme") && !body.contains("t7k2"),
        "names no other tenant: {body}"
    );
    assert!(approved(globex_node).await.is_empty());
    // A route the device does not advertise, and nonsense: refused.
    let res = route(&app, "acme", acme_node, "10.99.0.0/16", "true")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let res = route(&app, "acme", acme_node, "10.42.0.0", "true")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // The exit node: both exit routes; withdrawing takes both away again.
    let res = route(&app, "acme", acme_node, "0.0.0.0/0", "true")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut got = approved(acme_node).await;
    got.sort();
    assert_eq!(got, ["0.0.0.0/0", "10.42.0.0/16", "::/0"]);
    let res = route(&app, "acme", acme_node, "0.0.0.0/0", "false")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(approved(acme_node).await, ["10.42.0.0/16"]);

    // Tags: the shard's policy defines acme's tag:server (as the policy compiler will).
    client
        .set_policy(
            r#"{"tagOwners":{"tag:t7k2--server":["t7k2.alice@"]},"acls":[{"action":"accept","src":["*"],"dst":["*:*"]}]}"#,
        )
        .await
        .expect("policy");
    let tags = |who: &TestApp, value: &str| {
        let node = acme_node.to_string();
        let f = form(&[("slug", "acme"), ("node_id", &node), ("tags", value)]);
        who.same_origin_post("/api/set_device_tags").form(&f).send()
    };
    let res = tags(&bob, "tag:server").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "a member: not his device"
    );
    let res = tags(&app, "tag:g4x9--db").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "another namespace"
    );
    let res = tags(&app, "tag:nothere").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "not in the shard's policy"
    );
    let res = tags(&app, "tag:server").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap_or_default()
    );
    let node = client.get_node(NodeId(acme_node as u64)).await.unwrap();
    assert_eq!(node.tags, ["tag:t7k2--server"]);
    let page = app
        .get(&format!("/t/acme/devices/{acme_node}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("tag:server") && !page.contains("tag:t7k2--server"));
}

/// Every device and key action, called by the wrong person: another tenant's admin (with
/// either tenant's slug), a member for a colleague's device, an auditor. Each is refused
/// (404 where the thing is not theirs to know of, 403 where they may look but not
/// change) and nothing changes. The shard is unreachable on purpose: a refusal must come
/// before any call to it.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn no_device_or_key_action_reaches_what_is_not_yours(owner: PgPool) {
    let app = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(
        &owner,
        "hs-x",
        "http://127.0.0.1:9",
        "hskey-api-unreachable0-x",
    )
    .await;
    let tenant = |slug: &'static str| {
        let owner = owner.clone();
        async move {
            sqlx::query_as::<_, (Uuid, String)>("select id, code from tenant where slug = $1")
                .bind(slug)
                .fetch_one(&owner)
                .await
                .unwrap()
        }
    };
    let (acme, acme_code) = tenant("acme").await;
    let (globex, globex_code) = tenant("globex").await;
    for (id, tenant_id, user, name) in [
        (1i64, acme, format!("{acme_code}.alice"), "alice-laptop"),
        (2, globex, format!("{globex_code}.gina"), "gina-laptop"),
    ] {
        sqlx::query(
            "insert into node (shard_id, node_id, tenant_id, given_name, name, user_name, online, register_method)
             values ($1, $2, $3, $4, $4, $5, true, 'auth_key')",
        )
        .bind(shard)
        .bind(id)
        .bind(tenant_id)
        .bind(name)
        .bind(&user)
        .execute(&owner)
        .await
        .unwrap();
        sqlx::query(
            "insert into pre_auth_key (shard_id, key_id, tenant_id, key_prefix, user_name, reusable, ephemeral, used, expiration)
             values ($1, $2, $3, $4, $5, false, false, false, now() + interval '1 day')",
        )
        .bind(shard)
        .bind(id)
        .bind(tenant_id)
        .bind(format!("prefix{id:06}"))
        .bind(&user)
        .execute(&owner)
        .await
        .unwrap();
    }
    let snapshot = || {
        let owner = owner.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "select string_agg(concat_ws('|', node_id, given_name, expiry, removed_at), ',' order by node_id) from node",
            )
            .fetch_one(&owner)
            .await
            .unwrap()
                + &sqlx::query_scalar::<_, String>(
                    "select string_agg(concat_ws('|', key_id, expiration), ',' order by key_id) from pre_auth_key",
                )
                .fetch_one(&owner)
                .await
                .unwrap()
        }
    };
    let before = snapshot().await;

    let gina = app.another_browser("gina").await; // globex admin
    let bob = app.another_browser("bob").await; // acme member, not alice
    let carol = app.another_browser("carol").await; // acme network admin, globex auditor
    let actions: [(&str, &[(&str, &str)]); 7] = [
        ("/api/get_device", &[]),
        ("/api/rename_device", &[("name", "pwned")]),
        ("/api/expire_device", &[]),
        ("/api/delete_device", &[("confirm", "alice-laptop")]),
        (
            "/api/set_device_route",
            &[("route", "10.9.0.0/16"), ("approve", "true")],
        ),
        ("/api/set_device_tags", &[("tags", "tag:x")]),
        ("/api/expire_key", &[]),
    ];
    let call = |who: &TestApp, path: &str, slug: &str, id: &str, extra: &[(&str, &str)]| {
        let mut f = form(&[("slug", slug), ("node_id", id), ("key_id", id)]);
        f.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        who.same_origin_post(path).form(&f).send()
    };
    // (who, slug, the id of a device/key that is not theirs to change, expected)
    let cases: [(&TestApp, &str, &str, StatusCode, &str); 4] = [
        (
            &gina,
            "acme",
            "1",
            StatusCode::NOT_FOUND,
            "another tenant, its slug",
        ),
        (
            &gina,
            "globex",
            "1",
            StatusCode::NOT_FOUND,
            "another tenant's id, own slug",
        ),
        (
            &bob,
            "acme",
            "1",
            StatusCode::NOT_FOUND,
            "a colleague's device",
        ),
        (&carol, "globex", "2", StatusCode::FORBIDDEN, "an auditor"),
    ];
    for (who, slug, id, expected, what) in cases {
        for (path, extra) in actions {
            let res = call(who, path, slug, id, extra).await.unwrap();
            // An auditor may look at a device, not change it.
            let expected = if path == "/api/get_device" && expected == StatusCode::FORBIDDEN {
                StatusCode::OK
            } else {
                expected
            };
            let status = res.status();
            assert_eq!(
                status,
                expected,
                "{what}: {path}: {}",
                res.text().await.unwrap_or_default()
            );
        }
    }
    // Registering: not in another tenant, not for an auditor.
    for (who, slug, expected) in [
        (&gina, "acme", StatusCode::NOT_FOUND),
        (&carol, "globex", StatusCode::FORBIDDEN),
    ] {
        let res = who
            .same_origin_post("/api/register_device")
            .form(&form(&[
                ("slug", slug),
                ("registration", "hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA"),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "register_device {slug}");
    }
    // Minting: not in another tenant; no tags-only key for a member; nothing for an
    // auditor.
    for (who, slug, owner_field, expected) in [
        (&gina, "acme", "me", StatusCode::NOT_FOUND),
        (&bob, "acme", "tags", StatusCode::FORBIDDEN),
        (&carol, "globex", "me", StatusCode::FORBIDDEN),
    ] {
        let res = who
            .same_origin_post("/api/create_key")
            .form(&form(&[
                ("slug", slug),
                ("expiry_days", "1"),
                ("owner", owner_field),
                ("tags", "tag:x"),
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expected, "create_key {slug} {owner_field}");
    }
    assert_eq!(snapshot().await, before, "nothing changed");
    let keys_made: i64 = sqlx::query_scalar("select count(*) from pre_auth_key_meta")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(keys_made, 0);

    // Pages: another tenant's devices are not listed, a colleague's not for a member.
    let page = gina.get("/t/globex/devices").await.text().await.unwrap();
    assert!(page.contains("gina-laptop") && !page.contains("alice-laptop"));
    let page = bob.get("/t/acme/devices").await.text().await.unwrap();
    assert!(
        !page.contains("alice-laptop"),
        "a member sees only their own devices"
    );
    assert_eq!(
        gina.get("/t/acme/devices").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        gina.get("/t/globex/devices/1").await.status(),
        StatusCode::NOT_FOUND
    );
}
