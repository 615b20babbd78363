//! The policy push (DESIGN.md §2, docs/policies.md): per shard, debounced and
//! serialized, the shard's one Headscale policy is built from each tenant's last good
//! revision and pushed.
//!
//! 1. A change to what a shard's policy is built from (a saved revision, a membership, a
//!    tenant's subnets or placement) marks the shard (`policy_dirty_since`, by database
//!    triggers). A shard is claimed once the mark is `debounce` old, so a burst of
//!    saves is one push; a lease in Postgres serializes pushes to one shard across
//!    replicas.
//! 2. Each tenant contributes its newest revision not refused yet (the candidate) or,
//!    failing that, the revision live on the shard, or the default policy.
//! 3. The compiled policy must pass the portal's isolation check; a failure there is a
//!    portal bug and nothing is pushed.
//! 4. Headscale checks it: 0.29+ through `POST /policy/check` (nothing stored), 0.28 by
//!    the `PUT` itself (a refused PUT leaves the previous policy in force). If the
//!    shard refuses, each tenant's new revision is tried alone; those the shard refuses
//!    alone are marked rejected with Headscale's reason in the tenant's own names, and
//!    the rest go live. One tenant's refused revision never holds back another's.
//! 5. The live revisions per tenant and the policy's hash are recorded; the mark is
//!    cleared unless something changed after the claim.

use app::data::policies::{
    claim_push, mark_rejected, record_push_failed, record_pushed, shard_sources, PushClaim,
    TenantSource,
};
use app::data::secret::SecretBox;
use app::domain::policy::compile::{
    compile, default_policy, to_tenant_names, Compiled, TenantInput,
};
use app::domain::policy::hujson::{self, Node, Value};
use app::domain::policy::isolation::{self, ShardTenants};
use app::domain::policy::model::{check, TenantContext, TenantPolicy};
use app::domain::routes::Prefix;
use app::headscale::{
    HeadscaleErrorKind, ShardAccess, ShardClient, ShardClientOptions, ShardClients,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::instrument::WithSubscriber;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// How long a change rests before its shard is pushed (a burst of saves is one push).
    pub debounce: Duration,
    /// How often an idle pusher looks for marked shards.
    pub poll: Duration,
    /// How long a claim holds a shard (longer than a push can take).
    pub lease: Duration,
    /// Shards pushed at once by one replica: a shard that hangs holds one slot, never
    /// the pushes to the others (issue 8).
    pub concurrency: usize,
    pub client_options: ShardClientOptions,
}

impl Default for PushSettings {
    fn default() -> Self {
        PushSettings {
            debounce: Duration::from_millis(500),
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(120),
            concurrency: 4,
            client_options: ShardClientOptions::default(),
        }
    }
}

/// What one push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The policy is live on the shard.
    Pushed {
        /// sha256 of the policy's text.
        hash: String,
        /// Revisions refused on the way, per tenant code.
        rejected: Vec<(String, i32)>,
    },
    /// Nothing was pushed; the previous policy stays in force.
    Failed(String),
}

pub struct PolicyPusher {
    pool: PgPool,
    secrets: Arc<SecretBox>,
    settings: PushSettings,
    clients: ShardClients,
    id: Uuid,
}

pub struct PushHandle {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PushHandle {
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PushHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl PolicyPusher {
    pub fn new(pool: PgPool, secrets: Arc<SecretBox>, settings: PushSettings) -> Self {
        let clients = ShardClients::new(settings.client_options.clone());
        PolicyPusher {
            pool,
            secrets,
            settings,
            clients,
            id: Uuid::new_v4(),
        }
    }

    pub fn spawn(self) -> PushHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(Arc::new(self).run(stopped).with_current_subscriber());
        PushHandle {
            stop,
            task: Some(task),
        }
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, "policy push started");
        let slots = self.settings.concurrency.max(1);
        let mut pushing = tokio::task::JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            // Fill the free slots with due shards; each push runs on its own.
            while pushing.len() < slots {
                match self.claim_next().await {
                    Ok(Some(claim)) => {
                        let me = Arc::clone(&self);
                        pushing.spawn(
                            async move {
                                if let Err(e) = me.push_claimed(claim).await {
                                    tracing::warn!(error = %e, "could not record a policy push");
                                }
                            }
                            .with_current_subscriber(),
                        );
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim a shard's policy push");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => break,
                Some(_) = pushing.join_next(), if !pushing.is_empty() => {}
                _ = tokio::time::sleep(self.settings.poll) => {}
            }
        }
        // A push under way finishes (and records what it did) rather than leaving its
        // shard leased to nobody until the lease runs out.
        while pushing.join_next().await.is_some() {}
        tracing::info!(worker = %self.id, "policy push stopped");
    }

    async fn claim_next(&self) -> Result<Option<PushClaim>, sqlx::Error> {
        claim_push(
            &self.pool,
            self.id,
            self.settings.debounce,
            self.settings.lease,
        )
        .await
    }

