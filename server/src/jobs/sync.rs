//! The background sync: keeps the mirror of every shard's nodes and pre-auth keys in
//! Postgres (DESIGN.md §1), so pages never wait on a shard.
//!
//! A loop claims due shards (`app::data::sync::claim_next_due`: a lease on the shard
//! row, taken with `for update skip locked`, so replicas never sync one shard at once)
//! and syncs each in its own task, at most `concurrency` at a time: one slow or dead
//! shard holds one slot for at most `sync_timeout`, never the others. A sync reads the
//! version, the nodes and the pre-auth keys through the shard's `ShardClient` and hands
//! them to `apply_snapshot`, which writes only what changed; a failed read marks the
//! shard unhealthy and backs off (`record_failure`). The rules for claims, backoff and
//! online intervals are documented in `app::data::sync`.
//!
//! API keys: opened from their sealed form only to build a client, which keeps them out
//! of its `Debug` output and its errors; nothing here logs one.

use app::data::secret::SecretBox;
use app::data::shard_users::{members_of_shard, record, Member};
use app::data::sync::{
    apply_snapshot, claim_next_due, next_due_in, postpone, record_failure, release_leases,
    FailureRecord, ShardClaim, Snapshot, SyncCounts, SyncError, SyncTiming,
};
use app::domain::shard_users::{reconcile, UserAction};
use app::headscale::{NewUser, ShardAccess, ShardClient, ShardClientOptions, ShardClients, User};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::instrument::WithSubscriber;
use uuid::Uuid;

/// How the sync runs.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    /// Time between two syncs of a healthy shard.
    pub interval: Duration,
    /// Shards synced at once by this worker.
    pub concurrency: usize,
    /// How long a claim holds a shard. Longer than `sync_timeout`, so a live worker never
    /// loses its lease mid-sync; a crashed worker's shards are free again after it.
    pub lease: Duration,
    /// The most reading one shard (version, nodes, keys) may take; then the sync counts
    /// as failed. Writing the result is a short database transaction after it.
    pub sync_timeout: Duration,
    /// A failing shard is tried again after `interval × 2^failures`, at most this.
    pub max_backoff: Duration,
    /// At shutdown, how long running syncs may take to finish before they are dropped.
    pub shutdown_grace: Duration,
    pub client_options: ShardClientOptions,
}

impl SyncSettings {
    pub fn new(interval: Duration, concurrency: usize) -> Self {
        // A read through the client takes at most (1 + retries) × timeout plus pauses,
        // ~31 s with the defaults; a sync makes two rounds of reads (the version, then
        // nodes and keys side by side).
        let sync_timeout = Duration::from_secs(90);
        SyncSettings {
            interval,
            concurrency: concurrency.max(1),
            lease: sync_timeout + Duration::from_secs(30),
            sync_timeout,
            max_backoff: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(10),
            client_options: ShardClientOptions::default(),
        }
    }

    fn timing(&self) -> SyncTiming {
        SyncTiming {
            max_backoff: self.max_backoff,
            ..SyncTiming::new(self.interval)
        }
    }

    /// The longest the loop sleeps when nothing is due: new shards and other replicas'
    /// released shards are noticed at least this often.
    fn idle_cap(&self) -> Duration {
        self.interval
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(50))
    }
}

/// What one sync of one shard came to.
#[derive(Debug, Clone)]
pub struct SyncReport {
    pub shard_id: Uuid,
    pub cluster_id: String,
    pub outcome: SyncOutcome,
    /// Members' Headscale users, reconciled after a successful read.
    pub members: MemberCounts,
}

/// What reconciling the members' users on one shard did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Users the portal created on the shard.
    pub created: u64,
    /// Users found on the shard and recorded (an earlier create's lost answer, a user
    /// recreated by hand).
    pub recorded: u64,
    /// Members whose user could not be created or recorded; tried again next sync.
    pub failed: u64,
}

