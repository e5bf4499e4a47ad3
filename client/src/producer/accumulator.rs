//! The record accumulator: per-partition batches being filled and batches waiting to be
//! sent (Java's `RecordAccumulator`).
//!
//! `send` encodes each record straight into its partition's open [`BatchBuilder`] (the only
//! copy of key and value), under a short mutex. A batch is sealed when the next record would
//! take it past `batch.size`; the sender takes sealed batches, and open ones whose
//! `linger.ms` has passed or that a flush asked for. `buffer.memory` is a semaphore of bytes,
//! taken by `send` (waiting up to `max.block.ms`) and given back when the batch completes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, NewRecord};
use strom_protocol::{Compression, CompressionLevel};
use tokio::sync::{Notify, Semaphore};

use super::delivery::{BatchDone, DeliveryFuture};
use super::partitioner::{PartitionerClass, Rng, RoundRobin, StickyPartitioner};
use crate::error::{Error, Result};

/// A batch's records: still a builder, or encoded (then kept for retries).
#[derive(Debug)]
pub(crate) enum Body {
    Open(BatchBuilder),
    Encoded(Bytes),
}

/// A batch on its way: sealed in the accumulator, in flight, or queued for a retry.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    pub(crate) done: Arc<BatchDone>,
    pub(crate) created: Instant,
    pub(crate) count: u32,
    /// Bytes of `buffer.memory` held until completion.
    pub(crate) reserved: u32,
    pub(crate) body: Body,
    /// (producer id, epoch, first sequence) once assigned at the first send.
    pub(crate) seq: Option<(i64, i16, i32)>,
    pub(crate) attempts: u32,
    /// Not before this, when queued for a retry (`retry.backoff.ms`, exponential).
    pub(crate) retry_at: Option<Instant>,
    /// Why the last attempt failed: reported with a timeout, so an expired batch says what
    /// kept it from landing.
    pub(crate) last_error: Option<crate::error::Error>,
}

/// Where a record goes, decided before the topic's partition count is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// A partition the caller chose (explicitly, or through a custom partitioner).
    Partition(u32),
    /// `toPositive(murmur2(key))`: the partition is this modulo the partition count.
    KeyHash(u32),
    /// Left to the built-in partitioner: uniform sticky, or round robin.
    Unkeyed,
}

/// How [`Accumulator::append`] learns a topic's partition count.
pub(crate) struct Partitions<'a> {
    /// The metadata generation now ([`crate::Client`]'s counter).
    pub(crate) generation: u64,
    /// The count in the current metadata; None when the topic is not cached.
    pub(crate) lookup: &'a dyn Fn() -> Option<u32>,
}

/// One partition's queue.
#[derive(Debug, Default)]
pub(crate) struct PartQueue {
    pub(crate) open: Option<Batch>,
    pub(crate) sealed: VecDeque<Batch>,
}

/// One topic's partitions.
#[derive(Debug)]
pub(crate) struct TopicQueues {
    pub(crate) name: Arc<str>,
    pub(crate) parts: Vec<PartQueue>,
    /// Where records without a key go (KIP-794); the sender feeds it queue lengths.
    pub(crate) sticky: StickyPartitioner,
    round_robin: RoundRobin,
    /// The partition count and the metadata generation it was read at.
    counted: Option<(u64, u32)>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) topics: HashMap<Arc<str>, TopicQueues>,
    /// Every batch created and not known to be done: what `flush` waits for.
    outstanding: Vec<Arc<BatchDone>>,
    /// A flush (or close, or commit) wants open batches sent now.
    pub(crate) flushing: usize,
    pub(crate) closed: bool,
    /// Set when the producer can no longer send (fenced, fatal error): new sends fail with it.
    pub(crate) fatal: Option<Error>,
}

