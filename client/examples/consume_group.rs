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

use futures_util::{StreamExt, TryStreamExt};
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
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

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 0;
    while received < count {
        // The stream borrows the consumer, so take a chunk of records, drop the stream, and
        // commit. Dropping the stream loses nothing: records it did not yield stay in the
        // consumer, and `commit_sync` commits exactly what was yielded. (To commit per
        // record with the stream alive, take `consumer.committer()?` before streaming.)
        let chunk: Vec<ConsumerRecord> = consumer
            .stream()
            .take(COMMIT_EVERY.min(count - received))
            .take_until(tokio::time::sleep_until(deadline))
            .try_collect()
            .await?;
        if chunk.is_empty() {
            return Err(format!("only {received} of {count} records arrived within 60 s").into());
        }
        for record in &chunk {
            let value = record.value.as_deref().map(String::from_utf8_lossy);
            println!("{}-{}@{}: {value:?}", record.topic, record.partition, record.offset);
        }
        received += chunk.len();
        consumer.commit_sync().await?;
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
