//! Event time and watermarks (Flink's `WatermarkStrategy`, `WatermarkGenerator`,
//! `BoundedOutOfOrdernessWatermarks`, `WatermarksWithIdleness` and the per-split
//! `WatermarkOutputMultiplexer`).
//!
//! Sans-IO: nothing here reads a clock. Every call that depends on time takes `now: Instant`,
//! so tests drive it with made-up instants.
//!
//! A reader keeps one [`WatermarkCombiner`], which holds one [`WatermarkGenerator`] per split
//! (per Kafka partition: the legacy consumer's per-partition timestamp extractors), and for
//! each record of a split:
//! 1. `ts = strategy.extract_timestamp(&value, record.timestamp)` (the event time),
//! 2. `combiner.on_event(split_id, &value, ts, now)` (the split's generator sees the event),
//!
//! and every emit interval (Flink's `pipeline.auto-watermark-interval`, 200 ms) forwards what
//! `combiner.on_periodic_emit(now)` returns: the minimum of the splits' watermarks, where an
//! idle split does not count. Splits are added when assigned and removed when finished, so a
//! finished split no longer holds the watermark back.
//!
//! Besides the built-in strategies, a user writes their own generator by implementing
//! [`WatermarkGenerator`] and passing a factory to [`WatermarkStrategy::for_generator`]
//! (Flink's `WatermarkStrategy.forGenerator`):
//!
//! ```
//! use std::time::Instant;
//! use strom_connector::source::{WatermarkGenerator, WatermarkOutput, WatermarkStrategy, WatermarkEvent};
//!
//! /// Event-time progress is announced by the data: a value "tick:<ms>" is a watermark.
//! struct Ticks;
//! impl WatermarkGenerator<String> for Ticks {
//!     fn on_event(&mut self, event: &String, _ts: i64, output: &mut WatermarkOutput) {
//!         if let Some(ms) = event.strip_prefix("tick:").and_then(|s| s.parse().ok()) {
//!             output.emit_watermark(ms);
//!         }
//!     }
//!     fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
//! }
//!
//! let strategy = WatermarkStrategy::for_generator(|| Ticks);
//! let mut combiner = strategy.create_combiner();
//! let now = Instant::now();
//! combiner.on_event("events-0", &"tick:1000".to_string(), 5, now);
//! assert_eq!(combiner.on_periodic_emit(now), Some(WatermarkEvent::Watermark(1000)));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Extracts the event time (ms) of a deserialized value given the Kafka record timestamp
/// (Flink's `SerializableTimestampAssigner.extractTimestamp(element, recordTimestamp)`).
pub type TimestampAssigner<T> = Arc<dyn Fn(&T, i64) -> i64 + Send + Sync>;

/// Announces the watermark an event carries, if any ([`WatermarkStrategy::for_punctuated`]).
pub type Punctuation<T> = Arc<dyn Fn(&T, i64) -> Option<i64> + Send + Sync>;

/// Makes one [`WatermarkGenerator`] per split (Flink's `WatermarkGeneratorSupplier`).
pub type GeneratorFactory<T> = Arc<dyn Fn() -> Box<dyn WatermarkGenerator<T>> + Send + Sync>;

/// Where a [`WatermarkGenerator`] sends what it decides, for one split (Flink's
/// `WatermarkOutput`). A split's watermark never goes backwards: emitting a lower one than
/// before keeps the higher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatermarkOutput {
    watermark: Option<i64>,
    idle: bool,
}

impl WatermarkOutput {
    /// An output with no watermark yet, active.
    pub fn new() -> Self {
        Self::default()
    }

    /// Event time has reached `watermark` (ms) in this split: no record with an earlier event
    /// time is expected from it any more. Also marks the split active (as Flink's
    /// `emitWatermark` does).
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.idle = false;
        if self.watermark.is_none_or(|w| watermark > w) {
            self.watermark = Some(watermark);
        }
    }

    /// The split is idle: it no longer holds back the combined watermark until it emits a
    /// watermark or is marked active again (Flink's `markIdle`).
    pub fn mark_idle(&mut self) {
        self.idle = true;
    }

    /// The split is active again without a new watermark (Flink's `markActive`).
    pub fn mark_active(&mut self) {
        self.idle = false;
    }

    /// The highest watermark emitted, if any.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// Whether the generator marked the split idle.
    pub fn is_idle(&self) -> bool {
        self.idle
    }
}

