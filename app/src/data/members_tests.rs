//! Member management against a real database, through the application role (row-level
//! security in force): cross-tenant refusals, invitations accepted at sign-in, the
//! owner and IdP rules, audit rows in the change's transaction, sessions ended.

use super::tests::{app_pool, login, tenant};
use crate::auth::TenantScope;
use crate::data::members::{self, Departing};
use crate::data::people::{load_principal, load_session_principal, record_login, LoginFacts};
use crate::domain::groups::RoleMapping;
use crate::domain::members::{Email, Refusal};
use crate::domain::role::TenantRole;
use sqlx::PgPool;
use uuid::Uuid;

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// (action, target, detail) of every audit row of the tenant, oldest first.
async fn audit(owner: &PgPool, tenant: Uuid) -> Vec<(String, String, serde_json::Value)> {
    sqlx::query_as(
        // The fixtures' own events (the tenant saved by the command line) aside.
        "select action, target, detail from audit_event
          where tenant_id = $1 and action <> 'tenant.saved' order by id",
    )
    .bind(tenant)
    .fetch_all(owner)
    .await
    .unwrap()
}

/// A portal membership made directly (as an accepted invitation would).
async fn grant(owner: &PgPool, tenant: Uuid, person: Uuid, role: &str) {
    sqlx::query(
        "insert into membership (tenant_id, person_id, role, source) values ($1, $2, $3, 'portal')",
    )
    .bind(tenant)
    .bind(person)
    .bind(role)
    .execute(owner)
    .await
    .unwrap();
}

async fn role_of(owner: &PgPool, tenant: Uuid, person: Uuid) -> Option<String> {
    sqlx::query_scalar("select role from membership where tenant_id = $1 and person_id = $2")
        .bind(tenant)
        .bind(person)
        .fetch_optional(owner)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn another_tenants_members_and_invitations_are_out_of_reach(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    let gina = login(&pool, "gina", &["tenant:globex:admin"]).await;
    let gus = login(&pool, "gus", &[]).await;
    grant(&owner, globex, gus, "member").await;
    let acme_admin = TenantScope::for_test(acme, alice, TenantRole::Admin);
    let globex_admin = TenantScope::for_test(globex, gina, TenantRole::Admin);
    let globex_invitation = members::invite(
        &pool,
        &globex_admin,
        &email("hal@example.com"),
        TenantRole::Auditor,
    )
    .await
    .unwrap()
    .unwrap();
    let globex_events = audit(&owner, globex).await.len();

    // Listing: acme's own only.
    let (listed, invitations) = members::list(&pool, &acme_admin).await.unwrap();
    assert_eq!(
        listed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["alice"]
    );
    assert!(invitations.is_empty(), "globex's invitation is not acme's");

    // Forged ids: globex's member and invitation are "not found" for acme's admin.
    assert_eq!(
        members::change_role(&pool, &acme_admin, gus, TenantRole::Admin)
            .await
            .unwrap(),
        Err(Refusal::NoSuchMember)
    );
    assert_eq!(
        members::departing(&pool, &acme_admin, gus).await.unwrap(),
        Err(Refusal::NoSuchMember)
    );
    assert_eq!(
        members::remove(
            &pool,
            &acme_admin,
            gus,
            time::OffsetDateTime::now_utc(),
            serde_json::json!({})
        )
        .await
        .unwrap(),
        Err(Refusal::NoSuchMember)
    );
    assert_eq!(
        members::revoke_invitation(&pool, &acme_admin, globex_invitation)
            .await
            .unwrap(),
        Err(Refusal::NoSuchInvitation)
    );
    assert_eq!(
        role_of(&owner, globex, gus).await.as_deref(),
        Some("member")
    );
    let sessions_ended: Option<time::OffsetDateTime> =
        sqlx::query_scalar("select sessions_not_before from person where id = $1")
            .bind(gus)
            .fetch_one(&owner)
            .await
            .unwrap();
    assert_eq!(sessions_ended, None);

    // An invitation made in acme's scope is acme's, whatever it says.
    members::invite(
        &pool,
        &acme_admin,
        &email("gus@example.com"),
        TenantRole::Member,
    )
    .await
    .unwrap()
    .unwrap();
    let tenants: Vec<Uuid> =
        sqlx::query_scalar("select tenant_id from invitation where email = 'gus@example.com'")
            .fetch_all(&owner)
            .await
            .unwrap();
    assert_eq!(tenants, [acme]);

    // Row-level security, even without a tenant filter: acme's scope sees acme's rows.
    let mut tx = crate::data::tenant_tx(&pool, &acme_admin).await.unwrap();
    let seen: Vec<Uuid> = sqlx::query_scalar("select tenant_id from invitation")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, [acme]);
    let n = sqlx::query("update invitation set revoked_at = now() where tenant_id = $1")
        .bind(globex)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 0);
    tx.rollback().await.unwrap();

    assert_eq!(
        audit(&owner, globex).await.len(),
        globex_events,
        "nothing recorded in globex"
    );
}

