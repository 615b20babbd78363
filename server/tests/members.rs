//! Member management through the portal's HTTP endpoints (docs/members.md): an
//! invitation accepted at a real sign-in, the statuses and sentences of refusals, and a
//! removed member's session ending at their next request.

mod common;

use common::{Idp, TestApp};
use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

async fn person(owner: &PgPool, email: &str) -> Uuid {
    sqlx::query_scalar("select id from person where email = $1")
        .bind(email)
        .fetch_one(owner)
        .await
        .expect("person")
}

async fn post(app: &TestApp, endpoint: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let res = app
        .same_origin_post(&format!("/api/{endpoint}"))
        .form(form)
        .send()
        .await
        .expect("POST");
    let status = res.status();
    (status, res.text().await.unwrap_or_default())
}

fn ok(status: StatusCode) -> bool {
    status.is_success() || status.is_redirection()
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn an_invited_person_joins_and_a_removed_one_is_signed_out(owner: PgPool) {
    let admin = TestApp::spawn(owner, Idp::real_rs256()).await;
    admin.sign_in("alice").await;

    let (status, body) = post(
        &admin,
        "invite_member",
        &[
            ("slug", "acme"),
            ("email", "newbie at acme"),
            ("role", "member"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("is not an email address"), "{body}");
    let (status, body) = post(
        &admin,
        "invite_member",
        &[
            ("slug", "acme"),
            ("email", "newbie@acme.example"),
            ("role", "owner"),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an admin invites no owner: {body}"
    );
    let (status, body) = post(
        &admin,
        "invite_member",
        &[
            ("slug", "acme"),
            ("email", "Newbie@Acme.example"),
            ("role", "it_admin"),
        ],
    )
    .await;
    assert!(ok(status), "{status}: {body}");

    // newbie's groups claim names no tenant: the invitation lets them in.
    let newbie = admin.another_browser("newbie").await;
    assert_eq!(newbie.get("/t/acme").await.status(), StatusCode::OK);
    let newbie_id = person(&admin.owner, "newbie@acme.example").await;
    let role: String = sqlx::query_scalar(
        "select m.role || '/' || m.source from membership m join tenant t on t.id = m.tenant_id
          where t.slug = 'acme' and m.person_id = $1",
    )
    .bind(newbie_id)
    .fetch_one(&admin.owner)
    .await
    .expect("membership");
    assert_eq!(role, "it_admin/portal");

    // An IdP membership: 409 with a sentence pointing at the identity provider.
    let bob = admin.another_browser("bob").await;
    let bob_id = person(&admin.owner, "bob@acme.example").await.to_string();
    let (status, body) = post(
        &admin,
        "change_member_role",
        &[("slug", "acme"), ("person_id", &bob_id), ("role", "admin")],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("identity provider"), "{body}");
    // A member manages nobody.
    let (status, _) = post(
        &bob,
        "remove_member",
        &[("slug", "acme"), ("person_id", &newbie_id.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another tenant's admin cannot reach acme's members, even by id.
    let gina = admin.another_browser("gina").await;
    for slug in ["acme", "globex"] {
        let (status, body) = post(
            &gina,
            "remove_member",
            &[("slug", slug), ("person_id", &newbie_id.to_string())],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{slug}: {body}");
    }
    assert!(newbie.is_signed_in().await);

    // Removed: the membership goes and newbie's session ends at their next request.
    let (status, body) = post(
        &admin,
        "remove_member",
        &[("slug", "acme"), ("person_id", &newbie_id.to_string())],
    )
    .await;
    assert!(ok(status), "{status}: {body}");
    assert!(
        !newbie.is_signed_in().await,
        "the removed member is signed out"
    );
    assert!(admin.is_signed_in().await, "the admin is not");
    assert!(bob.is_signed_in().await);
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_event where action like 'member.%' order by id",
    )
    .fetch_all(&admin.owner)
    .await
    .expect("audit");
    assert_eq!(
        actions,
        ["member.invited", "member.joined", "member.removed"],
        "refusals record nothing"
    );
}
