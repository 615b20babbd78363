//! A tenant's ACL policy: read it with its history and push state, check a draft (errors
//! with line and column, the tenant's tests, a diff against the live revision), preview
//! what a source can reach or who can reach a target, save, revert, and declare the
//! tenant's own subnets.
//!
//! Who may do what (DESIGN.md §5): owners, admins and network admins edit; everyone else
//! in the tenant reads (members included: the policy is what governs their devices).
//!
//! Without JavaScript a form post that does not save (a check, a refused save) keeps the
//! draft for the page in this process's memory for 30 minutes, per person and tenant, so
//! nothing typed is lost; a save that goes through drops it.

use crate::domain::policy::diff::DiffLine;
use crate::domain::policy::eval::{Grant, Reacher};
use crate::domain::policy::Validation;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One saved revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub revision: i32,
    pub body: String,
    pub comment: String,
    pub author_name: String,
    pub created_at: String,
    pub restores: Option<i32>,
    /// Set when a shard refused it (Headscale's reason).
    pub rejected_reason: Option<String>,
}

/// A revision in the history list (no text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionSummary {
    pub revision: i32,
    pub comment: String,
    pub author_name: String,
    pub created_at: String,
    pub restores: Option<i32>,
    pub rejected_reason: Option<String>,
}

/// Where the tenant's policy stands on its shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// Whether the tenant is placed on a shard at all.
    pub placed: bool,
    /// The revision live on the shard: `Some(None)` the default policy, `None` nothing
    /// pushed yet.
    pub live_revision: Option<Option<i32>>,
    pub pushed_at: Option<String>,
    /// A change waits for the push (since then).
    pub pending_since: Option<String>,
    /// Whether the shard's last push failed (its policy in force is the previous one).
    /// The shard's error itself may name other tenants, so only operators see it.
    pub push_failed: bool,
}

/// The policy page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// The text the editor starts from: a kept draft, the newest revision, or the
    /// default policy.
    pub text: String,
    /// The newest revision (what a save is based on); `None`: never saved.
    pub revision: Option<i32>,
    /// Whether `text` is a draft kept from a check or a refused save (JavaScript off).
    pub draft: bool,
    pub draft_comment: String,
    /// The checks of `text`.
    pub validation: Validation,
    /// `text` against the live revision (the default policy when none is live).
    pub diff: Vec<DiffLine>,
    pub live: LiveState,
    pub history: Vec<RevisionSummary>,
    pub may_edit: bool,
    /// The tenant's declared subnets.
    pub subnets: Vec<String>,
    /// Whether the tenant's shard is dedicated to it (`autogroup:internet` allowed).
    pub dedicated_shard: bool,
}

/// The answer to a check of a draft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyCheck {
    pub validation: Validation,
    pub diff: Vec<DiffLine>,
}

/// The preview: what `source` may reach, or who may reach `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Preview {
    pub grants: Vec<Grant>,
    pub reachers: Vec<Reacher>,
    /// A problem with the question (an unknown name) or the draft.
    pub problem: Option<String>,
}

#[cfg(feature = "ssr")]
pub(crate) mod drafts {
    //! Drafts kept for JavaScript-free pages (see the module docs).
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};
    use uuid::Uuid;

    const TTL: Duration = Duration::from_secs(1800);

    #[derive(Clone)]
    pub struct Draft {
        pub text: String,
        pub comment: String,
    }

    type Store = Mutex<HashMap<(Uuid, Uuid), (Instant, Draft)>>;

    fn store() -> &'static Store {
        static STORE: OnceLock<Store> = OnceLock::new();
        STORE.get_or_init(Default::default)
    }

    pub fn put(person: Uuid, tenant: Uuid, draft: Draft) {
        let mut s = store().lock().expect("drafts");
        s.retain(|_, (at, _)| at.elapsed() < TTL);
        s.insert((person, tenant), (Instant::now(), draft));
    }

    pub fn get(person: Uuid, tenant: Uuid) -> Option<Draft> {
        let s = store().lock().expect("drafts");
        s.get(&(person, tenant))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, d)| d.clone())
    }

    pub fn drop_for(person: Uuid, tenant: Uuid) {
        store().lock().expect("drafts").remove(&(person, tenant));
    }
}

