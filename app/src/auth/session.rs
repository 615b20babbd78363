//! The signed-in state kept in the server-side session.
//!
//! tower-sessions stores the session in Postgres (`web_session`) and gives the browser
//! only an opaque id. Idle and absolute limits are enforced here against the injected
//! clock, not by the store, so they are exact and testable; the store's own expiry is
//! only garbage collection.

use super::clock::Clock;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tower_sessions::Session;
use uuid::Uuid;

const KEY: &str = "auth";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Sign out after this long without a request (default 30 minutes).
    pub idle_timeout: Duration,
    /// Sign out this long after sign-in, however active (default 12 hours).
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: Duration::minutes(30),
            absolute_lifetime: Duration::hours(12),
        }
    }
}

/// Stored in the session at sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthSession {
    pub person_id: Uuid,
    #[serde(with = "time::serde::timestamp")]
    pub signed_in_at: OffsetDateTime,
    #[serde(with = "time::serde::timestamp")]
    pub last_seen_at: OffsetDateTime,
    /// The ID token, sent back as `id_token_hint` at RP-initiated logout.
    pub id_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Idle,
    Expired,
}

impl SessionPolicy {
    pub fn judge(&self, s: &AuthSession, now: OffsetDateTime) -> Freshness {
        if now - s.signed_in_at >= self.absolute_lifetime {
            Freshness::Expired
        } else if now - s.last_seen_at >= self.idle_timeout {
            Freshness::Idle
        } else {
            Freshness::Fresh
        }
    }
}

/// Starts a signed-in session: a new session id (no fixation), then the auth record.
pub async fn establish(
    session: &Session,
    person_id: Uuid,
    id_token: String,
    clock: &dyn Clock,
) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    let now = clock.now();
    session
        .insert(
            KEY,
            AuthSession {
                person_id,
                signed_in_at: now,
                last_seen_at: now,
                id_token,
            },
        )
        .await
}

/// The signed-in person of this session, if the session is still within its limits.
/// An idle or expired session is deleted (from the store, and its cookie cleared).
pub async fn resume(
    session: &Session,
    policy: &SessionPolicy,
    clock: &dyn Clock,
) -> Result<Option<AuthSession>, tower_sessions::session::Error> {
    let Some(mut auth) = session.get::<AuthSession>(KEY).await? else {
        return Ok(None);
    };
    let now = clock.now();
    match policy.judge(&auth, now) {
        Freshness::Fresh => {
            // Writing on every request would double the database load; a minute of
            // slack on a 30-minute idle limit is not worth that.
            if now - auth.last_seen_at >= Duration::minutes(1) {
                auth.last_seen_at = now;
                session.insert(KEY, &auth).await?;
            }
            Ok(Some(auth))
        }
        Freshness::Idle | Freshness::Expired => {
            tracing::info!(person_id = %auth.person_id, "session ended by its time limit");
            session.flush().await?;
            Ok(None)
        }
    }
}

/// Who this session belongs to (signed in or not yet timed out), without touching it.
pub async fn person(session: &Session) -> Option<Uuid> {
    session
        .get::<AuthSession>(KEY)
        .await
        .ok()
        .flatten()
        .map(|a| a.person_id)
}

/// Ends the session on the server. Returns the ID token for the provider's logout.
pub async fn end(session: &Session) -> Result<Option<String>, tower_sessions::session::Error> {
    let token = session.get::<AuthSession>(KEY).await?.map(|a| a.id_token);
    session.flush().await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::minutes(minutes)
    }

    fn session(signed_in: i64, last_seen: i64) -> AuthSession {
        AuthSession {
            person_id: Uuid::nil(),
            signed_in_at: at(signed_in),
            last_seen_at: at(last_seen),
            id_token: String::new(),
        }
    }

    #[test]
    fn idle_limit_counts_from_the_last_request() {
        let p = SessionPolicy::default();
        assert_eq!(p.judge(&session(0, 0), at(29)), Freshness::Fresh);
        assert_eq!(p.judge(&session(0, 0), at(30)), Freshness::Idle);
        assert_eq!(p.judge(&session(0, 100), at(129)), Freshness::Fresh);
    }

    #[test]
    fn absolute_limit_holds_however_active() {
        let p = SessionPolicy::default();
        assert_eq!(p.judge(&session(0, 719), at(719)), Freshness::Fresh);
        assert_eq!(p.judge(&session(0, 719), at(720)), Freshness::Expired);
    }
}
