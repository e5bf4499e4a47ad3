//! Exactly-once consume-transform-produce: reads an input topic in a consumer group,
//! writes each value uppercased to an output topic, and commits the input offsets in the
//! same transaction as the output records (KIP-98, KIP-447). A crash anywhere leaves
//! either both or neither: read_committed readers of the output never see a record twice.
//!
//! ```sh
//! cargo run -p strom-client --example transactions -- [INPUT] [OUTPUT] [COUNT]
//! ```
//!
//! `KAFKA_BOOTSTRAP_SERVERS` names the brokers (default `127.0.0.1:9092`). The example
//! first writes `COUNT` records (default 10) to `INPUT` (default `strom-txn-in`), creating
//! both topics when missing, then copies them to `OUTPUT` (default `strom-txn-out`) in
//! group `<INPUT>-group`, one transaction per poll, and fails after 60 s without them.

use std::time::Duration;

use strom_client::ErrorCode;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, IsolationLevel, NewTopic, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TransactionalProducer,
};
use tokio::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut args = std::env::args().skip(1);
    let input = args.next().unwrap_or_else(|| "strom-txn-in".into());
    let output = args.next().unwrap_or_else(|| "strom-txn-out".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;
    let group = format!("{input}-group");

    // Setup: both topics, and `count` input records.
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await?;
    for topic in [&input, &output] {
        match admin.create_topics(&[NewTopic::new(topic, 3)]).await {
            Err(e) if e.kafka_code() != Some(ErrorCode::TopicAlreadyExists) => return Err(e.into()),
            _ => {}
        }
    }
    let seeder = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        deliveries.push(seeder.send(ProducerRecord::new(&input, format!("record {i}"))).await?);
    }
    for delivery in deliveries {
        delivery.await?;
    }

    // The consumer: offsets are committed by the producer's transactions, never by itself.
    let mut config = ConsumerConfig::new(&bootstrap);
    config.group_id = Some(group.clone());
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    config.isolation_level = IsolationLevel::ReadCommitted; // skip aborted input
    let mut consumer = Consumer::new(config).await?;
    consumer.subscribe(&[&input])?;

    // The producer: a transactional.id that stays the same across restarts, so a restarted
    // copy fences this one and aborts what it left open.
    let mut config = ProducerConfig::new(&bootstrap);
    config.set("transactional.id", &format!("{group}-{input}"))?;
    let producer = TransactionalProducer::new(config).await?;
    producer.init_transactions().await?;

    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut copied, mut transactions) = (0, 0);
    while copied < count {
        if Instant::now() >= deadline {
            return Err(format!("only {copied} of {count} records arrived within 60 s").into());
        }
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            continue;
        }
        producer.begin_transaction().await?;
        let result = async {
            for record in &records {
                let value = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default()).to_uppercase();
                let mut out = ProducerRecord::new(&output, value);
                out.key = record.key.clone();
                // The delivery outcome is checked by commit_transaction.
                drop(producer.send(out).await?);
            }
            // The input offsets commit with the output records, fenced by the group
            // generation (KIP-447): a member that lost its partitions cannot commit them.
            let generation = consumer.group_metadata().ok_or("the consumer has no group")?;
            producer
                .send_offsets_to_transaction(&consumer.consumed_offsets(), &generation)
                .await?;
            producer.commit_transaction().await?;
            Ok::<_, Box<dyn std::error::Error>>(())
        }
        .await;
        if let Err(e) = result {
            // Nothing of this transaction becomes visible; a real application would rewind
            // the consumer to its committed offsets (or restart) and try again.
            producer.abort_transaction().await?;
            return Err(e);
        }
        copied += records.len();
        transactions += 1;
    }
    consumer.close().await?;
    println!("copied {copied} records from {input} to {output} in {transactions} transactions");
    Ok(())
}
