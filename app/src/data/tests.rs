//! Cross-tenant tests of the data layer, against a fresh database per test and through
//! the application role, so row-level security is in force as in production.

use crate::auth::{OperatorScope, TenantScope};
use crate::data::people::{load_principal, record_login, LoginFacts};
use crate::data::secret::SecretBox;
use crate::data::{shards, tenants};
use crate::domain::groups::RoleMapping;
use crate::domain::role::TenantRole;
use crate::domain::tenant::{TenantCode, TenantSlug};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;

/// The test database as the application role (not the owner sqlx::test connects as).
pub(super) fn app_pool(owner: &PgPool) -> PgPool {
    let user = std::env::var("TEST_APP_DB_USER").unwrap_or_else(|_| "portal_app".into());
    let password = std::env::var("TEST_APP_DB_PASSWORD").unwrap_or_else(|_| "portal_app".into());
    let options = owner
        .connect_options()
        .as_ref()
        .clone()
        .username(&user)
        .password(&password);
    PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy_with(options)
}

pub(super) async fn tenant(pool: &PgPool, slug: &str, code: &str) -> Uuid {
    tenants::upsert(
        pool,
        &TenantSlug::parse(slug).unwrap(),
        &TenantCode::parse(code).unwrap(),
        &slug.to_uppercase(),
        "starter",
        "local",
        None,
    )
    .await
    .unwrap()
}

/// Shard `hs-a` (capacity 300, API key sealed with a test key); returns its id.
pub(super) async fn shard(pool: &PgPool) -> Uuid {
    shards::upsert(
        pool,
        &SecretBox::new(&[1u8; 32]).unwrap(),
        &shards::NewShard {
            cluster_id: "hs-a".into(),
            name: "A".into(),
            region: "eu".into(),
            login_server_url: "https://a.example".into(),
            api_url: "https://a.example".into(),
            node_capacity: 300,
        },
        "hskey-api-secret-value",
    )
    .await
    .unwrap()
}

pub(super) async fn login(pool: &PgPool, subject: &str, groups: &[&str]) -> Uuid {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    record_login(
        pool,
        &LoginFacts {
            issuer: "https://idp.example/application/o/portal/".into(),
            subject: subject.into(),
            email: Some(format!("{subject}@example.com")),
            email_verified: true,
            display_name: subject.into(),
            roles: RoleMapping::default().map(&groups),
        },
    )
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenant_scope_never_sees_another_tenants_overview(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    login(&pool, "gina", &["tenant:globex:admin"]).await;

    let acme_scope = TenantScope::for_test(acme, alice, TenantRole::Admin);
    let o = tenants::overview(&pool, &acme_scope)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.slug, "acme");
    assert_eq!(o.members.len(), 1);
    assert_eq!(o.members[0].display_name, "alice");

    assert!(!o.suspended);
    assert!(
        o.members.iter().all(|m| m.display_name != "gina"),
        "globex's members never appear in acme's overview"
    );
    // Scopes are only made after the membership check, which refuses alice for globex.
    let _ = globex;
    let principal = load_principal(&pool, alice).await.unwrap().unwrap();
    assert!(principal
        .tenant_scope("globex", crate::domain::role::Permission::View)
        .is_err());
}

#[sqlx::test(migrations = "../migrations")]
async fn idp_groups_replace_idp_memberships_and_keep_portal_grants(owner: PgPool) {
    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    tenant(&pool, "initech", "i5n1").await;
    let carol = login(
        &pool,
        "carol",
        &["tenant:acme:admin", "tenant:globex:auditor"],
    )
    .await;

    // A grant made in the portal for a third tenant.
    sqlx::query(
        "insert into membership (tenant_id, person_id, role, source)
         select id, $1, 'member', 'portal' from tenant where slug = 'initech'",
    )
    .bind(carol)
    .execute(&owner)
    .await
    .unwrap();

    // Next sign-in: the IdP no longer lists globex, and changes the acme role.
    let again = login(&pool, "carol", &["tenant:acme:member", "tenant:nope:admin"]).await;
    assert_eq!(again, carol, "same issuer and subject: same person");
    let p = load_principal(&pool, carol).await.unwrap().unwrap();
    let mut seen: Vec<(String, TenantRole, bool)> = p
        .memberships
        .iter()
        .map(|m| (m.slug.clone(), m.role, m.from_idp))
        .collect();
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("acme".into(), TenantRole::Member, true),
            ("initech".into(), TenantRole::Member, false),
        ]
    );
    let _ = (acme, globex);
}

