//! Idempotency keys of the REST API (migration `…130000_idempotency.sql`).
//!
//! The API layer holds an advisory lock on the key while the request runs, so two
//! requests with one key never run at once; the lock lives on a connection of its own
//! and ends with it (a crash of the portal or of Postgres frees it). The change's own
//! transaction records the key as used (through `audit::record`, which every change
//! calls in its transaction), so "the change happened" and "the key was used" commit
//! together or not at all; the answer is kept afterwards for retries.

use super::Tx;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};
use uuid::Uuid;

/// The key of the request being served, set by the API layer around the handler.
#[derive(Debug, Clone)]
pub struct Current {
    pub token_id: Uuid,
    pub key: String,
    pub request_hash: Vec<u8>,
}

tokio::task_local! {
    static CURRENT: Current;
}

/// Runs `f` with `current` as the request's idempotency key.
pub async fn scope<F: std::future::Future>(current: Current, f: F) -> F::Output {
    CURRENT.scope(current, f).await
}

/// The advisory lock on a key, held on a connection of its own while the request runs.
pub struct Lock {
    conn: Option<PoolConnection<Postgres>>,
    id: i64,
}

impl Lock {
    /// Frees the lock and gives the connection back to the pool.
    pub async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let freed = sqlx::query_scalar::<_, bool>("select pg_advisory_unlock($1)")
                .bind(self.id)
                .fetch_one(&mut *conn)
                .await;
            if !matches!(freed, Ok(true)) {
                // Never hand a connection that may still hold the lock to another request.
                drop(conn.detach());
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Not released (the request was cancelled): close the connection, which ends the
        // session and with it the lock.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// Takes the key's lock; `None` when another request holds it.
pub async fn lock(pool: &PgPool, token_id: Uuid, key: &str) -> Result<Option<Lock>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let (id, got): (i64, bool) = sqlx::query_as(
        "select k, pg_try_advisory_lock(k)
           from (select hashtextextended($1::text || ':' || $2, 7261) as k) s",
    )
    .bind(token_id)
    .bind(key)
    .fetch_one(&mut *conn)
    .await?;
    Ok(got.then_some(Lock {
        conn: Some(conn),
        id,
    }))
}

/// What an earlier request with the key left.
#[derive(Debug, PartialEq)]
pub enum Earlier {
    /// None: run the request.
    Nothing,
    /// It ran: answer with this.
    Replay {
        status: u16,
        content_type: Option<String>,
        body_sealed: Vec<u8>,
    },
    /// Its change committed, but its answer was not kept (the portal or its database
    /// failed right after).
    Committed,
    /// The key was used with a different request.
    Mismatch,
}

pub async fn earlier(
    pool: &PgPool,
    token_id: Uuid,
    key: &str,
    request_hash: &[u8],
) -> Result<Earlier, sqlx::Error> {
    type Row = (
        Vec<u8>,
        String,
        Option<i16>,
        Option<String>,
        Option<Vec<u8>>,
    );
    let row: Option<Row> = sqlx::query_as(
        "select request_hash, state, status, content_type, body_sealed
           from api_idempotency where token_id = $1 and key = $2",
    )
    .bind(token_id)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    Ok(match row {
        None => Earlier::Nothing,
        Some((hash, ..)) if hash != request_hash => Earlier::Mismatch,
        Some((_, state, status, content_type, body)) if state == "done" => Earlier::Replay {
            status: status.unwrap_or(200) as u16,
            content_type,
            body_sealed: body.unwrap_or_default(),
        },
        Some(_) => Earlier::Committed,
    })
}

/// In the change's transaction: the request's key (if it has one and `token_id` made
/// the change) is now used.
pub async fn mark_committed(tx: &mut Tx, token_id: Option<Uuid>) -> Result<(), sqlx::Error> {
    let Ok(current) = CURRENT.try_with(Clone::clone) else {
        return Ok(());
    };
    if token_id != Some(current.token_id) {
        return Ok(());
    }
    sqlx::query(
        "insert into api_idempotency (token_id, key, request_hash, state)
         values ($1, $2, $3, 'committed') on conflict do nothing",
    )
    .bind(current.token_id)
    .bind(&current.key)
    .bind(&current.request_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Keeps the answer for retries (also of a request that changed nothing, such as a
/// refusal: the retry gets the same refusal).
pub async fn store(
    pool: &PgPool,
    current: &Current,
    status: u16,
    content_type: Option<&str>,
    body_sealed: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into api_idempotency
                (token_id, key, request_hash, state, status, content_type, body_sealed)
         values ($1, $2, $3, 'done', $4, $5, $6)
         on conflict (token_id, key) do update
            set state = 'done', status = $4, content_type = $5, body_sealed = $6",
    )
    .bind(current.token_id)
    .bind(&current.key)
    .bind(&current.request_hash)
    .bind(status as i16)
    .bind(content_type)
    .bind(body_sealed)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets keys older than a day.
pub async fn purge(pool: &PgPool) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("delete from api_idempotency where claimed_at < now() - interval '24 hours'")
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
