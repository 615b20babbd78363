//! Which failed attempts are tried again.
//!
//! Only reads (GET) are retried: a POST/PUT/DELETE that timed out may have been
//! applied, and doing it twice could mint a second pre-auth key or rename twice. Reads
//! are retried only where another attempt can help: the connection failed, no answer
//! came in time, or a proxy/Headscale said it is briefly unable (502/503/504).

use reqwest::Method;
use std::time::Duration;

/// How one attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AttemptFailure {
    /// The TCP/TLS connection could not be made.
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// The shard answered with this error status.
    Status(u16),
    /// Anything else (connection dropped mid-answer, unreadable body).
    Other,
}

pub(super) fn is_retryable(method: &Method, failure: AttemptFailure) -> bool {
    *method == Method::GET
        && matches!(
            failure,
            AttemptFailure::Connect | AttemptFailure::Timeout | AttemptFailure::Status(502..=504)
        )
}

/// The pause before retry number `retry` (0-based): base, 2×base, 4×base, ….
pub(super) fn backoff(base: Duration, retry: u32) -> Duration {
    base.saturating_mul(1u32 << retry.min(8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AttemptFailure as F;

    #[test]
    fn only_gets_are_retried() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            for failure in [F::Connect, F::Timeout, F::Status(503), F::Status(502)] {
                assert!(!is_retryable(&method, failure), "{method} {failure:?}");
            }
        }
    }

    #[test]
    fn gets_are_retried_on_transient_failures_only() {
        for failure in [
            F::Connect,
            F::Timeout,
            F::Status(502),
            F::Status(503),
            F::Status(504),
        ] {
            assert!(is_retryable(&Method::GET, failure), "{failure:?}");
        }
        for failure in [
            F::Status(500),
            F::Status(501),
            F::Status(400),
            F::Status(401),
            F::Status(404),
            F::Status(429),
            F::Other,
        ] {
            assert!(!is_retryable(&Method::GET, failure), "{failure:?}");
        }
    }

    #[test]
    fn backoff_doubles() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 0), Duration::from_millis(100));
        assert_eq!(backoff(base, 1), Duration::from_millis(200));
        assert_eq!(backoff(base, 2), Duration::from_millis(400));
    }
}
