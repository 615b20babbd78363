//! The REST API (`/api/v1`) with API tokens, against the real portal, identity provider
//! and (for the GitOps path) a real Headscale shard.
//!
//! - GitOps: a network admin's token validates and sets acme's policy; the push puts it
//!   live on the real shard; the audit log names the token as the actor.
//! - Tokens: none, garbage, another tenant's, revoked, expired, a member ceiling doing
//!   admin things, an operator token on tenant endpoints (and the reverse) — refused, as
//!   RFC 7807 problems; a token never opens the pages' server functions.
//! - Rate limits: 429 with Retry-After on the API and on sign-in.
//!
//! Ports: shard slot 12 (see tests/sync.rs for the port variables).

mod common;

use app::data::policies::mark_dirty;
use app::data::sync::mark_due;
use common::stack::Stack;
use common::{add_shard, app_pool, secrets, Idp, TestApp};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use server::jobs::policy::{PolicyPusher, PushOutcome, PushSettings};
use server::jobs::sync::{SyncSettings, SyncWorker};
use sqlx::PgPool;
use std::time::Duration;

/// Makes a token through the page's server function, as `app`'s signed-in person.
async fn make_token(app: &TestApp, slug: &str, name: &str, role: &str) -> (String, String) {
    let res = app
        .same_origin_post("/api/create_token")
        .form(&[
            ("slug", slug),
            ("name", name),
            ("role", role),
            ("expiry_days", "30"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{}",
        res.text().await.unwrap()
    );
    let made: Value = res.json().await.unwrap();
    (
        made["secret"].as_str().unwrap().to_string(),
        made["token"]["id"].as_str().unwrap().to_string(),
    )
}

struct Api {
    base: String,
    http: Client,
    token: String,
}

impl Api {
    fn new(app: &TestApp, token: &str) -> Api {
        Api {
            base: app.url(""),
            http: Client::new(),
            token: token.to_string(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(self.req(reqwest::Method::GET, path).send().await.unwrap()).await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        read(self.req(method, path).json(&body).send().await.unwrap()).await
    }
}

/// Status and JSON body; an error must be a problem document.
async fn read(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        assert_eq!(ctype, "application/problem+json", "{status} {body}");
        assert_eq!(body["status"], status.as_u16(), "{body}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{body}"
        );
    }
    (status, body)
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn gitops_a_token_sets_the_policy_it_goes_live_and_the_audit_names_the_token(owner: PgPool) {
    let stack = Stack::new();
    let real = stack.start_shard("hs-api", 12).await;
    let app = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    let shard = add_shard(&owner, &real.cluster_id, &real.url, &real.api_key).await;
    app.sign_in("alice").await; // acme admin
    let _bob = app.another_browser("bob").await; // acme member
    let worker = SyncWorker::new(
        app_pool(&owner),
        secrets(),
        SyncSettings::new(Duration::from_secs(1), 2),
    );
    assert!(mark_due(&app_pool(&owner), shard).await.unwrap());
    worker.run_due_once().await.expect("sync");

    let (secret, token_id) = make_token(&app, "acme", "GitOps CI", "network_admin").await;
    let api = Api::new(&app, &secret);

    // The seed design's admission service: which shard, where to log in.
    let (status, boot) = api.get("/api/v1/bootstrap").await;
    assert_eq!(status, StatusCode::OK, "{boot}");
    assert_eq!(boot["cluster_id"], real.cluster_id.as_str());
    assert_eq!(boot["login_server_url"], real.url.as_str());
    assert_eq!(boot["tenant"], "acme");

    // A mistake: validate says where; PUT refuses it and saves nothing.
    let bad = r#"{"acls": [{"action": "accept", "src": ["group:nope"], "dst": ["*:*"]}]}"#;
    let (status, check) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/tenants/acme/policy/validate",
            json!({ "text": bad }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["valid"], false);
    assert!(check["errors"][0]["line"].as_u64().is_some(), "{check}");
    let (status, problem) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/tenants/acme/policy",
            json!({ "text": bad }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem["errors"].as_array().is_some_and(|e| !e.is_empty()));
    let (_, doc) = api.get("/api/v1/tenants/acme/policy").await;
    assert_eq!(doc["revision"], Value::Null, "nothing saved: {doc}");

    // The real change, with a test, as a CI pipeline would push it.
    let good = r#"{
      "groups": {"group:ops": ["alice@acme.example"]},
      "acls": [{"action": "accept", "src": ["group:ops"], "dst": ["*:22"]}],
      "tests": [{"src": "alice@acme.example", "accept": ["bob@acme.example:22"]}],
    }"#;
    let (status, check) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/tenants/acme/policy/validate",
            json!({ "text": good }),
        )
        .await;
    assert_eq!(
        (status, &check["valid"]),
        (StatusCode::OK, &json!(true)),
        "{check}"
    );
    let (status, saved) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/tenants/acme/policy",
            json!({ "text": good, "comment": "from CI", "based_on": null }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["revision"], 1);
    // Saving over a stale base is refused (optimistic concurrency).
    let (status, _) = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/tenants/acme/policy",
            json!({ "text": good, "based_on": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Live on the real shard.
    mark_dirty(&app_pool(&owner), shard).await.unwrap();
    let pusher = PolicyPusher::new(app_pool(&owner), secrets(), PushSettings::default());
    let (_, outcome) = pusher.push_next().await.expect("claim").expect("due");
    assert!(
        matches!(&outcome, PushOutcome::Pushed { rejected, .. } if rejected.is_empty()),
        "{outcome:?}"
    );
    let live = real
        .client()
        .get_policy()
        .await
        .unwrap()
        .expect("a policy")
        .policy;
    assert!(live.contains("group:t7k2--ops"), "{live}");
    let (_, doc) = api.get("/api/v1/tenants/acme/policy").await;
    assert_eq!(doc["revision"], 1, "{doc}");
    assert_eq!(doc["live_revision"], 1, "{doc}");
    assert!(doc["text"].as_str().unwrap().contains("group:ops"));

    // The audit log: the token acted (its maker alongside), in the API and the table.
    let (status, audit) = api.get("/api/v1/tenants/acme/audit?action=policy").await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let saved_event = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "policy.saved")
        .unwrap_or_else(|| panic!("{audit}"));
    let actor = saved_event["actor"].as_str().unwrap();
    assert!(
        actor.contains("GitOps CI") && actor.contains("alice"),
        "{actor}"
    );
    let (kind, token): (String, Option<uuid::Uuid>) = sqlx::query_as(
        "select actor_kind, actor_token_id from audit_event where action = 'policy.saved'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(kind, "token");
    assert_eq!(token.map(|t| t.to_string()), Some(token_id));

    // Devices and keys through the same token (network admins manage neither).
    let (status, list) = api.get("/api/v1/tenants/acme/devices").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list["devices"].is_array());
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/tenants/acme/keys",
            json!({ "expiry_days": 1, "owner": "tags", "tags": ["tag:ci"] }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, minted) = api
        .send(
            reqwest::Method::POST,
            "/api/v1/tenants/acme/keys",
            json!({ "expiry_days": 1, "description": "api" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    assert!(minted["key"].as_str().unwrap().starts_with("hskey-auth-"));
    let (_, keys) = api.get("/api/v1/tenants/acme/keys").await;
    assert!(keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["description"] == "api"));
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn tokens_are_refused_unless_valid_for_the_tenant_and_the_role(owner: PgPool) {
    let app = TestApp::spawn(owner.clone(), Idp::real_rs256()).await;
    app.sign_in("alice").await; // acme admin
    let gina = app.another_browser("gina").await; // globex admin
    let olivia = app.another_browser("olivia").await; // operator
    let (member, _) = make_token(&app, "acme", "read only", "member").await;
    let (admin, admin_id) = make_token(&app, "acme", "admin", "admin").await;
    let (globex, _) = make_token(&gina, "globex", "globex", "admin").await;

    // Nothing, or not a token.
    let res = Client::new()
        .get(app.url("/api/v1/tenants/acme/devices"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("www-authenticate").is_some());
    let (_, _) = read(res).await;
    for garbage in ["hsp_0000", &admin.replace('a', "b"), "Basic abc"] {
        let (status, _) = Api::new(&app, garbage)
            .get("/api/v1/tenants/acme/devices")
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{garbage}");
    }

    // Another tenant's token: acme does not exist for it.
    let (status, _) = Api::new(&app, &globex)
        .get("/api/v1/tenants/acme/policy")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = Api::new(&app, &globex)
        .get("/api/v1/tenants/globex/policy")
        .await;
    assert_eq!(status, StatusCode::OK);

    // A member ceiling reads what members read, and no admin things.
    let m = Api::new(&app, &member);
    assert_eq!(m.get("/api/v1/tenants/acme/policy").await.0, StatusCode::OK);
    let (status, problem) = m
        .send(
            reqwest::Method::PUT,
            "/api/v1/tenants/acme/policy",
            json!({ "text": "{}" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert_eq!(problem["type"], "/api/v1/problems/forbidden");
    // The refusal is in acme's audit log, by the token (written just after the answer).
    let mut forbidden = Vec::new();
    for _ in 0..50 {
        forbidden = sqlx::query_as::<_, (String, Option<uuid::Uuid>, String)>(
            "select e.actor_kind, e.actor_token_id, t.slug from audit_event e
               join tenant t on t.id = e.tenant_id where e.action = 'auth.forbidden'",
        )
        .fetch_all(&owner)
        .await
        .unwrap();
        if !forbidden.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(forbidden.len(), 1, "{forbidden:?}");
    assert_eq!(
        (forbidden[0].0.as_str(), forbidden[0].2.as_str()),
        ("token", "acme")
    );
    assert!(forbidden[0].1.is_some());
    let signed_in: i64 =
        sqlx::query_scalar("select count(*) from audit_event where action = 'auth.signed_in'")
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(signed_in, 3, "alice, gina and olivia signed in");
    assert_eq!(
        m.get("/api/v1/tenants/acme/audit").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        m.get("/api/v1/tenants/acme/usage").await.0,
        StatusCode::FORBIDDEN
    );
    let res = m
        .req(
            reqwest::Method::GET,
            "/api/v1/tenants/acme/usage/export?kind=summary",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    read(res).await;
    // The admin token reads the usage and its export.
    let a = Api::new(&app, &admin);
    assert_eq!(a.get("/api/v1/tenants/acme/usage").await.0, StatusCode::OK);
    let res = a
        .req(
            reqwest::Method::GET,
            "/api/v1/tenants/acme/usage/export?kind=summary",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().starts_with("month,"));

    // A token never opens the pages' server functions (sessions only).
    let res = Client::new()
        .post(app.url("/api/get_policy"))
        .header("origin", app.url(""))
        .header("sec-fetch-site", "same-origin")
        .bearer_auth(&admin)
        .form(&[("slug", "acme")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Tenant tokens stay out of the operator endpoints; operator tokens have no tenant.
    assert_eq!(
        a.get("/api/v1/operator/tenants").await.0,
        StatusCode::FORBIDDEN
    );
    let res = olivia
        .same_origin_post("/api/create_operator_token")
        .form(&[("name", "ops"), ("expiry_days", "7")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ops: Value = res.json().await.unwrap();
    let o = Api::new(&app, ops["secret"].as_str().unwrap());
    let (status, tenants) = o.get("/api/v1/operator/tenants").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tenants.as_array().unwrap().len(), 2);
    assert_eq!(o.get("/api/v1/bootstrap").await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        o.get("/api/v1/tenants/acme/policy").await.0,
        StatusCode::NOT_FOUND
    );

    // Revoked: refused from the next request on.
    let res = app
        .same_origin_post("/api/revoke_token")
        .form(&[("slug", "acme"), ("token_id", admin_id.as_str())])
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (status, problem) = a.get("/api/v1/tenants/acme/policy").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(problem["detail"].as_str().unwrap().contains("revoked"));
    // gina cannot revoke acme's member token (not found for her), so it still works.
    let ids: Vec<(String,)> =
        sqlx::query_as("select id::text from api_token where name = 'read only'")
            .fetch_all(&owner)
            .await
            .unwrap();
    let res = gina
        .same_origin_post("/api/revoke_token")
        .form(&[("slug", "acme"), ("token_id", ids[0].0.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(m.get("/api/v1/tenants/acme/policy").await.0, StatusCode::OK);

    // Expired: refused.
    sqlx::query("update api_token set created_at = now() - interval '2 days', expires_at = now() - interval '1 second' where name = 'read only'")
        .execute(&owner)
        .await
        .unwrap();
    let (status, problem) = m.get("/api/v1/tenants/acme/policy").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(problem["detail"].as_str().unwrap().contains("expired"));

    // Every refusal is an RFC 7807 problem, also for routes and bodies axum refuses.
    let (status, _) = o.get("/api/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let res = Api::new(&app, &globex)
        .req(reqwest::Method::PUT, "/api/v1/tenants/globex/policy")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    read(res).await;
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn rate_limits_answer_429_with_retry_after(owner: PgPool) {
    use server::rest::ratelimit::Rate;
    let app = TestApp::spawn_with(owner.clone(), Idp::real_rs256(), |c| {
        c.limits.api = Rate {
            per_minute: 6,
            burst: 3,
        };
        c.limits.login = Rate {
            per_minute: 6,
            burst: 4,
        };
    })
    .await;
    app.sign_in("alice").await; // /auth/login + /auth/callback: two of four
    let (token, _) = make_token(&app, "acme", "busy", "member").await;
    let api = Api::new(&app, &token);
    for _ in 0..3 {
        assert_eq!(
            api.get("/api/v1/tenants/acme/policy").await.0,
            StatusCode::OK
        );
    }
    let res = api
        .req(reqwest::Method::GET, "/api/v1/tenants/acme/policy")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    let (_, problem) = read(res).await;
    assert_eq!(problem["type"], "/api/v1/problems/rate-limited");
    // Per token: another token is not slowed down by this one.
    let (other, _) = make_token(&app, "acme", "other", "member").await;
    assert_eq!(
        Api::new(&app, &other)
            .get("/api/v1/tenants/acme/policy")
            .await
            .0,
        StatusCode::OK
    );

    // Sign-in: the fifth start within the minute is refused.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let res = app.get("/auth/login?next=/").await;
        statuses.push(res.status());
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().get("retry-after").is_some());
        }
    }
    assert!(
        statuses[0].is_redirection() && statuses[1].is_redirection(),
        "{statuses:?}"
    );
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}
