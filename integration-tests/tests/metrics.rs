//! The Java-named metrics against the real broker: after producing and consuming N records
//! the snapshot and the Prometheus exposition say so, and the exposition parses with
//! prometheus_client's own parser (integration-tests/python/parse_prometheus.py).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, DeletedRecords, ErrorKind, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use strom_integration_tests::{broker, parse_prometheus, unique_topic, wait_topic_ready, PromSample};

const N: usize = 2_000;

fn sample(samples: &[PromSample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).and_then(|x| x.as_str()) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
        .value
        .unwrap_or(f64::NAN)
}

/// What a member of a group that got its assignment and polled since shows in
/// consumer-coordinator-metrics and consumer-metrics.
async fn check_group_metrics(consumer: &mut Consumer, protocol: &str) {
    let g = "consumer-coordinator-metrics";
    // Heartbeats run every heartbeat.interval.ms (200 ms here) beside the polls.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while consumer.java_metrics().get(g, "heartbeat-total", &[]).unwrap() < 2.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{protocol}: no heartbeats counted"
        );
        let _ = consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    let m = consumer.java_metrics();
    let get = |n: &str| m.get(g, n, &[]).unwrap();
    assert!(get("rebalance-total") >= 1.0, "{protocol}");
    assert!(
        get("rebalance-latency-avg") > 0.0,
        "{protocol}: {}",
        get("rebalance-latency-avg")
    );
    assert!(
        get("rebalance-latency-max") >= get("rebalance-latency-avg"),
        "{protocol}"
    );
    assert!(
        get("rebalance-latency-total") >= get("rebalance-latency-max"),
        "{protocol}"
    );
    assert!(get("rebalance-rate-per-hour") > 0.0, "{protocol}");
    assert_eq!(get("failed-rebalance-total"), 0.0, "{protocol}");
    let ago = get("last-rebalance-seconds-ago");
    assert!(
        (0.0..60.0).contains(&ago),
        "{protocol}: last-rebalance-seconds-ago {ago}"
    );
    assert!(get("heartbeat-rate") > 0.0, "{protocol}");
    let hb = get("heartbeat-response-time-max");
    assert!(
        hb > 0.0 && hb < 30_000.0,
        "{protocol}: heartbeat-response-time-max {hb}"
    );
    let ago = get("last-heartbeat-seconds-ago");
    assert!(
        (0.0..5.0).contains(&ago),
        "{protocol}: last-heartbeat-seconds-ago {ago}"
    );
    let ago = m.get("consumer-metrics", "last-poll-seconds-ago", &[]).unwrap();
    assert!((0.0..5.0).contains(&ago), "{protocol}: last-poll-seconds-ago {ago}");
    let samples = parse_prometheus(&consumer.client().metric_registry().prometheus());
    let id = consumer.client().config().client_id.clone();
    let labels = [("client_id", id.as_str())];
    assert!(sample(&samples, "kafka_consumer_heartbeat_total", &labels) >= 2.0);
    assert!((0.0..5.0).contains(&sample(&samples, "kafka_consumer_last_heartbeat_seconds_ago", &labels)));
    assert!(sample(&samples, "kafka_consumer_rebalance_latency_seconds_count", &labels) >= 1.0);
}

#[tokio::test]
async fn a_kip848_member_counts_its_rebalances_and_heartbeats() {
    let admin = Admin::new(
        strom_client::Client::connect(ClientConfig::new(&broker().bootstrap))
            .await
            .unwrap(),
    );
    let topic = unique_topic("metrics-848");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.set("client.id", "metrics-848").unwrap();
    cc.set("group.id", &unique_topic("metrics-848-group")).unwrap();
    cc.set("group.protocol", "consumer").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while consumer.assignment().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no assignment");
        let _ = consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    check_group_metrics(&mut consumer, "consumer").await;
    consumer.close().await.unwrap();
}