    /// Pushes the next marked shard, if any is due (tests call this directly).
    pub async fn push_next(&self) -> Result<Option<(Uuid, PushOutcome)>, sqlx::Error> {
        let Some(claim) = self.claim_next().await? else {
            return Ok(None);
        };
        self.push_claimed(claim).await.map(Some)
    }

    async fn push_claimed(&self, claim: PushClaim) -> Result<(Uuid, PushOutcome), sqlx::Error> {
        let outcome = self.push(&claim).await;
        match &outcome {
            Ok(PushOutcome::Failed(error)) | Err(error) => {
                crate::metrics::metrics().push_done(&claim.cluster_id, "error");
                tracing::warn!(cluster_id = %claim.cluster_id, %error, "policy push failed");
                record_push_failed(&self.pool, &claim, error).await?;
            }
            Ok(PushOutcome::Pushed { hash, rejected }) => {
                crate::metrics::metrics().push_done(
                    &claim.cluster_id,
                    if rejected.is_empty() {
                        "live"
                    } else {
                        "refused"
                    },
                );
                tracing::info!(cluster_id = %claim.cluster_id, %hash, ?rejected, "policy pushed");
            }
        }
        Ok((claim.shard_id, outcome.unwrap_or_else(PushOutcome::Failed)))
    }

    async fn push(&self, claim: &PushClaim) -> Result<PushOutcome, String> {
        let db = |e: sqlx::Error| format!("the portal's database failed: {e}");
        let sources = shard_sources(&self.pool, claim.shard_id)
            .await
            .map_err(db)?;
        let client = self.clients.get(
            &self.secrets,
            &ShardAccess {
                shard_id: claim.shard_id,
                cluster_id: &claim.cluster_id,
                api_url: &claim.api_url,
                api_key_sealed: &claim.api_key_sealed,
            },
        )?;
        let version = client.refresh_version().await.map_err(|e| e.to_string())?;
        let with_tests = version.can_check_policy();
        let shard = ShardTenants {
            subnets: sources
                .iter()
                .map(|s| (s.code.clone(), prefixes(&s.subnets)))
                .collect(),
        };

        // Each tenant's policy: the candidate (newest not refused) and its fallback.
        let mut tenants: Vec<Tenant> = Vec::new();
        let mut rejected = Vec::new();
        for s in &sources {
            let fallback = match &s.revision {
                Some((n, body)) => match read(body, s) {
                    Ok(p) => (Some(*n), p),
                    Err(reason) => {
                        self.reject(s, *n, &reason, &mut rejected)
                            .await
                            .map_err(db)?;
                        (None, default_policy())
                    }
                },
                None => (None, default_policy()),
            };
            let candidate = match &s.candidate {
                Some((n, body)) => match read(body, s) {
                    Ok(p) => Some((*n, p)),
                    Err(reason) => {
                        self.reject(s, *n, &reason, &mut rejected)
                            .await
                            .map_err(db)?;
                        None
                    }
                },
                None => None,
            };
            tenants.push(Tenant {
                source: s.clone(),
                fallback,
                candidate,
            });
        }

        // All candidates; if the shard refuses, each candidate alone, then the survivors.
        let all: Vec<bool> = tenants.iter().map(|t| t.candidate.is_some()).collect();
        let text = match self
            .try_set(&client, &tenants, &all, &shard, with_tests)
            .await?
        {
            Ok(compiled) => compiled,
            Err(first_refusal) => {
                let mut take = vec![false; tenants.len()];
                for i in 0..tenants.len() {
                    if tenants[i].candidate.is_none() {
                        continue;
                    }
                    let mut alone = vec![false; tenants.len()];
                    alone[i] = true;
                    match self
                        .try_check(&client, &tenants, &alone, &shard, with_tests)
                        .await?
                    {
                        Ok(()) => take[i] = true,
                        Err(reason) => {
                            let t = &tenants[i];
                            let (n, _) = t.candidate.as_ref().expect("a candidate");
                            let reason = to_tenant_names(&reason, &t.source.code, &t.source.users);
                            self.reject(&t.source, *n, &reason, &mut rejected)
                                .await
                                .map_err(db)?;
                        }
                    }
                }
                match self.try_set(&client, &tenants, &take, &shard, with_tests).await? {
                    Ok(compiled) => compiled,
                    Err(refusal) => {
                        return Ok(PushOutcome::Failed(format!(
                            "Shard {} refused the policy built from the last good revisions: {refusal} (first: {first_refusal})",
                            claim.cluster_id
                        )))
                    }
                }
            }
        };
        let (compiled, live) = text;
        let hash = hex(&Sha256::digest(compiled.text().as_bytes()));
        record_pushed(&self.pool, claim, &hash, &live)
            .await
            .map_err(db)?;
        Ok(PushOutcome::Pushed { hash, rejected })
    }

    async fn reject(
        &self,
        s: &TenantSource,
        revision: i32,
        reason: &str,
        rejected: &mut Vec<(String, i32)>,
    ) -> Result<(), sqlx::Error> {
        tracing::warn!(tenant = %s.code, revision, reason, "policy revision refused");
        mark_rejected(&self.pool, s.tenant_id, revision, reason).await?;
        rejected.push((s.code.clone(), revision));
        Ok(())
    }