#[sqlx::test(migrations = "../migrations")]
async fn an_invitation_is_accepted_at_sign_in_with_its_email(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    let admin = TenantScope::for_test(acme, alice, TenantRole::Admin);

    members::invite(
        &pool,
        &admin,
        &email(" Newbie@Example.com "),
        TenantRole::ItAdmin,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        members::invite(
            &pool,
            &admin,
            &email("newbie@example.com"),
            TenantRole::Member
        )
        .await
        .unwrap(),
        Err(Refusal::AlreadyInvited {
            email: "newbie@example.com".into()
        })
    );
    assert_eq!(
        members::invite(
            &pool,
            &admin,
            &email("alice@example.com"),
            TenantRole::Member
        )
        .await
        .unwrap(),
        Err(Refusal::AlreadyMember {
            email: "alice@example.com".into()
        })
    );

    // The groups claim names no tenant; the invitation makes newbie an IT admin.
    let newbie = login(&pool, "newbie", &[]).await;
    let p = load_principal(&pool, newbie).await.unwrap().unwrap();
    assert_eq!(p.memberships.len(), 1);
    assert_eq!(
        (
            p.memberships[0].slug.as_str(),
            p.memberships[0].role,
            p.memberships[0].from_idp
        ),
        ("acme", TenantRole::ItAdmin, false)
    );
    let (_, open) = members::list(&pool, &admin).await.unwrap();
    assert!(open.is_empty(), "accepted invitations are no longer open");

    // Used once: a second sign-in changes nothing, and the membership stays.
    login(&pool, "newbie", &[]).await;
    let events = audit(&owner, acme).await;
    let actions: Vec<&str> = events.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(actions, ["member.invited", "member.joined"]);
    assert_eq!(events[1].1, "newbie@example.com");
    assert_eq!(events[1].2["role"], "it_admin");
    let actor: Option<Uuid> = sqlx::query_scalar(
        "select actor_person_id from audit_event where action = 'member.joined'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(actor, Some(newbie));

    // Now a member: inviting them again is refused.
    assert!(matches!(
        members::invite(
            &pool,
            &admin,
            &email("newbie@example.com"),
            TenantRole::Member
        )
        .await
        .unwrap(),
        Err(Refusal::AlreadyMember { .. })
    ));
}

#[sqlx::test(migrations = "../migrations")]
async fn expired_revoked_and_unverified_invitations_are_not_accepted(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    let admin = TenantScope::for_test(acme, alice, TenantRole::Admin);

    members::invite(
        &pool,
        &admin,
        &email("late@example.com"),
        TenantRole::Member,
    )
    .await
    .unwrap()
    .unwrap();
    sqlx::query("update invitation set created_at = now() - interval '8 days', expires_at = now() - interval '1 day' where email = 'late@example.com'")
        .execute(&owner)
        .await
        .unwrap();
    let revoked = members::invite(
        &pool,
        &admin,
        &email("gone@example.com"),
        TenantRole::Member,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        members::revoke_invitation(&pool, &admin, revoked)
            .await
            .unwrap(),
        Ok("gone@example.com".to_string())
    );
    assert_eq!(
        members::revoke_invitation(&pool, &admin, revoked)
            .await
            .unwrap(),
        Err(Refusal::NoSuchInvitation),
        "revoked once"
    );
    members::invite(
        &pool,
        &admin,
        &email("unverified@example.com"),
        TenantRole::Member,
    )
    .await
    .unwrap()
    .unwrap();

    let late = login(&pool, "late", &[]).await;
    let gone = login(&pool, "gone", &[]).await;
    let unverified = record_login(
        &pool,
        &LoginFacts {
            issuer: "https://idp.example/application/o/portal/".into(),
            subject: "unverified".into(),
            email: Some("unverified@example.com".into()),
            email_verified: false,
            display_name: "U".into(),
            roles: RoleMapping::default().map(&[]),
        },
    )
    .await
    .unwrap();
    for p in [late, gone, unverified] {
        assert_eq!(role_of(&owner, acme, p).await, None);
    }

    // The expired one shows as expired and does not block a new invitation.
    let (_, open) = members::list(&pool, &admin).await.unwrap();
    let mut shown: Vec<(String, bool)> = open.into_iter().map(|i| (i.email, i.expired)).collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            ("late@example.com".to_string(), true),
            ("unverified@example.com".to_string(), false)
        ]
    );
    members::invite(
        &pool,
        &admin,
        &email("late@example.com"),
        TenantRole::Member,
    )
    .await
    .unwrap()
    .unwrap();
    login(&pool, "late", &[]).await;
    assert_eq!(role_of(&owner, acme, late).await.as_deref(), Some("member"));
}

