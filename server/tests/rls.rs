//! Row-level security: the application role sees nothing without a tenant setting and
//! only its tenant with it — even for queries that forgot their WHERE clause.

mod common;

use sqlx::{Connection, PgConnection, PgPool};

async fn app_conn(owner: &PgPool) -> PgConnection {
    PgConnection::connect_with(&common::app_role_options(owner))
        .await
        .expect("connect as the application role")
}

async fn seed(owner: &PgPool) -> (uuid::Uuid, uuid::Uuid) {
    common::seed_tenants(owner).await;
    sqlx::raw_sql(
        "insert into person (issuer, subject, display_name) values ('i', 'a', 'A'), ('i', 'g', 'G');
         insert into membership (tenant_id, person_id, role, source)
           select t.id, p.id, 'admin', 'idp' from tenant t, person p
           where (t.slug, p.subject) in (('acme', 'a'), ('globex', 'g'));",
    )
    .execute(owner)
    .await
    .unwrap();
    let acme = sqlx::query_scalar("select id from tenant where slug = 'acme'")
        .fetch_one(owner)
        .await
        .unwrap();
    let globex = sqlx::query_scalar("select id from tenant where slug = 'globex'")
        .fetch_one(owner)
        .await
        .unwrap();
    (acme, globex)
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn the_app_role_sees_only_the_tenant_of_its_transaction(owner: PgPool) {
    let (acme, globex) = seed(&owner).await;
    let mut conn = app_conn(&owner).await;

    // No setting: nothing.
    let n: i64 = sqlx::query_scalar("select count(*) from tenant")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let n: i64 = sqlx::query_scalar("select count(*) from membership")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);

    // Scoped to acme: only acme, with no WHERE clause of our own.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(acme.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let slugs: Vec<String> = sqlx::query_scalar("select slug from tenant")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(slugs, vec!["acme".to_string()]);
    let tenants: Vec<uuid::Uuid> = sqlx::query_scalar("select tenant_id from membership")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants, vec![acme]);
    // Writes cannot reach the other tenant either.
    let changed = sqlx::query("update tenant set display_name = 'pwned'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 1, "only acme's own row");
    let deleted = sqlx::query("delete from membership where tenant_id = $1")
        .bind(globex)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 0);
    let insert = sqlx::query(
        "insert into membership (tenant_id, person_id, role, source)
         select $1, id, 'owner', 'portal' from person limit 1",
    )
    .bind(globex)
    .execute(&mut *tx)
    .await;
    assert!(
        insert.is_err(),
        "a row for another tenant violates the policy"
    );
    tx.rollback().await.unwrap();

    // The setting is transaction-local: gone afterwards.
    let n: i64 = sqlx::query_scalar("select count(*) from tenant")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let name: String = sqlx::query_scalar("select display_name from tenant where slug = 'globex'")
        .fetch_one(&owner)
        .await
        .unwrap();
    assert_eq!(name, "Globex");
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn the_app_role_owns_nothing_and_cannot_bypass_rls(owner: PgPool) {
    let mut conn = app_conn(&owner).await;
    let (bypass, superuser): (bool, bool) =
        sqlx::query_as("select rolbypassrls, rolsuper from pg_roles where rolname = current_user")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!bypass && !superuser);
    let owned: i64 = sqlx::query_scalar(
        "select count(*) from pg_tables where schemaname = 'public' and tableowner = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owned, 0);
    for stmt in [
        "alter table tenant disable row level security",
        "drop policy tenant_scope on tenant",
        "set row_security = off; select count(*) from tenant",
    ] {
        let r = sqlx::raw_sql(stmt).execute(&mut conn).await;
        // `row_security = off` does not disable RLS: it makes a query that RLS would
        // filter fail instead. Either way nothing leaks.
        if let Ok(done) = r {
            assert_eq!(done.rows_affected(), 0, "{stmt}");
        }
    }
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn a_person_sees_their_own_memberships_across_tenants_only(owner: PgPool) {
    seed(&owner).await;
    let person: uuid::Uuid = sqlx::query_scalar("select id from person where subject = 'a'")
        .fetch_one(&owner)
        .await
        .unwrap();
    let mut conn = app_conn(&owner).await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("select set_config('app.person_id', $1, true)")
        .bind(person.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let slugs: Vec<String> =
        sqlx::query_scalar("select t.slug from membership m join tenant t on t.id = m.tenant_id")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(slugs, vec!["acme".to_string()]);
}

#[sqlx::test(migrator = "server::startup::MIGRATOR")]
async fn the_tenant_code_cannot_change(owner: PgPool) {
    common::seed_tenants(&owner).await;
    let r = sqlx::query("update tenant set code = 'zzzz' where slug = 'acme'")
        .execute(&owner)
        .await;
    assert!(r.is_err());
}
