//! API tokens against a real database, through the application role.

use super::tests::{app_pool, login, tenant};
use crate::auth::{OperatorScope, TenantScope};
use crate::data::tokens::{self, TokenCheck};
use crate::domain::role::{Permission, TenantRole};
use crate::domain::tokens::TokenRequest;
use sqlx::PgPool;

fn request(name: &str, ceiling: TenantRole, maker: TenantRole) -> TokenRequest {
    TokenRequest::tenant(name, ceiling.as_str(), "30", maker).unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_token_acts_for_its_maker_capped_at_its_ceiling_in_its_tenant_only(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    let ada = login(&pool, "ada", &["tenant:acme:admin", "tenant:globex:admin"]).await;
    let acme_scope = TenantScope::for_test(acme, ada, TenantRole::Admin);
    let globex_scope = TenantScope::for_test(globex, ada, TenantRole::Admin);

    let made = tokens::create_for_tenant(
        &pool,
        &acme_scope,
        &request("CI", TenantRole::Member, TenantRole::Admin),
    )
    .await
    .unwrap();
    assert!(made.secret.starts_with("hsp_") && made.secret.len() == 68);
    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from api_token where position(convert_to($1, 'utf8') in secret_sha256) > 0
            or hint = $1",
    )
    .bind(&made.secret)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(stored, 0);

    let TokenCheck::Valid(p) = tokens::authenticate(&pool, &made.secret).await.unwrap() else {
        panic!("a fresh token works");
    };
    assert_eq!(p.token, Some(made.row.id));
    assert!(!p.is_operator);
    assert_eq!(p.memberships.len(), 1, "the token's own tenant only");
    let scope = p.tenant_scope("acme", Permission::View).unwrap();
    assert_eq!(scope.role(), TenantRole::Member);
    assert!(matches!(
        scope.actor(),
        crate::auth::Actor::Token { token_id, person_id } if token_id == made.row.id && person_id == ada
    ));
    assert_eq!(
        p.tenant_scope("acme", Permission::ManagePolicy),
        Err(crate::error::AppError::Forbidden),
        "a member-ceiling token cannot do admin things"
    );
    assert!(
        matches!(
            p.tenant_scope("globex", Permission::View),
            Err(crate::error::AppError::NotFound(_))
        ),
        "nor anything in another tenant of its maker"
    );

    // Another tenant's admin neither lists nor revokes it.
    assert!(tokens::list_for_tenant(&pool, &globex_scope, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        tokens::revoke_for_tenant(&pool, &globex_scope, made.row.id, None)
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        tokens::authenticate(&pool, &made.secret).await.unwrap(),
        TokenCheck::Valid(_)
    ));

    // Its own tenant revokes it: refused from then on, and both are in the audit log.
    let revoked = tokens::revoke_for_tenant(&pool, &acme_scope, made.row.id, None)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        tokens::authenticate(&pool, &made.secret).await.unwrap(),
        TokenCheck::Revoked
    );
    let actions: Vec<(String, String)> = sqlx::query_as(
        "select action, target from audit_event
              where tenant_id = $1 and action like 'token.%' order by id",
    )
    .bind(acme)
    .fetch_all(&owner)
    .await
    .unwrap();
    assert_eq!(
        actions,
        vec![
            ("token.created".to_string(), "CI".to_string()),
            ("token.revoked".to_string(), "CI".to_string())
        ]
    );
    let detail: String = sqlx::query_scalar(
        "select string_agg(detail::text, ' ') from audit_event where action like 'token.%'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert!(!detail.contains(&made.secret[4..]), "{detail}");
}

#[sqlx::test(migrations = "../migrations")]
async fn expired_unknown_and_orphaned_tokens_are_refused(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let ada = login(&pool, "ada", &["tenant:acme:admin"]).await;
    let scope = TenantScope::for_test(acme, ada, TenantRole::Admin);
    let admin_token = tokens::create_for_tenant(
        &pool,
        &scope,
        &request("admin", TenantRole::Admin, TenantRole::Admin),
    )
    .await
    .unwrap();
    let old = tokens::create_for_tenant(
        &pool,
        &scope,
        &request("old", TenantRole::Member, TenantRole::Admin),
    )
    .await
    .unwrap();
    sqlx::query("update api_token set created_at = now() - interval '40 days', expires_at = now() - interval '1 second' where id = $1")
        .bind(old.row.id)
        .execute(&owner)
        .await
        .unwrap();
    assert_eq!(
        tokens::authenticate(&pool, &old.secret).await.unwrap(),
        TokenCheck::Expired
    );
    let mut unknown = admin_token.secret.clone();
    unknown.replace_range(10..11, if &unknown[10..11] == "0" { "1" } else { "0" });
    for text in [unknown.as_str(), "hsp_short", "", "Bearer x"] {
        assert_eq!(
            tokens::authenticate(&pool, text).await.unwrap(),
            TokenCheck::Unknown,
            "{text}"
        );
    }

    // The maker is demoted by the identity provider: the admin-ceiling token stops; a
    // member-ceiling one would still work.
    login(&pool, "ada", &["tenant:acme:member"]).await;
    assert_eq!(
        tokens::authenticate(&pool, &admin_token.secret)
            .await
            .unwrap(),
        TokenCheck::MakerLacksRole
    );
    // The maker leaves: every token of theirs stops.
    let member_token = tokens::create_for_tenant(
        &pool,
        &TenantScope::for_test(acme, ada, TenantRole::Member),
        &request("mine", TenantRole::Member, TenantRole::Member),
    )
    .await
    .unwrap();
    assert!(matches!(
        tokens::authenticate(&pool, &member_token.secret)
            .await
            .unwrap(),
        TokenCheck::Valid(_)
    ));
    login(&pool, "ada", &[]).await;
    assert_eq!(
        tokens::authenticate(&pool, &member_token.secret)
            .await
            .unwrap(),
        TokenCheck::MakerLacksRole
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn operator_tokens_are_the_operators_and_need_an_operator(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let olivia = login(&pool, "olivia", &["portal-operators"]).await;
    let ada = login(&pool, "ada", &["tenant:acme:owner"]).await;
    let ops = OperatorScope::for_test(olivia);
    let made = tokens::create_for_operator(
        &pool,
        &ops,
        &TokenRequest::operator("billing export", "7").unwrap(),
    )
    .await
    .unwrap();
    let TokenCheck::Valid(p) = tokens::authenticate(&pool, &made.secret).await.unwrap() else {
        panic!("an operator token works");
    };
    assert!(p.is_operator && p.memberships.is_empty());
    assert!(p.operator_scope().is_ok());
    // Tenants never see operator tokens.
    let acme_scope = TenantScope::for_test(acme, ada, TenantRole::Owner);
    assert!(tokens::list_for_tenant(&pool, &acme_scope, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        tokens::revoke_for_tenant(&pool, &acme_scope, made.row.id, None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        tokens::list_for_operator(&pool, &ops).await.unwrap().len(),
        1
    );
    // No longer an operator: the token stops.
    login(&pool, "olivia", &[]).await;
    assert_eq!(
        tokens::authenticate(&pool, &made.secret).await.unwrap(),
        TokenCheck::MakerLacksRole
    );
}
