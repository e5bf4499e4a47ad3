//! Restart strategies: how a [`Pipeline`](crate::Pipeline) recovers from a failure by itself,
//! restoring from its last checkpoint, as Flink's restart strategies do
//! (`restart-strategy.type`: `fixed-delay`, `exponential-delay`, `failure-rate`, `none`).
//!
//! A failure that a restart can cure (a broker gone or restarting, a leader moving, a
//! timeout, a transaction the coordinator aborted, an I/O error, a user function that
//! failed) ends the attempt; the pipeline waits the strategy's delay and runs again from
//! the newest checkpoint in its store: the sink's pending transactions are committed, what
//! the failed attempt left open is aborted, and the source resumes at the checkpointed
//! positions, so nothing is lost or written twice under exactly-once. A failure no restart
//! can cure (an invalid configuration, authentication or authorization refused, a producer
//! fenced by another instance of the pipeline) ends the run at once, as does a failure
//! once the strategy's budget is spent; the error then says how many restarts were made.
//!
//! The state is a plain value driven with explicit time ([`RestartTracker::on_failure`]), so
//! the strategies are tested in virtual time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use strom_client::ErrorKind;

use crate::ConnectorError;

/// How a pipeline restarts after a failure. The default is [`RestartStrategy::none`]: the
/// first failure ends the run (Flink enables fixed-delay restarts whenever checkpointing is
/// on; here the caller chooses).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RestartStrategy {
    /// No restart (Flink's `none`).
    #[default]
    None,
    /// Up to `attempts` restarts, `delay` apart (Flink's `fixed-delay`:
    /// `restart-strategy.fixed-delay.attempts` and `.delay`).
    FixedDelay {
        /// Restarts allowed in all.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restarts that wait longer after each failure (Flink's `exponential-delay`); see
    /// [`ExponentialDelay`].
    ExponentialDelay(ExponentialDelay),
    /// Restarts while fewer than `max_failures` failures fall within any `interval`, `delay`
    /// apart (Flink's `failure-rate`).
    FailureRate {
        /// Failures allowed per interval.
        max_failures: u32,
        /// The sliding interval.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
}

/// Flink's `exponential-delay` strategy: `initial_backoff`, multiplied by `multiplier` after
/// each failure up to `max_backoff`, each delay varied by ± `jitter` (a fraction, 0 to 1);
/// the backoff returns to `initial_backoff` once an attempt ran `reset_threshold` without
/// failing; `attempts_before_reset` bounds the restarts between two resets. The default is
/// Flink 2's: 1 s, at most 1 h, multiplier 1.5, reset after 1 h, jitter 0.1, no bound.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialDelay {
    /// First delay.
    pub initial_backoff: Duration,
    /// Largest delay.
    pub max_backoff: Duration,
    /// Growth per failure (at least 1).
    pub multiplier: f64,
    /// An attempt that ran this long without failing resets the backoff.
    pub reset_threshold: Duration,
    /// Random variation of each delay, as a fraction of it (0 to 1).
    pub jitter: f64,
    /// Restarts allowed between two resets.
    pub attempts_before_reset: u32,
}

impl Default for ExponentialDelay {
    fn default() -> Self {
        ExponentialDelay {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            multiplier: 1.5,
            reset_threshold: Duration::from_secs(3600),
            jitter: 0.1,
            attempts_before_reset: u32::MAX,
        }
    }
}

impl RestartStrategy {
    /// No restart: the first failure ends the run.
    pub fn none() -> Self {
        RestartStrategy::None
    }

    /// `attempts` restarts, `delay` apart.
    pub fn fixed_delay(attempts: u32, delay: Duration) -> Self {
        RestartStrategy::FixedDelay { attempts, delay }
    }

    /// Exponential delays with Flink 2's defaults ([`ExponentialDelay::default`]).
    pub fn exponential_delay() -> Self {
        RestartStrategy::ExponentialDelay(ExponentialDelay::default())
    }

    /// Restarts `delay` apart while fewer than `max_failures` failures fall within
    /// `interval`.
    pub fn failure_rate(max_failures: u32, interval: Duration, delay: Duration) -> Self {
        RestartStrategy::FailureRate {
            max_failures,
            interval,
            delay,
        }
    }

