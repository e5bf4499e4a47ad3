//! Partition discovery and split ownership (Flink's `KafkaSourceEnumerator` and
//! `KafkaSubscriber`s), without a coordinator.
//!
//! Flink runs one enumerator that pushes each split to the reader the owner formula picks.
//! Strom has no coordinator: every process is one subtask of `parallelism`, runs its own
//! enumerator over the same subscription, and keeps only the splits the formula gives to its
//! subtask index. Since the formula depends on nothing but the topic name, the partition and
//! the parallelism, the processes agree without talking to each other, and each partition is
//! read by exactly one of them.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Serialize};
use strom_client::ErrorCode;
use strom_client::{Admin, IsolationLevel};

use super::initializer::{OffsetsInitializer, PartitionOffsetsRetriever};
use super::split::{KafkaPartitionSplit, TopicPartition};
use crate::{ConnectorError, Result};

/// Java's `String.hashCode()`: `h = 31 * h + c` over the UTF-16 code units, wrapping `i32`.
/// Characters outside the BMP count as their two surrogates, as in Java.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The subtask that reads `topic`-`partition` among `parallelism` readers, Flink's
/// `KafkaSourceEnumerator.getSplitOwner`:
///
/// ```text
/// startIndex = ((topic.hashCode() * 31) & 0x7FFFFFFF) % numReaders
/// owner      = (startIndex + partition) % numReaders
/// ```
///
/// Partitions of one topic go round-robin from a start index the topic name picks.
/// `parallelism` 0 is treated as 1.
pub fn split_owner(topic: &str, partition: i32, parallelism: usize) -> usize {
    let n = i64::try_from(parallelism.max(1)).unwrap_or(i64::MAX);
    let start = i64::from(java_string_hash_code(topic).wrapping_mul(31) & 0x7FFF_FFFF) % n;
    // i64: Java's `startIndex + partition` cannot overflow for a real partition index either.
    let owner = (start + i64::from(partition)).rem_euclid(n);
    usize::try_from(owner).unwrap_or(0)
}

/// What the source reads (Flink's `KafkaSubscriber`): exactly one of a topic list, a topic
/// pattern, or a fixed partition set.
#[derive(Clone)]
pub enum Subscription {
    /// Every partition of these topics; each must exist when the source starts.
    Topics(Vec<String>),
    /// Every partition of every non-internal topic whose whole name matches (Java's
    /// `Pattern.matcher(topic).matches()`), including topics created later when discovery is on.
    Pattern(TopicPattern),
    /// Exactly these partitions; each must exist when the source starts.
    Partitions(BTreeSet<TopicPartition>),
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subscription::Topics(t) => f.debug_tuple("Topics").field(t).finish(),
            Subscription::Pattern(p) => f.debug_tuple("Pattern").field(&p.as_str()).finish(),
            Subscription::Partitions(p) => f.debug_tuple("Partitions").field(p).finish(),
        }
    }
}

/// A topic regex matched against whole topic names.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    source: String,
    anchored: Regex,
}

impl TopicPattern {
    /// Compiles `pattern` (regex crate syntax, which covers what topic patterns use of Java's);
    /// it must match a whole topic name, as Java's `Matcher.matches()`.
    pub fn new(pattern: &str) -> Result<Self> {
        let anchored = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| ConnectorError::Config(format!("topic pattern {pattern:?}: {e}")))?;
        Ok(TopicPattern {
            source: pattern.to_owned(),
            anchored,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `topic` matches as a whole.
    pub fn matches(&self, topic: &str) -> bool {
        self.anchored.is_match(topic)
    }
}

/// What an enumerator needs from the source's settings; see
/// [`KafkaSource::enumerator_config`](super::KafkaSource::enumerator_config).
#[derive(Debug, Clone)]
pub struct EnumeratorConfig {
    /// The partitions to read.
    pub subscription: Subscription,
    /// Where the partitions found at start begin (later ones begin at the earliest offset).
    pub starting_offsets: OffsetsInitializer,
    /// Where splits stop; `None`: never.
    pub stopping_offsets: Option<OffsetsInitializer>,
    /// The group whose committed offsets committed initializers read.
    pub group_id: Option<String>,
    /// Decides what "latest" means (high watermark or last stable offset).
    pub isolation_level: IsolationLevel,
    /// How often [`SplitEnumerator::discover`] should be called again; `None`: only once.
    pub partition_discovery_interval: Option<Duration>,
}

/// What an enumerator remembers across a restart (Flink's `KafkaSourceEnumState`): the
/// partitions it has handed out and whether the initial discovery happened. Restored from a
/// checkpoint, partitions found later that are not in it start from the earliest offset, and
/// those in it are not handed out again (the reader restores their split state instead).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumeratorState {
    /// Partitions this subtask already owns splits for.
    pub assigned_partitions: BTreeSet<TopicPartition>,
    /// The first discovery (with the starting initializer) is done.
    pub initial_discovery_finished: bool,
}

/// The outcome of one [`SplitEnumerator::discover`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Splits this subtask owns and has not been given before, sorted by topic and partition,
    /// with concrete starting offsets and (when the source has stopping offsets) stopping offsets.
    pub new_splits: Vec<KafkaPartitionSplit>,
    /// Owned partitions that disappeared since the last discovery (deleted topic, or a topic
    /// no longer matching). They are only reported, as in Flink ("TODO: Handle removed
    /// partitions"); what to do with their splits is the reader's business.
    pub removed_partitions: Vec<TopicPartition>,
}