/// Generates the watermarks of one split from its events (Flink's `WatermarkGenerator`):
/// periodic generators emit in [`Self::on_periodic_emit`], punctuated ones in
/// [`Self::on_event`]. A combiner calls `on_event` for every record of its split, in order,
/// and `on_periodic_emit` every watermark interval (200 ms) unless the split is idle by the
/// strategy's idleness timeout.
pub trait WatermarkGenerator<T>: Send {
    /// A record with event time `event_timestamp` (ms) was read.
    fn on_event(&mut self, event: &T, event_timestamp: i64, output: &mut WatermarkOutput);

    /// Called every watermark interval.
    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput);
}

/// Watermark = highest event time seen − the bound − 1 ms, emitted periodically (Flink's
/// `BoundedOutOfOrdernessWatermarks`); before its first record it emits nothing, so the split
/// holds the combined watermark back (unless idle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedOutOfOrdernessWatermarks {
    out_of_orderness_ms: i64,
    max_timestamp: Option<i64>,
}

impl BoundedOutOfOrdernessWatermarks {
    /// A generator allowing records up to `max_out_of_orderness` late.
    pub fn new(max_out_of_orderness: Duration) -> Self {
        BoundedOutOfOrdernessWatermarks {
            out_of_orderness_ms: millis(max_out_of_orderness),
            max_timestamp: None,
        }
    }

    /// The watermark this generator allows now: `None` before its first record.
    pub fn current_watermark(&self) -> Option<i64> {
        let max = self.max_timestamp?;
        Some(max.saturating_sub(self.out_of_orderness_ms).saturating_sub(1))
    }
}

impl<T> WatermarkGenerator<T> for BoundedOutOfOrdernessWatermarks {
    fn on_event(&mut self, _event: &T, event_timestamp: i64, _output: &mut WatermarkOutput) {
        self.max_timestamp = Some(self.max_timestamp.map_or(event_timestamp, |m| m.max(event_timestamp)));
    }

    fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
        if let Some(w) = self.current_watermark() {
            output.emit_watermark(w);
        }
    }
}

/// Never emits a watermark (Flink's `NoWatermarksGenerator`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoWatermarks;

impl<T> WatermarkGenerator<T> for NoWatermarks {
    fn on_event(&mut self, _event: &T, _event_timestamp: i64, _output: &mut WatermarkOutput) {}
    fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
}

/// A punctuated generator from a function: for each event, `f(event, event_timestamp)`
/// returns the watermark it announces, if any ([`WatermarkStrategy::for_punctuated`]).
pub struct PunctuatedWatermarks<T> {
    f: Punctuation<T>,
}

impl<T> fmt::Debug for PunctuatedWatermarks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PunctuatedWatermarks").finish_non_exhaustive()
    }
}

impl<T> WatermarkGenerator<T> for PunctuatedWatermarks<T> {
    fn on_event(&mut self, event: &T, event_timestamp: i64, output: &mut WatermarkOutput) {
        if let Some(w) = (self.f)(event, event_timestamp) {
            output.emit_watermark(w);
        }
    }

    fn on_periodic_emit(&mut self, _output: &mut WatermarkOutput) {}
}

/// What generates watermarks.
enum Generation<T> {
    None,
    Bounded(Duration),
    Custom(GeneratorFactory<T>),
}

impl<T> Clone for Generation<T> {
    fn clone(&self) -> Self {
        match self {
            Generation::None => Generation::None,
            Generation::Bounded(d) => Generation::Bounded(*d),
            Generation::Custom(f) => Generation::Custom(f.clone()),
        }
    }
}

impl<T> Generation<T> {
    fn create(&self) -> Box<dyn WatermarkGenerator<T>> {
        match self {
            Generation::None => Box::new(NoWatermarks),
            Generation::Bounded(d) => Box::new(BoundedOutOfOrdernessWatermarks::new(*d)),
            Generation::Custom(f) => f(),
        }
    }
}

/// How watermarks are generated, how event time is read, and when a split counts as idle.
pub struct WatermarkStrategy<T> {
    generation: Generation<T>,
    idleness: Option<Duration>,
    assigner: Option<TimestampAssigner<T>>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            generation: self.generation.clone(),
            idleness: self.idleness,
            assigner: self.assigner.clone(),
        }
    }
}

