//! Cross-site refusal, security headers, health probes.

mod common;

use common::{Idp, TestApp};
use reqwest::StatusCode;
use sqlx::PgPool;

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_cross_site_post_to_a_server_function_is_refused_and_changes_nothing(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("alice").await;

    // The same request from the portal's own page is accepted (so the refusal below is
    // about its origin, not its shape).
    let ok = app
        .same_origin_post("/api/set_theme")
        .form(&[("theme", "dark")])
        .send()
        .await
        .unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert!(ok.headers().get("set-cookie").is_some());

    let cases: [(&str, Option<&str>, Option<&str>); 4] = [
        (
            "foreign origin",
            Some("http://evil.example"),
            Some("cross-site"),
        ),
        (
            "foreign origin, no fetch metadata",
            Some("http://evil.example"),
            None,
        ),
        (
            "sibling site",
            Some("http://127.0.0.2:3000"),
            Some("same-site"),
        ),
        ("no origin at all", None, None),
    ];
    for (what, origin, site) in cases {
        let mut req = app
            .http
            .post(app.url("/api/set_theme"))
            .form(&[("theme", "light")]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(s) = site {
            req = req.header("sec-fetch-site", s);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(
            res.headers().get("set-cookie").is_none(),
            "{what}: nothing may change"
        );
    }

    // Signing out is state-changing too: a forged sign-out leaves the session alone.
    let res = app
        .http
        .post(app.url("/auth/logout"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(app.is_signed_in().await);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn server_functions_authorize_inside_themselves(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    // Signed out: the operator data is not served.
    let res = app
        .same_origin_post("/api/get_operator_overview")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A tenant member is not an operator.
    app.sign_in("bob").await;
    let res = app
        .same_origin_post("/api/get_operator_overview")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Another tenant's dashboard: hidden as not found.
    let res = app
        .same_origin_post("/api/get_tenant_overview")
        .form(&[("slug", "globex")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .same_origin_post("/api/get_tenant_overview")
        .form(&[("slug", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["your_role"], "member");
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn pages_carry_security_headers_with_a_fresh_csp_nonce(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let res = app.get("/login").await;
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["cache-control"], "no-store");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain http"
        );
        let csp = h["content-security-policy"].to_str().unwrap().to_string();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .expect("a script nonce")
            .to_string();
        let html = res.text().await.unwrap();
        assert!(
            html.contains(&format!("nonce=\"{nonce}\"")),
            "inline scripts carry the nonce"
        );
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1], "a new nonce per response");
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn https_deployments_get_hsts_and_host_prefixed_secure_cookies(owner: PgPool) {
    let app = TestApp::spawn_with(owner, Idp::real_rs256(), |c| {
        c.public_url = url::Url::parse("https://portal.example.com").unwrap();
    })
    .await;
    let res = app.http.get(app.url("/auth/login")).send().await.unwrap();
    assert!(res.headers().get("strict-transport-security").is_some());
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-portal_login="), "{cookie}");
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn signed_out_visitors_are_sent_to_the_login_page(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    let res = app.get("/operator?tab=x").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/login?next=%2Foperator%3Ftab%3Dx"
    );
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn health_and_readiness(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_unreachable() {
    let pool = server::startup::app_pool("postgres://nobody:x@127.0.0.1:1/none", 1).unwrap();
    let draining = server::resilience::Draining::default();
    let (status, _) = server::health::readyz(axum::extract::State((pool, draining))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn readiness_fails_while_draining(owner: PgPool) {
    let pool = common::app_pool(&owner);
    let draining = server::resilience::Draining::default();
    let state = axum::extract::State((pool.clone(), draining.clone()));
    assert_eq!(server::health::readyz(state).await.0, StatusCode::OK);
    draining.start();
    let (status, body) = server::health::readyz(axum::extract::State((pool, draining))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "shutting down");
}
