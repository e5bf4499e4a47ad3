//! Testing a consume-process-produce service with no JVM and no broker: the service reads
//! orders, writes one shipment per order and commits what it shipped. The test runs it
//! against a three-broker fake cluster while the cluster misbehaves (produce errors on one
//! partition, a slow fetch, then the broker leading partitions of both topics stopped), and
//! checks that every order was shipped.
//!
//! `cargo run -p strom-fake --example test_an_app` (in a real project: a `#[tokio::test]`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use strom_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use strom_fake::{ApiKey, ErrorCode, FakeCluster, Fault};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The service under test: ships `n` orders, then stops.
async fn ship_orders(bootstrap: String, n: usize) -> Result<(), AnyError> {
    let mut cc = ConsumerConfig::new(&bootstrap);
    cc.set("group.id", "shipper")?;
    cc.set("auto.offset.reset", "earliest")?;
    cc.set("enable.auto.commit", "false")?;
    cc.set("max.poll.records", "25")?;
    let mut orders = Consumer::new(cc).await?;
    orders.subscribe(&["orders"])?;
    let shipments = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut shipped = 0;
    while shipped < n {
        let batch = orders.poll(Duration::from_millis(200)).await?;
        let mut deliveries = Vec::new();
        for order in &batch {
            let id = String::from_utf8_lossy(order.value.as_deref().unwrap_or_default()).into_owned();
            let shipment = ProducerRecord::new("shipments", format!("shipped {id}")).key(id);
            deliveries.push(shipments.send(shipment).await?);
        }
        for d in deliveries {
            d.await?;
        }
        // At least once: commit only what was shipped.
        orders.commit_sync().await?;
        shipped += batch.len();
    }
    shipments.close().await?;
    orders.close().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let started = Instant::now();
    let mut cluster = FakeCluster::builder()
        .brokers(3)
        .topic("orders", 3, 3)
        .topic("shipments", 3, 3)
        .start()
        .await?;
    let bootstrap = cluster.bootstrap_servers();
    let input = Producer::new(ProducerConfig::new(&bootstrap)).await?;
    let mut written = Vec::new();
    for i in 0..300 {
        written.push(input.send(ProducerRecord::new("orders", format!("order-{i}"))).await?);
    }
    for w in written {
        w.await?;
    }
    input.close().await?;

    // The cluster misbehaves: the service must not lose an order.
    cluster.inject(
        Fault::error(ApiKey::Produce, ErrorCode::NotLeaderOrFollower)
            .on_partition("shipments", 0)
            .times(3),
    );
    cluster.inject(Fault::delay(ApiKey::Fetch, Duration::from_millis(300)));
    let service = tokio::spawn(ship_orders(bootstrap.clone(), 300));
    let shipped = |c: &FakeCluster| (0..3).filter_map(|p| c.end_offset("shipments", p)).sum::<i64>();
    while shipped(&cluster) < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Broker 1 leads a partition of each topic; its partitions move to the other replicas.
    cluster.stop_broker(1);
    let at_stop = shipped(&cluster);
    service.await??;
    if at_stop >= 300 {
        return Err("the service finished before the broker stopped: the test proves nothing".into());
    }

    // Every order shipped (at least once: a retry after the failure may ship one twice).
    let mut cc = ConsumerConfig::new(&bootstrap);
    cc.set("group.id", "auditor")?;
    cc.set("auto.offset.reset", "earliest")?;
    let mut audit = Consumer::new(cc).await?;
    audit.subscribe(&["shipments"])?;
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 300 && Instant::now() < deadline {
        for r in audit.poll(Duration::from_millis(200)).await? {
            seen.insert(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    audit.close().await?;
    let missing: Vec<String> = (0..300)
        .map(|i| format!("shipped order-{i}"))
        .filter(|s| !seen.contains(s))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} orders never shipped, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        )
        .into());
    }
    let produce_errors = cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::Produce && r.partitions.contains(&("shipments".to_owned(), 0)))
        .count();
    println!(
        "shipped all 300 orders through 3 refused produces ({produce_errors} produce requests to shipments-0), a slow fetch and a broker stopped after {at_stop} shipments, in {:?}",
        started.elapsed()
    );
    Ok(())
}