/// Discovers the subscribed partitions and turns the ones this subtask owns into splits.
///
/// Call [`Self::discover`] once at start (initial splits, from the starting initializer), then
/// every [`Self::discovery_interval`] when there is one: partitions that appear later (added
/// to a topic, or a new topic matching the pattern) start from the earliest offset, as in
/// Flink (`newDiscoveryOffsetsInitializer`).
#[derive(Debug)]
pub struct SplitEnumerator {
    config: EnumeratorConfig,
    admin: Admin,
    retriever: PartitionOffsetsRetriever,
    subtask: usize,
    parallelism: usize,
    state: EnumeratorState,
    removed: BTreeSet<TopicPartition>,
}

impl SplitEnumerator {
    /// An enumerator for subtask `subtask` of `parallelism`, using `admin` for metadata and
    /// offsets. Fails when `subtask >= parallelism` or `parallelism` is 0.
    pub fn new(admin: Admin, config: EnumeratorConfig, subtask: usize, parallelism: usize) -> Result<Self> {
        if parallelism == 0 || subtask >= parallelism {
            return Err(ConnectorError::Config(format!(
                "subtask index {subtask} is not within parallelism {parallelism}"
            )));
        }
        config.starting_offsets.validate()?;
        if let Some(s) = &config.stopping_offsets {
            s.validate()?;
        }
        let retriever = PartitionOffsetsRetriever::new(admin.clone(), config.group_id.clone(), config.isolation_level);
        Ok(SplitEnumerator {
            config,
            admin,
            retriever,
            subtask,
            parallelism,
            state: EnumeratorState::default(),
            removed: BTreeSet::new(),
        })
    }

    /// Continues from a checkpointed state (see [`EnumeratorState`]).
    pub fn with_state(mut self, state: EnumeratorState) -> Self {
        self.state = state;
        self
    }

    /// [`Self::with_state`] in place.
    pub fn set_state(&mut self, state: EnumeratorState) {
        self.state = state;
    }

    /// The state to checkpoint.
    pub fn snapshot_state(&self) -> EnumeratorState {
        self.state.clone()
    }

    /// This enumerator's subtask index.
    pub fn subtask(&self) -> usize {
        self.subtask
    }

    /// The number of subtasks.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// Whether this subtask reads `tp`.
    pub fn owns(&self, tp: &TopicPartition) -> bool {
        split_owner(&tp.topic, tp.partition, self.parallelism) == self.subtask
    }

    /// How often to call [`Self::discover`] after the first time; `None`: never.
    pub fn discovery_interval(&self) -> Option<Duration> {
        self.config.partition_discovery_interval
    }

    /// No split will ever be added any more: the initial discovery is done and periodic
    /// discovery is off (Flink then signals `NoMoreSplits`). A reader whose splits are all
    /// finished can end.
    pub fn no_more_splits(&self) -> bool {
        self.state.initial_discovery_finished && self.config.partition_discovery_interval.is_none()
    }

    /// The partitions handed out so far.
    pub fn assigned_partitions(&self) -> &BTreeSet<TopicPartition> {
        &self.state.assigned_partitions
    }

    /// The offsets retriever this enumerator resolves initializers with.
    pub fn offsets_retriever(&self) -> &PartitionOffsetsRetriever {
        &self.retriever
    }