#[cfg(feature = "ssr")]
mod server {
    use crate::auth::TenantScope;
    use crate::data::policies;
    use crate::domain::policy::compile::DEFAULT_POLICY_TEXT;
    use crate::domain::policy::model::TenantContext;
    use crate::domain::routes::Prefix;
    use crate::error::{fail, AppError};
    use crate::state::AppState;

    pub struct Ctx {
        pub state: AppState,
        pub scope: TenantScope,
        pub display_name: String,
        pub context: TenantContext,
        pub subnets: Vec<String>,
    }

    impl Ctx {
        pub async fn new(
            slug: &str,
            permission: crate::domain::role::Permission,
        ) -> Result<Ctx, AppError> {
            let principal = crate::auth::current_principal().map_err(fail)?;
            let scope = principal.tenant_scope(slug, permission).map_err(fail)?;
            let state = crate::state::app_state().map_err(fail)?;
            let (members, subnets) = policies::names(&state.pool, &scope)
                .await
                .map_err(|e| fail(e.into()))?;
            let dedicated = policies::dedicated_shard(&state.pool, &scope)
                .await
                .map_err(|e| fail(e.into()))?;
            let context = TenantContext {
                members,
                subnets: subnets
                    .iter()
                    .filter_map(|s| Prefix::parse(s).ok())
                    .collect(),
                dedicated_shard: dedicated,
            };
            Ok(Ctx {
                state,
                scope,
                display_name: principal.display_name.clone(),
                context,
                subnets,
            })
        }

        /// The text live on the shard (the default policy when none is).
        pub async fn live_text(&self, live: &super::LiveState) -> Result<String, AppError> {
            Ok(match live.live_revision.flatten() {
                Some(n) => policies::revision(&self.state.pool, &self.scope, n)
                    .await
                    .map_err(|e| fail(e.into()))?
                    .map(|r| r.body)
                    .unwrap_or_default(),
                None => DEFAULT_POLICY_TEXT.to_string(),
            })
        }
    }

    /// A summary of what stands in the way of saving, for the error banner.
    pub fn refusal(v: &crate::domain::policy::Validation) -> String {
        let mut lines: Vec<String> = v
            .errors
            .iter()
            .map(|e| format!("line {}, column {}: {}", e.line, e.col, e.message))
            .chain(
                v.tests
                    .iter()
                    .filter(|t| !t.passed)
                    .map(|t| format!("line {}: test failed: {}", t.line, t.message)),
            )
            .collect();
        let n = lines.len();
        lines.truncate(5);
        let more = if n > 5 {
            format!(" (and {} more)", n - 5)
        } else {
            String::new()
        };
        format!("The policy was not saved: {}{more}", lines.join("; "))
    }
}

#[server(prefix = "/api", endpoint = "get_policy")]
pub async fn get_policy(slug: String) -> Result<PolicyView, AppError> {
    use crate::data::policies;
    use crate::domain::policy::compile::DEFAULT_POLICY_TEXT;
    use crate::domain::policy::{diff::diff, validate};
    use crate::domain::role::Permission;
    use crate::error::fail;
    let ctx = server::Ctx::new(&slug, Permission::View).await?;
    let pool = &ctx.state.pool;
    let db = |e: sqlx::Error| fail(e.into());
    let latest = policies::latest(pool, &ctx.scope).await.map_err(db)?;
    let live = policies::live_state(pool, &ctx.scope).await.map_err(db)?;
    let history = policies::history(pool, &ctx.scope).await.map_err(db)?;
    let may_edit = ctx.scope.role().allows(Permission::ManagePolicy);
    let draft = may_edit
        .then(|| drafts::get(ctx.scope.person_id(), ctx.scope.tenant_id()))
        .flatten();
    let text = match (&draft, &latest) {
        (Some(d), _) => d.text.clone(),
        (None, Some(r)) => r.body.clone(),
        (None, None) => DEFAULT_POLICY_TEXT.to_string(),
    };
    let (validation, _) = validate(&text, &ctx.context);
    let live_text = ctx.live_text(&live).await?;
    Ok(PolicyView {
        diff: diff(&live_text, &text),
        text,
        revision: latest.map(|r| r.revision),
        draft: draft.is_some(),
        draft_comment: draft.map(|d| d.comment).unwrap_or_default(),
        validation,
        live,
        history,
        may_edit: may_edit && ctx.scope.require_active().is_ok(),
        subnets: ctx.subnets.clone(),
        dedicated_shard: ctx.context.dedicated_shard,
    })
}

