//! Operator screens through their server functions: shards are saved only after a real
//! connection test; tenants are placed at creation; only operators may do either; the
//! shard API key never comes back out.

mod common;

use common::{Idp, TestApp};
use reqwest::StatusCode;
use sqlx::PgPool;

fn real_shard() -> (String, String) {
    let url = std::env::var("TEST_HS_URL").expect(
        "TEST_HS_URL is not set: run the tests through dev/test, which starts a real shard",
    );
    let key_file = std::env::var("TEST_HS_APIKEY_FILE").expect("TEST_HS_APIKEY_FILE is not set");
    let key = std::fs::read_to_string(key_file)
        .expect("read the API key")
        .trim()
        .to_string();
    (url, key)
}

fn shard_form<'a>(
    cluster_id: &'a str,
    url: &'a str,
    key: &'a str,
    capacity: &'a str,
) -> Vec<(&'static str, &'a str)> {
    vec![
        ("editing", ""),
        ("cluster_id", cluster_id),
        ("name", "Test shard"),
        ("region", "local"),
        ("login_server_url", url),
        ("api_url", url),
        ("node_capacity", capacity),
        ("api_key", key),
        ("status", "active"),
    ]
}

async fn shard_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from shard")
        .fetch_one(&app.owner)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_shard_is_saved_only_after_its_connection_test_passes(owner: PgPool) {
    let (url, key) = real_shard();
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("olivia").await;

    // Wrong key: refused with a sentence naming the shard, nothing saved.
    let res = app
        .same_origin_post("/api/save_shard")
        .form(&shard_form("hs-t1", &url, "hskey-api-wrong", "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = res.text().await.unwrap();
    assert!(body.contains("hs-t1") && body.contains("401"), "{body}");
    assert_eq!(shard_count(&app).await, 0);

    // Bad input: refused before any network call.
    for (field, value) in [
        ("api_url", "ftp://x"),
        ("node_capacity", "0"),
        ("cluster_id", "HS T"),
    ] {
        let mut form = shard_form("hs-t1", &url, &key, "300");
        for f in form.iter_mut() {
            if f.0 == field {
                f.1 = value;
            }
        }
        let res = app
            .same_origin_post("/api/save_shard")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}"
        );
    }
    assert_eq!(shard_count(&app).await, 0);

    // The real key: saved, and the version is reported.
    let res = app
        .same_origin_post("/api/save_shard")
        .form(&shard_form("hs-t1", &url, &key, "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let version: String = res.json().await.unwrap();
    assert!(version.starts_with("0.2"), "{version}");
    assert_eq!(shard_count(&app).await, 1);

    // Adding the same cluster ID again is a conflict.
    let res = app
        .same_origin_post("/api/save_shard")
        .form(&shard_form("hs-t1", &url, &key, "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);

    // Editing without a key keeps the stored one (the connection test still runs).
    let mut edit = shard_form("", &url, "", "250");
    edit[0].1 = "hs-t1";
    let res = app
        .same_origin_post("/api/save_shard")
        .form(&edit)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let capacity: i32 = sqlx::query_scalar("select node_capacity from shard")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(capacity, 250);

    // The key never comes back: not in the page, not in the server function's answer,
    // not in the database in plain text.
    let page = app
        .get("/operator/shards/hs-t1")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("hs-t1"));
    assert!(!page.contains(&key));
    let api = app
        .same_origin_post("/api/get_shard")
        .form(&[("cluster_id", "hs-t1")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!api.contains(&key));
    let sealed: Vec<u8> = sqlx::query_scalar("select api_key_sealed from shard")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&key));
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn only_operators_manage_shards_and_tenants(owner: PgPool) {
    let (url, key) = real_shard();
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("alice").await;
    let res = app
        .same_origin_post("/api/save_shard")
        .form(&shard_form("hs-t1", &url, &key, "300"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = app
        .same_origin_post("/api/create_tenant")
        .form(&[
            ("slug", "evil"),
            ("display_name", "Evil"),
            ("plan", "starter"),
            ("region", "local"),
            ("device_quota", "10"),
            ("key_quota", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(shard_count(&app).await, 0);
    let n: i64 = sqlx::query_scalar("select count(*) from tenant where slug = 'evil'")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_new_tenant_is_placed_or_refused_with_a_reason(owner: PgPool) {
    let (url, key) = real_shard();
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("olivia").await;
    let res = app
        .same_origin_post("/api/save_shard")
        .form(&shard_form("hs-t1", &url, &key, "100"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let create = |slug: &'static str, quota: &'static str| {
        app.same_origin_post("/api/create_tenant").form(&[
            ("slug", slug),
            ("display_name", "Initech"),
            ("plan", "starter"),
            ("region", "local"),
            ("device_quota", quota),
            ("key_quota", "5"),
        ])
    };
    let res = create("initech", "60").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (code, shard, reason): (String, String, String) = sqlx::query_as(
        "select t.code, s.cluster_id, t.placement_reason from tenant t join shard s on s.id = t.shard_id where t.slug = 'initech'",
    )
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(shard, "hs-t1");
    assert!(app::domain::tenant::TenantCode::parse(&code).is_ok());
    assert!(!reason.is_empty());

    // 60 of 100 committed: 50 more do not fit anywhere.
    let res = create("hooli", "50").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = res.text().await.unwrap();
    assert!(body.contains("room for 50 more devices"), "{body}");
    let n: i64 = sqlx::query_scalar("select count(*) from tenant where slug = 'hooli'")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(n, 0, "a refused tenant is not created");

    // The same slug twice is a conflict; bad input is a clear 422.
    assert_eq!(
        create("initech", "10").send().await.unwrap().status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        create("Not A Slug", "10").send().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        create("fine", "0").send().await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
}