    /// Lists the subscribed partitions and returns the splits of the owned ones not handed out
    /// before, remembering them. The first call resolves starting offsets with the starting
    /// initializer; later calls with the earliest offsets.
    ///
    /// On the first discovery a listed topic or partition that does not exist is an error
    /// (as Flink's subscribers); later it is reported in [`Discovery::removed_partitions`].
    /// Cancellation-safe: the state only changes when the call returns `Ok`.
    pub async fn discover(&mut self) -> Result<Discovery> {
        let initial = !self.state.initial_discovery_finished;
        let fetched = self.subscribed_partitions(initial).await?;
        let owned: BTreeSet<TopicPartition> = fetched.into_iter().filter(|tp| self.owns(tp)).collect();
        let new: Vec<TopicPartition> = owned.difference(&self.state.assigned_partitions).cloned().collect();
        let removed: Vec<TopicPartition> = self
            .state
            .assigned_partitions
            .iter()
            .filter(|tp| !owned.contains(*tp) && !self.removed.contains(*tp))
            .cloned()
            .collect();

        let earliest = OffsetsInitializer::earliest();
        let starting = if initial {
            &self.config.starting_offsets
        } else {
            &earliest
        };
        let starts = starting.resolve(&new, &self.retriever).await?;
        let stops = match &self.config.stopping_offsets {
            Some(stopping) => Some(stopping.resolve(&new, &self.retriever).await?),
            None => None,
        };
        let mut new_splits = Vec::with_capacity(new.len());
        for tp in &new {
            let start = starts.get(tp).copied().ok_or_else(|| missing_offset("starting", tp))?;
            let stop = match &stops {
                Some(stops) => Some(stops.get(tp).copied().ok_or_else(|| missing_offset("stopping", tp))?),
                None => None,
            };
            new_splits.push(KafkaPartitionSplit::new(&*tp.topic, tp.partition, start, stop));
        }

        // Commit the outcome only now, so a failed or dropped call changes nothing.
        for tp in &removed {
            tracing::warn!(partition = %tp, "subscribed partition disappeared");
        }
        self.removed.extend(removed.iter().cloned());
        // A partition that comes back (recreated topic) is no longer "removed"; it keeps its split.
        self.removed.retain(|tp| !owned.contains(tp));
        self.state.assigned_partitions.extend(new.iter().cloned());
        self.state.initial_discovery_finished = true;
        if !new_splits.is_empty() {
            tracing::info!(
                subtask = self.subtask,
                parallelism = self.parallelism,
                splits = ?new_splits.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "discovered splits"
            );
        }
        Ok(Discovery {
            new_splits,
            removed_partitions: removed,
        })
    }

