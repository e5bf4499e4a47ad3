//! Consumes a topic as a member of a consumer group, committing what it processed.
//!
//! ```sh
//! cargo run -p strom-client --example produce -- strom-example 10
//! cargo run -p strom-client --example consume_group -- [TOPIC] [GROUP] [COUNT]
//! ```
//!
//! `KAFKA_BOOTSTRAP_SERVERS` names the brokers (default `127.0.0.1:9092`). Reads `COUNT`
//! records (default 10) of `TOPIC` (default `strom-example`) in group `GROUP` (default
//! `strom-example-group`), starting where the group left off (from the beginning the
//! first time), and fails when they do not arrive within 60 s. Run it twice: the second
//! run starts after the records the first one committed.

use std::time::Duration;

use std::collections::BTreeMap;

use futures_util::StreamExt;
use strom_client::{Consumer, ConsumerConfig, OffsetAndMetadata, OffsetReset, TopicPartition};
use tokio::time::Instant;

/// Records between two commits.
const COMMIT_EVERY: usize = 100;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "strom-example".into());
    let group = args.next().unwrap_or_else(|| "strom-example-group".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let mut config = ConsumerConfig::new(&bootstrap);
    config.group_id = Some(group.clone());
    config.auto_offset_reset = OffsetReset::Earliest; // a new group starts at the beginning
    config.enable_auto_commit = false; // we commit ourselves, after processing
    let mut consumer = Consumer::new(config).await?;
    consumer.subscribe(&[&topic])?;

    // The stream borrows the consumer; a handle taken first commits (and could seek, pause
    // or resume) while the stream runs. Dropping a stream loses nothing either: records it
    // did not yield stay in the consumer for the next `stream()` or `poll`.
    let handle = consumer.handle()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut processed: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    let mut received = 0;
    {
        let mut records = std::pin::pin!(consumer.stream().take(count));
        while let Some(record) = tokio::time::timeout_at(deadline, records.next())
            .await
            .map_err(|_| format!("only {received} of {count} records arrived within 60 s"))?
        {
            let record = record?;
            let value = record.value.as_deref().map(String::from_utf8_lossy);
            println!("{}-{}@{}: {value:?}", record.topic, record.partition, record.offset);
            // Processed: the partition continues after it.
            processed.insert(record.topic_partition(), OffsetAndMetadata::new(record.offset + 1));
            received += 1;
            if received % COMMIT_EVERY == 0 || received == count {
                handle.commit(&processed).await?;
            }
        }
    }
    for (partition, offset) in consumer.last_committed() {
        println!("committed {partition}: next offset {offset}");
    }
    // Leaves the group at once (the others take over its partitions without waiting for
    // session.timeout.ms).
    consumer.close().await?;
    println!("consumed {received} records of {topic} in group {group}");
    Ok(())
}