/// A member whose assignors the group does not share is refused
/// (INCONSISTENT_GROUP_PROTOCOL): a failed rebalance, and no successful one.
#[tokio::test]
async fn a_refused_join_counts_as_a_failed_rebalance() {
    let admin = Admin::new(
        strom_client::Client::connect(ClientConfig::new(&broker().bootstrap))
            .await
            .unwrap(),
    );
    let topic = unique_topic("metrics-refused");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let group = unique_topic("metrics-refused-group");
    let config = |assignor: &str| {
        let mut cc = ConsumerConfig::new(&broker().bootstrap);
        cc.set("group.id", &group).unwrap();
        cc.set("partition.assignment.strategy", assignor).unwrap();
        cc
    };
    let mut first = Consumer::new(config("range")).await.unwrap();
    first.subscribe(&[topic.as_str()]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while first.assignment().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first member got no assignment"
        );
        let _ = first.poll(Duration::from_millis(200)).await.unwrap();
    }
    let mut second = Consumer::new(config("roundrobin")).await.unwrap();
    second.subscribe(&[topic.as_str()]).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let refusal = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second member was not refused"
        );
        match second.poll(Duration::from_millis(200)).await {
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(
        refusal.to_string().contains("INCONSISTENT_GROUP_PROTOCOL")
            || refusal.to_string().contains("InconsistentGroupProtocol"),
        "{refusal}"
    );
    let m = second.java_metrics();
    let g = "consumer-coordinator-metrics";
    assert!(m.get(g, "failed-rebalance-total", &[]).unwrap() >= 1.0);
    assert!(m.get(g, "failed-rebalance-rate-per-hour", &[]).unwrap() > 0.0);
    assert_eq!(m.get(g, "rebalance-total", &[]).unwrap(), 0.0);
    assert_eq!(m.get(g, "last-rebalance-seconds-ago", &[]).unwrap(), -1.0);
    let _ = second.close().await;
    first.close().await.unwrap();
}

