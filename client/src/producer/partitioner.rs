//! Java's built-in partitioner for records without a key (KIP-794, `BuiltInPartitioner`),
//! and `RoundRobinPartitioner`, as sans-IO state per topic.
//!
//! Keyed records go to `murmur2(key) % partitions` (see `Producer::append`); everything
//! here decides where records *without* a key (or all records, with
//! `partitioner.ignore.keys=true`) go.
//!
//! The uniform sticky rule (KIP-794): stay on one partition until `batch.size` bytes were
//! appended to it since it was chosen, counting every batch, however linger cut them. Then
//! switch to a random partition. Switching while the partition's last batch is only part
//! full would leave a small batch behind, so the switch waits for the batch to be full, up
//! to twice `batch.size` (`BuiltInPartitioner.updatePartitionInfo` and
//! `RecordAccumulator.allBatchesFull` in the Java client).
//!
//! The random pick is weighted by queue length when adaptive partitioning is on: the sender
//! reports each partition's queue (batches waiting to be sent) every turn, and a partition
//! whose queue is longer is picked less often (`updatePartitionLoadStats`). Partitions whose
//! leader is unknown, or whose leader has had batches ready for longer than
//! `partitioner.availability.timeout.ms` without taking them, are not picked at all.

/// `partitioner.class`: which built-in rule places records without an explicit partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PartitionerClass {
    /// No class set (Java 3.3+'s default): murmur2 for keys, uniform sticky (KIP-794) for null
    /// keys. Also what `org.apache.kafka.clients.producer.internals.DefaultPartitioner` (removed
    /// in Kafka 4.0) meant.
    #[default]
    BuiltIn,
    /// `org.apache.kafka.clients.producer.UniformStickyPartitioner` (removed in Kafka 4.0):
    /// sticky for every record, keys ignored; the same as `partitioner.ignore.keys=true`.
    UniformSticky,
    /// `org.apache.kafka.clients.producer.RoundRobinPartitioner`: every record (keyed or not)
    /// to the next available partition in turn. Strom's is exact: Java's skips partitions when a
    /// record starts a new batch (KAFKA-9965); this one does not.
    RoundRobin,
}

impl PartitionerClass {
    /// Parses a `partitioner.class` value (a Java class name). A class this client cannot run
    /// is an error naming the key: in Rust a custom partitioner is a
    /// [`Partitioner`](super::Partitioner) set as `ProducerConfig::partitioner`.
    pub fn from_java_class(value: &str) -> crate::error::Result<Self> {
        let v = value.trim();
        Ok(match v {
            "" => PartitionerClass::BuiltIn,
            "org.apache.kafka.clients.producer.internals.DefaultPartitioner" => PartitionerClass::BuiltIn,
            "org.apache.kafka.clients.producer.UniformStickyPartitioner" => PartitionerClass::UniformSticky,
            "org.apache.kafka.clients.producer.RoundRobinPartitioner" => PartitionerClass::RoundRobin,
            _ => {
                return Err(crate::error::Error::config(format!(
                    "partitioner.class={v:?}: not a partitioner this client has. The built-in ones are \
                     org.apache.kafka.clients.producer.RoundRobinPartitioner and the removed (Kafka 4.0) \
                     DefaultPartitioner and UniformStickyPartitioner, which map to what they did; leave it \
                     unset for Java's default. A Java class cannot run here: implement \
                     strom_client::Partitioner and set it with ProducerConfig::builder(..).partitioner(..)"
                )))
            }
        })
    }
}

/// A small deterministic generator (xorshift64*), so tests can seed the partition choice.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// Seeded from the clock and an address, different per producer and topic.
    pub(crate) fn from_entropy(salt: usize) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng::new(t ^ (salt as u64).rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }
}

/// The queue-length weighted table (`PartitionLoadStats`): `cumulative[i]` is the running
/// sum of `max_queue + 1 - queue[i]` over the partitions that may be picked.
#[derive(Debug, Clone, Default)]
struct LoadStats {
    cumulative: Vec<u32>,
    partitions: Vec<u32>,
}

/// Per-topic state of the built-in partitioner for records without a key.
#[derive(Debug, Clone)]
pub(crate) struct StickyPartitioner {
    /// The partition records go to now, and the bytes appended to it since it was chosen.
    current: Option<(u32, usize)>,
    /// Partitions with a known leader, as the sender last saw them (empty: not known yet, any).
    available: Vec<u32>,
    /// Set when queue lengths differ (or some partitions are excluded): the weighted pick.
    load: Option<LoadStats>,
    rng: Rng,
}

impl StickyPartitioner {
    pub(crate) fn new(rng: Rng) -> Self {
        StickyPartitioner {
            current: None,
            available: Vec::new(),
            load: None,
            rng,
        }
    }

    /// Partitions with a leader as the sender last saw them (round robin uses them too).
    pub(crate) fn available(&self) -> &[u32] {
        &self.available
    }

    /// The current partition and the bytes appended to it since it was chosen.
    #[cfg(test)]
    pub(crate) fn state(&self) -> Option<(u32, usize)> {
        self.current
    }