#[derive(Debug, Clone)]
pub enum SyncOutcome {
    /// The mirror is up to date.
    Synced(SyncCounts),
    /// The shard could not be read; it is marked unhealthy and backs off.
    Failed {
        error: String,
        record: FailureRecord,
    },
    /// Another worker took the shard over (this one was too slow); nothing was written.
    LeaseLost,
    /// The portal itself failed (the database); the shard is tried again later.
    PortalError,
}

struct Inner {
    pool: PgPool,
    secrets: Arc<SecretBox>,
    settings: SyncSettings,
    id: Uuid,
    /// One client per shard for the life of the worker: it keeps the shard's circuit
    /// breaker and detected version.
    clients: ShardClients,
}

/// The sync worker of one portal process.
#[derive(Clone)]
pub struct SyncWorker {
    inner: Arc<Inner>,
}

impl SyncWorker {
    /// `pool` needs the application role; `secrets` opens the sealed API keys.
    pub fn new(pool: PgPool, secrets: Arc<SecretBox>, settings: SyncSettings) -> Self {
        let clients = ShardClients::new(settings.client_options.clone());
        SyncWorker {
            inner: Arc::new(Inner {
                pool,
                secrets,
                settings,
                id: Uuid::new_v4(),
                clients,
            }),
        }
    }

    /// The id this worker claims shards with (`shard.sync_lease_owner`).
    pub fn id(&self) -> Uuid {
        self.inner.id
    }