#[sqlx::test(migrations = "../migrations")]
async fn only_operators_list_all_tenants_and_shards(owner: PgPool) {
    let pool = app_pool(&owner);
    tenant(&pool, "acme", "t7k2").await;
    tenant(&pool, "globex", "g4x9").await;
    shard(&pool).await;
    let op = OperatorScope::for_test(Uuid::new_v4());
    let listed = tenants::list_all(&pool, &op).await.unwrap();
    assert_eq!(listed.len(), 2);
    let s = shards::list(&pool, &op).await.unwrap();
    assert_eq!(s.len(), 1);

    // The API key is stored sealed, never in plain text.
    let sealed: Vec<u8> = sqlx::query_scalar("select api_key_sealed from shard")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("hskey-api-secret-value"));
    let secrets = SecretBox::new(&[1u8; 32]).unwrap();
    assert_eq!(secrets.open(&sealed).unwrap(), "hskey-api-secret-value");

    // Without the operator setting the app role sees no tenant at all.
    let n: i64 = sqlx::query_scalar("select count(*) from tenant")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// The devices list's search: names, addresses, tags in the tenant's own names, the
/// owner's Headscale user, display name and email; `%` and `_` are literal; another
/// tenant's devices on the same shard never match.
#[sqlx::test(migrations = "../migrations")]
async fn the_device_search_matches_what_the_list_shows_and_only_the_tenants(owner: PgPool) {
    use crate::data::devices;
    use crate::domain::devices::DeviceQuery;

    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let globex = tenant(&pool, "globex", "g4x9").await;
    let alice = login(&pool, "alice", &["tenant:acme:admin"]).await;
    shard(&pool).await;
    for statement in [
        "update tenant set shard_id = (select id from shard)",
        "update person set display_name = 'Alice Liddell', email = 'alice@wonder.example'",
        "insert into shard_user (shard_id, tenant_id, person_id, user_name, headscale_user_id,
                                 created_by_portal)
         select s.id, t.id, p.id, 't7k2.alice', 1, true from shard s, tenant t, person p
          where t.code = 't7k2'",
    ] {
        sqlx::query(statement).execute(&owner).await.unwrap();
    }
    let node = |id: i64, tenant: Uuid, name: &str, ip: &str, user: Option<&str>, tags: &[&str]| {
        let owner = owner.clone();
        let (name, ip, user) = (name.to_string(), ip.to_string(), user.map(str::to_string));
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        async move {
            sqlx::query(
                "insert into node (shard_id, node_id, tenant_id, given_name, name, user_name,
                                   ip_addresses, tags, online, register_method)
                 select id, $1, $2, $3, $3 || '-host', $4, array[$5::inet], $6, false, 'cli'
                   from shard",
            )
            .bind(id)
            .bind(tenant)
            .bind(&name)
            .bind(&user)
            .bind(&ip)
            .bind(&tags)
            .execute(&owner)
            .await
            .unwrap();
        }
    };
    node(1, acme, "web-1", "100.64.0.7", None, &["tag:t7k2--web"]).await;
    node(2, acme, "laptop", "100.64.0.8", Some("t7k2.alice"), &[]).await;
    node(3, acme, "db_1", "100.64.0.9", None, &["tag:t7k2--db"]).await;
    node(4, globex, "web-2", "100.64.0.10", None, &["tag:g4x9--web"]).await;
    node(
        5,
        globex,
        "alice-box",
        "100.64.0.11",
        Some("g4x9.alice"),
        &[],
    )
    .await;

    let scope = TenantScope::for_test(acme, alice, TenantRole::Admin);
    let names = |q: &str| {
        let (pool, scope) = (pool.clone(), scope.clone());
        let query = DeviceQuery {
            q: q.to_string(),
            ..DeviceQuery::default()
        };
        async move {
            let page = devices::list(&pool, &scope, "t7k2", &query, None)
                .await
                .unwrap();
            let mut names: Vec<String> = page.devices.into_iter().map(|d| d.name).collect();
            names.sort();
            assert_eq!(page.total as usize, names.len());
            names
        }
    };
    assert_eq!(names("").await, ["db_1", "laptop", "web-1"]);
    assert_eq!(
        names("WEB").await,
        ["web-1"],
        "case-insensitive, not globex's"
    );
    assert_eq!(
        names("tag:web").await,
        ["web-1"],
        "tags in the tenant's names"
    );
    assert_eq!(
        names("t7k2--web").await,
        Vec::<String>::new(),
        "not the shard's"
    );
    assert_eq!(names("100.64.0.8").await, ["laptop"]);
    assert_eq!(names("laptop-host").await, ["laptop"], "the hostname");
    assert_eq!(names("t7k2.alice").await, ["laptop"], "the owner's user");
    assert_eq!(names("liddell").await, ["laptop"], "the owner's name");
    assert_eq!(
        names("wonder.example").await,
        ["laptop"],
        "the owner's email"
    );
    assert_eq!(names("db_").await, ["db_1"]);
    assert_eq!(names("b_1").await, ["db_1"], "`_` is literal");
    assert_eq!(names("%").await, Vec::<String>::new(), "`%` is literal");
    assert_eq!(
        names("100.64.0.1").await,
        Vec::<String>::new(),
        "globex's .10, .11"
    );

    // The whole list view in one transaction agrees.
    let view = devices::list_view(&pool, &scope, "t7k2", &DeviceQuery::default(), None)
        .await
        .unwrap();
    assert_eq!(view.tenant_devices, 3);
    assert_eq!(view.tags, ["tag:db", "tag:web"]);
    assert_eq!(view.owners.len(), 1);
}

