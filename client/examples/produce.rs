//! Produces records and waits until the broker acknowledged each of them.
//!
//! ```sh
//! scripts/kafka up
//! cargo run -p strom-client --example produce -- [TOPIC] [COUNT]
//! ```
//!
//! `KAFKA_BOOTSTRAP_SERVERS` names the brokers (default `127.0.0.1:9092`). The topic
//! (default `strom-example`, 3 partitions) is created when it does not exist.

use strom_client::ErrorCode;
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "strom-example".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    // The local broker does not create topics on first use (auto.create.topics.enable=false).
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await?;
    match admin.create_topics(&[NewTopic::new(&topic, 3)]).await {
        Err(e) if e.kafka_code() != Some(ErrorCode::TopicAlreadyExists) => return Err(e.into()),
        _ => {}
    }

    // Java property names work too: `config.set("linger.ms", "10")?`.
    let mut config = ProducerConfig::new(&bootstrap);
    config.set("compression.type", "lz4")?;
    let producer = Producer::new(config).await?;

    // `send` returns once the record is queued; its delivery future resolves when the broker
    // acknowledged it. Queue them all first, so they share batches, then wait.
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = ProducerRecord::new(&topic, format!("value {i}"))
            .key(format!("key {}", i % 4))
            .header("source", "strom-example");
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        let metadata = delivery.await?;
        println!("{}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
    }
    producer.close().await?;
    println!("delivered {count} records to {topic}");
    Ok(())
}