#[sqlx::test(migrations = "../migrations")]
async fn idp_memberships_cannot_be_changed_or_removed_here(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let olga = login(&pool, "olga", &["tenant:acme:owner"]).await;
    let bob = login(&pool, "bob", &["tenant:acme:member"]).await;
    let scope = TenantScope::for_test(acme, olga, TenantRole::Owner);

    let refused = members::change_role(&pool, &scope, bob, TenantRole::Admin)
        .await
        .unwrap();
    assert!(
        matches!(&refused, Err(Refusal::FromIdp { name }) if name == "bob"),
        "{refused:?}"
    );
    let message = refused.unwrap_err().message();
    assert!(message.contains("identity provider"), "{message}");
    assert!(matches!(
        members::departing(&pool, &scope, bob).await.unwrap(),
        Err(Refusal::FromIdp { .. })
    ));
    assert!(matches!(
        members::remove(
            &pool,
            &scope,
            bob,
            time::OffsetDateTime::now_utc(),
            serde_json::json!({})
        )
        .await
        .unwrap(),
        Err(Refusal::FromIdp { .. })
    ));
    assert_eq!(role_of(&owner, acme, bob).await.as_deref(), Some("member"));
    assert!(
        audit(&owner, acme).await.is_empty(),
        "no audit row for a refusal"
    );
    let (listed, _) = members::list(&pool, &scope).await.unwrap();
    assert!(listed.iter().all(|m| m.from_idp));
}