    /// The partition the next record goes to (`peekCurrentPartitionInfo`).
    pub(crate) fn current(&mut self, num_partitions: u32) -> u32 {
        match self.current {
            Some((p, _)) if p < num_partitions => p,
            _ => {
                let p = self.next_partition(num_partitions);
                self.current = Some((p, 0));
                p
            }
        }
    }

    /// Counts `appended` bytes toward the current partition; switches once `batch_size` bytes
    /// went there and its last batch is full (`batch_full`), or twice `batch_size` in any case.
    pub(crate) fn on_appended(&mut self, appended: usize, batch_size: usize, batch_full: bool, num_partitions: u32) {
        let Some((_, produced)) = self.current.as_mut() else {
            return;
        };
        *produced += appended;
        let produced = *produced;
        if (produced >= batch_size && batch_full) || produced >= batch_size.saturating_mul(2) {
            let next = self.next_partition(num_partitions);
            self.current = Some((next, 0));
        }
    }

    /// A random partition: weighted by queue length when load stats exist, else uniform
    /// over the partitions with a leader, else over all (`BuiltInPartitioner.nextPartition`).
    fn next_partition(&mut self, num_partitions: u32) -> u32 {
        let random = self.rng.next_u32();
        if let Some(load) = &self.load {
            if let Some(&total) = load.cumulative.last() {
                if total > 0 {
                    let r = random % total;
                    // The first entry strictly greater than r.
                    let i = load.cumulative.partition_point(|&c| c <= r);
                    if let Some(&p) = load.partitions.get(i) {
                        if p < num_partitions {
                            return p;
                        }
                    }
                }
            }
        }
        let avail = self.available.iter().filter(|&&p| p < num_partitions).count();
        if avail > 0 {
            let k = (random as usize) % avail;
            if let Some(&p) = self.available.iter().filter(|&&p| p < num_partitions).nth(k) {
                return p;
            }
        }
        random % num_partitions.max(1)
    }

    /// What the sender saw this turn (`updatePartitionLoadStats`): `queues` holds
    /// (partition, queued batches) for the partitions with a leader that are not excluded for
    /// unavailability, `with_leader` every partition with a leader, `num_partitions` all.
    /// `adaptive` false: only the leader list is kept, picks are uniform.
    pub(crate) fn update(&mut self, queues: &[(u32, u32)], with_leader: &[u32], num_partitions: u32, adaptive: bool) {
        self.available.clear();
        self.available.extend_from_slice(with_leader);
        if !adaptive {
            self.load = None;
            return;
        }
        let excluded = queues.len() != with_leader.len();
        // One partition, or every partition with a leader excluded: nothing to weigh, so the
        // pick is uniform over the partitions with a leader.
        if queues.is_empty() || (num_partitions < 2 && !excluded) {
            self.load = None;
            return;
        }
        let max = queues.iter().map(|&(_, q)| q).max().unwrap_or(0);
        let all_equal = queues.iter().all(|&(_, q)| q == max);
        if all_equal && !excluded {
            self.load = None;
            return;
        }
        let stats = self.load.get_or_insert_with(LoadStats::default);
        stats.cumulative.clear();
        stats.partitions.clear();
        let mut sum = 0u32;
        for &(p, q) in queues {
            sum = sum.saturating_add(max + 1 - q);
            stats.cumulative.push(sum);
            stats.partitions.push(p);
        }
    }
}

/// `RoundRobinPartitioner`: the next partition with a leader, in turn, for every record.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoundRobin {
    next: u32,
}