/// A change made while a push is under way keeps the shard marked: the push answered
/// the state at its claim, not the change.
#[sqlx::test(migrations = "../migrations")]
async fn a_policy_change_during_a_push_is_pushed_again(owner: PgPool) {
    use crate::data::policies::{claim_push, record_pushed};
    use std::time::Duration;

    let pool = app_pool(&owner);
    let acme = tenant(&pool, "acme", "t7k2").await;
    let shard = shard(&pool).await;
    sqlx::query("update tenant set shard_id = $1")
        .bind(shard)
        .execute(&owner)
        .await
        .unwrap();
    let dirty = || async {
        sqlx::query_scalar::<_, bool>("select policy_dirty_since is not null from shard")
            .fetch_one(&owner)
            .await
            .unwrap()
    };
    assert!(dirty().await, "a new shard and a placement mark it");

    let worker = Uuid::new_v4();
    let claim = claim_push(&pool, worker, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("due");
    assert!(
        claim_push(
            &pool,
            Uuid::new_v4(),
            Duration::ZERO,
            Duration::from_secs(60)
        )
        .await
        .unwrap()
        .is_none(),
        "one push per shard at a time"
    );
    // A revision saved while the push runs.
    sqlx::query(
        "insert into policy_revision (tenant_id, revision, body, author_name)
         values ($1, 1, '{\"acls\": []}', 'test')",
    )
    .bind(acme)
    .execute(&owner)
    .await
    .unwrap();
    record_pushed(&pool, &claim, "hash", &[(acme, None)])
        .await
        .unwrap();
    assert!(dirty().await, "the change waits for the next push");

    let again = claim_push(&pool, worker, Duration::ZERO, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("due again");
    record_pushed(&pool, &again, "hash2", &[(acme, Some(1))])
        .await
        .unwrap();
    assert!(!dirty().await, "nothing changed during this one");
}
