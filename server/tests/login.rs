//! Sign-in through OpenID Connect: the real provider (RS256 and HS256 applications) and
//! the refusals that must leave no session.

mod common;

use common::rogue_idp::{Fault, RogueIdp};
use common::{Idp, TestApp};
use reqwest::StatusCode;
use sqlx::PgPool;

async fn assert_signed_in_as(app: &TestApp, name: &str) {
    let res = app.get("/t/acme").await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("Acme Corp"),
        "dashboard should show the tenant"
    );
    assert!(html.contains(name), "dashboard should show {name}");
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn rs256_sign_in_creates_the_person_and_roles_from_groups(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    assert!(!app.is_signed_in().await);
    app.sign_in("alice").await;
    assert_signed_in_as(&app, "Alice Admin").await;

    let (issuer, role, source): (String, String, String) = sqlx::query_as(
        "select p.issuer, m.role, m.source from person p
         join membership m on m.person_id = p.id join tenant t on t.id = m.tenant_id
         where t.slug = 'acme'",
    )
    .fetch_one(&app.owner)
    .await
    .unwrap();
    assert_eq!(
        issuer, app.idp.issuer,
        "issuer is stored exactly, trailing slash included"
    );
    assert_eq!((role.as_str(), source.as_str()), ("admin", "idp"));
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn hs256_sign_in_works_like_authentik_without_a_signing_key(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_hs256()).await;
    app.sign_in("alice").await;
    assert_signed_in_as(&app, "Alice Admin").await;
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_person_is_their_issuer_and_subject_not_their_email(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("alice").await;
    // Same email, other subject: a different person, who gets no access of Alice's.
    sqlx::query("update person set subject = 'someone-else' where email = 'alice@acme.example'")
        .execute(&app.owner)
        .await
        .unwrap();
    let other = common::browser();
    let app2 = TestApp { http: other, ..app };
    app2.sign_in("alice").await;
    let people: i64 =
        sqlx::query_scalar("select count(*) from person where email = 'alice@acme.example'")
            .fetch_one(&app2.owner)
            .await
            .unwrap();
    assert_eq!(people, 2);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_wrong_state_is_refused_and_leaves_no_session(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    let callback = app.sign_in_until_callback("alice", "alice-demo").await;
    let forged = replace_param(&callback, "state", "forged");
    let location = app.visit_callback(&forged).await;
    assert_eq!(location, "/login?error=failed");
    assert!(!app.is_signed_in().await);
    assert_eq!(app.session_rows().await, 0);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_replayed_callback_or_code_is_refused(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    let callback = app.sign_in_until_callback("alice", "alice-demo").await;
    assert_eq!(app.visit_callback(&callback).await, "/t/acme");

    // An attacker's browser replays the same callback URL (code and state).
    let attacker = TestApp {
        http: common::browser(),
        ..app
    };
    assert_eq!(
        attacker.visit_callback(&callback).await,
        "/login?error=expired"
    );
    assert!(!attacker.is_signed_in().await);

    // The attacker starts a sign-in of their own, then swaps in the used code.
    let fresh = attacker.sign_in_until_callback("bob", "bob-demo").await;
    let old_code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let replayed = replace_param(&fresh, "code", &old_code);
    assert_eq!(
        attacker.visit_callback(&replayed).await,
        "/login?error=failed"
    );
    assert!(!attacker.is_signed_in().await);
    assert_eq!(
        attacker.session_rows().await,
        1,
        "only the legitimate session exists"
    );
}

async fn rogue_sign_in(owner: PgPool, fault: Fault) -> (TestApp, String) {
    let idp = RogueIdp::start("portal").await;
    idp.set_fault(fault);
    let app = TestApp::spawn(
        owner,
        Idp {
            issuer: idp.issuer(),
            client_id: "portal".into(),
            client_secret: "rogue-secret".into(),
        },
    )
    .await;
    // The rogue provider answers the authorization request at once with a code.
    let res = app.get("/auth/login?next=/t/acme").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize = common::resolve(&app.base, res.headers());
    let res = app.http.get(&authorize).send().await.unwrap();
    let callback = common::resolve(&authorize, res.headers());
    let location = app.visit_callback(&callback).await;
    (app, location)
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn the_fault_injecting_provider_signs_in_when_honest(owner: PgPool) {
    let (app, location) = rogue_sign_in(owner, Fault::Honest).await;
    assert_eq!(location, "/t/acme");
    assert!(app.is_signed_in().await);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_wrong_nonce_is_refused(owner: PgPool) {
    let (app, location) = rogue_sign_in(owner, Fault::WrongNonce).await;
    assert_eq!(location, "/login?error=failed");
    assert!(!app.is_signed_in().await);
    assert_eq!(app.session_rows().await, 0);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_token_signed_with_an_unpublished_key_is_refused(owner: PgPool) {
    let (app, location) = rogue_sign_in(owner, Fault::UnpublishedKey).await;
    assert_eq!(location, "/login?error=failed");
    assert!(!app.is_signed_in().await);
    assert_eq!(app.session_rows().await, 0);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_token_from_another_issuer_is_refused(owner: PgPool) {
    let (app, location) = rogue_sign_in(owner, Fault::WrongIssuer).await;
    assert_eq!(location, "/login?error=failed");
    assert!(!app.is_signed_in().await);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn an_issuer_without_its_trailing_slash_is_not_the_same_issuer(owner: PgPool) {
    let mut idp = Idp::real_rs256();
    idp.issuer = idp.issuer.trim_end_matches('/').to_string();
    let app = TestApp::spawn(owner, idp).await;
    let res = app.get("/auth/login").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers().get("location").unwrap(),
        "/login?error=provider",
        "discovery must refuse a document whose issuer differs in any byte"
    );
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn sign_out_ends_the_session_and_calls_the_providers_end_session(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    app.sign_in("alice").await;
    let res = app.same_origin_post("/auth/logout").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with(&format!("{}end-session", app.idp.issuer)),
        "{location}"
    );
    assert!(location.contains("id_token_hint="));
    assert!(location.contains("post_logout_redirect_uri="));
    assert!(!app.is_signed_in().await);
    assert_eq!(app.session_rows().await, 0);
}

fn replace_param(url: &str, key: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == key {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

async fn session_cookie_of(app: &TestApp, callback: &str) -> String {
    let res = app.http.get(callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("portal_session="))
        .expect("a session cookie is set at sign-in");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "plain-HTTP dev origin: {cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_new_session_id_is_issued_at_every_sign_in(owner: PgPool) {
    let app = TestApp::spawn(owner, Idp::real_rs256()).await;
    let first = session_cookie_of(
        &app,
        &app.sign_in_until_callback("alice", "alice-demo").await,
    )
    .await;
    // Signing in again in the same browser (the provider remembers the person).
    let second = session_cookie_of(
        &app,
        &app.sign_in_until_callback("alice", "alice-demo").await,
    )
    .await;
    assert_ne!(first, second, "the session id must change at sign-in");
    let stale = common::browser()
        .get(app.url("/t/acme"))
        .header("cookie", &first)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.status(),
        StatusCode::SEE_OTHER,
        "the old session id no longer works"
    );
}