#[derive(Debug)]
pub(crate) struct Accumulator {
    state: Mutex<State>,
    pub(crate) memory: Semaphore,
    /// Wakes the sender: a batch was sealed, a flush started, or a command arrived.
    pub(crate) wake: Notify,
    pub(crate) batch_size: usize,
    pub(crate) linger: Duration,
    pub(crate) compression: Compression,
    /// The level for `compression`'s codec (KIP-390), checked when the producer started;
    /// `None`: the codec's default.
    level: Option<CompressionLevel>,
    max_block: Duration,
    max_request_size: usize,
    partitioner: PartitionerClass,
    pub(crate) metrics: Arc<crate::metrics::ProducerInstruments>,
}

/// Upper bound of one record's encoded size inside a batch (for `buffer.memory` and
/// `max.request.size` checks before encoding).
pub(crate) fn record_size_bound(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(String, Option<Bytes>)],
) -> usize {
    let mut n = 5 + 1 + 10 + 5 + 5 + key.map_or(0, <[u8]>::len) + 5 + value.map_or(0, <[u8]>::len) + 5;
    for (k, v) in headers {
        n += 5 + k.len() + 5 + v.as_ref().map_or(0, Bytes::len);
    }
    n
}

/// A send waiting for `buffer.memory`, counted while it lives.
struct BufferWait<'a> {
    metrics: &'a crate::metrics::ProducerInstruments,
    since: Instant,
}

impl<'a> BufferWait<'a> {
    fn new(metrics: &'a crate::metrics::ProducerInstruments) -> Self {
        metrics.wait_started();
        BufferWait {
            metrics,
            since: Instant::now(),
        }
    }
}

impl Drop for BufferWait<'_> {
    fn drop(&mut self) {
        self.metrics.wait_ended(self.since.elapsed());
    }
}

