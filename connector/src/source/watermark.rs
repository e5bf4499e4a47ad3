//! Event time and watermarks (Flink's `WatermarkStrategy`, `BoundedOutOfOrdernessWatermarks`,
//! `WatermarksWithIdleness` and the per-split `WatermarkOutputMultiplexer`).
//!
//! Sans-IO: nothing here reads a clock. Every call that depends on time takes `now: Instant`,
//! so tests drive it with made-up instants.
//!
//! A reader keeps one [`WatermarkCombiner`] and, for each record of a split:
//! 1. `ts = strategy.extract_timestamp(&value, record.timestamp)` (the event time),
//! 2. `combiner.on_event(split_id, ts, now)`,
//!
//! and every emit interval (Flink's `pipeline.auto-watermark-interval`, 200 ms) forwards what
//! `combiner.on_periodic_emit(now)` returns. Splits are added when assigned and removed when
//! finished, so a finished split no longer holds the watermark back.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Extracts the event time (ms) of a deserialized value given the Kafka record timestamp
/// (Flink's `SerializableTimestampAssigner.extractTimestamp(element, recordTimestamp)`).
pub type TimestampAssigner<T> = Arc<dyn Fn(&T, i64) -> i64 + Send + Sync>;

/// How watermarks are generated, how event time is read, and when a split counts as idle.
pub struct WatermarkStrategy<T> {
    /// `None`: no watermarks; `Some(d)`: bounded out-of-orderness `d` in ms.
    out_of_orderness_ms: Option<i64>,
    idleness: Option<Duration>,
    assigner: Option<TimestampAssigner<T>>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            out_of_orderness_ms: self.out_of_orderness_ms,
            idleness: self.idleness,
            assigner: self.assigner.clone(),
        }
    }
}

impl<T> fmt::Debug for WatermarkStrategy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkStrategy")
            .field("out_of_orderness_ms", &self.out_of_orderness_ms)
            .field("idleness", &self.idleness)
            .field("timestamp_assigner", &self.assigner.is_some())
            .finish()
    }
}

/// Flink's default for a source: no watermarks.
impl<T> Default for WatermarkStrategy<T> {
    fn default() -> Self {
        Self::no_watermarks()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<T> WatermarkStrategy<T> {
    /// Never emits a watermark (Flink's `WatermarkStrategy.noWatermarks()`); records still get
    /// their event time.
    pub fn no_watermarks() -> Self {
        WatermarkStrategy {
            out_of_orderness_ms: None,
            idleness: None,
            assigner: None,
        }
    }

    /// Watermark = highest event time seen − `max_out_of_orderness` − 1 ms (Flink's
    /// `BoundedOutOfOrdernessWatermarks`): records up to that much late are still on time.
    pub fn for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> Self {
        WatermarkStrategy {
            out_of_orderness_ms: Some(millis(max_out_of_orderness)),
            idleness: None,
            assigner: None,
        }
    }

    /// For timestamps that never decrease within a split: watermark = highest event time − 1 ms
    /// (Flink's `AscendingTimestampsWatermarks`, out-of-orderness 0).
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// A split without records for longer than `timeout` is idle: it no longer holds back the
    /// combined watermark until its next record (Flink's `withIdleness`).
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// Reads the event time from the value instead of using the Kafka record timestamp.
    pub fn with_timestamp_assigner(mut self, assigner: impl Fn(&T, i64) -> i64 + Send + Sync + 'static) -> Self {
        self.assigner = Some(Arc::new(assigner));
        self
    }

    /// The event time of `value`: the assigner's answer, or `record_timestamp` (the Kafka
    /// timestamp, Flink's default for the Kafka source) without one.
    pub fn extract_timestamp(&self, value: &T, record_timestamp: i64) -> i64 {
        match &self.assigner {
            Some(a) => a(value, record_timestamp),
            None => record_timestamp,
        }
    }

    /// The idleness timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idleness
    }

    /// The out-of-orderness bound; `None` for [`Self::no_watermarks`].
    pub fn max_out_of_orderness(&self) -> Option<Duration> {
        self.out_of_orderness_ms
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }

    /// A generator for one split, created at `now` (its idleness is counted from then).
    pub fn create_generator(&self, now: Instant) -> WatermarkGenerator {
        WatermarkGenerator {
            out_of_orderness_ms: self.out_of_orderness_ms,
            idleness: self.idleness,
            max_timestamp: None,
            last_activity: now,
        }
    }

    /// A combiner of per-split watermarks with this strategy's generators.
    pub fn create_combiner(&self) -> WatermarkCombiner {
        WatermarkCombiner {
            template: self.create_generator_template(),
            splits: BTreeMap::new(),
            emitted: None,
            idle: false,
        }
    }

    fn create_generator_template(&self) -> (Option<i64>, Option<Duration>) {
        (self.out_of_orderness_ms, self.idleness)
    }
}

/// The watermark generator of one split: tracks the highest event time and when the split
/// last had a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkGenerator {
    out_of_orderness_ms: Option<i64>,
    idleness: Option<Duration>,
    max_timestamp: Option<i64>,
    last_activity: Instant,
}