/// records-lead (position minus log start offset) per partition and its min, moved by
/// Admin::delete_records; preferred-read-replica is -1 while the leader serves the fetches.
#[tokio::test]
async fn the_lead_follows_deleted_records_and_the_replica_gauge_says_leader() {
    let admin = Admin::new(
        strom_client::Client::connect(ClientConfig::new(&broker().bootstrap))
            .await
            .unwrap(),
    );
    let topic = unique_topic("metrics-lead");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("linger.ms", "0").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..300 {
        let record = ProducerRecord::new(&topic, format!("v{i}")).partition(i % 2);
        deliveries.push(producer.send(record).await.unwrap());
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    let tps = [TopicPartition::new(&topic, 0), TopicPartition::new(&topic, 1)];
    consumer.assign(tps.iter().cloned()).unwrap();
    let lead = |c: &Consumer, p: i32| {
        c.java_metrics()
            .get(
                "consumer-fetch-manager-metrics",
                "records-lead",
                &[("topic", &topic), ("partition", &p.to_string())],
            )
            .unwrap()
    };
    let min = |c: &Consumer| {
        c.java_metrics()
            .get("consumer-fetch-manager-metrics", "records-lead-min", &[])
            .unwrap()
    };
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got < 300 || lead(&consumer, 0) != 150.0 || lead(&consumer, 1) != 150.0 {
        assert!(tokio::time::Instant::now() < deadline, "consumed {got}");
        got += consumer.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    assert_eq!(min(&consumer), 150.0);

    // Retention (here DeleteRecords) takes partition 1 up to 10 records short of the position.
    let deleted = admin.delete_records(&topic, &[(1, 140)]).await.unwrap();
    assert_eq!(
        deleted,
        vec![DeletedRecords {
            partition: 1,
            low_watermark: 140
        }]
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while lead(&consumer, 1) != 10.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lead of partition 1: {}",
            lead(&consumer, 1)
        );
        assert!(consumer.poll(Duration::from_millis(200)).await.unwrap().is_empty());
    }
    assert_eq!(min(&consumer), 10.0);
    assert_eq!(lead(&consumer, 0), 150.0);
    for p in ["0", "1"] {
        let replica = consumer
            .java_metrics()
            .get(
                "consumer-fetch-manager-metrics",
                "preferred-read-replica",
                &[("topic", &topic), ("partition", p)],
            )
            .unwrap();
        assert_eq!(replica, -1.0, "partition {p}");
    }
    let samples = parse_prometheus(&consumer.client().metric_registry().prometheus());
    let id = consumer.client().config().client_id.clone();
    assert_eq!(
        sample(&samples, "kafka_consumer_records_lead_min", &[("client_id", &id)]),
        10.0
    );

    // Everything up to the high watermark (-1), an offset past it, a partition that is not there.
    let deleted = admin.delete_records(&topic, &[(0, -1)]).await.unwrap();
    assert_eq!(deleted[0].low_watermark, 150);
    let e = admin.delete_records(&topic, &[(1, 1_000)]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broker, "{e}");
    assert!(
        e.to_string().contains("OFFSET_OUT_OF_RANGE") || e.to_string().contains("OffsetOutOfRange"),
        "{e}"
    );
    assert_eq!(e.partition(), Some(1), "{e}");
    let e = admin.delete_records(&topic, &[(7, 0)]).await.unwrap_err();
    assert!(e.to_string().contains("partition 7"), "{e}");
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}

#[tokio::test]
async fn producer_and_consumer_metrics_follow_what_happened() {
    let topic = unique_topic("metrics");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
    // Retries are counted below, and a topic this new is still refused for a moment.
    wait_topic_ready(&admin, &topic, 3, Duration::from_secs(30)).await;

    // Produce N records at a user's pace: in bursts of 100, awaiting each burst.
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("client.id", "metrics-producer").unwrap();
    pc.set("linger.ms", "5").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    for chunk in 0..N / 100 {
        let mut pending = Vec::new();
        for i in 0..100 {
            let n = chunk * 100 + i;
            pending.push(
                producer
                    .send(ProducerRecord::new(&topic, format!("value-{n}")).key(format!("k{n}")))
                    .await
                    .unwrap(),
            );
        }
        for d in pending {
            d.await.unwrap();
        }
    }
    let m = producer.metrics();
    let g = "producer-metrics";
    assert_eq!(m.get(g, "record-send-total", &[]).unwrap(), N as f64);
    assert_eq!(
        m.get("producer-topic-metrics", "record-send-total", &[("topic", &topic)])
            .unwrap(),
        N as f64
    );
    assert_eq!(m.get(g, "record-error-total", &[]).unwrap(), 0.0);
    assert_eq!(m.get(g, "record-retry-total", &[]).unwrap(), 0.0);
    assert!(m.get(g, "record-send-rate", &[]).unwrap() > 0.0);
    for name in [
        "request-latency",
        "record-queue-time",
        "batch-size",
        "records-per-request",
    ] {
        let avg = m.get(g, &format!("{name}-avg"), &[]).unwrap();
        let max = m.get(g, &format!("{name}-max"), &[]).unwrap();
        let p99 = m.get(g, &format!("{name}-p99"), &[]).unwrap();
        assert!(
            avg > 0.0 && max >= avg && p99 > 0.0,
            "{name}: avg {avg} max {max} p99 {p99}"
        );
    }
    // linger.ms=5: a record waits about that long for its batch (within the histogram's 1/8).
    let queue_max = m.get(g, "record-queue-time-max", &[]).unwrap();
    assert!(
        queue_max >= 4.0,
        "record-queue-time-max {queue_max} ms with linger.ms=5"
    );
    let rate = m.get(g, "compression-rate-avg", &[]).unwrap();
    assert!((rate - 1.0).abs() < 0.01, "no compression: compression-rate-avg {rate}");
    let total = m.get(g, "buffer-total-bytes", &[]).unwrap();
    assert_eq!(total, 32.0 * 1024.0 * 1024.0);
    assert_eq!(
        m.get(g, "buffer-available-bytes", &[]).unwrap(),
        total,
        "everything delivered"
    );
    assert_eq!(m.get(g, "waiting-threads", &[]).unwrap(), 0.0);
    let node = *producer.client().metadata().brokers.keys().next().unwrap();
    let leader = format!("node-{node}");
    let requests = m.get("node-metrics", "request-total", &[("node-id", &leader)]).unwrap();
    assert!(requests >= (N / 100) as f64, "node request-total {requests}");
    assert!(
        m.get("node-metrics", "request-latency-avg", &[("node-id", &leader)])
            .unwrap()
            > 0.0
    );
    assert!(
        m.get("node-metrics", "outgoing-byte-total", &[("node-id", &leader)])
            .unwrap()
            > (N * 10) as f64
    );
    assert_eq!(
        m.get("node-metrics", "connection-count", &[("node-id", &leader)])
            .unwrap(),
        1.0
    );
    // A typo in a query is an error naming it, not a silent zero.
    let e = m.get(g, "record-sent-total", &[]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("record-sent-total"), "{e}");

    // The exposition, parsed by prometheus_client.
    let text = producer.client().metric_registry().prometheus();
    let samples = parse_prometheus(&text);
    let labels = [("client_id", "metrics-producer"), ("topic", topic.as_str())];
    assert_eq!(sample(&samples, "kafka_producer_record_send_total", &labels), N as f64);
    let count = sample(
        &samples,
        "kafka_producer_request_latency_seconds_count",
        &[("client_id", "metrics-producer")],
    );
    assert!(count >= (N / 100) as f64, "{count}");
    let p99 = sample(
        &samples,
        "kafka_producer_request_latency_seconds",
        &[("client_id", "metrics-producer"), ("quantile", "0.99")],
    );
    assert!(p99 > 0.0 && p99 < 30.0, "p99 {p99} s");

    // Consume them in a group, committing.
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.set("client.id", "metrics-consumer").unwrap();
    cc.set("group.id", &unique_topic("metrics-group")).unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    cc.set("heartbeat.interval.ms", "200").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got < N {
        assert!(tokio::time::Instant::now() < deadline, "consumed {got} of {N}");
        got += consumer.poll(Duration::from_millis(500)).await.unwrap().len();
    }
    assert_eq!(got, N);
    consumer.commit_sync().await.unwrap();
    // A few more polls: the fetches after the last records see the partitions caught up.
    for _ in 0..3 {
        assert!(consumer.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    }
    let m = consumer.java_metrics();
    // consumer-metrics: polls were timed (the loop above polled many times, waiting inside).
    let between = m.get("consumer-metrics", "time-between-poll-max", &[]).unwrap();
    let idle = m.get("consumer-metrics", "poll-idle-ratio-avg", &[]).unwrap();
    assert!(
        between > 0.0 && between < 60_000.0,
        "time-between-poll-max {between} ms"
    );
    assert!(idle > 0.0 && idle <= 1.0, "poll-idle-ratio-avg {idle}");
    let g = "consumer-fetch-manager-metrics";
    assert_eq!(m.get(g, "records-consumed-total", &[]).unwrap(), N as f64);
    assert_eq!(
        m.get(g, "records-consumed-total", &[("topic", &topic)]).unwrap(),
        N as f64
    );
    assert!(m.get(g, "bytes-consumed-total", &[]).unwrap() > (N * 10) as f64);
    assert_eq!(m.get(g, "records-lag-max", &[]).unwrap(), 0.0);
    for p in 0..3 {
        let lag = m
            .get(g, "records-lag", &[("topic", &topic), ("partition", &p.to_string())])
            .unwrap();
        assert_eq!(lag, 0.0, "partition {p}");
    }
    assert!(m.get(g, "fetch-total", &[]).unwrap() >= 1.0);
    assert!(m.get(g, "fetch-latency-avg", &[]).unwrap() > 0.0);
    assert!(m.get(g, "fetch-size-max", &[]).unwrap() > 0.0);
    // Every fetch response's records were handed out (N in all, none left buffered).
    let per_request = m.get(g, "records-per-request-max", &[]).unwrap();
    assert!(
        per_request >= 1.0 && per_request <= N as f64,
        "records-per-request-max {per_request}"
    );
    let g = "consumer-coordinator-metrics";
    assert!(m.get(g, "rebalance-total", &[]).unwrap() >= 1.0);
    assert_eq!(m.get(g, "assigned-partitions", &[]).unwrap(), 3.0);
    assert_eq!(m.get(g, "commit-total", &[]).unwrap(), 1.0);
    assert!(m.get(g, "commit-latency-avg", &[]).unwrap() > 0.0);
    check_group_metrics(&mut consumer, "classic").await;

    let samples = parse_prometheus(&consumer.client().metric_registry().prometheus());
    let labels = [("client_id", "metrics-consumer"), ("topic", topic.as_str())];
    assert_eq!(
        sample(&samples, "kafka_consumer_records_consumed_total", &labels),
        N as f64
    );
    assert_eq!(
        sample(
            &samples,
            "kafka_consumer_records_lag_max",
            &[("client_id", "metrics-consumer")]
        ),
        0.0
    );
    let node_requests = sample(
        &samples,
        "kafka_node_request_total",
        &[("client_id", "metrics-consumer"), ("node_id", &leader)],
    );
    assert!(node_requests >= 1.0);
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}
