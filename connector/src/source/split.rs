//! Splits: one Kafka partition with its starting and stopping offsets (Flink's
//! `KafkaPartitionSplit` and `KafkaPartitionSplitState`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A partition of a topic: strom-client's, one type across the crates.
pub use strom_client::TopicPartition;

/// Where a split starts, with Flink's markers decoded (see [`KafkaPartitionSplit::starting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingOffset {
    /// A concrete offset: the next record read is the one at this offset.
    Offset(i64),
    /// The log start offset, looked up when the split is read ([`KafkaPartitionSplit::EARLIEST_OFFSET`]).
    Earliest,
    /// The log end offset, looked up when the split is read ([`KafkaPartitionSplit::LATEST_OFFSET`]).
    Latest,
    /// The group's committed offset, looked up when the split is read
    /// ([`KafkaPartitionSplit::COMMITTED_OFFSET`]).
    Committed,
}

/// One partition to read, from `starting_offset` up to (excluding) `stopping_offset`.
///
/// Flink lets a split carry markers that the reader resolves when it is added
/// ([`Self::EARLIEST_OFFSET`], [`Self::LATEST_OFFSET`], [`Self::COMMITTED_OFFSET`]). Strom's
/// [`SplitEnumerator`](super::SplitEnumerator) resolves every initializer eagerly through the
/// admin client, so the splits it produces always hold concrete offsets (`>= 0`) and a reader
/// only ever seeks. The markers remain valid values (a split built by hand or read from a
/// Flink-style state may hold them); [`Self::starting`] decodes them and [`Self::is_resolved`]
/// tells whether a lookup is still needed. Stopping offsets are always concrete: `None` means
/// "never stop" (Flink's `NO_STOPPING_OFFSET`).
///
/// Serialized with serde as `{"topic", "partition", "starting_offset", "stopping_offset"}`
/// (`stopping_offset` null when unbounded).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KafkaPartitionSplit {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The next offset to read, or one of the markers.
    pub starting_offset: i64,
    /// The offset at which the split is finished (exclusive); `None`: read forever.
    pub stopping_offset: Option<i64>,
}

impl KafkaPartitionSplit {
    /// Marker: start from the log end offset (Flink's `LATEST_OFFSET`, -1).
    pub const LATEST_OFFSET: i64 = -1;
    /// Marker: start from the log start offset (Flink's `EARLIEST_OFFSET`, -2).
    pub const EARLIEST_OFFSET: i64 = -2;
    /// Marker: start from the group's committed offset (Flink's `COMMITTED_OFFSET`, -3).
    pub const COMMITTED_OFFSET: i64 = -3;

    /// A split of `topic`-`partition`.
    pub fn new(topic: impl Into<String>, partition: i32, starting_offset: i64, stopping_offset: Option<i64>) -> Self {
        KafkaPartitionSplit {
            topic: topic.into(),
            partition,
            starting_offset,
            stopping_offset,
        }
    }

    /// The split id, `topic-partition` (Flink's `KafkaPartitionSplit.toSplitId`).
    pub fn split_id(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// The partition this split reads.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }

    /// The starting offset with markers decoded; `None` for a negative value that is no marker.
    pub fn starting(&self) -> Option<StartingOffset> {
        match self.starting_offset {
            o if o >= 0 => Some(StartingOffset::Offset(o)),
            Self::EARLIEST_OFFSET => Some(StartingOffset::Earliest),
            Self::LATEST_OFFSET => Some(StartingOffset::Latest),
            Self::COMMITTED_OFFSET => Some(StartingOffset::Committed),
            _ => None,
        }
    }

    /// The starting offset is concrete (no lookup needed before reading).
    pub fn is_resolved(&self) -> bool {
        self.starting_offset >= 0
    }

    /// Nothing to read: a resolved start at or past the stopping offset. Flink finishes such
    /// splits as soon as they are added.
    pub fn is_empty(&self) -> bool {
        self.is_resolved() && self.stopping_offset.is_some_and(|stop| self.starting_offset >= stop)
    }
}

/// `[topic-partition, start=.., stop=..]`.
impl fmt::Display for KafkaPartitionSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}-{}, start={}", self.topic, self.partition, self.starting_offset)?;
        match self.stopping_offset {
            Some(s) => write!(f, ", stop={s}]"),
            None => write!(f, ", stop=none]"),
        }
    }
}