#[sqlx::test(migrations = "../migrations")]
async fn owners_alone_touch_owners_and_the_tenant_keeps_one(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    let pat = login(&pool, "pat", &[]).await;
    let quinn = login(&pool, "quinn", &[]).await;
    let dan = login(&pool, "dan", &[]).await;
    grant(&owner, acme, pat, "owner").await;
    grant(&owner, acme, quinn, "member").await;
    grant(&owner, acme, dan, "auditor").await;
    let admin = TenantScope::for_test(acme, alice, TenantRole::Admin);
    let pat_owner = TenantScope::for_test(acme, pat, TenantRole::Owner);

    // An admin grants, changes and removes no owner, and invites none.
    assert_eq!(
        members::change_role(&pool, &admin, quinn, TenantRole::Owner)
            .await
            .unwrap(),
        Err(Refusal::OwnerOnly)
    );
    assert_eq!(
        members::change_role(&pool, &admin, pat, TenantRole::Admin)
            .await
            .unwrap(),
        Err(Refusal::OwnerOnly)
    );
    assert_eq!(
        members::departing(&pool, &admin, pat).await.unwrap(),
        Err(Refusal::OwnerOnly)
    );
    assert_eq!(
        members::invite(&pool, &admin, &email("boss@example.com"), TenantRole::Owner)
            .await
            .unwrap(),
        Err(Refusal::OwnerOnly)
    );
    // Nobody changes their own role; an auditor manages nothing (even with a forged scope
    // the database role decides).
    assert_eq!(
        members::change_role(&pool, &pat_owner, pat, TenantRole::Member)
            .await
            .unwrap(),
        Err(Refusal::Oneself)
    );
    let forged = TenantScope::for_test(acme, dan, TenantRole::Owner);
    assert_eq!(
        members::change_role(&pool, &forged, quinn, TenantRole::Admin)
            .await
            .unwrap(),
        Err(Refusal::NotAllowed)
    );
    assert!(
        audit(&owner, acme).await.is_empty(),
        "no audit row for a refusal"
    );
    assert_eq!(
        role_of(&owner, acme, quinn).await.as_deref(),
        Some("member")
    );

    // The owner makes quinn an owner; recorded with before and after.
    assert_eq!(
        members::change_role(&pool, &pat_owner, quinn, TenantRole::Owner)
            .await
            .unwrap(),
        Ok("quinn".into())
    );
    let events = audit(&owner, acme).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "member.role_changed");
    assert_eq!(events[0].1, "quinn@example.com");
    assert_eq!(
        events[0].2,
        serde_json::json!({"before": "member", "after": "owner"})
    );

    // Two owners demote each other "at once": quinn's request started while quinn was an
    // owner, but pat's demotion of quinn committed first. The tenant keeps its owner.
    let quinn_stale = TenantScope::for_test(acme, quinn, TenantRole::Owner);
    members::change_role(&pool, &pat_owner, quinn, TenantRole::Admin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        members::change_role(&pool, &quinn_stale, pat, TenantRole::Admin)
            .await
            .unwrap(),
        Err(Refusal::OwnerOnly)
    );
    assert_eq!(
        members::departing(&pool, &quinn_stale, pat).await.unwrap(),
        Err(Refusal::OwnerOnly)
    );
    assert_eq!(role_of(&owner, acme, pat).await.as_deref(), Some("owner"));
    let owners: i64 = sqlx::query_scalar(
        "select count(*) from membership where tenant_id = $1 and role = 'owner'",
    )
    .bind(acme)
    .fetch_one(&owner)
    .await
    .unwrap();
    assert_eq!(owners, 1);
    assert_eq!(audit(&owner, acme).await.len(), 2);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_removed_member_loses_the_membership_and_their_sessions(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    let newbie = login(&pool, "newbie", &["tenant:globex:member"]).await;
    grant(&owner, acme, newbie, "it_admin").await;
    let admin = TenantScope::for_test(acme, alice, TenantRole::Admin);
    let signed_in = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    assert!(load_session_principal(&pool, newbie, Some(signed_in))
        .await
        .unwrap()
        .is_some());

    assert_eq!(
        members::departing(&pool, &admin, newbie).await.unwrap(),
        Ok(Departing {
            name: "newbie".into(),
            shard_user: None,
            minted_key_ids: vec![]
        })
    );
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        members::remove(
            &pool,
            &admin,
            newbie,
            now,
            serde_json::json!({"devices_expired": 0, "keys_expired": 0})
        )
        .await
        .unwrap(),
        Ok("newbie".into())
    );
    assert_eq!(role_of(&owner, acme, newbie).await, None);
    assert_eq!(
        role_of(&owner, globex, newbie).await.as_deref(),
        Some("member"),
        "other tenants stay"
    );
    assert!(
        load_session_principal(&pool, newbie, Some(signed_in))
            .await
            .unwrap()
            .is_none(),
        "a session from before the removal ends"
    );
    assert!(
        load_session_principal(&pool, newbie, Some(now + time::Duration::seconds(1)))
            .await
            .unwrap()
            .is_some(),
        "signing in again works (for the tenants left)"
    );
    let events = audit(&owner, acme).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "member.removed");
    assert_eq!(
        events[0].2,
        serde_json::json!({"role": "it_admin", "devices_expired": 0, "keys_expired": 0})
    );
    assert_eq!(
        members::remove(&pool, &admin, newbie, now, serde_json::json!({}))
            .await
            .unwrap(),
        Err(Refusal::NoSuchMember),
        "removed once"
    );
}
