//! The consumer: manual assignment or group subscription, pipelined fetching with fetch
//! sessions, positions, commits.
//!
//! How it runs (Java's classic consumer, on tokio):
//! - [`Consumer::poll`] returns records already buffered, and keeps one Fetch in flight per
//!   broker that has no partition with buffered data (Java's rule). Fetches run
//!   in spawned tasks, so the next batch arrives while the application works. Memory stays
//!   flat when the application is slow: a partition with unread data is not fetched again,
//!   and no fetch is sent while more than `fetch.max.bytes` is buffered.
//! - Group membership runs in a background task (the private `membership` module, a sans-IO
//!   core and its driver, for both protocols): heartbeats continue while the
//!   application processes; a rebalance is handed to the application's next `poll`, where
//!   the [`RebalanceListener`] runs and offsets can be committed before partitions go.
//! - Positions advance as records are handed to the application: `position(tp)` is the
//!   offset of the next record `poll` (or [`Consumer::stream`]) will return; commits store
//!   positions. Records taken from the fetch buffer but not yet handed out wait in the
//!   consumer (`undelivered`), so a dropped `poll` future or a dropped stream loses none:
//!   the next `poll`/`stream` returns them first.

pub mod assignor;
mod commit;
pub(crate) mod fetcher;
pub(crate) mod group;
mod handle;
mod kafka_consumer;
mod member;
mod membership;
mod offsets;
mod poll;
mod record;
mod state;

pub use crate::topic_partition::TopicPartition;
pub use group::{RebalanceContext, RebalanceListener};
pub use handle::{CommitFuture, ConsumerHandle};
pub use kafka_consumer::Consumer;
pub use record::{ConsumerGroupMetadata, ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp};
pub use state::ConsumerMetrics;
