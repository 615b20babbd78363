//! The audit log against a real database, through the application role.

use super::tests::{app_pool, login, tenant};
use crate::auth::{OperatorScope, TenantScope};
use crate::data::audit::{all_events, tenant_events, AuditFilter};
use crate::domain::role::TenantRole;
use sqlx::PgPool;

async fn event(
    owner: &PgPool,
    tenant: Option<uuid::Uuid>,
    actor: Option<uuid::Uuid>,
    action: &str,
    target: &str,
    at: &str,
) {
    sqlx::query(
        "insert into audit_event (tenant_id, actor_kind, actor_person_id, action, target, at, detail)
         values ($1, case when $2::uuid is null then 'system' else 'person' end, $2, $3, $4, $5::timestamptz,
                 '{\"before\": 1, \"after\": 2}')",
    )
    .bind(tenant)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(at)
    .execute(owner)
    .await
    .unwrap();
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_reads_its_own_events_filtered_and_can_never_change_them(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    let alice = login(
        &pool,
        "alice",
        &["tenant:acme:auditor", "tenant:globex:member"],
    )
    .await;
    let olivia = login(&pool, "olivia", &["portal-operators"]).await;
    // The fixtures' own events (tenants saved, sign-ins) aside: this test writes its own.
    sqlx::query("delete from audit_event")
        .execute(&owner)
        .await
        .unwrap();
    event(
        &owner,
        Some(acme),
        Some(alice),
        "policy.saved",
        "revision 1",
        "2026-11-01T10:00:00Z",
    )
    .await;
    event(
        &owner,
        Some(acme),
        None,
        "tenant.quota_exceeded",
        "devices",
        "2026-11-02T10:00:00Z",
    )
    .await;
    event(
        &owner,
        Some(acme),
        Some(alice),
        "policy.rejected",
        "revision 2",
        "2026-11-03T10:00:00Z",
    )
    .await;
    event(
        &owner,
        Some(globex),
        None,
        "policy.saved",
        "revision 1",
        "2026-11-02T11:00:00Z",
    )
    .await;
    event(
        &owner,
        None,
        Some(olivia),
        "shard.added",
        "hs-a",
        "2026-11-02T12:00:00Z",
    )
    .await;

    let scope = TenantScope::for_test(acme, alice, TenantRole::Auditor);
    let all = tenant_events(&pool, &scope, &AuditFilter::default(), 50)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["policy.rejected", "tenant.quota_exceeded", "policy.saved"],
        "acme's, newest first: never globex's, never the service's"
    );
    assert_eq!(all[2].actor_email.as_deref(), Some("alice@example.com"));
    assert!(all[2].detail.contains("\"after\""));
    // A tenant filter from the address is ignored for a tenant: still acme's only.
    let forged = AuditFilter {
        tenant: Some("globex".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        tenant_events(&pool, &scope, &forged, 50)
            .await
            .unwrap()
            .len(),
        3
    );

    let by = |f: AuditFilter| {
        let (pool, scope) = (pool.clone(), scope.clone());
        async move {
            tenant_events(&pool, &scope, &f, 50)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.target)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        by(AuditFilter {
            action: Some("policy".into()),
            ..Default::default()
        })
        .await,
        ["revision 2", "revision 1"]
    );
    assert_eq!(
        by(AuditFilter {
            action: Some("policy.sav".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "a prefix is a whole dotted part"
    );
    assert_eq!(
        by(AuditFilter {
            action: Some("%".into()),
            ..Default::default()
        })
        .await,
        Vec::<String>::new(),
        "no wildcards"
    );
    assert_eq!(
        by(AuditFilter {
            actor: Some("system".into()),
            ..Default::default()
        })
        .await,
        ["devices"]
    );
    assert_eq!(
        by(AuditFilter {
            actor: Some("ALICE@".into()),
            ..Default::default()
        })
        .await,
        ["revision 2", "revision 1"]
    );
    assert_eq!(
        by(AuditFilter {
            target: Some("REVISION 2".into()),
            ..Default::default()
        })
        .await,
        ["revision 2"]
    );
    let day = |s: &str| {
        Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap(),
        )
    };
    assert_eq!(
        by(AuditFilter {
            from: day("2026-11-02T00:00:00Z"),
            until: day("2026-11-03T00:00:00Z"),
            ..Default::default()
        })
        .await,
        ["devices"]
    );
    let newest = all[0].id;
    assert_eq!(
        by(AuditFilter {
            before_id: Some(newest),
            ..Default::default()
        })
        .await,
        ["devices", "revision 1"]
    );

    // The operator sees everything, and may narrow to one tenant.
    let operator = OperatorScope::for_test(olivia);
    assert_eq!(
        all_events(&pool, &operator, &AuditFilter::default(), 50)
            .await
            .unwrap()
            .len(),
        5
    );
    let globex_only = AuditFilter {
        tenant: Some("globex".into()),
        ..AuditFilter::default()
    };
    assert_eq!(
        all_events(&pool, &operator, &globex_only, 50)
            .await
            .unwrap()
            .len(),
        1
    );

    // Append-only: the application role may neither change nor delete a row, whatever
    // the scope (operator included).
    let mut tx = crate::data::system_tx(&pool).await.unwrap();
    let update = sqlx::query("update audit_event set action = 'forged'")
        .execute(&mut *tx)
        .await;
    assert!(update.is_err(), "update refused");
    drop(tx);
    let mut tx = crate::data::system_tx(&pool).await.unwrap();
    let delete = sqlx::query("delete from audit_event")
        .execute(&mut *tx)
        .await;
    assert!(delete.is_err(), "delete refused");
    drop(tx);
    let count: i64 = sqlx::query_scalar("select count(*) from audit_event")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(count, 5);
}

/// Operator changes to shards and tenants are recorded with the change, with before and
/// after; a refused change records nothing; the shard's API key is never in the log.
#[sqlx::test(migrations = "../migrations")]
async fn shard_and_tenant_changes_are_recorded_with_before_and_after(owner: PgPool) {
    use crate::data::{shards, tenants};
    use crate::domain::shard::ShardStatus;
    use crate::domain::tenant::{TenantSettings, TenantSlug};
    let pool = app_pool(&owner);
    let shard = super::tests::shard(&pool).await;
    let acme = tenant(&pool, "acme", "t7k2").await;
    sqlx::query("update tenant set shard_id = $1 where id = $2")
        .bind(shard)
        .bind(acme)
        .execute(&owner)
        .await
        .unwrap();
    let olivia = login(&pool, "olivia", &["portal-operators"]).await;
    let ops = OperatorScope::for_test(olivia);
    let rows = |action: &'static str| {
        let owner = owner.clone();
        async move {
            sqlx::query_as::<_, (String, Option<uuid::Uuid>, String, serde_json::Value)>(
                "select actor_kind, tenant_id, target, detail from audit_event
                  where action = $1 order by id",
            )
            .bind(action)
            .fetch_all(&owner)
            .await
            .unwrap()
        }
    };

    assert!(
        shards::set_status(&pool, &ops, "hs-a", ShardStatus::Draining)
            .await
            .unwrap()
    );
    let status = rows("shard.status_set").await;
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].0, "person");
    assert_eq!(status[0].2, "hs-a");
    assert_eq!(status[0].3["before"], "active");
    assert_eq!(status[0].3["after"], "draining");
    assert!(
        !shards::set_status(&pool, &ops, "nope", ShardStatus::Active)
            .await
            .unwrap()
    );
    assert_eq!(
        rows("shard.status_set").await.len(),
        1,
        "no shard, no event"
    );
    let created = rows("shard.created").await;
    assert_eq!(
        created.len(),
        1,
        "the fixture's shard, by the portal (command line)"
    );
    assert_eq!(created[0].0, "system");
    let all: String = sqlx::query_scalar("select string_agg(detail::text, ' ') from audit_event")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(!all.contains("hskey-api-secret-value"), "{all}");

    let settings = |quota: u32| TenantSettings {
        display_name: "Acme Corp".into(),
        plan: "business".into(),
        region: "local".into(),
        device_quota: quota,
        key_quota: 10,
    };
    tenants::update(
        &pool,
        &ops,
        "acme",
        &TenantSlug::parse("acme").unwrap(),
        &settings(40),
    )
    .await
    .unwrap();
    let updated = rows("tenant.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].1, Some(acme));
    assert_eq!(updated[0].3["after"]["device_quota"], 40);
    assert_eq!(updated[0].3["after"]["plan"], "business");
    assert_eq!(updated[0].3["before"]["plan"], "starter");
    // Refused (more than the shard's capacity): nothing changes, nothing is recorded.
    assert!(tenants::update(
        &pool,
        &ops,
        "acme",
        &TenantSlug::parse("acme").unwrap(),
        &settings(5000)
    )
    .await
    .is_err());
    assert_eq!(rows("tenant.updated").await.len(), 1);

    assert!(tenants::set_suspended(&pool, &ops, "acme", true)
        .await
        .unwrap());
    let suspended = rows("tenant.suspended").await;
    assert_eq!(
        (suspended[0].1, &suspended[0].3["before"]),
        (Some(acme), &serde_json::json!("active"))
    );
    // The tenant's own log shows its changes; the shard's stay service-wide.
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    let scope = TenantScope::for_test(acme, alice, TenantRole::Admin);
    let own = tenant_events(&pool, &scope, &AuditFilter::default(), 50)
        .await
        .unwrap();
    assert!(own.iter().any(|e| e.action == "tenant.suspended"));
    assert!(own.iter().all(|e| !e.action.starts_with("shard.")));
    // Sign-ins are recorded too (service-wide).
    assert_eq!(rows("auth.signed_in").await.len(), 2);
}
