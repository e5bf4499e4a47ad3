//! An in-memory cluster (`FakeClusterBuilder::in_memory`) reached through its transport, no
//! socket, under tokio's paused clock: the client and the fake run in virtual time, so
//! delays, outages and timeouts of tens of seconds take milliseconds of wall-clock time.
//! Each test checks both clocks: virtual time moved as far as the scenario needs, and wall
//! time stayed short (it would be the scenario's length if either side slept on the
//! system clock).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strom_client::{ClientConfig, Consumer, ConsumerConfig, ErrorKind, Producer, ProducerConfig, ProducerRecord};
use strom_fake::{ApiKey, FakeCluster, Fault};
use tokio::time::Instant;

/// Wall-clock time a scenario may take: far below the virtual time it spans.
const WALL_LIMIT: Duration = Duration::from_secs(10);

fn client(cluster: &FakeCluster) -> ClientConfig {
    let transport = Arc::new(cluster.transport().expect("an in-memory cluster has a transport"));
    ClientConfig::new(cluster.bootstrap_servers()).with_transport(transport)
}

async fn consume(cluster: &FakeCluster, topic: &str, n: usize) -> BTreeMap<i32, Vec<String>> {
    let mut cc = ConsumerConfig::from_client(client(cluster));
    cc.set("group.id", "g").unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut got, mut count) = (BTreeMap::<i32, Vec<String>>::new(), 0);
    while count < n {
        assert!(Instant::now() < deadline, "consumed {count} of {n}");
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            got.entry(r.partition).or_default().push(v);
            count += 1;
        }
    }
    consumer.commit_sync().await.unwrap();
    consumer.close().await.unwrap();
    got
}

/// Three in-memory brokers; a Produce answered 20 s late; 300 keyed records produced,
/// then consumed in a classic group, each partition in order.
#[tokio::test(start_paused = true)]
async fn a_client_produces_and_consumes_in_virtual_time() {
    let (wall, virt) = (std::time::Instant::now(), Instant::now());
    let cluster = FakeCluster::builder()
        .in_memory()
        .brokers(3)
        .topic("t", 3, 3)
        .start()
        .await
        .unwrap();
    assert_eq!(
        cluster.bootstrap_servers(),
        "broker-1.strom-fake:9092,broker-2.strom-fake:9092,broker-3.strom-fake:9092"
    );
    cluster.inject(Fault::delay(ApiKey::Produce, Duration::from_secs(20)));

    let mut pc = ProducerConfig::from_client(client(&cluster));
    pc.set("linger.ms", "5").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..300 {
        let record = ProducerRecord::new("t", format!("{i}")).key(format!("k{}", i % 7));
        pending.push(producer.send(record).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await.unwrap();
    assert!(
        virt.elapsed() >= Duration::from_secs(20),
        "the delayed Produce took {:?}",
        virt.elapsed()
    );

    let got = consume(&cluster, "t", 300).await;
    let total: usize = got.values().map(Vec::len).sum();
    assert_eq!(total, 300, "{got:?}");
    for values in got.values() {
        let numbers: Vec<u32> = values.iter().map(|v| v.parse().unwrap()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "out of order: {numbers:?}");
    }
    let wall = wall.elapsed();
    assert!(wall < WALL_LIMIT, "took {wall:?} of wall-clock time");
}

/// A stopped broker refuses connections as a closed port does; the client bootstraps from
/// the next one, and a record sent while its partition's only broker is down for two
/// (virtual) minutes is delivered once it is back, within `delivery.timeout.ms`.
#[tokio::test(start_paused = true)]
async fn an_outage_is_waited_out_in_virtual_time() {
    let (wall, virt) = (std::time::Instant::now(), Instant::now());
    let mut cluster = FakeCluster::builder()
        .in_memory()
        .brokers(2)
        .topic("one", 1, 1)
        .start()
        .await
        .unwrap();
    let transport = cluster.transport().unwrap();
    let e = transport.connect("127.0.0.1:9092").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");

    // Broker 1 leads "one" (the only replica): stopped, it refuses, and the client learns the
    // cluster from broker 2.
    cluster.stop_broker(1);
    let e = transport.connect("broker-1.strom-fake:9092").await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let mut pc = ProducerConfig::from_client(client(&cluster));
    pc.set("delivery.timeout.ms", "300000").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let delivery = producer.send(ProducerRecord::new("one", "late")).await.unwrap();

    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(cluster.end_offset("one", 0), Some(0), "nothing written while down");
    cluster.start_broker(1).await.unwrap();
    let md = tokio::time::timeout(Duration::from_secs(60), delivery)
        .await
        .expect("delivered after the broker came back")
        .unwrap();
    assert_eq!((md.partition, md.offset), (0, 0));
    producer.close().await.unwrap();
    assert!(virt.elapsed() >= Duration::from_secs(120));
    let wall = wall.elapsed();
    assert!(wall < WALL_LIMIT, "took {wall:?} of wall-clock time");
}

/// The in-memory stream carries the protocol in the clear: asking for TLS or SASL with a
/// custom transport is a configuration error naming the setting, not a silent downgrade.
/// Other connection settings that only mean something for TCP are not applied to it.
#[tokio::test(start_paused = true)]
async fn a_custom_transport_refuses_security_it_cannot_carry() {
    let cluster = FakeCluster::builder()
        .in_memory()
        .topic("t", 1, 1)
        .start()
        .await
        .unwrap();
    let mut pc = ProducerConfig::from_client(client(&cluster));
    pc.set("security.protocol", "SASL_PLAINTEXT").unwrap();
    let e = Producer::new(pc).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert!(e.to_string().contains("security.protocol"), "{e}");
    assert!(e.to_string().contains("custom transport"), "{e}");

    // The transport's addresses are its own names: client.dns.lookup's canonical-name
    // resolution of the bootstrap list is skipped, not attempted against DNS.
    let mut pc = ProducerConfig::from_client(client(&cluster));
    pc.set("client.dns.lookup", "resolve_canonical_bootstrap_servers_only")
        .unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let md = producer
        .send(ProducerRecord::new("t", "x"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(md.offset, 0);
    producer.close().await.unwrap();
}