impl WatermarkGenerator {
    /// A record with event time `timestamp` arrived at `now`.
    pub fn on_event(&mut self, timestamp: i64, now: Instant) {
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        if now > self.last_activity {
            self.last_activity = now;
        }
    }

    /// The watermark this split allows: `None` before its first record and with no
    /// watermarks (Flink's `Long.MIN_VALUE`), otherwise max − out-of-orderness − 1.
    pub fn current_watermark(&self) -> Option<i64> {
        let ooo = self.out_of_orderness_ms?;
        let max = self.max_timestamp?;
        Some(max.saturating_sub(ooo).saturating_sub(1))
    }

    /// Idle at `now`: an idleness timeout is set and no record came for longer than it.
    /// (Flink's `IdlenessTimer` starts counting at the first periodic check that saw no
    /// record, so it may declare idleness up to one emit interval later than this.)
    pub fn is_idle(&self, now: Instant) -> bool {
        self.idleness
            .is_some_and(|t| now.saturating_duration_since(self.last_activity) > t)
    }
}

/// What a [`WatermarkCombiner`] tells downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkEvent {
    /// Event time has advanced to this watermark (ms): no record with an earlier event time
    /// is expected any more. Also marks the stream active.
    Watermark(i64),
    /// Every split is idle: downstream should not wait for this source's watermark.
    Idle,
    /// A split became active again without advancing the watermark.
    Active,
}

/// Combines the watermarks of the splits one reader reads: the minimum over the active
/// splits, where an idle split does not count and a split without a record yet holds the
/// watermark back (Flink's `WatermarkOutputMultiplexer` with `WatermarksWithIdleness`).
/// Emitted watermarks never go backwards.
#[derive(Debug, Clone)]
pub struct WatermarkCombiner {
    template: (Option<i64>, Option<Duration>),
    splits: BTreeMap<String, WatermarkGenerator>,
    emitted: Option<i64>,
    idle: bool,
}

impl WatermarkCombiner {
    /// Starts tracking a split at `now` (no effect when already tracked).
    pub fn add_split(&mut self, split_id: impl Into<String>, now: Instant) {
        let (out_of_orderness_ms, idleness) = self.template;
        self.splits.entry(split_id.into()).or_insert(WatermarkGenerator {
            out_of_orderness_ms,
            idleness,
            max_timestamp: None,
            last_activity: now,
        });
    }

    /// Stops tracking a split (finished or removed): it no longer holds the watermark back.
    pub fn remove_split(&mut self, split_id: &str) {
        self.splits.remove(split_id);
    }

    /// A record of `split_id` with event time `timestamp` arrived at `now`. An unknown split
    /// is added first.
    pub fn on_event(&mut self, split_id: &str, timestamp: i64, now: Instant) {
        if !self.splits.contains_key(split_id) {
            self.add_split(split_id, now);
        }
        if let Some(g) = self.splits.get_mut(split_id) {
            g.on_event(timestamp, now);
        }
    }

    /// The per-split generator, if tracked.
    pub fn split(&self, split_id: &str) -> Option<&WatermarkGenerator> {
        self.splits.get(split_id)
    }

    /// The last emitted watermark.
    pub fn current_watermark(&self) -> Option<i64> {
        self.emitted
    }