    /// Builds the policy taking the candidates marked in `take` and checks it with the
    /// shard (0.29+) without storing it.
    async fn try_check(
        &self,
        client: &ShardClient,
        tenants: &[Tenant],
        take: &[bool],
        shard: &ShardTenants,
        with_tests: bool,
    ) -> Result<Result<(), String>, String> {
        let (compiled, _) = build(tenants, take, shard, with_tests)?;
        if !with_tests {
            // 0.28 has no check: the PUT of the whole policy is the check.
            return refusal(client.set_policy(&compiled.text()).await.map(|_| ()));
        }
        refusal(client.check_policy(&compiled.text()).await)
    }

    /// Checks (0.29+) and sets the policy taking the candidates marked in `take`.
    /// `Ok(Err(reason))`: the shard refused it (its previous policy stays).
    #[allow(clippy::type_complexity)]
    async fn try_set(
        &self,
        client: &ShardClient,
        tenants: &[Tenant],
        take: &[bool],
        shard: &ShardTenants,
        with_tests: bool,
    ) -> Result<Result<(Compiled, Vec<(Uuid, Option<i32>)>), String>, String> {
        let (compiled, live) = build(tenants, take, shard, with_tests)?;
        let text = compiled.text();
        if with_tests {
            if let Err(reason) = refusal(client.check_policy(&text).await)? {
                return Ok(Err(reason));
            }
        }
        Ok(refusal(client.set_policy(&text).await.map(|_| ()))?.map(|()| (compiled, live)))
    }
}

/// A shard's answer: `Ok(Err(reason))` when it refused the policy (Headscale's words),
/// `Err` when it could not answer.
fn refusal(
    answer: Result<(), app::headscale::HeadscaleError>,
) -> Result<Result<(), String>, String> {
    match answer {
        Ok(()) => Ok(Ok(())),
        Err(e) if e.kind() == HeadscaleErrorKind::Rejected => {
            Ok(Err(e.detail().unwrap_or(&e.to_string()).to_string()))
        }
        Err(e) => Err(e.to_string()),
    }
}

struct Tenant {
    source: TenantSource,
    /// The live (or default) revision: `None` for the default policy.
    fallback: (Option<i32>, TenantPolicy),
    candidate: Option<(i32, TenantPolicy)>,
}

/// Compiles with the candidates in `take`, the fallbacks elsewhere, and checks isolation.
#[allow(clippy::type_complexity)]
fn build(
    tenants: &[Tenant],
    take: &[bool],
    shard: &ShardTenants,
    with_tests: bool,
) -> Result<(Compiled, Vec<(Uuid, Option<i32>)>), String> {
    let mut inputs = Vec::new();
    let mut live = Vec::new();
    for (t, take) in tenants.iter().zip(take) {
        let (revision, policy) = match (&t.candidate, take) {
            (Some((n, p)), true) => (Some(*n), p.clone()),
            _ => (t.fallback.0, t.fallback.1.clone()),
        };
        live.push((t.source.tenant_id, revision));
        inputs.push(TenantInput {
            code: t.source.code.clone(),
            policy,
            users: t.source.users.clone(),
            subnets: prefixes(&t.source.subnets),
            device_ips: t
                .source
                .device_ips
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
        });
    }
    let compiled = compile(&inputs, with_tests).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    if let Err(violations) = isolation::check_all(&compiled, shard) {
        let list: Vec<String> = violations
            .iter()
            .map(|v| format!("{}: {}", v.code, v.message))
            .collect();
        tracing::error!(
            ?list,
            "the compiled policy failed the isolation check; nothing pushed"
        );
        return Err(format!(
            "the portal's isolation check refused the compiled policy ({})",
            list.join("; ")
        ));
    }
    Ok((compiled, live))
}

/// A saved revision read again for a push: members who left since are no longer
/// anyone's (the compiler drops emails without a user), so any email reads here.
fn read(body: &str, s: &TenantSource) -> Result<TenantPolicy, String> {
    let root = hujson::parse(body).map_err(|e| e.to_string())?;
    let mut members: Vec<String> = s.users.keys().cloned().collect();
    emails(&root, &mut members);
    let ctx = TenantContext {
        members,
        subnets: prefixes(&s.subnets),
        dedicated_shard: s.dedicated,
    };
    check(&root, &ctx).map_err(|errors| {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

fn emails(node: &Node, out: &mut Vec<String>) {
    match &node.value {
        Value::String(s) if s.contains('@') => out.push(s.to_ascii_lowercase()),
        Value::Array(items) => items.iter().for_each(|i| emails(i, out)),
        Value::Object(fields) => fields.iter().for_each(|(k, _, v)| {
            if k.contains('@') {
                out.push(k.to_ascii_lowercase());
            }
            emails(v, out)
        }),
        _ => {}
    }
}

fn prefixes(list: &[String]) -> Vec<Prefix> {
    list.iter().filter_map(|s| Prefix::parse(s).ok()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