    /// Runs the sync loop in the background until the handle is shut down or dropped.
    pub fn spawn(self) -> SyncHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped).with_current_subscriber());
        SyncHandle {
            stop,
            task: Some(task),
        }
    }

    /// Claims and syncs due shards one after the other until none is due; for tests and
    /// one-off runs.
    pub async fn run_due_once(&self) -> Result<Vec<SyncReport>, sqlx::Error> {
        let mut reports = Vec::new();
        while let Some(claim) =
            claim_next_due(&self.inner.pool, self.inner.id, self.inner.settings.lease).await?
        {
            reports.push(self.sync_claimed(claim).await);
        }
        Ok(reports)
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let settings = &self.inner.settings;
        tracing::info!(
            worker = %self.inner.id,
            interval_s = settings.interval.as_secs_f64(),
            concurrency = settings.concurrency,
            "shard sync started"
        );
        let slots = Arc::new(Semaphore::new(settings.concurrency));
        let mut running = JoinSet::new();
        loop {
            reap(&mut running);
            let slot = tokio::select! {
                biased;
                _ = stop.changed() => break,
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => break,
                },
            };
            if *stop.borrow() {
                break;
            }
            let idle = match claim_next_due(&self.inner.pool, self.inner.id, settings.lease).await {
                Ok(Some(claim)) => {
                    let worker = self.clone();
                    running.spawn(
                        async move {
                            let _slot = slot;
                            worker.sync_claimed(claim).await;
                        }
                        .with_current_subscriber(),
                    );
                    continue;
                }
                Ok(None) => match next_due_in(&self.inner.pool).await {
                    Ok(Some(due_in)) => due_in.min(settings.idle_cap()),
                    Ok(None) => settings.idle_cap(),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read when the next shard is due");
                        settings.idle_cap()
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not claim a shard to sync");
                    settings.idle_cap()
                }
            };
            drop(slot);
            tokio::select! {
                _ = stop.changed() => break,
                _ = tokio::time::sleep(idle.max(Duration::from_millis(50))) => {}
            }
        }

        // Let running syncs finish for a moment; then drop them and free their shards.
        let finished = tokio::time::timeout(settings.shutdown_grace, async {
            while let Some(result) = running.join_next().await {
                log_panic(result);
            }
        })
        .await;
        if finished.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        match release_leases(&self.inner.pool, self.inner.id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(shards = n, "released unfinished shard syncs"),
            Err(e) => tracing::warn!(
                error = %e,
                "could not release shard leases; they run out by themselves"
            ),
        }
        tracing::info!(worker = %self.inner.id, "shard sync stopped");
    }

    /// Syncs one claimed shard: read, then write the mirror or record the failure.
    pub async fn sync_claimed(&self, claim: ShardClaim) -> SyncReport {
        let settings = &self.inner.settings;
        let timing = settings.timing();
        let pool = &self.inner.pool;
        let cluster_id = claim.cluster_id.as_str();
        let started = std::time::Instant::now();
        let read = match tokio::time::timeout(settings.sync_timeout, self.read(&claim)).await {
            Ok(read) => read,
            Err(_) => Err(format!(
                "Shard {cluster_id} did not finish a sync within {} seconds",
                settings.sync_timeout.as_secs()
            )),
        };
        let mut members = MemberCounts::default();
        let outcome = match read {
            Ok((client, snapshot, users)) => {
                // While the lease is held, so no other worker creates the same users.
                members = self.reconcile_members(&claim, &client, &users).await;
                match apply_snapshot(pool, &claim, &snapshot, &timing).await {
                    Ok(counts) => {
                        if claim.consecutive_failures > 0 {
                            tracing::info!(
                                cluster_id,
                                after_failures = claim.consecutive_failures,
                                "shard is reachable again"
                            );
                        }
                        if counts.rows_written() > 0 {
                            tracing::info!(
                                cluster_id,
                                nodes = ?counts.nodes,
                                pre_auth_keys = ?counts.pre_auth_keys,
                                intervals_opened = counts.intervals_opened,
                                intervals_closed = counts.intervals_closed,
                                orphan_nodes = counts.orphan_nodes,
                                "shard synced"
                            );
                        } else {
                            tracing::debug!(cluster_id, "shard synced; nothing changed");
                        }
                        SyncOutcome::Synced(counts)
                    }
                    Err(e) => self.portal_failure(&claim, e).await,
                }
            }
            Err(error) => match record_failure(pool, &claim, &error, &timing).await {
                Ok(record) => {
                    tracing::warn!(
                        cluster_id,
                        error = %error,
                        consecutive_failures = record.consecutive_failures,
                        retry_in_s = record.retry_in.as_secs_f64(),
                        "shard sync failed; shard marked unhealthy"
                    );
                    SyncOutcome::Failed { error, record }
                }
                Err(e) => self.portal_failure(&claim, e).await,
            },
        };
        crate::metrics::metrics().sync_done(
            cluster_id,
            matches!(outcome, SyncOutcome::Synced(_)),
            started.elapsed(),
        );
        SyncReport {
            shard_id: claim.shard_id,
            cluster_id: claim.cluster_id,
            outcome,
            members,
        }
    }

    /// Gives every member of the shard's tenants its own Headscale user
    /// (`<code>.<handle>`, DESIGN.md §2), by the rule of `app::domain::shard_users`.
    /// `users` is the shard's user list read with the snapshot. A failure here is
    /// logged and retried at the next sync; it does not fail the sync.
    async fn reconcile_members(
        &self,
        claim: &ShardClaim,
        client: &ShardClient,
        users: &[User],
    ) -> MemberCounts {
        let pool = &self.inner.pool;
        let cluster_id = claim.cluster_id.as_str();
        let mut counts = MemberCounts::default();
        let members = match members_of_shard(pool, claim.shard_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(cluster_id, error = %e, "could not read the members of the shard's tenants");
                counts.failed = 1;
                return counts;
            }
        };
        let existing: Vec<(String, u64)> = users.iter().map(|u| (u.name.clone(), u.id.0)).collect();
        let wanted: Vec<_> = members.iter().map(|m| m.wanted.clone()).collect();
        let by_key: HashMap<_, &Member> = members.iter().map(|m| (m.wanted.key, m)).collect();
        for action in reconcile(&wanted, &existing) {
            let (key, user_name, user_id, created) = match action {
                UserAction::InPlace => continue,
                UserAction::Record { key, user_id } => {
                    (key, by_key[&key].wanted.user_name.clone(), user_id, false)
                }
                UserAction::Create { key, user_name } => {
                    let member = by_key[&key];
                    let new = NewUser {
                        name: user_name.clone(),
                        display_name: member.display_name.clone(),
                        email: member.email.clone(),
                    };
                    match client.create_user(&new).await {
                        Ok(user) => (key, user_name, user.id.0, true),
                        Err(e) => {
                            tracing::warn!(cluster_id, user = %user_name, error = %e, "could not create a member's user on the shard; trying again next sync");
                            counts.failed += 1;
                            continue;
                        }
                    }
                }
            };
            match record(pool, claim.shard_id, key, &user_name, user_id, created).await {
                Ok(()) if created => {
                    tracing::info!(cluster_id, user = %user_name, "created a member's user on the shard");
                    counts.created += 1;
                }
                Ok(()) => counts.recorded += 1,
                Err(e) => {
                    tracing::warn!(cluster_id, user = %user_name, error = %e, "could not record a member's user");
                    counts.failed += 1;
                }
            }
        }
        counts
    }

    async fn portal_failure(&self, claim: &ShardClaim, e: SyncError) -> SyncOutcome {
        match e {
            SyncError::LeaseLost => {
                tracing::warn!(
                    cluster_id = %claim.cluster_id,
                    "shard sync took longer than its lease; another worker has the shard"
                );
                SyncOutcome::LeaseLost
            }
            SyncError::Database(e) => {
                tracing::error!(
                    cluster_id = %claim.cluster_id,
                    error = %e,
                    "could not save a shard sync"
                );
                let interval = self.inner.settings.interval;
                if let Err(e) = postpone(&self.inner.pool, claim, interval).await {
                    tracing::warn!(
                        cluster_id = %claim.cluster_id,
                        error = %e,
                        "could not release the shard; its lease runs out by itself"
                    );
                }
                SyncOutcome::PortalError
            }
        }
    }

    /// Reads a snapshot and the shard's users; the error is a sentence naming the shard,
    /// without secrets.
    async fn read(&self, claim: &ShardClaim) -> Result<(ShardClient, Snapshot, Vec<User>), String> {
        let client = self.client_for(claim)?;
        let started = Instant::now();
        // Asked every time (it is cheap and needs no key): a shard may be upgraded.
        let version = client.refresh_version().await.map_err(|e| e.to_string())?;
        let (nodes, pre_auth_keys, users) = tokio::try_join!(
            client.list_nodes(),
            client.list_pre_auth_keys(),
            client.list_users()
        )
        .map_err(|e| e.to_string())?;
        let snapshot = Snapshot {
            version: version.to_string(),
            latency: started.elapsed(),
            nodes,
            pre_auth_keys,
        };
        Ok((client, snapshot, users))
    }

    fn client_for(&self, claim: &ShardClaim) -> Result<ShardClient, String> {
        self.inner.clients.get(
            &self.inner.secrets,
            &ShardAccess {
                shard_id: claim.shard_id,
                cluster_id: &claim.cluster_id,
                api_url: &claim.api_url,
                api_key_sealed: &claim.api_key_sealed,
            },
        )
    }
}

fn reap(running: &mut JoinSet<()>) {
    while let Some(result) = running.try_join_next() {
        log_panic(result);
    }
}

fn log_panic(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result {
        if e.is_panic() {
            tracing::error!("a shard sync panicked; its lease runs out by itself");
        }
    }
}

/// Stops the background sync when shut down or dropped.
pub struct SyncHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SyncHandle {
    /// Stops claiming, lets running syncs finish (up to `shutdown_grace`), releases the
    /// leases, and returns when the loop has ended.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