    /// Whether the last status emitted was [`WatermarkEvent::Idle`].
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Call every emit interval; returns what to send downstream, if anything:
    /// a higher watermark, the switch to idle (once), or the switch back to active.
    #[must_use]
    pub fn on_periodic_emit(&mut self, now: Instant) -> Option<WatermarkEvent> {
        let mut any_active = false;
        let mut min: Option<i64> = None;
        let mut held_back = false;
        for g in self.splits.values() {
            if g.is_idle(now) {
                continue;
            }
            any_active = true;
            match g.current_watermark() {
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
                None => held_back = true,
            }
        }
        if !any_active {
            // All splits idle, or none at all with idleness configured (a subtask that owns no
            // partition must not hold the watermark back forever).
            let can_idle = !self.splits.is_empty() || self.template.1.is_some();
            if can_idle && !self.idle {
                self.idle = true;
                return Some(WatermarkEvent::Idle);
            }
            return None;
        }
        let was_idle = std::mem::replace(&mut self.idle, false);
        if !held_back {
            if let Some(w) = min.filter(|w| self.emitted.is_none_or(|e| *w > e)) {
                self.emitted = Some(w);
                return Some(WatermarkEvent::Watermark(w));
            }
        }
        was_idle.then_some(WatermarkEvent::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn bounded_out_of_orderness_generator() {
        let t0 = Instant::now();
        let s = WatermarkStrategy::<()>::for_bounded_out_of_orderness(Duration::from_millis(500));
        assert_eq!(s.max_out_of_orderness(), Some(Duration::from_millis(500)));
        let mut g = s.create_generator(t0);
        assert_eq!(g.current_watermark(), None);
        g.on_event(1_000, t0);
        assert_eq!(g.current_watermark(), Some(499));
        g.on_event(3_000, t0);
        g.on_event(2_000, t0); // late but within bounds: the max stays 3000
        assert_eq!(g.current_watermark(), Some(2_499));
        assert!(!g.is_idle(at(t0, 1_000_000)), "no idleness configured");
        // Extreme timestamps saturate instead of overflowing.
        g.on_event(i64::MIN, t0);
        assert_eq!(g.current_watermark(), Some(2_499));
    }

    #[test]
    fn monotonous_and_no_watermarks() {
        let t0 = Instant::now();
        let mut g = WatermarkStrategy::<()>::for_monotonous_timestamps().create_generator(t0);
        g.on_event(10, t0);
        g.on_event(20, t0);
        assert_eq!(g.current_watermark(), Some(19));

        let s = WatermarkStrategy::<()>::no_watermarks();
        assert_eq!(s.max_out_of_orderness(), None);
        let mut g = s.create_generator(t0);
        g.on_event(10, t0);
        assert_eq!(g.current_watermark(), None);
        let mut c = s.create_combiner();
        c.on_event("t-0", 10, t0);
        assert_eq!(c.on_periodic_emit(at(t0, 200)), None);
        assert_eq!(c.current_watermark(), None);
    }

    #[test]
    fn timestamp_assigner_and_default() {
        #[derive(Debug)]
        struct Event {
            at: i64,
        }
        let s = WatermarkStrategy::<Event>::for_monotonous_timestamps();
        assert_eq!(
            s.extract_timestamp(&Event { at: 5 }, 99),
            99,
            "Kafka timestamp by default"
        );
        let s = s.with_timestamp_assigner(|e: &Event, _kafka_ts| e.at);
        assert_eq!(s.extract_timestamp(&Event { at: 5 }, 99), 5);
        let cloned = s.clone();
        assert_eq!(cloned.extract_timestamp(&Event { at: 6 }, 99), 6);
        assert!(format!("{s:?}").contains("timestamp_assigner: true"));
        assert!(WatermarkStrategy::<Event>::default().max_out_of_orderness().is_none());
    }

    #[test]
    fn idleness_of_one_split() {
        let t0 = Instant::now();
        let s = WatermarkStrategy::<()>::for_monotonous_timestamps().with_idleness(Duration::from_secs(10));
        assert_eq!(s.idle_timeout(), Some(Duration::from_secs(10)));
        let mut g = s.create_generator(t0);
        assert!(!g.is_idle(at(t0, 10_000)), "exactly the timeout is not longer than it");
        assert!(g.is_idle(at(t0, 10_001)));
        g.on_event(1, at(t0, 10_500));
        assert!(!g.is_idle(at(t0, 20_000)));
        assert!(g.is_idle(at(t0, 20_501)));
    }

    #[test]
    fn combiner_takes_the_minimum_and_skips_idle_splits() {
        let t0 = Instant::now();
        let s = WatermarkStrategy::<()>::for_bounded_out_of_orderness(Duration::from_millis(100))
            .with_idleness(Duration::from_secs(5));
        let mut c = s.create_combiner();
        c.add_split("t-0", t0);
        c.add_split("t-1", t0);

        // t-1 has no record yet: it holds the watermark back.
        c.on_event("t-0", 1_000, at(t0, 100));
        assert_eq!(c.on_periodic_emit(at(t0, 200)), None);

        // Both have records: the minimum wins.
        c.on_event("t-1", 600, at(t0, 300));
        assert_eq!(c.on_periodic_emit(at(t0, 400)), Some(WatermarkEvent::Watermark(499)));
        assert_eq!(c.on_periodic_emit(at(t0, 600)), None, "unchanged: nothing to emit");

        // t-1 goes quiet; after the timeout it stops holding t-0 back.
        c.on_event("t-0", 2_000, at(t0, 4_000));
        c.on_event("t-0", 3_000, at(t0, 5_200));
        assert!(
            !c.split("t-1").unwrap().is_idle(at(t0, 5_300)),
            "5 s exactly: not idle yet"
        );
        assert_eq!(c.on_periodic_emit(at(t0, 5_300)), None);
        assert!(c.split("t-1").unwrap().is_idle(at(t0, 5_350)));
        assert_eq!(
            c.on_periodic_emit(at(t0, 5_350)),
            Some(WatermarkEvent::Watermark(2_899))
        );

        // t-1 comes back with an old record: active again, but the watermark never regresses.
        c.on_event("t-1", 700, at(t0, 5_400));
        assert_eq!(c.on_periodic_emit(at(t0, 5_500)), None);
        assert_eq!(c.current_watermark(), Some(2_899));
        c.on_event("t-1", 5_000, at(t0, 5_600));
        assert_eq!(
            c.on_periodic_emit(at(t0, 5_700)),
            None,
            "t-0 (2899) is the minimum again"
        );
        c.on_event("t-0", 4_000, at(t0, 5_800));
        assert_eq!(
            c.on_periodic_emit(at(t0, 5_900)),
            Some(WatermarkEvent::Watermark(3_899))
        );

        // Everything quiet: idle once, then active again with the next record.
        assert_eq!(c.on_periodic_emit(at(t0, 20_000)), Some(WatermarkEvent::Idle));
        assert!(c.is_idle());
        assert_eq!(c.on_periodic_emit(at(t0, 20_200)), None);
        c.on_event("t-0", 3_000, at(t0, 20_300));
        assert_eq!(
            c.on_periodic_emit(at(t0, 20_400)),
            Some(WatermarkEvent::Active),
            "3899 again: no advance"
        );
        assert!(!c.is_idle());
        c.on_event("t-0", 9_000, at(t0, 20_500));
        assert_eq!(
            c.on_periodic_emit(at(t0, 20_600)),
            Some(WatermarkEvent::Watermark(8_899))
        );
    }

    #[test]
    fn finished_split_no_longer_holds_back() {
        let t0 = Instant::now();
        let mut c = WatermarkStrategy::<()>::for_monotonous_timestamps().create_combiner();
        c.add_split("a-0", t0);
        c.add_split("a-1", t0);
        c.on_event("a-0", 50, t0);
        assert_eq!(c.on_periodic_emit(t0), None, "a-1 holds back and never goes idle");
        c.remove_split("a-1");
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(49)));
        // Without idleness an empty combiner emits nothing at all.
        c.remove_split("a-0");
        assert_eq!(c.on_periodic_emit(at(t0, 1_000_000)), None);
        // With idleness, a reader that owns no split goes idle.
        let mut c = WatermarkStrategy::<()>::for_monotonous_timestamps()
            .with_idleness(Duration::from_secs(1))
            .create_combiner();
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Idle));
        // An event for an unknown split adds it.
        c.on_event("new-0", 10, t0);
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(9)));
    }
}