    /// Checks the numbers (a multiplier below 1, a jitter outside 0..=1, a zero interval).
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let bad = |m: String| Err(ConnectorError::Config(format!("restart strategy: {m}")));
        match self {
            RestartStrategy::ExponentialDelay(ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                jitter,
                ..
            }) => {
                if !(multiplier.is_finite() && *multiplier >= 1.0) {
                    return bad(format!("multiplier {multiplier} must be at least 1"));
                }
                if !(0.0..=1.0).contains(jitter) {
                    return bad(format!("jitter {jitter} must be between 0 and 1"));
                }
                if initial_backoff > max_backoff {
                    return bad(format!(
                        "initial backoff {initial_backoff:?} is above the max backoff {max_backoff:?}"
                    ));
                }
                Ok(())
            }
            RestartStrategy::FailureRate { interval, .. } if interval.is_zero() => {
                bad("the failure-rate interval must be above zero".into())
            }
            _ => Ok(()),
        }
    }
}

/// Whether a restart can cure `e`: not an invalid configuration, refused credentials or
/// permissions, or a producer fenced by another instance (restarting would fence it back).
pub fn is_recoverable(e: &ConnectorError) -> bool {
    match e {
        ConnectorError::Config(_) => false,
        ConnectorError::Client(c) => !matches!(
            c.kind(),
            ErrorKind::InvalidConfig | ErrorKind::Authentication | ErrorKind::Authorization | ErrorKind::Fenced
        ),
        _ => true,
    }
}

/// The restart state of one run: failures seen and the backoff reached.
#[derive(Debug)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    restarts: u32,
    /// Restarts since the exponential backoff was last reset.
    since_reset: u32,
    backoff: Duration,
    failures: VecDeque<Instant>,
    /// State of the jitter's generator.
    seed: u64,
}

impl RestartTracker {
    /// A tracker for `strategy`; `seed` drives the jitter (any value).
    pub fn new(strategy: RestartStrategy, seed: u64) -> Self {
        let backoff = match &strategy {
            RestartStrategy::ExponentialDelay(e) => e.initial_backoff,
            _ => Duration::ZERO,
        };
        RestartTracker {
            strategy,
            restarts: 0,
            since_reset: 0,
            backoff,
            failures: VecDeque::new(),
            seed: seed | 1,
        }
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// An attempt that started at `started` failed at `now`: the delay before the next
    /// attempt, or `None` when the strategy allows no more.
    pub fn on_failure(&mut self, started: Instant, now: Instant) -> Option<Duration> {
        let strategy = self.strategy.clone();
        let delay = match &strategy {
            RestartStrategy::None => return None,
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.restarts >= *attempts {
                    return None;
                }
                *delay
            }
            RestartStrategy::ExponentialDelay(ExponentialDelay {
                initial_backoff,
                max_backoff,
                multiplier,
                reset_threshold,
                jitter,
                attempts_before_reset,
            }) => {
                if now.saturating_duration_since(started) >= *reset_threshold {
                    self.backoff = *initial_backoff;
                    self.since_reset = 0;
                }
                if self.since_reset >= *attempts_before_reset {
                    return None;
                }
                let base = self.backoff;
                self.backoff = base.mul_f64(*multiplier).min(*max_backoff);
                self.since_reset += 1;
                let spread = base.mul_f64(*jitter);
                if spread.is_zero() {
                    base
                } else {
                    // Uniform in [base - spread, base + spread].
                    let unit = self.next_unit();
                    (base.saturating_sub(spread) + spread.mul_f64(2.0 * unit)).min(*max_backoff + spread)
                }
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push_back(now);
                while self
                    .failures
                    .front()
                    .is_some_and(|t| now.saturating_duration_since(*t) > *interval)
                {
                    self.failures.pop_front();
                }
                if self.failures.len() > *max_failures as usize {
                    return None;
                }
                *delay
            }
        };
        self.restarts += 1;
        Some(delay)
    }

    /// A number in [0, 1) (xorshift64*).
    fn next_unit(&mut self) -> f64 {
        let mut x = self.seed;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn none_never_restarts() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(RestartStrategy::none(), 1);
        assert_eq!(t.on_failure(t0, t0), None);
        assert_eq!(t.restarts(), 0);
    }