/// Checks a draft without saving it.
#[server(prefix = "/api", endpoint = "check_policy")]
pub async fn check_policy(
    slug: String,
    text: String,
    #[server(default)] comment: String,
) -> Result<PolicyCheck, AppError> {
    use crate::data::policies;
    use crate::domain::policy::{diff::diff, validate};
    use crate::domain::role::Permission;
    use crate::error::{fail, is_form_post};
    let ctx = server::Ctx::new(&slug, Permission::View).await?;
    let (validation, _) = validate(&text, &ctx.context);
    let live = policies::live_state(&ctx.state.pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?;
    let live_text = ctx.live_text(&live).await?;
    if is_form_post() && ctx.scope.role().allows(Permission::ManagePolicy) {
        drafts::put(
            ctx.scope.person_id(),
            ctx.scope.tenant_id(),
            drafts::Draft {
                text: text.clone(),
                comment,
            },
        );
        leptos_axum::redirect(&format!("/t/{slug}/policy?checked=1"));
    }
    Ok(PolicyCheck {
        diff: diff(&live_text, &text),
        validation,
    })
}

/// Saves a draft as the tenant's next revision, when it has no errors and its tests
/// pass. `based_on`: the revision the editor started from (empty: none).
#[server(prefix = "/api", endpoint = "save_policy")]
pub async fn save_policy(
    slug: String,
    text: String,
    #[server(default)] comment: String,
    #[server(default)] based_on: String,
) -> Result<i32, AppError> {
    use crate::data::policies::{self, SaveError};
    use crate::domain::policy::validate;
    use crate::domain::role::Permission;
    use crate::error::{fail, is_form_post};
    let ctx = server::Ctx::new(&slug, Permission::ManagePolicy).await?;
    ctx.scope.require_active().map_err(fail)?;
    let keep = |text: &str, comment: &str| {
        if is_form_post() {
            drafts::put(
                ctx.scope.person_id(),
                ctx.scope.tenant_id(),
                drafts::Draft {
                    text: text.to_string(),
                    comment: comment.to_string(),
                },
            );
        }
    };
    let based_on = match based_on.trim() {
        "" => None,
        n => Some(n.parse::<i32>().map_err(|_| {
            fail(AppError::Invalid(
                "The revision to save over is not a number.".into(),
            ))
        })?),
    };
    let comment = comment.trim().to_string();
    if comment.chars().count() > 500 {
        keep(&text, &comment);
        return Err(fail(AppError::Invalid(
            "The comment is longer than 500 characters.".into(),
        )));
    }
    if text.len() > 256 * 1024 {
        keep("", &comment);
        return Err(fail(AppError::Invalid(
            "The policy is larger than 256 KiB.".into(),
        )));
    }
    let (validation, _) = validate(&text, &ctx.context);
    if !validation.saveable() {
        keep(&text, &comment);
        return Err(fail(AppError::Invalid(server::refusal(&validation))));
    }
    let saved = policies::save(
        &ctx.state.pool,
        &ctx.scope,
        &ctx.display_name,
        &text,
        &comment,
        None,
        based_on,
    )
    .await;
    match saved {
        Ok(revision) => {
            drafts::drop_for(ctx.scope.person_id(), ctx.scope.tenant_id());
            tracing::info!(tenant = %slug, revision, "policy saved");
            leptos_axum::redirect(&format!("/t/{slug}/policy?done=saved"));
            Ok(revision)
        }
        Err(SaveError::Stale { latest }) => {
            keep(&text, &comment);
            Err(fail(AppError::Conflict(format!(
                "Someone saved revision {latest} while you were editing; your text is kept here. Look at the history, then save again."
            ))))
        }
        Err(SaveError::Db(e)) => {
            keep(&text, &comment);
            Err(fail(e.into()))
        }
    }
}

/// Saves an earlier revision's text again as the newest revision (checked as it would be
/// today: members and subnets may have changed since).
#[server(prefix = "/api", endpoint = "revert_policy")]
pub async fn revert_policy(
    slug: String,
    revision: i32,
    #[server(default)] based_on: String,
) -> Result<i32, AppError> {
    use crate::data::policies::{self, SaveError};
    use crate::domain::policy::validate;
    use crate::domain::role::Permission;
    use crate::error::fail;
    let ctx = server::Ctx::new(&slug, Permission::ManagePolicy).await?;
    ctx.scope.require_active().map_err(fail)?;
    let old = policies::revision(&ctx.state.pool, &ctx.scope, revision)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Revision {revision}"))))?;
    let (validation, _) = validate(&old.body, &ctx.context);
    if !validation.saveable() {
        return Err(fail(AppError::Invalid(format!(
            "Revision {revision} cannot be restored as it is today. {}",
            server::refusal(&validation)
        ))));
    }
    let based_on = based_on.trim().parse::<i32>().ok();
    match policies::save(
        &ctx.state.pool,
        &ctx.scope,
        &ctx.display_name,
        &old.body,
        &format!("Restore revision {revision}"),
        Some(revision),
        based_on,
    )
    .await
    {
        Ok(n) => {
            tracing::info!(tenant = %slug, revision = n, restores = revision, "policy reverted");
            leptos_axum::redirect(&format!("/t/{slug}/policy?done=reverted"));
            Ok(n)
        }
        Err(SaveError::Stale { latest }) => Err(fail(AppError::Conflict(format!(
            "Someone saved revision {latest} meanwhile; look at the history again."
        )))),
        Err(SaveError::Db(e)) => Err(fail(e.into())),
    }
}

/// What `source` may reach, or (when `source` is empty) who may reach `target`
/// (`tag:db:5432`, `nas`, `alice@acme.com:22`), under `text` (empty: the newest revision).
#[server(prefix = "/api", endpoint = "preview_policy")]
pub async fn preview_policy(
    slug: String,
    #[server(default)] text: String,
    #[server(default)] source: String,
    #[server(default)] target: String,
) -> Result<Preview, AppError> {
    use crate::data::policies;
    use crate::domain::policy::compile::DEFAULT_POLICY_TEXT;
    use crate::domain::policy::eval::{reachable_from, who_reaches};
    use crate::domain::policy::{preview_principal, validate};
    use crate::domain::role::Permission;
    use crate::error::fail;
    let ctx = server::Ctx::new(&slug, Permission::View).await?;
    let text = if text.trim().is_empty() {
        policies::latest(&ctx.state.pool, &ctx.scope)
            .await
            .map_err(|e| fail(e.into()))?
            .map(|r| r.body)
            .unwrap_or_else(|| DEFAULT_POLICY_TEXT.to_string())
    } else {
        text
    };
    let (_, policy) = validate(&text, &ctx.context);
    let Some(policy) = policy else {
        return Ok(Preview {
            problem: Some("The policy has errors; fix them to preview it.".into()),
            ..Preview::default()
        });
    };
    let (source, target) = (source.trim(), target.trim());
    if !source.is_empty() {
        return Ok(match preview_principal(&policy, &ctx.context, source) {
            Ok(p) => Preview {
                grants: reachable_from(&policy, &p),
                ..Preview::default()
            },
            Err(problem) => Preview {
                problem: Some(problem),
                ..Preview::default()
            },
        });
    }
    if target.is_empty() {
        return Ok(Preview {
            problem: Some("Name a source (alice@acme.com) or a target (tag:db:5432).".into()),
            ..Preview::default()
        });
    }
    let (name, port) = match target.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => (name, port.parse::<u16>().ok()),
        _ => (target, None),
    };
    Ok(match preview_principal(&policy, &ctx.context, name) {
        Ok(p) => Preview {
            reachers: who_reaches(&policy, &p, port),
            ..Preview::default()
        },
        Err(problem) => Preview {
            problem: Some(problem),
            ..Preview::default()
        },
    })
}

