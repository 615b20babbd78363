//! The usage rollup: turns observed online intervals into daily usage and closes
//! billing months (`app::data::usage` has the rules). Claims one shard at a time through
//! Postgres, so replicas share the work.

use app::data::usage::{close_months, roll_next_due, RollOutcome};
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::watch;
use tracing::instrument::WithSubscriber;

#[derive(Debug, Clone)]
pub struct UsageSettings {
    /// How often each shard is rolled up (today's numbers are this fresh).
    pub every: Duration,
    /// The sync's `max_gap`: how long an open interval may still grow without a sync.
    pub max_gap: Duration,
}

pub struct UsageRoller {
    pool: PgPool,
    settings: UsageSettings,
}

pub struct UsageHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl UsageHandle {
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for UsageHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl UsageRoller {
    pub fn new(pool: PgPool, settings: UsageSettings) -> Self {
        UsageRoller { pool, settings }
    }

    /// Rolls up every shard that is due, then closes the months that can be. Returns the
    /// shards rolled.
    pub async fn run_due_once(&self) -> Result<Vec<RollOutcome>, sqlx::Error> {
        let mut done = Vec::new();
        while let Some(outcome) =
            roll_next_due(&self.pool, self.settings.every, self.settings.max_gap).await?
        {
            tracing::debug!(shard = %outcome.shard_id, device_days = outcome.device_days, "usage rolled up");
            done.push(outcome);
        }
        close_months(&self.pool).await?;
        Ok(done)
    }

    pub fn spawn(self) -> UsageHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped).with_current_subscriber());
        UsageHandle {
            stop,
            task: Some(task),
        }
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        tracing::info!("usage rollup started");
        // A tick well inside `every`, so a shard is rolled close to its schedule.
        let tick = (self.settings.every / 4).max(Duration::from_secs(1));
        loop {
            if *stop.borrow() {
                break;
            }
            if let Err(e) = self.run_due_once().await {
                tracing::warn!(error = %e, "usage rollup failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("usage rollup stopped");
    }
}
