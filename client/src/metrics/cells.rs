//! The recording cells: meters, gauges, time-since and stats (min, max, average, quantiles
//! from a log-linear histogram). Recording is an atomic add or a short uncontended lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use std::sync::{MutexGuard, PoisonError};

use super::names::Shape;

// ---------------------------------------------------------------------------------------
// Instruments: what the roles hold and record into. Recording is an atomic add (meters,
// gauges) or a short uncontended lock (histograms, recorded per batch or request, never
// per record).

pub(super) struct MeterCell {
    pub(super) total: AtomicU64,
    pub(super) facade: metrics::Counter,
}

/// A count (`NAME-total`, `NAME-rate`).
#[derive(Clone)]
pub(crate) struct Meter(pub(super) Arc<MeterCell>);

impl Meter {
    pub(crate) fn add(&self, n: u64) {
        self.0.total.fetch_add(n, Ordering::Relaxed);
        self.0.facade.increment(n);
    }
}

/// The totals at the starts of the sample windows a rate is computed over.
pub(super) struct RateWindow {
    pub(super) samples: Vec<(Instant, u64)>,
}

impl RateWindow {
    pub(super) fn new(now: Instant) -> Self {
        RateWindow {
            samples: vec![(now, 0)],
        }
    }

    /// Per second over the last `span` (at least one window's worth of history kept).
    pub(super) fn rate(&mut self, now: Instant, total: u64, window: Duration, span: Duration) -> f64 {
        if self
            .samples
            .last()
            .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            self.samples.push((now, total));
        }
        while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= span {
            self.samples.remove(0);
        }
        let (t0, v0) = self.samples[0];
        // Java's rate divides by the whole configured span once that much time has passed.
        let elapsed = now.duration_since(t0).max(window).as_secs_f64();
        total.saturating_sub(v0) as f64 / elapsed
    }
}

pub(super) struct GaugeCell {
    pub(super) bits: AtomicU64,
    pub(super) facade: metrics::Gauge,
}

impl GaugeCell {
    pub(super) fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A level (`NAME`).
#[derive(Clone)]
pub(crate) struct Gauge(pub(super) Arc<GaugeCell>);

impl Gauge {
    pub(crate) fn set(&self, v: f64) {
        self.0.bits.store(v.to_bits(), Ordering::Relaxed);
        self.0.facade.set(v);
    }
}

pub(super) struct StatCell {
    pub(super) state: Mutex<StatState>,
    pub(super) window: Duration,
    pub(super) shape: Shape,
    /// Also report `NAME-total` (the sum).
    pub(super) with_total: std::sync::atomic::AtomicBool,
    pub(super) facade: metrics::Histogram,
}

pub(super) struct SinceCell {
    pub(super) epoch: Instant,
    /// Microseconds from `epoch` to the last event, plus one; 0 before the first.
    pub(super) last: AtomicU64,
    pub(super) facade: metrics::Gauge,
}

impl SinceCell {
    pub(super) fn seconds_ago(&self, now: Instant) -> f64 {
        match self.last.load(Ordering::Relaxed) {
            0 => -1.0,
            last => {
                let at = self.epoch + Duration::from_micros(last - 1);
                now.saturating_duration_since(at).as_secs() as f64
            }
        }
    }
}

/// The time of the last event of a kind (`NAME-seconds-ago` when read).
#[derive(Clone)]
pub(crate) struct Since(pub(super) Arc<SinceCell>);

impl Since {
    /// The event happened now.
    pub(crate) fn mark(&self) {
        self.mark_at(Instant::now());
    }

    pub(super) fn mark_at(&self, at: Instant) {
        let micros = u64::try_from(at.saturating_duration_since(self.0.epoch).as_micros()).unwrap_or(u64::MAX - 1);
        self.0.last.store(micros + 1, Ordering::Relaxed);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.0.facade.set(unix);
    }
}

/// A histogram (`NAME-avg`, `-max`, `-p50`, `-p99`, `-p999`).
#[derive(Clone)]
pub(crate) struct Stat(pub(super) Arc<StatCell>);

impl Stat {
    /// Records a duration (a latency histogram).
    pub(crate) fn record_duration(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.record_at(micros, Instant::now());
        self.0.facade.record(d.as_secs_f64());
    }