/// A split being read: the split plus the current offset (the next offset to read).
/// [`Self::to_split`] is the checkpoint snapshot: the split with `starting_offset` set to
/// the current offset, as Flink's `KafkaPartitionSplitState.toKafkaPartitionSplit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPartitionSplitState {
    split: KafkaPartitionSplit,
    current_offset: i64,
}

impl KafkaPartitionSplitState {
    /// State of a split nothing has been read from yet (current offset = its start).
    pub fn new(split: KafkaPartitionSplit) -> Self {
        let current_offset = split.starting_offset;
        KafkaPartitionSplitState { split, current_offset }
    }

    /// The split as it was assigned.
    pub fn split(&self) -> &KafkaPartitionSplit {
        &self.split
    }

    /// The split id, `topic-partition`.
    pub fn split_id(&self) -> String {
        self.split.split_id()
    }

    /// The next offset to read (a marker until the reader resolved it).
    pub fn current_offset(&self) -> i64 {
        self.current_offset
    }

    /// Records progress: `offset` is the next offset to read, i.e. the last emitted record's
    /// offset + 1, or the consumer position (which may jump past transaction markers).
    pub fn set_current_offset(&mut self, offset: i64) {
        self.current_offset = offset;
    }

    /// The stopping offset, `None` when unbounded.
    pub fn stopping_offset(&self) -> Option<i64> {
        self.split.stopping_offset
    }

    /// The split has reached its stopping offset. Compares the position, not the last record
    /// offset: under read_committed, markers and aborted records move the position past the
    /// last record (Flink's `KafkaPartitionSplitReader` does the same).
    pub fn is_finished(&self) -> bool {
        self.current_offset >= 0 && self.split.stopping_offset.is_some_and(|s| self.current_offset >= s)
    }

    /// The snapshot to checkpoint: the split starting at the current offset.
    pub fn to_split(&self) -> KafkaPartitionSplit {
        KafkaPartitionSplit {
            starting_offset: self.current_offset,
            ..self.split.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_id_markers_and_serde() {
        let s = KafkaPartitionSplit::new("orders", 3, 17, Some(42));
        assert_eq!(s.split_id(), "orders-3");
        assert_eq!(s.topic_partition(), TopicPartition::new("orders", 3));
        assert_eq!(s.topic_partition().to_string(), "orders-3");
        assert_eq!(s.starting(), Some(StartingOffset::Offset(17)));
        assert!(s.is_resolved() && !s.is_empty());
        assert_eq!(s.to_string(), "[orders-3, start=17, stop=42]");

        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"topic":"orders","partition":3,"starting_offset":17,"stopping_offset":42}"#
        );
        assert_eq!(serde_json::from_str::<KafkaPartitionSplit>(&json).unwrap(), s);
        let unbounded = KafkaPartitionSplit::new("t", 0, KafkaPartitionSplit::EARLIEST_OFFSET, None);
        let json = serde_json::to_string(&unbounded).unwrap();
        assert!(json.contains(r#""stopping_offset":null"#), "{json}");
        assert_eq!(serde_json::from_str::<KafkaPartitionSplit>(&json).unwrap(), unbounded);

        let marker = |o| KafkaPartitionSplit::new("t", 0, o, None).starting();
        assert_eq!(marker(-1), Some(StartingOffset::Latest));
        assert_eq!(marker(-2), Some(StartingOffset::Earliest));
        assert_eq!(marker(-3), Some(StartingOffset::Committed));
        assert_eq!(marker(-4), None);
        assert!(!KafkaPartitionSplit::new("t", 0, -2, Some(0)).is_empty());
        assert!(KafkaPartitionSplit::new("t", 0, 5, Some(5)).is_empty());
    }

    #[test]
    fn state_tracks_position_and_snapshots() {
        let mut st = KafkaPartitionSplitState::new(KafkaPartitionSplit::new("t", 1, 10, Some(12)));
        assert_eq!(st.current_offset(), 10);
        assert!(!st.is_finished());
        st.set_current_offset(11);
        assert_eq!(st.to_split(), KafkaPartitionSplit::new("t", 1, 11, Some(12)));
        assert_eq!(st.split().starting_offset, 10);
        // A transaction marker at 11 moves the position to 13: past the stop, finished.
        st.set_current_offset(13);
        assert!(st.is_finished());
        let st = KafkaPartitionSplitState::new(KafkaPartitionSplit::new("t", 1, -2, Some(0)));
        assert!(!st.is_finished(), "a marker is not a position");
        assert!(!KafkaPartitionSplitState::new(KafkaPartitionSplit::new("t", 0, 0, None)).is_finished());
    }
}
