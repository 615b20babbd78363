//! Usage and the billing export end to end: a real tailscaled online for a known span on
//! a real Headscale shard → the sync's interval → the rollup → the CSV a billing admin
//! downloads, read back with a standard CSV reader. And who may download what.
//!
//! Ports: shard slot 11 (see tests/sync.rs for the port variables).

mod common;

use common::stack::Stack;
use common::{add_shard, app_pool, secrets, Idp, TestApp};

use app::data::sync::mark_due;
use app::data::usage::roll_shard_now;
use app::headscale::{NewPreAuthKey, UserId};
use reqwest::StatusCode;
use server::jobs::sync::{SyncSettings, SyncWorker};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const GAP: Duration = Duration::from_secs(60);

async fn sync(worker: &SyncWorker, owner: &PgPool, shard: uuid::Uuid) {
    assert!(mark_due(&app_pool(owner), shard).await.unwrap());
    worker.run_due_once().await.expect("sync");
}

/// The body of a CSV download, with its headers checked.
async fn csv(app: &TestApp, path: &str) -> String {
    let res = app.get(path).await;
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/csv; charset=utf-8"
    );
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"usage-"),
        "{disposition}"
    );
    res.text().await.unwrap()
}

/// Records of a CSV, parsed by the `csv` crate (RFC 4180), by column name.
fn records(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("a header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.expect("a well-formed record");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_devices_online_time_reaches_the_billing_export(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-use", 11).await;
    let alice = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    alice.sign_in("alice").await; // acme admin
    let bill = alice.another_browser("bill").await; // acme billing admin
    let bob = alice.another_browser("bob").await; // acme member
    let gina = alice.another_browser("gina").await; // globex admin
    let olivia = alice.another_browser("olivia").await; // operator
    let worker = SyncWorker::new(
        app_pool(&owner),
        secrets(),
        SyncSettings::new(Duration::from_secs(1), 2),
    );
    sync(&worker, &owner, shard).await; // alice's user on the shard
    let client = real.client();
    let users = client.list_users().await.unwrap();
    let alice_user = users
        .iter()
        .find(|u| u.name == "t7k2.alice")
        .expect("alice's user");
    let key = client
        .create_pre_auth_key(&NewPreAuthKey {
            user: Some(UserId(alice_user.id.0)),
            reusable: false,
            ephemeral: false,
            expiration: OffsetDateTime::now_utc() + time::Duration::hours(1),
            acl_tags: vec![],
        })
        .await
        .expect("key");

    // Online for a known span: from `tailscale up` returning to tailscaled stopping,
    // with the sync running every second meanwhile.
    stack
        .join("u1", &real, key.secret.expose(), "billed-laptop")
        .await;
    let up = Instant::now();
    let mut seen_online = false;
    while up.elapsed() < Duration::from_secs(12) || !seen_online {
        sync(&worker, &owner, shard).await;
        seen_online = sqlx::query_scalar::<_, bool>(
            "select exists(select 1 from node_online_interval where ended_at is null)",
        )
        .fetch_one(&owner)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(up.elapsed() < Duration::from_secs(40), "never seen online");
    }
    stack.stop_daemon("u1").await;
    let span = up.elapsed();
    let closed_at = Instant::now();
    loop {
        sync(&worker, &owner, shard).await;
        let open: i64 =
            sqlx::query_scalar("select count(*) from node_online_interval where ended_at is null")
                .fetch_one(&owner)
                .await
                .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            closed_at.elapsed() < Duration::from_secs(40),
            "the interval never closed"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let counted: f64 = sqlx::query_scalar(
        "select extract(epoch from sum(ended_at - started_at))::float8 from node_online_interval",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    // docs/billing-export.md: counted from the first sync that sees the device online
    // (≤ 1 sync interval late) to the first that sees it offline (Headscale notices a
    // client left after its grace period, about 10 s on 0.29.2, + ≤ 1 interval).
    let real_span = span.as_secs_f64();
    eprintln!(
        "online {real_span:.1} s (tailscale up → tailscaled stopped); counted {counted:.1} s"
    );
    assert!(
        counted >= real_span - 2.0 && counted <= real_span + 15.0,
        "counted {counted:.1} s for {real_span:.1} s online"
    );

    // A device whose name would be a formula in a spreadsheet (Headscale would not
    // take such a name; the mirror's row is written directly).
    sqlx::query(
        "insert into node (shard_id, node_id, tenant_id, given_name, name, online, register_method, tags)
         select $1, 9999, id, '=HYPERLINK(\"http://evil.example\",\"open\")', 'evil', false, 'cli',
                '{tag:t7k2--evil}'
           from tenant where slug = 'acme'",
    )
    .bind(shard)
    .execute(&owner)
    .await
    .unwrap();
    sqlx::query(
        "insert into node_online_interval (tenant_id, shard_id, node_id, started_at, ended_at)
         select id, $1, 9999, now() - interval '1 minute', now() - interval '30 seconds'
           from tenant where slug = 'acme'",
    )
    .bind(shard)
    .execute(&owner)
    .await
    .unwrap();
    roll_shard_now(&app_pool(&owner), shard, GAP)
        .await
        .expect("rollup");

    // The billing admin's detail export: the laptop's seconds, as counted (split at
    // midnight if the test ran across one), and the formula inert.
    let month = {
        let today = OffsetDateTime::now_utc().date();
        format!("{:04}-{:02}", today.year(), u8::from(today.month()))
    };
    let detail = csv(
        &bill,
        &format!("/t/acme/usage/export?month={month}&kind=detail"),
    )
    .await;
    assert!(
        detail.starts_with(
            "date,tenant_code,shard,device_id,device,owner,online_seconds,online_hours,status\r\n"
        ),
        "{detail}"
    );
    let rows = records(&detail);
    let laptop: Vec<_> = rows
        .iter()
        .filter(|r| r["device"] == "billed-laptop")
        .collect();
    assert!(!laptop.is_empty(), "{detail}");
    let seconds: i64 = laptop
        .iter()
        .map(|r| r["online_seconds"].parse::<i64>().unwrap())
        .sum();
    assert!(
        (seconds as f64 - counted).abs() <= 1.0 * laptop.len() as f64,
        "{seconds} s exported for {counted:.1} s counted"
    );
    assert!(laptop.iter().all(|r| r["tenant_code"] == "t7k2"
        && r["shard"] == "hs-use"
        && r["owner"] == "alice@acme.example"
        && r["status"] == "provisional"));
    let evil: Vec<_> = rows.iter().filter(|r| r["device_id"] == "9999").collect();
    assert_eq!(evil.len(), 1);
    assert_eq!(
        evil[0]["device"], "'=HYPERLINK(\"http://evil.example\",\"open\")",
        "a formula is exported as text"
    );
    assert_eq!(evil[0]["owner"], "tag:evil");
    assert_eq!(evil[0]["online_seconds"], "30");

    let summary = csv(
        &alice,
        &format!("/t/acme/usage/export?month={month}&kind=summary"),
    )
    .await;
    let rows = records(&summary);
    assert_eq!(rows.len(), 1, "{summary}");
    assert_eq!(rows[0]["tenant"], "acme");
    assert_eq!(rows[0]["active_devices"], "2");
    let total: i64 = rows[0]["device_seconds"].parse().unwrap();
    assert_eq!(total, seconds + 30);
    // A closed-or-not month, asked twice, is the same bytes (nothing changed between).
    let again = csv(
        &alice,
        &format!("/t/acme/usage/export?month={month}&kind=summary"),
    )
    .await;
    assert_eq!(summary, again);

    // Who may download: not a member, not another tenant, not a tenant for all tenants.
    for (who, path, status) in [
        (
            &bob,
            format!("/t/acme/usage/export?month={month}&kind=detail"),
            StatusCode::FORBIDDEN,
        ),
        (
            &bob,
            format!("/t/acme/usage/export?month={month}&kind=summary"),
            StatusCode::FORBIDDEN,
        ),
        (
            &gina,
            format!("/t/acme/usage/export?month={month}&kind=detail"),
            StatusCode::NOT_FOUND,
        ),
        (
            &alice,
            format!("/operator/usage/export?month={month}&kind=detail"),
            StatusCode::FORBIDDEN,
        ),
        (
            &alice,
            "/t/acme/usage/export?month=2026-13&kind=detail".to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &alice,
            format!("/t/acme/usage/export?month={month}&kind=xlsx"),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let res = who.get(&path).await;
        assert_eq!(res.status(), status, "{path}");
        let body = res.text().await.unwrap();
        assert!(!body.contains("billed-laptop"), "{path}: {body}");
    }
    // The usage page's server function checks the same.
    let res = bob
        .same_origin_post("/api/get_tenant_usage")
        .form(&[("slug", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = bill
        .same_origin_post("/api/get_tenant_usage")
        .form(&[("slug", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("billed-laptop"));
    // Globex's own export has none of acme's rows.
    let globex = csv(
        &gina,
        &format!("/t/globex/usage/export?month={month}&kind=detail"),
    )
    .await;
    assert_eq!(records(&globex).len(), 0, "{globex}");
    // Signed out: to the login page, not a file.
    let anonymous = common::browser()
        .get(alice.url("/t/acme/usage/export?kind=detail"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::SEE_OTHER);

    // The operator's export has every tenant.
    let all = csv(
        &olivia,
        &format!("/operator/usage/export?month={month}&kind=summary"),
    )
    .await;
    let rows = records(&all);
    let tenants: Vec<&str> = rows.iter().map(|r| r["tenant"].as_str()).collect();
    assert_eq!(tenants, ["globex", "acme"], "ordered by tenant code");
}