/// Declares the tenant's own subnets (one per line or comma-separated). They may not
/// touch the tailnet ranges nor overlap another tenant's subnets or routes on the
/// shard, and the newest revision must still check with them.
#[server(prefix = "/api", endpoint = "set_subnets")]
pub async fn set_subnets(slug: String, #[server(default)] subnets: String) -> Result<(), AppError> {
    use crate::data::policies;
    use crate::domain::policy::model::TenantContext;
    use crate::domain::policy::validate;
    use crate::domain::role::Permission;
    use crate::domain::routes::Prefix;
    use crate::error::fail;
    let ctx = server::Ctx::new(&slug, Permission::ManagePolicy).await?;
    ctx.scope.require_active().map_err(fail)?;
    let invalid = |m: String| fail(AppError::Invalid(m));
    let mut parsed: Vec<Prefix> = Vec::new();
    for item in subnets
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let p = Prefix::parse(item).map_err(&invalid)?;
        if p.is_exit() {
            return Err(invalid(format!("{item} is every address, not a subnet.")));
        }
        for tailnet in ["100.64.0.0/10", "fd7a:115c:a1e0::/48"] {
            if p.overlaps(&Prefix::parse(tailnet).expect("constant")) {
                return Err(invalid(format!(
                    "{p} overlaps the tailnet range {tailnet}, which every tenant on the shard shares."
                )));
            }
        }
        if let Some(q) = parsed.iter().find(|q| q.overlaps(&p)) {
            return Err(invalid(format!("{p} overlaps {q}, listed already.")));
        }
        parsed.push(p);
    }
    if parsed.len() > 64 {
        return Err(invalid("At most 64 subnets.".into()));
    }
    let taken = policies::taken_on_shard(&ctx.state.pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?;
    for p in &parsed {
        if let Some(t) = taken
            .iter()
            .filter_map(|t| Prefix::parse(t).ok())
            .find(|t| !t.is_exit() && t.overlaps(p))
        {
            return Err(fail(AppError::Conflict(format!(
                "{p} overlaps {t}, which another tenant on this shard uses; Headscale routes each address range for the whole shard, so it cannot be yours too. Choose another range, or ask the service operator to move you to another shard."
            ))));
        }
    }
    if let Some(latest) = policies::latest(&ctx.state.pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?
    {
        let (v, _) = validate(
            &latest.body,
            &TenantContext {
                subnets: parsed.clone(),
                ..ctx.context.clone()
            },
        );
        if let Some(e) = v.errors.first() {
            return Err(invalid(format!(
                "Revision {} of the policy would no longer check with these subnets (line {}: {}); change the policy first.",
                latest.revision, e.line, e.message
            )));
        }
    }
    let list: Vec<String> = parsed.iter().map(|p| p.to_string()).collect();
    policies::set_subnets(&ctx.state.pool, &ctx.scope, &list)
        .await
        .map_err(|e| fail(e.into()))?;
    tracing::info!(tenant = %slug, subnets = ?list, "subnets declared");
    leptos_axum::redirect(&format!("/t/{slug}/policy?done=subnets"));
    Ok(())
}

/// One revision's text, with what it changes against the live revision.
#[server(prefix = "/api", endpoint = "get_policy_revision")]
pub async fn get_policy_revision(
    slug: String,
    revision: i32,
) -> Result<(Revision, Vec<DiffLine>), AppError> {
    use crate::data::policies;
    use crate::domain::policy::diff::diff;
    use crate::domain::role::Permission;
    use crate::error::fail;
    let ctx = server::Ctx::new(&slug, Permission::View).await?;
    let r = policies::revision(&ctx.state.pool, &ctx.scope, revision)
        .await
        .map_err(|e| fail(e.into()))?
        .ok_or_else(|| fail(AppError::NotFound(format!("Revision {revision}"))))?;
    let live = policies::live_state(&ctx.state.pool, &ctx.scope)
        .await
        .map_err(|e| fail(e.into()))?;
    let live_text = ctx.live_text(&live).await?;
    let lines = diff(&live_text, &r.body);
    Ok((r, lines))
}

/// Drops the draft kept for a JavaScript-free page.
#[server(prefix = "/api", endpoint = "discard_policy_draft")]
pub async fn discard_policy_draft(slug: String) -> Result<(), AppError> {
    use crate::domain::role::Permission;
    use crate::error::fail;
    let principal = crate::auth::current_principal().map_err(fail)?;
    let scope = principal
        .tenant_scope(&slug, Permission::View)
        .map_err(fail)?;
    drafts::drop_for(scope.person_id(), scope.tenant_id());
    leptos_axum::redirect(&format!("/t/{slug}/policy"));
    Ok(())
}