impl Accumulator {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        batch_size: usize,
        linger: Duration,
        compression: Compression,
        level: Option<CompressionLevel>,
        buffer_memory: usize,
        max_block: Duration,
        max_request_size: usize,
        partitioner: PartitionerClass,
        metrics: Arc<crate::metrics::ProducerInstruments>,
    ) -> Self {
        metrics.buffer_total_bytes.set(buffer_memory as f64);
        metrics.buffer_available_bytes.set(buffer_memory as f64);
        Accumulator {
            metrics,
            state: Mutex::new(State::default()),
            memory: Semaphore::new(buffer_memory.min(Semaphore::MAX_PERMITS)),
            wake: Notify::new(),
            batch_size,
            linger,
            compression,
            level,
            max_block,
            max_request_size,
            partitioner,
        }
    }

    /// An empty batch with this producer's codec and level.
    fn new_builder(&self) -> BatchBuilder {
        let builder = BatchBuilder::new(
            BatchHeader {
                compression: self.compression,
                ..Default::default()
            },
            self.batch_size.min(1 << 20),
        );
        match self.level {
            Some(level) => builder.with_compression_level(level),
            None => builder,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Takes `n` bytes of `buffer.memory`, waiting up to `max.block.ms` (`wait` false: not at
    /// all). Fails at once for a record larger than `max.request.size` or the whole buffer.
    pub(crate) async fn reserve(&self, n: usize, wait: bool) -> Result<u32> {
        if n > self.max_request_size {
            // The client refuses it (Java's RecordTooLargeException); the broker never saw it.
            return Err(Error::record_too_large(n, self.max_request_size));
        }
        let n32 = u32::try_from(n).map_err(|_| Error::record_too_large(n, self.max_request_size))?;
        let acquired = if wait {
            match self.memory.try_acquire_many(n32) {
                Ok(a) => a,
                Err(tokio::sync::TryAcquireError::Closed) => return Err(super::delivery::closed_error()),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    // The slow path: the buffer is full. Timed (bufferpool-wait-time-ns-total,
                    // waiting-threads); the guard counts the wait's end even if the send is
                    // dropped while waiting.
                    let _wait = BufferWait::new(&self.metrics);
                    match tokio::time::timeout(self.max_block, self.memory.acquire_many(n32)).await {
                        Ok(r) => r.map_err(|_| super::delivery::closed_error())?,
                        Err(_) => {
                            return Err(Error::timeout(
                                format!(
                                "for {n} bytes of buffer.memory (the producer is sending slower than records arrive)"
                            ),
                                self.max_block,
                            ))
                        }
                    }
                }
            }
        } else {
            self.memory.try_acquire_many(n32).map_err(|_| Error::buffer_full(n))?
        };
        acquired.forget();
        Ok(n32)
    }

    /// Gives memory back when a batch is done (and sets `buffer-available-bytes`: per
    /// batch, not per record).
    pub(crate) fn release(&self, n: u32) {
        self.memory.add_permits(n as usize);
        self.metrics
            .buffer_available_bytes
            .set(self.memory.available_permits() as f64);
    }

    /// Appends a record to the partition `placement` leads to. `reserved` bytes of memory
    /// were taken for it. `Ok(None)`: the topic is not in the cached metadata (the caller
    /// fetches it and tries again); the memory was given back then, as on every error.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append(
        &self,
        topic: &str,
        placement: Placement,
        partitions: Partitions<'_>,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
        reserved: u32,
    ) -> Result<Option<DeliveryFuture>> {
        let mut st = self.lock();
        if let Some(e) = &st.fatal {
            self.release(reserved);
            return Err(e.clone());
        }
        if st.closed {
            self.release(reserved);
            return Err(super::delivery::closed_error());
        }
        let state = &mut *st;
        let tq = match state.topics.get_mut(topic) {
            Some(t) => t,
            None => {
                // Only a topic the metadata knows gets queues.
                let Some(n) = (partitions.lookup)() else {
                    self.release(reserved);
                    return Ok(None);
                };
                let name: Arc<str> = Arc::from(topic);
                let salt = self as *const Self as usize ^ state.topics.len();
                state.topics.entry(name.clone()).or_insert(TopicQueues {
                    name,
                    parts: Vec::new(),
                    sticky: StickyPartitioner::new(Rng::from_entropy(salt)),
                    round_robin: RoundRobin::default(),
                    counted: Some((partitions.generation, n)),
                })
            }
        };
        // The partition count, looked up again only when the metadata changed: one atomic
        // load per record instead of a lock, a reference count and a hash lookup.
        let num_partitions = match tq.counted {
            Some((generation, n)) if generation == partitions.generation => n,
            _ => {
                let Some(n) = (partitions.lookup)() else {
                    self.release(reserved);
                    return Ok(None);
                };
                tq.counted = Some((partitions.generation, n));
                n
            }
        };
        if num_partitions == 0 {
            self.release(reserved);
            return Err(Error::protocol(format!("topic {topic} has no partitions")).with_topic(topic));
        }
        let partition = match placement {
            Placement::Partition(p) if p >= num_partitions => {
                self.release(reserved);
                return Err(Error::kafka(strom_protocol::ErrorCode::UnknownTopicOrPartition)
                    .with_context(format!("topic {topic} has no partition {p} (it has {num_partitions})"))
                    .with_partition(topic, p as i32));
            }
            Placement::Partition(p) => Some(p),
            // Java's BuiltInPartitioner.partitionForKey: murmur2, positive, modulo.
            Placement::KeyHash(h) => Some(h % num_partitions),
            Placement::Unkeyed => None,
        };
        if tq.parts.len() < num_partitions as usize {
            tq.parts.resize_with(num_partitions as usize, PartQueue::default);
        }
        let sticky = partition.is_none() && self.partitioner != PartitionerClass::RoundRobin;
        let p = match partition {
            Some(p) => p,
            None if sticky => tq.sticky.current(num_partitions),
            None => tq.round_robin.next(tq.sticky.available(), num_partitions),
        };
        let record = NewRecord {
            timestamp,
            key,
            value,
            headers,
        };
        let part = &mut tq.parts[p as usize];
        let mut sealed_one = false;
        let mut measured = None;
        if let Some(open) = &part.open {
            if let Body::Open(b) = &open.body {
                let m = b.measure(&record);
                if !b.is_empty() && b.size_in_bytes() + m.size() > self.batch_size {
                    if let Some(full) = part.open.take() {
                        part.sealed.push_back(full);
                        sealed_one = true;
                    }
                } else {
                    measured = Some(m);
                }
            }
        }
        let topic_arc = tq.name.clone();
        let part = &mut tq.parts[p as usize];
        // A new batch needs the sender to schedule its linger deadline (Java wakes the
        // sender on a new batch too): one wake-up per batch, not per record.
        let new_batch = part.open.is_none();
        let open = part.open.get_or_insert_with(|| {
            let done = BatchDone::new(topic_arc.clone(), p as i32);
            state.outstanding.push(done.clone());
            Batch {
                topic: topic_arc.clone(),
                partition: p as i32,
                done,
                created: Instant::now(),
                count: 0,
                reserved: 0,
                body: Body::Open(self.new_builder()),
                seq: None,
                attempts: 0,
                retry_at: None,
                last_error: None,
            }
        });
        let Body::Open(builder) = &mut open.body else {
            return Err(Error::internal("open batch already encoded"));
        };
        let before = if new_batch { 0 } else { builder.size_in_bytes() };
        let appended = match measured {
            Some(m) => builder.append_measured(&record, m),
            None => builder.append(&record),
        };
        let size = match appended {
            Ok(size) => size,
            Err(e) => {
                self.release(reserved);
                return Err(e.into());
            }
        };
        let fut = DeliveryFuture::new(open.done.clone(), open.count, timestamp);
        open.count += 1;
        open.reserved += reserved;
        let full = size >= self.batch_size;
        if full {
            if let Some(full) = part.open.take() {
                part.sealed.push_back(full);
                sealed_one = true;
            }
        }
        if sticky {
            // Every appended byte counts, whichever batch it went into (a batch linger
            // drained early included); the switch waits for a full batch (KIP-794).
            tq.sticky
                .on_appended(size.saturating_sub(before), self.batch_size, full, num_partitions);
        }
        // Keep the flush list short: drop finished entries now and then.
        if state.outstanding.len() > 1024 && state.outstanding.len().is_power_of_two() {
            state.outstanding.retain(|d| !d.is_done());
        }
        drop(st);
        if sealed_one || new_batch {
            self.wake.notify_one();
        }
        Ok(Some(fut))
    }

    /// Batches not yet done, for `flush` to wait on; asks the sender to send open batches now.
    pub(crate) fn begin_flush(&self) -> Vec<Arc<BatchDone>> {
        let mut st = self.lock();
        st.flushing += 1;
        // Sealed here, not when the sender next looks: the batches this flush waits for go
        // whatever happens to the flush (a dropped `flush` ends it at once), without waiting
        // for linger.ms.
        for tq in st.topics.values_mut() {
            for part in tq.parts.iter_mut() {
                if let Some(open) = part.open.take() {
                    part.sealed.push_back(open);
                }
            }
        }
        st.outstanding.retain(|d| !d.is_done());
        let v = st.outstanding.clone();
        drop(st);
        self.wake.notify_one();
        v
    }

    pub(crate) fn end_flush(&self) {
        let mut st = self.lock();
        st.flushing = st.flushing.saturating_sub(1);
    }

    /// Nothing left to send (open or sealed).
    pub(crate) fn is_empty(st: &State) -> bool {
        st.topics
            .values()
            .all(|t| t.parts.iter().all(|p| p.open.is_none() && p.sealed.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(batch_size: usize, class: PartitionerClass) -> Accumulator {
        Accumulator::new(
            batch_size,
            Duration::from_millis(5),
            Compression::None,
            None,
            64 << 20,
            Duration::from_secs(1),
            1 << 20,
            class,
            Arc::new(crate::metrics::ProducerInstruments::new(
                &crate::metrics::MetricRegistry::new("t", Duration::from_secs(30), 2),
            )),
        )
    }

    fn sticky_state(a: &Accumulator) -> Option<(u32, usize)> {
        a.lock().topics["t"].sticky.state()
    }

    /// What the sender does: takes sealed batches, and with `linger` also the open ones
    /// (linger expired: they leave early, not full).
    fn drain(a: &Accumulator, linger: bool) {
        let mut st = a.lock();
        for p in st.topics.get_mut("t").into_iter().flat_map(|t| t.parts.iter_mut()) {
            if linger {
                p.open = None;
            }
            p.sealed.clear();
        }
    }

    /// Sends `n` records of `size` bytes without a key, draining like the sender every
    /// `drain_every` records; returns the records per partition and the bytes appended to
    /// each partition choice before it was given up.
    fn run(a: &Accumulator, n: usize, size: usize, drain_every: usize, linger: bool) -> ([u32; 6], Vec<usize>) {
        let value = vec![7u8; size];
        let mut per_partition = [0u32; 6];
        let mut stints = Vec::new();
        let mut last: Option<(u32, usize)> = None;
        for i in 0..n {
            let before = a.lock().topics.get("t").and_then(|t| t.sticky.state());
            assert!(matches!(append6(a, Placement::Unkeyed, None, &value), Ok(Some(_))));
            // The record went to the partition current before the append.
            let p = before.map_or_else(|| sticky_state(a).map_or(0, |s| s.0), |s| s.0);
            per_partition[p as usize] += 1;
            let after = sticky_state(a);
            if after.is_some_and(|s| s.1 == 0) {
                // A switch: the bytes counted on the partition given up.
                let counted = last.map_or(0, |l| l.1) + (size + 8);
                stints.push(counted);
            }
            last = after;
            if (i + 1) % drain_every == 0 {
                drain(a, linger);
            }
        }
        (per_partition, stints)
    }

    /// Appends to topic "t", which has 6 partitions.
    fn append6(
        a: &Accumulator,
        placement: Placement,
        key: Option<&[u8]>,
        value: &[u8],
    ) -> Result<Option<DeliveryFuture>> {
        a.append(
            "t",
            placement,
            Partitions {
                generation: 0,
                lookup: &|| Some(6),
            },
            0,
            key,
            Some(value),
            &[],
            0,
        )
    }

    /// Records per run of the two sticky tests: enough stints (400 to 800) that the
    /// entropy-seeded random pick cannot leave a partition at half its share by chance
    /// (over 4 standard deviations; at 30,000 records one CI run in a few hundred failed).
    const N: usize = 120_000;

    fn spread_evenly(per_partition: [u32; 6]) {
        let mean = (N / 6) as u32;
        for c in per_partition {
            assert!(c > mean / 2 && c < mean * 3 / 2, "{per_partition:?}");
        }
    }

    #[test]
    fn batches_cut_by_linger_still_move_the_sticky_partition() {
        // The defect: a batch drained by linger never moved the sticky partition, so at a
        // user's pace every record of the producer's life went to one partition. Here every
        // batch leaves after 10 records, never full: the switch comes after twice batch.size.
        let a = acc(16384, PartitionerClass::BuiltIn);
        let (per_partition, stints) = run(&a, N, 100, 10, true);
        assert!(stints.len() >= 80, "{} switches", stints.len());
        for s in &stints {
            assert!((2 * 16384..2 * 16384 + 200).contains(s), "switched after {s} bytes");
        }
        spread_evenly(per_partition);
    }

    #[test]
    fn full_speed_switches_between_one_and_two_batch_sizes() {
        // At full speed batches fill. The switch comes once batch.size bytes went to the
        // partition and its last batch is full; a record that did not fit opened a new,
        // part-full batch, so as in Java the switch then waits for that one, up to twice
        // batch.size.
        let a = acc(16384, PartitionerClass::BuiltIn);
        let (per_partition, stints) = run(&a, N, 100, 1_000_000, false);
        assert!(stints.len() >= 80, "{} switches", stints.len());
        for s in &stints {
            assert!((16384..2 * 16384 + 200).contains(s), "switched after {s} bytes");
        }
        spread_evenly(per_partition);
    }

    #[test]
    fn round_robin_ignores_keys_and_is_exact() {
        let a = acc(16384, PartitionerClass::RoundRobin);
        for _ in 0..6_000 {
            assert!(matches!(
                append6(&a, Placement::Unkeyed, Some(b"same key"), &[0u8; 10]),
                Ok(Some(_))
            ));
        }
        let st = a.lock();
        let counts: Vec<u32> = st.topics["t"]
            .parts
            .iter()
            .map(|p| p.open.iter().chain(p.sealed.iter()).map(|b| b.count).sum())
            .collect();
        assert_eq!(counts, vec![1000; 6]);
    }

    fn append_to(
        a: &Accumulator,
        placement: Placement,
        generation: u64,
        lookup: &dyn Fn() -> Option<u32>,
        reserved: u32,
    ) -> Result<Option<DeliveryFuture>> {
        a.append(
            "t",
            placement,
            Partitions { generation, lookup },
            0,
            None,
            Some(b"v"),
            &[],
            reserved,
        )
    }

    #[test]
    fn the_partition_count_is_read_again_only_when_the_metadata_changes() {
        let a = acc(16384, PartitionerClass::UniformSticky);
        let lookups = std::cell::Cell::new(0);
        let count = std::cell::Cell::new(3u32);
        let lookup = || {
            lookups.set(lookups.get() + 1);
            Some(count.get())
        };
        for _ in 0..100 {
            assert!(matches!(
                append_to(&a, Placement::KeyHash(5), 1, &lookup, 0),
                Ok(Some(_))
            ));
        }
        assert_eq!(lookups.get(), 1);
        // The topic grew; a new snapshot is read once.
        count.set(4);
        assert!(matches!(append_to(&a, Placement::KeyHash(7), 2, &lookup, 0), Ok(Some(f)) if f.batch.partition == 3));
        assert!(matches!(
            append_to(&a, Placement::Partition(3), 2, &lookup, 0),
            Ok(Some(_))
        ));
        assert_eq!(lookups.get(), 2);
        // Under the first count the hash 5 went to 5 % 3 = 2, all 100 of them.
        assert!(a.lock().topics["t"].parts[2]
            .open
            .as_ref()
            .is_some_and(|b| b.count == 100));
    }

    #[test]
    fn a_topic_missing_from_the_metadata_or_a_bad_partition_gives_the_memory_back() {
        let a = acc(16384, PartitionerClass::UniformSticky);
        let free = a.memory.available_permits();
        let r = a.memory.try_acquire_many(100).map(|p| p.forget());
        assert!(r.is_ok());
        // Not in the metadata: None, nothing queued, memory back.
        assert!(matches!(append_to(&a, Placement::Unkeyed, 1, &|| None, 100), Ok(None)));
        assert!(a.lock().topics.is_empty());
        assert_eq!(a.memory.available_permits(), free);
        // Known with 2 partitions: partition 2 does not exist.
        let r = a.memory.try_acquire_many(100).map(|p| p.forget());
        assert!(r.is_ok());
        match append_to(&a, Placement::Partition(2), 1, &|| Some(2), 100) {
            Err(e) => assert!(e.to_string().contains("has no partition 2 (it has 2)"), "{e}"),
            Ok(_) => panic!("partition 2 of 2 was accepted"),
        }
        assert_eq!(a.memory.available_permits(), free);
        // A topic whose partitions vanished from a later snapshot: None again.
        assert!(matches!(append_to(&a, Placement::Unkeyed, 2, &|| None, 0), Ok(None)));
        // No partitions at all: an error naming the topic.
        match append_to(&a, Placement::Unkeyed, 3, &|| Some(0), 0) {
            Err(e) => assert!(e.to_string().contains("topic t has no partitions"), "{e}"),
            Ok(_) => panic!("a topic without partitions took a record"),
        }
    }
}
