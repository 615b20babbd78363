//! A per-shard circuit breaker: after N failed calls in a row the client stops calling
//! the shard for a cool-down, failing fast instead of letting every page and job wait
//! out a timeout; then one trial call goes through (half-open) and decides.
//!
//! Time comes from an injectable monotonic clock so tests need not sleep.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A monotonic clock. Not `auth::clock::Clock`, which tells wall time for sessions.
pub trait InstantClock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemInstantClock;

impl InstantClock for SystemInstantClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to. For tests.
#[derive(Debug)]
pub struct ManualInstantClock {
    start: Instant,
    elapsed: Mutex<Duration>,
}

impl ManualInstantClock {
    pub fn new() -> Self {
        ManualInstantClock {
            start: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    pub fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }
}

impl Default for ManualInstantClock {
    fn default() -> Self {
        Self::new()
    }
}

impl InstantClock for ManualInstantClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast until the cool-down ends.
    Open,
    /// The cool-down has ended: the next call is a trial (others fail fast meanwhile).
    HalfOpen,
}

/// Why a call may not go through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The failures in a row that opened the breaker.
    pub failures: u32,
    /// Time left in the cool-down; zero while a trial call is under way.
    pub retry_in: Duration,
}

#[derive(Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
}

pub struct CircuitBreaker {
    failure_threshold: u32,
    cool_down: Duration,
    clock: Arc<dyn InstantClock>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("failure_threshold", &self.failure_threshold)
            .field("cool_down", &self.cool_down)
            .field("state", &self.state())
            .finish()
    }
}

impl CircuitBreaker {
    /// `failure_threshold` is at least 1.
    pub fn new(failure_threshold: u32, cool_down: Duration, clock: Arc<dyn InstantClock>) -> Self {
        CircuitBreaker {
            failure_threshold: failure_threshold.max(1),
            cool_down,
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The state stays consistent even if a holder panicked: every update is a
        // single assignment.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> BreakerState {
        let inner = self.lock();
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if self.clock.now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.lock().consecutive_failures
    }

    /// Asks to make a call. The permit must be settled with `succeeded`/`failed`; a
    /// permit dropped unsettled (the call was cancelled) frees the trial slot without
    /// deciding anything.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Refusal> {
        let mut inner = self.lock();
        let now = self.clock.now();
        let failures = inner.consecutive_failures;
        match inner.state {
            State::Closed => Ok(Permit::new(self, false)),
            State::Open { until } if now < until => Err(Refusal {
                failures,
                retry_in: until - now,
            }),
            State::Open { .. }
            | State::HalfOpen {
                trial_in_flight: false,
            } => {
                inner.state = State::HalfOpen {
                    trial_in_flight: true,
                };
                Ok(Permit::new(self, true))
            }
            State::HalfOpen {
                trial_in_flight: true,
            } => Err(Refusal {
                failures,
                retry_in: Duration::ZERO,
            }),
        }
    }

    fn record_success(&self) {
        let mut inner = self.lock();
        inner.consecutive_failures = 0;
        inner.state = State::Closed;
    }

    fn record_failure(&self, trial: bool) {
        let mut inner = self.lock();
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let open = match inner.state {
            // A failed trial re-opens for a full cool-down.
            State::HalfOpen { .. } => trial,
            State::Closed => inner.consecutive_failures >= self.failure_threshold,
            // Calls that started before the breaker opened do not extend the cool-down.
            State::Open { .. } => false,
        };
        if open {
            inner.state = State::Open {
                until: self.clock.now() + self.cool_down,
            };
        }
    }

    fn abandon_trial(&self) {
        let mut inner = self.lock();
        if let State::HalfOpen { .. } = inner.state {
            inner.state = State::HalfOpen {
                trial_in_flight: false,
            };
        }
    }
}

#[must_use = "settle the permit with succeeded() or failed()"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    settled: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, trial: bool) -> Self {
        Permit {
            breaker,
            trial,
            settled: false,
        }
    }

    /// The shard answered (whatever it said).
    pub fn succeeded(mut self) {
        self.settled = true;
        self.breaker.record_success();
    }

    /// The shard did not answer, or failed on its side.
    pub fn failed(mut self) {
        self.settled = true;
        self.breaker.record_failure(self.trial);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled && self.trial {
            self.breaker.abandon_trial();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> (CircuitBreaker, Arc<ManualInstantClock>) {
        let clock = Arc::new(ManualInstantClock::new());
        (
            CircuitBreaker::new(threshold, Duration::from_secs(30), clock.clone()),
            clock,
        )
    }

    fn fail(b: &CircuitBreaker) {
        b.try_acquire().expect("call allowed").failed();
    }

    #[test]
    fn opens_after_n_failures_in_a_row() {
        let (b, _) = breaker(3);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        let refusal = b.try_acquire().err().expect("fails fast");
        assert_eq!(refusal.failures, 3);
        assert_eq!(refusal.retry_in, Duration::from_secs(30));
    }

    #[test]
    fn a_success_resets_the_count() {
        let (b, _) = breaker(3);
        fail(&b);
        fail(&b);
        b.try_acquire().unwrap().succeeded();
        assert_eq!(b.consecutive_failures(), 0);
        fail(&b);
        fail(&b);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn half_opens_after_the_cool_down_and_closes_on_a_good_trial() {
        let (b, clock) = breaker(2);
        fail(&b);
        fail(&b);
        clock.advance(Duration::from_secs(29));
        assert_eq!(
            b.try_acquire().err().unwrap().retry_in,
            Duration::from_secs(1)
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let trial = b.try_acquire().expect("one trial");
        // Others still fail fast while the trial is under way.
        let other = b.try_acquire().err().expect("only one trial");
        assert_eq!(other.retry_in, Duration::ZERO);
        trial.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.try_acquire().is_ok());
    }

    #[test]
    fn a_failed_trial_reopens_for_a_full_cool_down() {
        let (b, clock) = breaker(2);
        fail(&b);
        fail(&b);
        clock.advance(Duration::from_secs(31));
        fail(&b);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(
            b.try_acquire().err().unwrap().retry_in,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn an_abandoned_trial_lets_the_next_call_try() {
        let (b, clock) = breaker(1);
        fail(&b);
        clock.advance(Duration::from_secs(30));
        drop(b.try_acquire().expect("trial"));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        b.try_acquire().expect("next trial").succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn late_failures_do_not_extend_the_cool_down() {
        let (b, clock) = breaker(1);
        let early = b.try_acquire().unwrap();
        fail(&b);
        clock.advance(Duration::from_secs(20));
        early.failed();
        assert_eq!(
            b.try_acquire().err().unwrap().retry_in,
            Duration::from_secs(10)
        );
    }
}