    /// Every subscribed partition (of any owner) that exists now.
    async fn subscribed_partitions(&self, initial: bool) -> Result<BTreeSet<TopicPartition>> {
        let client = self.admin.client();
        let mut out = BTreeSet::new();
        match &self.config.subscription {
            Subscription::Topics(topics) => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                let md = client.refresh_metadata(Some(&names)).await?;
                for name in &names {
                    match md.topic(name) {
                        Some(t) => out.extend(t.partitions.iter().map(|p| TopicPartition::new(*name, p.partition))),
                        None if initial => return Err(unknown(format!("subscribed topic {name}"))),
                        None => {}
                    }
                }
            }
            Subscription::Pattern(pattern) => {
                let md = client.refresh_metadata(None).await?;
                for t in md.topics.values() {
                    if !t.is_internal && pattern.matches(&t.name) {
                        out.extend(
                            t.partitions
                                .iter()
                                .map(|p| TopicPartition::new(t.name.clone(), p.partition)),
                        );
                    }
                }
            }
            Subscription::Partitions(wanted) => {
                let names: BTreeSet<&str> = wanted.iter().map(|tp| &*tp.topic).collect();
                let names: Vec<&str> = names.into_iter().collect();
                let md = client.refresh_metadata(Some(&names)).await?;
                for tp in wanted {
                    let exists = md
                        .topic(&tp.topic)
                        .is_some_and(|t| t.partitions.iter().any(|p| p.partition == tp.partition));
                    if exists {
                        out.insert(tp.clone());
                    } else if initial {
                        return Err(unknown(format!("subscribed partition {tp}")));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// UNKNOWN_TOPIC_OR_PARTITION naming what is missing, as the admin client reports it.
fn unknown(what: String) -> ConnectorError {
    ConnectorError::Client(strom_client::Error::kafka(ErrorCode::UnknownTopicOrPartition).with_context(what))
}

fn missing_offset(what: &str, tp: &TopicPartition) -> ConnectorError {
    ConnectorError::Config(format!("no {what} offset could be found for {tp}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (topic, Java `hashCode()`, owners of partitions 0..6 for parallelism 1, 2, 3, 4), printed
    /// by OpenJDK 17 running Flink's `getSplitOwner` body:
    ///
    /// ```java
    /// int startIndex = ((topic.hashCode() * 31) & 0x7FFFFFFF) % n;
    /// return (startIndex + partition) % n;
    /// ```
    ///
    /// Non-ASCII names were written as `\u` escapes in the Java source, so the test also pins
    /// UTF-16 hashing (the rocket is a surrogate pair). Kafka itself only allows
    /// `[a-zA-Z0-9._-]` in names; `String.hashCode` is what is under test there.
    const JAVA_VECTORS: &[(&str, i32, [[usize; 6]; 4])] = &[
        (
            "input-topic",
            -1393968788,
            [[0; 6], [0, 1, 0, 1, 0, 1], [1, 2, 0, 1, 2, 0], [0, 1, 2, 3, 0, 1]],
        ),
        (
            "topic-a",
            -1139260605,
            [[0; 6], [1, 0, 1, 0, 1, 0], [1, 2, 0, 1, 2, 0], [1, 2, 3, 0, 1, 2]],
        ),
        (
            "topic-b",
            -1139260604,
            [[0; 6], [0, 1, 0, 1, 0, 1], [2, 0, 1, 2, 0, 1], [0, 1, 2, 3, 0, 1]],
        ),
        (
            "orders",
            -1008770331,
            [[0; 6], [1, 0, 1, 0, 1, 0], [0, 1, 2, 0, 1, 2], [3, 0, 1, 2, 3, 0]],
        ),
        (
            "",
            0,
            [[0; 6], [0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 1]],
        ),
        (
            "a",
            97,
            [[0; 6], [1, 0, 1, 0, 1, 0], [1, 2, 0, 1, 2, 0], [3, 0, 1, 2, 3, 0]],
        ),
        (
            "Aa",
            2112,
            [[0; 6], [0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 1]],
        ),
        (
            "BB",
            2112,
            [[0; 6], [0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 1]],
        ),
        (
            "kafka.events_v2",
            -1258626406,
            [[0; 6], [0, 1, 0, 1, 0, 1], [1, 2, 0, 1, 2, 0], [2, 3, 0, 1, 2, 3]],
        ),
        (
            "\u{f1}and\u{fa}",
            225567348,
            [[0; 6], [0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 2], [0, 1, 2, 3, 0, 1]],
        ),
        (
            "\u{6e29}\u{5ea6}-topic",
            -1899680513,
            [[0; 6], [1, 0, 1, 0, 1, 0], [0, 1, 2, 0, 1, 2], [1, 2, 3, 0, 1, 2]],
        ),
        (
            "emoji-\u{1f680}",
            1164511434,
            [[0; 6], [0, 1, 0, 1, 0, 1], [1, 2, 0, 1, 2, 0], [2, 3, 0, 1, 2, 3]],
        ),
        (
            "a-rather-long-topic-name-that-overflows-the-hash-many-times-over-0123456789",
            1865222446,
            [[0; 6], [0, 1, 0, 1, 0, 1], [0, 1, 2, 0, 1, 2], [2, 3, 0, 1, 2, 3]],
        ),
    ];

    #[test]
    fn string_hash_code_and_owner_match_java() {
        for (topic, hash, owners) in JAVA_VECTORS {
            assert_eq!(java_string_hash_code(topic), *hash, "hashCode of {topic:?}");
            for (n, row) in owners.iter().enumerate() {
                for (p, want) in row.iter().enumerate() {
                    let p = i32::try_from(p).unwrap();
                    assert_eq!(
                        split_owner(topic, p, n + 1),
                        *want,
                        "{topic:?} partition {p} of {}",
                        n + 1
                    );
                }
            }
        }
    }

    #[test]
    fn every_partition_has_exactly_one_owner_and_load_is_even() {
        for n in 1..=7 {
            let mut load = vec![0usize; n];
            for p in 0..(3 * n as i32) {
                let o = split_owner("orders", p, n);
                assert!(o < n);
                load[o] += 1;
            }
            assert!(load.iter().all(|l| *l == 3), "{n}: {load:?}");
        }
        assert_eq!(split_owner("orders", 5, 0), 0, "parallelism 0 behaves as 1");
    }

    #[test]
    fn pattern_matches_whole_names() {
        let p = TopicPattern::new("topic-[ab]").unwrap();
        assert!(p.matches("topic-a") && p.matches("topic-b"));
        assert!(!p.matches("topic-ab") && !p.matches("my-topic-a"));
        let p = TopicPattern::new("a|b").unwrap();
        assert!(p.matches("a") && p.matches("b") && !p.matches("ab"));
        assert_eq!(p.as_str(), "a|b");
        let e = TopicPattern::new("topic-(").unwrap_err();
        assert!(e.to_string().contains("topic pattern \"topic-(\""), "{e}");
    }
}
