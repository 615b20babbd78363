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

async fn tenant_row(app: &TestApp, code: &str) -> (String, String, i32, String) {
    sqlx::query_as("select slug, display_name, device_quota, status from tenant where code = $1")
        .bind(code)
        .fetch_one(&app.owner)
        .await
        .unwrap()
}

/// Editing a tenant: the slug is renamed, the code stays; a device quota that the shard
/// cannot hold is refused with the room there is, and changes nothing. Suspending keeps
/// the tenant readable for its people, with a banner. A shard is drained or disabled
/// without a connection test (it may be dead), and a disabled shard takes no tenant and
/// is not synced on request.
#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn operators_edit_and_suspend_tenants_and_take_shards_out_of_service(owner: PgPool) {
    let (url, key) = real_shard();
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("olivia").await;
    let post = |path: &str, form: &[(&str, &str)]| {
        let form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        app.same_origin_post(path).form(&form).send()
    };
    let res = post("/api/save_shard", &shard_form("hs-t1", &url, &key, "100"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tenant = [
        ("slug", "initech"),
        ("display_name", "Initech"),
        ("plan", "starter"),
        ("region", "local"),
        ("device_quota", "60"),
        ("key_quota", "5"),
    ];
    assert_eq!(
        post("/api/create_tenant", &tenant).await.unwrap().status(),
        StatusCode::OK
    );
    let code: String = sqlx::query_scalar("select code from tenant where slug = 'initech'")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    let edit = |slug: &'static str, quota: &'static str| {
        vec![
            ("editing", "initech"),
            ("slug", slug),
            ("display_name", "Initrode"),
            ("plan", "business"),
            ("region", "local"),
            ("device_quota", quota),
            ("key_quota", "7"),
        ]
    };

    // More than the shard holds: refused with the room there is; nothing changes.
    let res = post("/api/update_tenant", &edit("initrode", "120"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body = res.text().await.unwrap();
    assert!(body.contains("at most 100"), "{body}");
    assert_eq!(
        tenant_row(&app, &code).await,
        ("initech".into(), "Initech".into(), 60, "active".into())
    );
    // Another tenant's slug, and bad input: refused, nothing changes.
    assert_eq!(
        post("/api/update_tenant", &edit("acme", "60"))
            .await
            .unwrap()
            .status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        post("/api/update_tenant", &edit("Bad Slug", "60"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(tenant_row(&app, &code).await.0, "initech");

    // Renamed and raised within the shard's room: the code stays.
    let res = post("/api/update_tenant", &edit("initrode", "100"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        tenant_row(&app, &code).await,
        ("initrode".into(), "Initrode".into(), 100, "active".into())
    );
    let page = app.get("/operator/tenants/initrode").await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&code) && page.contains("hs-t1"), "{page}");
    assert_eq!(
        app.get("/operator/tenants/initech").await.status(),
        StatusCode::NOT_FOUND
    );

    // Suspend acme; alice (an acme member) still sees her tenant, with the banner.
    let res = post(
        "/api/set_tenant_status",
        &[("slug", "acme"), ("status", "suspended")],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        post(
            "/api/set_tenant_status",
            &[("slug", "acme"), ("status", "gone")]
        )
        .await
        .unwrap()
        .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // The shard dies; it can still be drained and disabled (no connection test).
    sqlx::query("update shard set api_url = 'http://127.0.0.1:9' where cluster_id = 'hs-t1'")
        .execute(&app.owner)
        .await
        .unwrap();
    for status in ["draining", "disabled"] {
        let res = post(
            "/api/set_shard_status",
            &[("cluster_id", "hs-t1"), ("status", status)],
        )
        .await
        .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{status}");
        let now: String = sqlx::query_scalar("select status from shard where cluster_id = 'hs-t1'")
            .fetch_one(&app.owner)
            .await
            .unwrap();
        assert_eq!(now, status);
    }
    let mut other = tenant;
    other[0].1 = "hooli";
    other[4].1 = "1";
    let res = post("/api/create_tenant", &other).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::CONFLICT,
        "no active shard takes it"
    );
    let res = post("/api/sync_shard_now", &[("cluster_id", "hs-t1")])
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let page = app
        .get("/operator/shards/hs-t1")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Not synced while disabled."), "{page}");
    assert!(page.contains("initrode"), "the tenant stays listed: {page}");

    // Alice, not an operator: refused everywhere, nothing changes.
    let alice = app.another_browser("alice").await;
    for (path, form) in [
        ("/api/get_tenant_admin", vec![("slug", "initrode")]),
        ("/api/update_tenant", edit("evil", "1")),
        (
            "/api/set_tenant_status",
            vec![("slug", "acme"), ("status", "active")],
        ),
        (
            "/api/set_shard_status",
            vec![("cluster_id", "hs-t1"), ("status", "active")],
        ),
        ("/api/sync_shard_now", vec![("cluster_id", "hs-t1")]),
        ("/api/get_shard", vec![("cluster_id", "hs-t1")]),
    ] {
        let res = alice
            .same_origin_post(path)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let dashboard = alice.get("/t/acme").await.text().await.unwrap();
    assert!(
        dashboard.contains("This tenant is suspended"),
        "{dashboard}"
    );
    let status: String = sqlx::query_scalar("select status from tenant where slug = 'acme'")
        .fetch_one(&app.owner)
        .await
        .unwrap();
    assert_eq!(status, "suspended");
    assert_eq!(tenant_row(&app, &code).await.0, "initrode");
}
