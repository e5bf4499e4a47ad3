//! Waits between attempts, one way everywhere: Java's `ExponentialBackoff` (KIP-580 for
//! `retry.backoff.ms`/`retry.backoff.max.ms`, KIP-601's `reconnect.backoff.*`): the base wait
//! after the first failure, doubling per failure up to the maximum, each wait varied by ±20 %
//! so that clients that failed together do not retry together.
//!
//! The variation comes from a small per-thread generator seeded from the standard library's
//! random hash keys (the operating system's randomness), not from the clock: two clients that
//! fail at the same instant still spread out.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::config::ClientConfig;

/// Java's `ExponentialBackoff` with multiplier 2 and jitter 0.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ExponentialBackoff {
    base: Duration,
    max: Duration,
}

impl ExponentialBackoff {
    /// `base` after the first failure, doubling up to `max`; a `max` below `base` is a
    /// constant `max` (Java's rule when `retry.backoff.max.ms` < `retry.backoff.ms`).
    pub(crate) const fn new(base: Duration, max: Duration) -> Self {
        ExponentialBackoff { base, max }
    }

    /// Retries of a request (`retry.backoff.ms`, `retry.backoff.max.ms`).
    pub(crate) fn retries(cfg: &ClientConfig) -> Self {
        ExponentialBackoff::new(cfg.retry_backoff, cfg.retry_backoff_max)
    }

    /// Reconnects to a broker (`reconnect.backoff.ms`, `reconnect.backoff.max.ms`).
    pub(crate) fn reconnects(cfg: &ClientConfig) -> Self {
        ExponentialBackoff::new(cfg.reconnect_backoff, cfg.reconnect_backoff_max)
    }

    /// The wait after `failures` consecutive failures (1 for the first; 0 counts as 1).
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        jitter(self.base.saturating_mul(1 << doublings).min(self.max), 0.2)
    }
}

/// `d` varied uniformly by ± `spread` (a fraction of `d`).
pub(crate) fn jitter(d: Duration, spread: f64) -> Duration {
    d.mul_f64(1.0 - spread + 2.0 * spread * random_fraction())
}

/// A uniform fraction in `[0, 1)`.
pub(crate) fn random_fraction() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    // splitmix64: one multiply-xorshift round per draw, full period over u64.
    let z = STATE.with(|s| {
        let next = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(next);
        next
    });
    let mut z = z;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits: every value exactly representable, below 1.
    (z >> 11) as f64 / (1u64 << 53) as f64
}

fn seed() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0x5EED);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(d: Duration, ms: u64) -> bool {
        let ms = Duration::from_millis(ms);
        d >= ms.mul_f64(0.8) && d <= ms.mul_f64(1.2)
    }

    #[test]
    fn waits_double_per_failure_up_to_the_max_each_within_twenty_percent() {
        let b = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        for _ in 0..200 {
            assert!(within(b.delay(0), 100) && within(b.delay(1), 100));
            assert!(within(b.delay(2), 200) && within(b.delay(4), 800));
            assert!(within(b.delay(5), 1000) && within(b.delay(u32::MAX), 1000));
        }
        // retry.backoff.max.ms below retry.backoff.ms: a constant max, as Java.
        let constant = ExponentialBackoff::new(Duration::from_millis(500), Duration::from_millis(50));
        assert!((1..10).all(|n| within(constant.delay(n), 50)));
    }

    #[test]
    fn waits_spread_over_the_whole_range_not_one_value() {
        let d = Duration::from_millis(1000);
        let waits: Vec<Duration> = (0..2000).map(|_| jitter(d, 0.2)).collect();
        let min = waits.iter().min().copied().unwrap_or_default();
        let max = waits.iter().max().copied().unwrap_or_default();
        assert!(min >= Duration::from_millis(800) && max <= Duration::from_millis(1200));
        // 2,000 uniform draws: the extremes are within 1 % of the range's ends, and the mean
        // within 2 % of its middle, unless the generator is broken.
        assert!(
            min < Duration::from_millis(805) && max > Duration::from_millis(1195),
            "{min:?}..{max:?}"
        );
        let mean = waits.iter().sum::<Duration>() / 2000;
        assert!(
            mean > Duration::from_millis(980) && mean < Duration::from_millis(1020),
            "{mean:?}"
        );
    }

    #[test]
    fn threads_draw_different_sequences() {
        let draw = || (0..4).map(|_| random_fraction().to_bits()).collect::<Vec<_>>();
        let here = draw();
        let there = std::thread::spawn(draw).join().unwrap_or_default();
        assert_ne!(here, there);
    }
}