impl<T> fmt::Debug for WatermarkStrategy<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let generator = match &self.generation {
            Generation::None => "none".to_string(),
            Generation::Bounded(d) => format!("bounded out-of-orderness {} ms", d.as_millis()),
            Generation::Custom(_) => "custom".to_string(),
        };
        f.debug_struct("WatermarkStrategy")
            .field("generator", &generator)
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
            generation: Generation::None,
            idleness: None,
            assigner: None,
        }
    }

    /// Watermark = highest event time seen − `max_out_of_orderness` − 1 ms (Flink's
    /// `BoundedOutOfOrdernessWatermarks`): records up to that much late are still on time.
    pub fn for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> Self {
        WatermarkStrategy {
            generation: Generation::Bounded(max_out_of_orderness),
            idleness: None,
            assigner: None,
        }
    }

    /// For timestamps that never decrease within a split: watermark = highest event time − 1 ms
    /// (Flink's `AscendingTimestampsWatermarks`, out-of-orderness 0).
    pub fn for_monotonous_timestamps() -> Self {
        Self::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// Watermarks from a generator of the user's (Flink's `WatermarkStrategy.forGenerator`):
    /// `factory` makes one generator per split, so each Kafka partition has its own and the
    /// combined watermark is the minimum over them.
    pub fn for_generator<G>(factory: impl Fn() -> G + Send + Sync + 'static) -> Self
    where
        G: WatermarkGenerator<T> + 'static,
    {
        WatermarkStrategy {
            generation: Generation::Custom(Arc::new(move || Box::new(factory()) as Box<dyn WatermarkGenerator<T>>)),
            idleness: None,
            assigner: None,
        }
    }

    /// Punctuated watermarks: `f(event, event_timestamp)` returns the watermark an event
    /// announces, if any (e.g. a marker record); nothing is emitted periodically.
    pub fn for_punctuated(f: impl Fn(&T, i64) -> Option<i64> + Send + Sync + 'static) -> Self
    where
        T: 'static,
    {
        let f: Punctuation<T> = Arc::new(f);
        Self::for_generator(move || PunctuatedWatermarks { f: f.clone() })
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

    /// The out-of-orderness bound of [`Self::for_bounded_out_of_orderness`] and
    /// [`Self::for_monotonous_timestamps`]; `None` for the other strategies.
    pub fn max_out_of_orderness(&self) -> Option<Duration> {
        match &self.generation {
            Generation::Bounded(d) => Some(*d),
            _ => None,
        }
    }

    /// Whether this strategy can emit watermarks at all (not [`Self::no_watermarks`]).
    pub fn emits_watermarks(&self) -> bool {
        !matches!(self.generation, Generation::None)
    }

    /// A new generator for one split.
    pub fn create_generator(&self) -> Box<dyn WatermarkGenerator<T>> {
        self.generation.create()
    }

    /// A combiner of per-split watermarks with this strategy's generators.
    pub fn create_combiner(&self) -> WatermarkCombiner<T> {
        WatermarkCombiner {
            generation: self.generation.clone(),
            idleness: self.idleness,
            splits: BTreeMap::new(),
            emitted: None,
            idle: false,
        }
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

/// One split's generator, its output and when it last had a record.
struct SplitWatermarks<T> {
    generator: Box<dyn WatermarkGenerator<T>>,
    output: WatermarkOutput,
    last_activity: Instant,
}

impl<T> SplitWatermarks<T> {
    /// Idle by the strategy's timeout: no record for longer than it.
    fn timed_out(&self, idleness: Option<Duration>, now: Instant) -> bool {
        idleness.is_some_and(|t| now.saturating_duration_since(self.last_activity) > t)
    }
}

/// Combines the watermarks of the splits one reader reads: the minimum over the active
/// splits, where an idle split does not count and an active split without a watermark yet
/// holds the watermark back (Flink's `WatermarkOutputMultiplexer` with
/// `WatermarksWithIdleness`). A split is idle when the strategy's idleness timeout passed
/// without a record, or when its generator marked it idle. Emitted watermarks never go
/// backwards.
pub struct WatermarkCombiner<T> {
    generation: Generation<T>,
    idleness: Option<Duration>,
    splits: BTreeMap<String, SplitWatermarks<T>>,
    emitted: Option<i64>,
    idle: bool,
}

impl<T> fmt::Debug for WatermarkCombiner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkCombiner")
            .field(
                "splits",
                &self.splits.iter().map(|(id, s)| (id, &s.output)).collect::<Vec<_>>(),
            )
            .field("emitted", &self.emitted)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

impl<T> WatermarkCombiner<T> {
    /// Starts tracking a split at `now` (no effect when already tracked).
    pub fn add_split(&mut self, split_id: impl Into<String>, now: Instant) {
        let generation = &self.generation;
        self.splits.entry(split_id.into()).or_insert_with(|| SplitWatermarks {
            generator: generation.create(),
            output: WatermarkOutput::new(),
            last_activity: now,
        });
    }

    /// Stops tracking a split (finished, removed or revoked): it no longer holds the
    /// watermark back.
    pub fn remove_split(&mut self, split_id: &str) {
        self.splits.remove(split_id);
    }

    /// Whether `split_id` is tracked.
    pub fn has_split(&self, split_id: &str) -> bool {
        self.splits.contains_key(split_id)
    }

    /// A record `event` of `split_id` with event time `timestamp` arrived at `now`: the
    /// split's generator sees it. An unknown split is added first.
    pub fn on_event(&mut self, split_id: &str, event: &T, timestamp: i64, now: Instant) {
        if !self.splits.contains_key(split_id) {
            self.add_split(split_id, now);
        }
        if let Some(s) = self.splits.get_mut(split_id) {
            if now > s.last_activity {
                s.last_activity = now;
            }
            s.generator.on_event(event, timestamp, &mut s.output);
        }
    }

    /// The watermark of one split (the highest its generator emitted), if tracked and any.
    pub fn split_watermark(&self, split_id: &str) -> Option<i64> {
        self.splits.get(split_id)?.output.watermark()
    }

    /// Whether a tracked split is idle at `now` (by the timeout or by its generator);
    /// `None` for a split not tracked.
    pub fn is_split_idle(&self, split_id: &str, now: Instant) -> Option<bool> {
        let s = self.splits.get(split_id)?;
        Some(s.output.is_idle() || s.timed_out(self.idleness, now))
    }

    /// The last emitted watermark.
    pub fn current_watermark(&self) -> Option<i64> {
        self.emitted
    }

    /// Whether the last status emitted was [`WatermarkEvent::Idle`].
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Call every emit interval: each split's generator that is not idle by the timeout gets
    /// its periodic call, then this returns what to send downstream, if anything: a higher
    /// watermark, the switch to idle (once), or the switch back to active.
    #[must_use]
    pub fn on_periodic_emit(&mut self, now: Instant) -> Option<WatermarkEvent> {
        let mut any_active = false;
        let mut min: Option<i64> = None;
        let mut held_back = false;
        for s in self.splits.values_mut() {
            if s.timed_out(self.idleness, now) {
                continue;
            }
            s.generator.on_periodic_emit(&mut s.output);
            if s.output.is_idle() {
                continue;
            }
            any_active = true;
            match s.output.watermark() {
                Some(w) => min = Some(min.map_or(w, |m| m.min(w))),
                None => held_back = true,
            }
        }
        if !any_active {
            // All splits idle, or none at all with idleness configured (a subtask that owns no
            // partition must not hold the watermark back forever).
            let can_idle = !self.splits.is_empty() || self.idleness.is_some();
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

    fn event(g: &mut dyn WatermarkGenerator<()>, ts: i64, out: &mut WatermarkOutput) {
        g.on_event(&(), ts, out);
    }

    #[test]
    fn bounded_out_of_orderness_generator() {
        let s = WatermarkStrategy::<()>::for_bounded_out_of_orderness(Duration::from_millis(500));
        assert_eq!(s.max_out_of_orderness(), Some(Duration::from_millis(500)));
        let mut g = s.create_generator();
        let mut out = WatermarkOutput::new();
        g.on_periodic_emit(&mut out);
        assert_eq!(out.watermark(), None, "nothing before the first record");
        event(g.as_mut(), 1_000, &mut out);
        assert_eq!(out.watermark(), None, "periodic: nothing emitted on an event");
        g.on_periodic_emit(&mut out);
        assert_eq!(out.watermark(), Some(499));
        event(g.as_mut(), 3_000, &mut out);
        event(g.as_mut(), 2_000, &mut out); // late but within bounds: the max stays 3000
        g.on_periodic_emit(&mut out);
        assert_eq!(out.watermark(), Some(2_499));
        // Extreme timestamps saturate instead of overflowing.
        event(g.as_mut(), i64::MIN, &mut out);
        g.on_periodic_emit(&mut out);
        assert_eq!(out.watermark(), Some(2_499));
        let mut b = BoundedOutOfOrdernessWatermarks::new(Duration::ZERO);
        WatermarkGenerator::<()>::on_event(&mut b, &(), i64::MIN, &mut out);
        assert_eq!(b.current_watermark(), Some(i64::MIN));
    }

    #[test]
    fn output_keeps_the_highest_watermark_and_the_idle_flag() {
        let mut out = WatermarkOutput::new();
        out.emit_watermark(10);
        out.emit_watermark(5);
        assert_eq!(out.watermark(), Some(10), "a split's watermark never goes back");
        out.mark_idle();
        assert!(out.is_idle());
        out.emit_watermark(3);
        assert!(!out.is_idle(), "emitting marks active, even a lower watermark");
        out.mark_idle();
        out.mark_active();
        assert!(!out.is_idle());
    }

    #[test]
    fn monotonous_and_no_watermarks() {
        let t0 = Instant::now();
        let mut c = WatermarkStrategy::<()>::for_monotonous_timestamps().create_combiner();
        c.on_event("t-0", &(), 10, t0);
        c.on_event("t-0", &(), 20, t0);
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(19)));

        let s = WatermarkStrategy::<()>::no_watermarks();
        assert_eq!(s.max_out_of_orderness(), None);
        assert!(!s.emits_watermarks());
        let mut c = s.create_combiner();
        c.on_event("t-0", &(), 10, t0);
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
        let mut c = s.create_combiner();
        c.add_split("a-0", t0);
        assert_eq!(
            c.is_split_idle("a-0", at(t0, 10_000)),
            Some(false),
            "exactly the timeout is not longer than it"
        );
        assert_eq!(c.is_split_idle("a-0", at(t0, 10_001)), Some(true));
        c.on_event("a-0", &(), 1, at(t0, 10_500));
        assert_eq!(c.is_split_idle("a-0", at(t0, 20_000)), Some(false));
        assert_eq!(c.is_split_idle("a-0", at(t0, 20_501)), Some(true));
        assert_eq!(c.is_split_idle("nope", t0), None);
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
        c.on_event("t-0", &(), 1_000, at(t0, 100));
        assert_eq!(c.on_periodic_emit(at(t0, 200)), None);
        assert_eq!(c.split_watermark("t-0"), Some(899), "the split has its own watermark");

        // Both have records: the minimum wins.
        c.on_event("t-1", &(), 600, at(t0, 300));
        assert_eq!(c.on_periodic_emit(at(t0, 400)), Some(WatermarkEvent::Watermark(499)));
        assert_eq!(c.on_periodic_emit(at(t0, 600)), None, "unchanged: nothing to emit");

        // t-1 goes quiet; after the timeout it stops holding t-0 back.
        c.on_event("t-0", &(), 2_000, at(t0, 4_000));
        c.on_event("t-0", &(), 3_000, at(t0, 5_200));
        assert_eq!(
            c.is_split_idle("t-1", at(t0, 5_300)),
            Some(false),
            "5 s exactly: not idle yet"
        );
        assert_eq!(c.on_periodic_emit(at(t0, 5_300)), None);
        assert_eq!(c.is_split_idle("t-1", at(t0, 5_350)), Some(true));
        assert_eq!(
            c.on_periodic_emit(at(t0, 5_350)),
            Some(WatermarkEvent::Watermark(2_899))
        );

        // t-1 comes back with an old record: active again, but the watermark never regresses.
        c.on_event("t-1", &(), 700, at(t0, 5_400));
        assert_eq!(c.on_periodic_emit(at(t0, 5_500)), None);
        assert_eq!(c.current_watermark(), Some(2_899));
        c.on_event("t-1", &(), 5_000, at(t0, 5_600));
        assert_eq!(
            c.on_periodic_emit(at(t0, 5_700)),
            None,
            "t-0 (2899) is the minimum again"
        );
        c.on_event("t-0", &(), 4_000, at(t0, 5_800));
        assert_eq!(
            c.on_periodic_emit(at(t0, 5_900)),
            Some(WatermarkEvent::Watermark(3_899))
        );

        // Everything quiet: idle once, then active again with the next record.
        assert_eq!(c.on_periodic_emit(at(t0, 20_000)), Some(WatermarkEvent::Idle));
        assert!(c.is_idle());
        assert_eq!(c.on_periodic_emit(at(t0, 20_200)), None);
        c.on_event("t-0", &(), 3_000, at(t0, 20_300));
        assert_eq!(
            c.on_periodic_emit(at(t0, 20_400)),
            Some(WatermarkEvent::Active),
            "3899 again: no advance"
        );
        assert!(!c.is_idle());
        c.on_event("t-0", &(), 9_000, at(t0, 20_500));
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
        c.on_event("a-0", &(), 50, t0);
        assert_eq!(c.on_periodic_emit(t0), None, "a-1 holds back and never goes idle");
        c.remove_split("a-1");
        assert!(!c.has_split("a-1"));
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
        c.on_event("new-0", &(), 10, t0);
        assert!(c.has_split("new-0"));
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(9)));
    }

    #[test]
    fn punctuated_watermarks_come_from_the_events_per_split() {
        let t0 = Instant::now();
        // A record whose value is negative announces "event time reached |value|".
        let s = WatermarkStrategy::<i64>::for_punctuated(|v: &i64, _ts| (*v < 0).then_some(-*v));
        assert!(s.emits_watermarks());
        assert_eq!(s.max_out_of_orderness(), None);
        assert!(format!("{s:?}").contains("custom"));
        let mut c = s.create_combiner();
        c.add_split("p-0", t0);
        c.add_split("p-1", t0);
        c.on_event("p-0", &5, 5, t0);
        c.on_event("p-0", &-100, 6, t0);
        assert_eq!(
            c.split_watermark("p-0"),
            Some(100),
            "emitted at the event, not periodically"
        );
        assert_eq!(c.on_periodic_emit(t0), None, "p-1 announced nothing yet");
        c.on_event("p-1", &-70, 1, t0);
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(70)));
        c.on_event("p-1", &-200, 2, t0);
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(100)));
        c.on_event("p-0", &-50, 7, t0);
        assert_eq!(c.split_watermark("p-0"), Some(100), "a lower announcement is ignored");
        assert_eq!(c.on_periodic_emit(t0), None);
    }

    /// A periodic generator of the user's that also decides idleness itself: it emits the
    /// highest event time it saw and marks its split idle after a record saying "eof".
    struct UpTo {
        max: Option<i64>,
        eof: bool,
    }

    impl WatermarkGenerator<&'static str> for UpTo {
        fn on_event(&mut self, event: &&'static str, ts: i64, output: &mut WatermarkOutput) {
            self.max = Some(self.max.map_or(ts, |m| m.max(ts)));
            if *event == "eof" {
                self.eof = true;
                output.mark_idle();
            }
        }

        fn on_periodic_emit(&mut self, output: &mut WatermarkOutput) {
            if let (Some(m), false) = (self.max, self.eof) {
                output.emit_watermark(m);
            }
        }
    }

    #[test]
    fn custom_generators_are_made_per_split_and_may_mark_idle() {
        let t0 = Instant::now();
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = made.clone();
        let s = WatermarkStrategy::<&'static str>::for_generator(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            UpTo { max: None, eof: false }
        });
        let mut c = s.create_combiner();
        c.on_event("a-0", &"x", 10, t0);
        c.on_event("a-1", &"x", 30, t0);
        assert_eq!(
            made.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "one generator per split"
        );
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(10)));
        // a-0 reaches its end and marks itself idle: a-1 alone decides.
        c.on_event("a-0", &"eof", 11, t0);
        assert_eq!(c.is_split_idle("a-0", t0), Some(true));
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(30)));
        c.on_event("a-1", &"eof", 31, t0);
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Idle));
        // A new split made later gets a fresh generator.
        c.on_event("a-2", &"x", 40, t0);
        assert_eq!(made.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(c.on_periodic_emit(t0), Some(WatermarkEvent::Watermark(40)));
        assert!(format!("{c:?}").contains("a-2"));
    }
}
