//! The counters the client keeps today: per broker (requests, bytes, errors, connects, for
//! every role) and per consumer (records, fetches, commits, rebalances). The producer has
//! no counters of its own yet; its client's per-broker counters cover its requests.
//!
//! ```sh
//! cargo run -p strom-client --example metrics -- [TOPIC]
//! ```
//!
//! `KAFKA_BOOTSTRAP_SERVERS` names the brokers (default `127.0.0.1:9092`). Writes 100
//! records to `TOPIC` (default `strom-metrics-example`, created when missing), reads them
//! back (failing after 30 s without them) and prints the counters.

use std::time::Duration;

use strom_client::ErrorCode;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::time::Instant;

const RECORDS: usize = 100;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "strom-metrics-example".into());

    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await?;
    match admin.create_topics(&[NewTopic::new(&topic, 1)]).await {
        Err(e) if e.kafka_code() != Some(ErrorCode::TopicAlreadyExists) => return Err(e.into()),
        _ => {}
    }
    let producer = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut deliveries = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        deliveries.push(
            producer
                .send(ProducerRecord::new(&topic, format!("record {i}")))
                .await?,
        );
    }
    let mut first = None;
    for delivery in deliveries {
        let offset = delivery.await?.offset;
        first = first.or(Some(offset));
    }
    for broker in producer.client().metrics() {
        println!("producer, broker {}: {:?}", broker.node_id, broker.totals);
    }

    // Read the records just written, without a group: partition 0 from the first one.
    let mut consumer = Consumer::new(ConsumerConfig::new(&bootstrap)).await?;
    let partition = TopicPartition::new(&topic, 0);
    consumer.assign([partition.clone()])?;
    consumer.seek(&partition, first.unwrap_or(0))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut received = 0;
    while received < RECORDS {
        if Instant::now() >= deadline {
            return Err(format!("only {received} of {RECORDS} records arrived within 30 s").into());
        }
        received += consumer.poll(Duration::from_millis(500)).await?.len();
    }
    let m = consumer.metrics();
    println!(
        "consumer: {} records, {} fetches, {} bytes fetched, {} buffered bytes, lag {:?}",
        m.records_consumed,
        m.fetches,
        m.bytes_fetched,
        m.buffered_bytes,
        consumer.current_lag(&partition)
    );
    for broker in consumer.client().metrics() {
        let t = broker.totals;
        println!(
            "consumer, broker {}: connected {}, {} connects, {} requests, {} responses, {} bytes out, {} bytes in, {} errors",
            broker.node_id, broker.connected, broker.connects, t.requests, t.responses, t.bytes_out, t.bytes_in, t.errors
        );
    }
    producer.close().await?;
    Ok(())
}
