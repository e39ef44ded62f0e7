//! Circuit breaker in front of an embedding provider.
//!
//! - **Closed**: calls pass. `failure_threshold` consecutive failures open the breaker.
//! - **Open**: calls fail fast, without touching the provider, until `cooldown` has passed.
//! - **Half-open**: the first call after the cooldown is let through as the single probe;
//!   everyone else still fails fast. The probe's success closes the breaker, its failure
//!   opens it for another cooldown.
//!
//! A caller asks for a [`Permit`] before calling the provider and reports the outcome on it.
//! A permit dropped without an outcome (the caller's future was cancelled) counts as neither,
//! but frees the probe slot so the breaker cannot stick in half-open.
//!
//! Time comes from `tokio::time::Instant`, so tests pause and advance the clock.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::time::Instant;

/// The breaker's state as seen from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The value exported by the breaker-state gauge.
    pub fn gauge_value(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug)]
enum State {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe is in flight.
    HalfOpen,
}

impl State {
    fn public(&self) -> BreakerState {
        match self {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

/// The breaker refused the call: it is open, or the half-open probe is already in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected;

pub struct CircuitBreaker {
    failure_threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
    gauge: Gauge,
}

impl CircuitBreaker {
    /// `failure_threshold` is clamped to at least 1.
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        Self::with_gauge(failure_threshold, cooldown, Gauge::default())
    }

    /// Like [`CircuitBreaker::new`], exporting the state (0 closed, 1 open, 2 half-open) to `gauge`.
    pub fn with_gauge(failure_threshold: u32, cooldown: Duration, gauge: Gauge) -> Self {
        gauge.set(BreakerState::Closed.gauge_value());
        Self {
            failure_threshold: failure_threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed {
                consecutive_failures: 0,
            }),
            gauge,
        }
    }

    /// The current state. An open breaker whose cooldown has passed still reads `Open`
    /// until the next call turns it half-open.
    pub fn state(&self) -> BreakerState {
        self.lock().public()
    }

    /// Asks to make one call.
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Ok(Permit::new(self, false)),
            State::Open { until } if Instant::now() >= until => {
                self.set(&mut state, State::HalfOpen);
                Ok(Permit::new(self, true))
            }
            State::Open { .. } | State::HalfOpen => Err(Rejected),
        }
    }

    fn record(&self, probe: bool, success: bool) {
        let mut state = self.lock();
        match (&*state, probe, success) {
            (State::Closed { .. }, false, true) => {
                self.set(
                    &mut state,
                    State::Closed {
                        consecutive_failures: 0,
                    },
                );
            }
            (
                State::Closed {
                    consecutive_failures,
                },
                false,
                false,
            ) => {
                let failures = consecutive_failures.saturating_add(1);
                let next = if failures >= self.failure_threshold {
                    State::Open {
                        until: Instant::now() + self.cooldown,
                    }
                } else {
                    State::Closed {
                        consecutive_failures: failures,
                    }
                };
                self.set(&mut state, next);
            }
            (State::HalfOpen, true, true) => {
                self.set(
                    &mut state,
                    State::Closed {
                        consecutive_failures: 0,
                    },
                );
            }
            (State::HalfOpen, true, false) => {
                self.set(
                    &mut state,
                    State::Open {
                        until: Instant::now() + self.cooldown,
                    },
                );
            }
            // Late outcomes of calls let through before the breaker opened carry no news
            // about the probe; only the probe decides.
            _ => {}
        }
    }

    fn release_probe(&self) {
        let mut state = self.lock();
        if matches!(*state, State::HalfOpen) {
            // The cooldown already passed: the next caller becomes the probe.
            self.set(
                &mut state,
                State::Open {
                    until: Instant::now(),
                },
            );
        }
    }

    fn set(&self, slot: &mut MutexGuard<'_, State>, next: State) {
        self.gauge.set(next.public().gauge_value());
        **slot = next;
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; recover the state if one ever did.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Leave to make one call; report how it went with [`Permit::success`] or [`Permit::failure`].
#[must_use = "report the call's outcome on the permit"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, probe: bool) -> Self {
        Self {
            breaker,
            probe,
            reported: false,
        }
    }

    /// True when this call is the half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }

    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn fail_times(breaker: &CircuitBreaker, n: u32) {
        for _ in 0..n {
            breaker
                .try_acquire()
                .expect("breaker should let the call through")
                .failure();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_threshold_consecutive_failures_only() {
        let breaker = CircuitBreaker::new(3, COOLDOWN);
        fail_times(&breaker, 2);
        breaker.try_acquire().unwrap().success();
        // The success reset the count: two more failures keep it closed.
        fail_times(&breaker, 2);
        assert_eq!(breaker.state(), BreakerState::Closed);
        fail_times(&breaker, 1);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert_eq!(breaker.try_acquire().err(), Some(Rejected));
    }

    #[tokio::test(start_paused = true)]
    async fn lets_exactly_one_probe_through_after_cooldown() {
        let breaker = CircuitBreaker::new(1, COOLDOWN);
        fail_times(&breaker, 1);
        tokio::time::advance(COOLDOWN - Duration::from_millis(1)).await;
        assert!(breaker.try_acquire().is_err(), "still cooling down");
        tokio::time::advance(Duration::from_millis(1)).await;
        let probe = breaker
            .try_acquire()
            .expect("cooldown passed: probe allowed");
        assert!(probe.is_probe());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(breaker.try_acquire().is_err(), "only one probe at a time");
        probe.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(!breaker.try_acquire().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_for_a_full_cooldown() {
        let breaker = CircuitBreaker::new(1, COOLDOWN);
        fail_times(&breaker, 1);
        tokio::time::advance(COOLDOWN).await;
        breaker.try_acquire().unwrap().failure();
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(COOLDOWN - Duration::from_millis(1)).await;
        assert!(breaker.try_acquire().is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.try_acquire().unwrap().is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_probe_frees_the_slot() {
        // Without this, a probe whose caller went away would leave the breaker half-open forever.
        let breaker = CircuitBreaker::new(1, COOLDOWN);
        fail_times(&breaker, 1);
        tokio::time::advance(COOLDOWN).await;
        drop(breaker.try_acquire().unwrap());
        let probe = breaker.try_acquire().expect("a new probe may go");
        assert!(probe.is_probe());
        probe.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn late_success_of_an_old_call_does_not_close_an_open_breaker() {
        let breaker = CircuitBreaker::new(1, COOLDOWN);
        let slow = breaker.try_acquire().unwrap();
        fail_times(&breaker, 1);
        slow.success();
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn gauge_follows_the_state() {
        let gauge = Gauge::default();
        let breaker = CircuitBreaker::with_gauge(1, COOLDOWN, gauge.clone());
        assert_eq!(gauge.get(), 0);
        fail_times(&breaker, 1);
        assert_eq!(gauge.get(), 1);
        tokio::time::advance(COOLDOWN).await;
        let probe = breaker.try_acquire().unwrap();
        assert_eq!(gauge.get(), 2);
        probe.success();
        assert_eq!(gauge.get(), 0);
    }
}