    /// Records a size (a distribution).
    pub(crate) fn record(&self, v: u64) {
        self.record_at(v, Instant::now());
        self.0.facade.record(v as f64);
    }

    /// Records a ratio (kept in thousandths).
    pub(crate) fn record_ratio(&self, r: f64) {
        debug_assert_eq!(self.0.shape, Shape::Ratio);
        self.record_at((r.max(0.0) * 1000.0).round() as u64, Instant::now());
        self.0.facade.record(r);
    }

    pub(super) fn record_at(&self, v: u64, now: Instant) {
        lock(&self.0.state).record(v, now, self.0.window);
    }
}

/// Count, sum and max of one sample window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) start: Instant,
    pub(super) count: u64,
    pub(super) sum: u64,
    pub(super) max: u64,
}

pub(super) struct StatState {
    /// Since the start, for percentiles and the Prometheus summary.
    pub(super) hist: Histogram,
    pub(super) count: u64,
    pub(super) sum: u64,
    /// The sample windows for avg/max, newest last.
    pub(super) windows: Vec<Window>,
}

impl StatState {
    pub(super) fn new(now: Instant) -> Self {
        StatState {
            hist: Histogram::default(),
            count: 0,
            sum: 0,
            windows: vec![Window {
                start: now,
                count: 0,
                sum: 0,
                max: 0,
            }],
        }
    }

    pub(super) fn record(&mut self, v: u64, now: Instant, window: Duration) {
        self.hist.record(v);
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        let stale = self
            .windows
            .last()
            .is_none_or(|w| now.duration_since(w.start) >= window);
        if stale {
            if self.windows.len() >= 8 {
                self.windows.remove(0);
            }
            self.windows.push(Window {
                start: now,
                count: 0,
                sum: 0,
                max: 0,
            });
        }
        if let Some(w) = self.windows.last_mut() {
            w.count += 1;
            w.sum = w.sum.saturating_add(v);
            w.max = w.max.max(v);
        }
    }

    /// Count, sum and max over the windows that started within `span` of `now`.
    pub(super) fn windowed(&self, now: Instant, span: Duration) -> (u64, u64, u64) {
        self.windows
            .iter()
            .filter(|w| now.duration_since(w.start) < span)
            .fold((0, 0, 0), |(c, s, m), w| {
                (c + w.count, s.saturating_add(w.sum), m.max(w.max))
            })
    }
}

/// A log-linear histogram of u64 values: exact below 16, then 8 buckets per power of two
/// (a value is reported within 1/8 of itself). 496 buckets, about 4 KiB.
pub(super) struct Histogram {
    pub(super) buckets: Box<[u64; BUCKETS]>,
}

pub(super) const BUCKETS: usize = 16 + 60 * 8;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Box::new([0; BUCKETS]),
        }
    }
}

pub(super) fn bucket_of(v: u64) -> usize {
    if v < 16 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // 4..=63
    let sub = ((v >> (e - 3)) & 7) as usize;
    16 + (e - 4) * 8 + sub
}

/// The middle of bucket `i`.
pub(super) fn bucket_value(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let e = (i - 16) / 8 + 4;
    let sub = ((i - 16) % 8) as u64;
    let low = (8 + sub) << (e - 3);
    let width = 1u64 << (e - 3);
    low + width / 2
}

impl Histogram {
    pub(super) fn record(&mut self, v: u64) {
        self.buckets[bucket_of(v)] += 1;
    }

    /// The value at quantile `q` (0..=1), `None` when nothing was recorded.
    pub(super) fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        None
    }
}

/// The cells' locks guard only numbers: a panic inside one leaves them usable.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections only add numbers: a panic inside one leaves them usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