    #[test]
    fn fixed_delay_grants_its_attempts_then_stops() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(RestartStrategy::fixed_delay(3, secs(2)), 1);
        for i in 0..3 {
            assert_eq!(t.on_failure(t0, t0 + secs(10 * i)), Some(secs(2)));
        }
        assert_eq!(t.on_failure(t0, t0 + secs(100)), None);
        assert_eq!(t.restarts(), 3);
    }

    #[test]
    fn exponential_delay_grows_caps_jitters_and_resets_after_a_long_run() {
        let t0 = Instant::now();
        let s = ExponentialDelay {
            initial_backoff: secs(1),
            max_backoff: secs(10),
            multiplier: 2.0,
            reset_threshold: secs(60),
            jitter: 0.0,
            attempts_before_reset: u32::MAX,
        };
        let mut t = RestartTracker::new(RestartStrategy::ExponentialDelay(s.clone()), 1);
        let mut now = t0;
        let mut got = Vec::new();
        for _ in 0..6 {
            let started = now;
            now += secs(1);
            got.push(t.on_failure(started, now).unwrap());
        }
        assert_eq!(got, [1, 2, 4, 8, 10, 10].map(secs));
        // An attempt that ran past the threshold starts over from the initial backoff.
        assert_eq!(t.on_failure(now, now + secs(61)), Some(secs(1)));
        assert_eq!(t.on_failure(now, now + secs(1)), Some(secs(2)));

        // Jitter: within ±10 % of the base, and not always the same.
        let mut t = RestartTracker::new(
            RestartStrategy::ExponentialDelay(ExponentialDelay {
                jitter: 0.1,
                multiplier: 1.0,
                ..s.clone()
            }),
            42,
        );
        let delays: Vec<Duration> = (0..200).map(|_| t.on_failure(t0, t0).unwrap()).collect();
        assert!(delays
            .iter()
            .all(|d| *d >= Duration::from_millis(900) && *d <= Duration::from_millis(1100)));
        assert!(delays.iter().any(|d| *d != delays[0]));

        // A bounded number of attempts between resets.
        let mut t = RestartTracker::new(
            RestartStrategy::ExponentialDelay(ExponentialDelay {
                attempts_before_reset: 2,
                ..s
            }),
            1,
        );
        assert!(t.on_failure(t0, t0).is_some());
        assert!(t.on_failure(t0, t0).is_some());
        assert_eq!(t.on_failure(t0, t0), None);
        assert!(t.on_failure(t0, t0 + secs(61)).is_some(), "a long run resets the count");
    }

    #[test]
    fn failure_rate_allows_failures_spread_out_but_not_bunched() {
        let t0 = Instant::now();
        let mut t = RestartTracker::new(RestartStrategy::failure_rate(2, secs(60), secs(1)), 1);
        assert_eq!(t.on_failure(t0, t0), Some(secs(1)));
        assert_eq!(t.on_failure(t0, t0 + secs(30)), Some(secs(1)));
        // A third within the minute: over the rate.
        assert_eq!(t.on_failure(t0, t0 + secs(50)), None);
        // Spread out they keep going.
        let mut t = RestartTracker::new(RestartStrategy::failure_rate(2, secs(60), secs(1)), 1);
        for i in 0..10 {
            assert_eq!(t.on_failure(t0, t0 + secs(40 * i)), Some(secs(1)), "failure {i}");
        }
    }

    #[test]
    fn strategies_are_validated() {
        assert!(RestartStrategy::exponential_delay().validate().is_ok());
        let e = RestartStrategy::ExponentialDelay(ExponentialDelay {
            multiplier: 0.5,
            ..Default::default()
        })
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("multiplier"), "{e}");
        let e = RestartStrategy::ExponentialDelay(ExponentialDelay {
            jitter: 1.5,
            ..Default::default()
        })
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("jitter"), "{e}");
        let e = RestartStrategy::failure_rate(1, Duration::ZERO, secs(1))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("interval"), "{e}");
    }

    #[test]
    fn what_a_restart_cannot_cure_is_not_retried() {
        assert!(!is_recoverable(&ConnectorError::Config("x".into())));
        assert!(is_recoverable(&ConnectorError::User("boom".into())));
        assert!(is_recoverable(&ConnectorError::Checkpoint("disk".into())));
        let fenced = strom_client::Error::kafka(strom_protocol::ErrorCode::ProducerFenced);
        let timeout = strom_client::Error::kafka(strom_protocol::ErrorCode::RequestTimedOut);
        let denied = strom_client::Error::kafka(strom_protocol::ErrorCode::TopicAuthorizationFailed);
        assert_eq!(fenced.kind(), ErrorKind::Fenced, "{fenced}");
        assert!(!is_recoverable(&ConnectorError::Client(fenced)));
        assert!(!is_recoverable(&ConnectorError::Client(denied)));
        assert!(is_recoverable(&ConnectorError::Client(timeout)));
    }
}
