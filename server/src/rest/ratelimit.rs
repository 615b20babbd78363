//! Token buckets for the REST API (per token) and the sign-in (per client address).
//!
//! In memory, per replica: with N replicas a client can make up to N times the rate.
//! That bounds abuse well enough for an admin portal; a shared limit would need the
//! database on every request (docs/api.md).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `burst` requests at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

pub struct Limiter {
    rate: Rate,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: Rate) -> Limiter {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from `key`'s bucket: `Ok` if there was one, else how many
    /// seconds until there is (for `Retry-After`, at least 1).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        let per_second = f64::from(self.rate.per_minute.max(1)) / 60.0;
        let burst = f64::from(self.rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 50_000 {
            // Full buckets are the same as no bucket: forget them.
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second < burst
            });
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64((1.0 - *tokens) / per_second);
            Err(wait.as_secs_f64().ceil().max(1.0) as u64)
        }
    }
}

/// A limit per client address, for routes anyone may call (the sign-in).
#[derive(Clone)]
pub struct PerClient {
    pub limiter: std::sync::Arc<Limiter>,
    pub trust_forwarded_for: bool,
}

/// The client's address: the peer, or behind one trusted proxy the last
/// `X-Forwarded-For` entry.
fn client(req: &axum::extract::Request, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| {
            req.headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        })
        .flatten();
    forwarded
        .or_else(|| {
            req.extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

pub async fn per_client(
    axum::extract::State(limit): axum::extract::State<PerClient>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let who = client(&req, limit.trust_forwarded_for);
    match limit.limiter.check(&who) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            tracing::warn!(client = %who, retry_after = wait, "sign-in rate limit reached");
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [
                    (axum::http::header::RETRY_AFTER, wait.to_string()),
                    (
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; charset=utf-8".to_string(),
                    ),
                ],
                format!(
                    "Too many sign-in attempts from your address. Try again in {wait} seconds."
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_key() {
        let l = Limiter::new(Rate {
            per_minute: 60,
            burst: 3,
        });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check_at("a", t0), Ok(()));
        }
        assert_eq!(l.check_at("a", t0), Err(1));
        assert_eq!(l.check_at("b", t0), Ok(()), "keys are separate");
        assert_eq!(l.check_at("a", t0 + Duration::from_millis(500)), Err(1));
        assert_eq!(l.check_at("a", t0 + Duration::from_millis(1000)), Ok(()));
        assert_eq!(l.check_at("a", t0 + Duration::from_millis(1000)), Err(1));
        // Long idle: back to the burst, never above it.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check_at("a", later), Ok(()));
        }
        assert!(l.check_at("a", later).is_err());
    }

    #[test]
    fn retry_after_is_the_wait_in_whole_seconds() {
        let l = Limiter::new(Rate {
            per_minute: 6,
            burst: 1,
        });
        let t0 = Instant::now();
        assert_eq!(l.check_at("a", t0), Ok(()));
        assert_eq!(l.check_at("a", t0), Err(10));
        assert_eq!(l.check_at("a", t0 + Duration::from_secs(4)), Err(6));
    }
}
