//! A program outside the Strom workspace, built by `scripts/package-check` against the
//! `.crate` files `cargo package` made (unpacked, never the workspace sources), as a user of
//! the published crates would build it:
//!
//! 1. the bounded-allocation fix reached the packaged protocol crate: ApiVersions responses
//!    whose array count is `i32::MAX` / `u32::MAX` are decode errors, not a process abort
//!    (upstream kafka-protocol 0.18.0 asks the allocator for tens of GiB here and aborts);
//! 2. records round-trip through a real broker: create a topic, produce with zstd, consume
//!    them back in order, delete the topic.
//!
//! Usage: package-check BOOTSTRAP (host:port of a running Kafka broker).

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use strom_protocol::message_traits::Decodable;
use strom_protocol::messages::ApiVersionsResponse;
use strom_protocol::Compression;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn hostile_array_counts() -> Res<()> {
    let cases: [(i16, &[u8]); 2] = [
        // v0: error_code 0, then an INT32 array count of i32::MAX and nothing after it.
        (0, &[0x00, 0x00, 0x7f, 0xff, 0xff, 0xff]),
        // v3 (flexible): error_code 0, then a compact array count varint of u32::MAX.
        (3, &[0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    ];
    for (version, wire) in cases {
        let mut buf = Bytes::copy_from_slice(wire);
        match ApiVersionsResponse::decode(&mut buf, version) {
            Ok(r) => return Err(format!("ApiVersions v{version} {wire:02x?} decoded to {r:?}").into()),
            Err(e) => println!("package-check: ApiVersions v{version} with a hostile array count: decode error ({e})"),
        }
    }
    Ok(())
}

async fn round_trip(bootstrap: &str) -> Res<()> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let topic = format!("package-check-{}-{stamp}", std::process::id());
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await?;
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await?;

    const N: usize = 200;
    let mut pc = ProducerConfig::new(bootstrap);
    pc.compression = Compression::Zstd;
    let producer = Producer::new(pc).await?;
    let mut deliveries = Vec::with_capacity(N);
    for i in 0..N {
        let record = ProducerRecord::new(&topic, Bytes::from(format!("value-{i}"))).key(Bytes::from(format!("k{i}")));
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await?;
    for d in deliveries {
        d.wait().await?;
    }
    producer.close().await?;

    let mut cc = ConsumerConfig::new(bootstrap);
    cc.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(cc).await?;
    consumer.assign([TopicPartition::new(&topic, 0)])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::with_capacity(N);
    while got.len() < N {
        if Instant::now() > deadline {
            return Err(format!("only {} of {N} records came back within 60 s", got.len()).into());
        }
        got.extend(consumer.poll(Duration::from_millis(500)).await?);
    }
    for (i, r) in got.iter().enumerate() {
        let want_value = format!("value-{i}");
        let want_key = format!("k{i}");
        if r.offset != i as i64
            || r.value.as_deref() != Some(want_value.as_bytes())
            || r.key.as_deref() != Some(want_key.as_bytes())
        {
            return Err(format!("record {i} differs: {r:?}").into());
        }
    }
    if got.len() != N {
        return Err(format!("{} records came back, {N} were produced", got.len()).into());
    }
    drop(consumer);
    admin.delete_topics(&[&topic]).await?;
    println!("package-check: {N} records produced (zstd) and consumed back in order through {bootstrap}");
    Ok(())
}

#[tokio::main]
async fn main() -> Res<()> {
    let bootstrap = std::env::args().nth(1).ok_or("usage: package-check BOOTSTRAP")?;
    hostile_array_counts()?;
    round_trip(&bootstrap).await
}
