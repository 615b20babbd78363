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
