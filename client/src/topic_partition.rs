//! [`TopicPartition`]: one partition of one topic, the key of every per-partition map in
//! the producer, the consumer, Admin and the connector (one type across the crates, so a
//! split, a commit and an assignment name a partition the same way).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One partition of one topic (Java's `TopicPartition`). Orders by topic, then partition.
///
/// Serializes as `{"topic": ..., "partition": ...}` (the connector's checkpoints store it
/// so).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic name.
    pub topic: Arc<str>,
    /// The partition number, from 0.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl AsRef<str>, partition: i32) -> Self {
        TopicPartition {
            topic: Arc::from(topic.as_ref()),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    /// `topic-partition`, as Java's `TopicPartition.toString()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// The serialized shape: the field names are the format.
#[derive(Serialize, Deserialize)]
#[serde(rename = "TopicPartition")]
struct Repr<T> {
    topic: T,
    partition: i32,
}

impl Serialize for TopicPartition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Repr {
            topic: &*self.topic,
            partition: self.partition,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for TopicPartition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let r = Repr::<String>::deserialize(deserializer)?;
        Ok(TopicPartition {
            topic: Arc::from(r.topic),
            partition: r.partition,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_topic_and_partition() {
        let tp = TopicPartition::new("orders", 3);
        let json = serde_json::to_string(&tp).unwrap_or_default();
        assert_eq!(json, r#"{"topic":"orders","partition":3}"#);
        let back: TopicPartition = serde_json::from_str(&json).unwrap_or_else(|_| TopicPartition::new("", -1));
        assert_eq!(back, tp);
        assert!(serde_json::from_str::<TopicPartition>(r#"{"topic":"orders"}"#).is_err());
    }
}