impl RoundRobin {
    /// `available`: partitions with a leader (empty: not known, use all).
    pub(crate) fn next(&mut self, available: &[u32], num_partitions: u32) -> u32 {
        let i = self.next;
        self.next = self.next.wrapping_add(1);
        let avail: usize = available.iter().filter(|&&p| p < num_partitions).count();
        if avail > 0 && avail < num_partitions as usize {
            if let Some(&p) = available
                .iter()
                .filter(|&&p| p < num_partitions)
                .nth(i as usize % avail)
            {
                return p;
            }
        }
        i % num_partitions.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(seed: u64) -> StickyPartitioner {
        StickyPartitioner::new(Rng::new(seed))
    }

    #[test]
    fn stays_until_batch_size_bytes_then_switches_when_the_batch_is_full() {
        let mut s = part(7);
        let first = s.current(6);
        // 100 records of 100 bytes into a 16 KiB batch.size: 10,000 bytes, no switch.
        for _ in 0..100 {
            assert_eq!(s.current(6), first);
            s.on_appended(100, 16384, false, 6);
        }
        assert_eq!(s.current(6), first);
        // Past batch.size but the last batch is not full (linger cut it): still no switch.
        for _ in 0..70 {
            s.on_appended(100, 16384, false, 6);
        }
        assert_eq!(s.current, Some((first, 17000)));
        // The batch fills: switch (the new pick may be the same partition by chance; the
        // byte count restarts either way).
        s.on_appended(100, 16384, true, 6);
        assert_eq!(s.current.map(|c| c.1), Some(0));
    }

    #[test]
    fn linger_drained_batches_count_toward_the_switch() {
        // Records arrive slowly: every batch is drained by linger after 10 records, so no
        // batch is ever full. The bytes still add up, and the switch comes at 2 x batch.size.
        let mut s = part(3);
        let mut switches = 0;
        let mut appended_since = 0;
        s.current(6);
        for _ in 0..10_000 {
            s.on_appended(100, 16384, false, 6);
            appended_since += 100;
            if s.current.map(|c| c.1) == Some(0) {
                switches += 1;
                assert!(appended_since >= 2 * 16384, "switched after {appended_since} bytes");
                assert!(appended_since < 2 * 16384 + 100);
                appended_since = 0;
            }
        }
        // 1,000,000 bytes / 32,768 per partition.
        assert_eq!(switches, 1_000_000 / 32_800);
    }

    #[test]
    fn uniform_pick_spreads_over_partitions_with_a_leader() {
        let mut s = part(11);
        // Partition 2 has no leader.
        s.update(&[(0, 0), (1, 0), (3, 0), (4, 0), (5, 0)], &[0, 1, 3, 4, 5], 6, true);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[s.next_partition(6) as usize] += 1;
        }
        assert_eq!(counts[2], 0, "{counts:?}");
        for (p, &c) in counts.iter().enumerate() {
            if p != 2 {
                assert!((11_000..13_000).contains(&c), "{counts:?}");
            }
        }
    }

    #[test]
    fn adaptive_pick_favours_short_queues() {
        let mut s = part(5);
        // Java's example: queues 0 3 1 -> weights 4 1 3 -> cumulative 4 5 8.
        s.update(&[(0, 0), (1, 3), (2, 1)], &[0, 1, 2], 3, true);
        assert_eq!(s.load.as_ref().map(|l| l.cumulative.clone()), Some(vec![4, 5, 8]));
        let mut counts = [0u32; 3];
        for _ in 0..80_000 {
            counts[s.next_partition(3) as usize] += 1;
        }
        // Expected 40,000 / 10,000 / 30,000.
        assert!((38_000..42_000).contains(&counts[0]), "{counts:?}");
        assert!((9_000..11_000).contains(&counts[1]), "{counts:?}");
        assert!((28_500..31_500).contains(&counts[2]), "{counts:?}");
        // Equal queues: uniform again.
        s.update(&[(0, 2), (1, 2), (2, 2)], &[0, 1, 2], 3, true);
        assert!(s.load.is_none());
        // Adaptive off: queue lengths are ignored.
        s.update(&[(0, 0), (1, 9), (2, 0)], &[0, 1, 2], 3, false);
        assert!(s.load.is_none());
    }

    #[test]
    fn excluded_partitions_are_never_picked() {
        let mut s = part(9);
        // Partition 1's leader has not taken a request for longer than the availability
        // timeout: the sender leaves it out of the queue list, though it has a leader.
        s.update(&[(0, 0), (2, 0)], &[0, 1, 2], 3, true);
        for _ in 0..10_000 {
            assert_ne!(s.next_partition(3), 1);
        }
        // Even with one partition left, the exclusion holds.
        s.update(&[(2, 4)], &[0, 1, 2], 3, true);
        for _ in 0..1_000 {
            assert_eq!(s.next_partition(3), 2);
        }
    }

    #[test]
    fn round_robin_is_exact() {
        let mut rr = RoundRobin::default();
        let mut counts = [0u32; 6];
        for i in 0..6_000u32 {
            let p = rr.next(&[0, 1, 2, 3, 4, 5], 6);
            assert_eq!(p, i % 6);
            counts[p as usize] += 1;
        }
        assert_eq!(counts, [1000; 6]);
        // A partition without a leader is skipped.
        let mut rr = RoundRobin::default();
        let got: Vec<u32> = (0..6).map(|_| rr.next(&[0, 2, 3], 4)).collect();
        assert_eq!(got, vec![0, 2, 3, 0, 2, 3]);
    }

    #[test]
    fn partitioner_class_names() {
        use PartitionerClass::*;
        assert_eq!(PartitionerClass::from_java_class("").ok(), Some(BuiltIn));
        assert_eq!(
            PartitionerClass::from_java_class("org.apache.kafka.clients.producer.RoundRobinPartitioner").ok(),
            Some(RoundRobin)
        );
        assert_eq!(
            PartitionerClass::from_java_class("org.apache.kafka.clients.producer.internals.DefaultPartitioner").ok(),
            Some(BuiltIn)
        );
        assert_eq!(
            PartitionerClass::from_java_class("org.apache.kafka.clients.producer.UniformStickyPartitioner").ok(),
            Some(UniformSticky)
        );
        let e = PartitionerClass::from_java_class("com.example.MyPartitioner").unwrap_err();
        assert!(e.to_string().contains("partitioner.class"), "{e}");
        assert!(e.to_string().contains("com.example.MyPartitioner"), "{e}");
    }
}
