//! What differs between broker versions, checked against whichever broker the harness has:
//! the shared (newest) one in `scripts/test`, and each version of the matrix in
//! `scripts/compat` (Kafka 3.9.x, 4.0.x, 4.1.x, the newest 4.x; `transaction.version` 0 and
//! 2). The version-independent scenarios of the matrix are the suite's own tests, run by
//! `scripts/compat` against each broker; these are the ones whose outcome depends on what
//! the broker has, and they say which outcome they expect from what it advertises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use strom_client::lowlevel::{protocol::messages::ApiKey, Connection, ConnectionConfig};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ErrorKind, GroupProtocol, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TransactionalProducer,
};
use strom_integration_tests::{broker, unique_topic, wait_no_open_transaction};

/// What the broker advertises: (has the KIP-848 group coordinator, transaction.version).
async fn capabilities() -> (bool, i16) {
    let conn = Connection::connect(&broker().bootstrap, ConnectionConfig::default())
        .await
        .unwrap();
    let v = conn.versions();
    let kip848 = v.broker_range(ApiKey::ConsumerGroupHeartbeat).is_some() && v.features().group_version() >= 1;
    (kip848, v.features().transaction_version())
}

async fn create(topic: &str, partitions: i32) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(topic, partitions)]).await.unwrap();
}

/// With the KIP-848 group coordinator (4.0+ by default), a `group.protocol=consumer` group
/// consumes and commits; without it (3.9 by default), the consumer fails at once with an
/// InvalidConfig error that names the setting to change, instead of retrying forever.
#[tokio::test]
async fn kip848_groups_work_or_are_refused_clearly() {
    let (kip848, _) = capabilities().await;
    let topic = unique_topic("compat-848");
    create(&topic, 3).await;
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for i in 0..30 {
        let _delivery = producer
            .send(ProducerRecord::new(&topic, format!("v{i}")).key(format!("k{i}")))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.group_id = Some(unique_topic("compat-848-g"));
    cc.group_protocol = GroupProtocol::Consumer;
    cc.set("auto.offset.reset", "earliest").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = BTreeSet::new();
    let outcome = loop {
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => {
                seen.extend(records.iter().map(|r| (r.partition, r.offset)));
                if seen.len() == 30 {
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
        assert!(Instant::now() < deadline, "neither records nor an error within 60 s");
    };
    if kip848 {
        outcome.unwrap();
        consumer.commit_sync().await.unwrap();
        consumer.close().await.unwrap();
    } else {
        let e = outcome.expect_err("a broker without the KIP-848 coordinator served a consumer group");
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
        assert!(
            e.to_string().contains("set group.protocol=classic"),
            "the error names the fix: {e}"
        );
    }
}

/// Transactions under whichever `transaction.version` the broker runs (TV2, KIP-890, on
/// 4.x by default; TV1 on 3.9 and on 4.x formatted with `transaction.version=0`): a
/// committed and an aborted transaction, then read_committed sees exactly the committed
/// one. `STROM_COMPAT_TRANSACTION_VERSION`, when set, pins the version the broker must
/// run (so a matrix leg meant for TV1 cannot silently test TV2).
#[tokio::test]
async fn transactions_under_the_brokers_transaction_version() {
    let (_, tv) = capabilities().await;
    if let Ok(want) = std::env::var("STROM_COMPAT_TRANSACTION_VERSION") {
        let want: i16 = want.parse().expect("STROM_COMPAT_TRANSACTION_VERSION is a number");
        assert_eq!(
            tv, want,
            "the broker runs transaction.version {tv}, the matrix leg wants {want}"
        );
    }
    let topic = unique_topic("compat-txn");
    create(&topic, 2).await;
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.transactional_id = Some(unique_topic("compat-txn-id"));
    let p = TransactionalProducer::new(pc).await.unwrap();
    p.init_transactions().await.unwrap();
    for (tag, commit) in [("committed", true), ("aborted", false), ("again", true)] {
        p.begin_transaction().await.unwrap();
        for i in 0..50 {
            let _delivery = p
                .send(ProducerRecord::new(&topic, format!("{tag}{i}")).partition(i % 2))
                .await
                .unwrap();
        }
        if commit {
            p.commit_transaction().await.unwrap();
        } else {
            p.abort_transaction().await.unwrap();
        }
    }
    p.close().await.unwrap();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    wait_no_open_transaction(&admin, &topic, Duration::from_secs(30)).await;
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.set("isolation.level", "read_committed").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer
        .assign((0..2).map(|p| strom_client::TopicPartition::new(&topic, p)))
        .unwrap();
    consumer.seek_to_beginning(&consumer.assignment()).unwrap();
    let mut values = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while values.len() < 100 && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(300)).await.unwrap() {
            values.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    // Nothing more arrives: the aborted transaction stays hidden.
    for r in consumer.poll(Duration::from_secs(1)).await.unwrap() {
        values.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    let want: BTreeSet<String> = (0..50)
        .flat_map(|i| [format!("committed{i}"), format!("again{i}")])
        .collect();
    assert_eq!(values, want, "transaction.version {tv}");
}

/// `Admin::describe_consumer_group` describes a classic group on every version, also on a
/// broker that lists ConsumerGroupDescribe but answers it UNSUPPORTED_VERSION (3.9).
#[tokio::test]
async fn describing_a_classic_group_works_on_every_version() {
    let topic = unique_topic("compat-describe");
    create(&topic, 1).await;
    let group = unique_topic("compat-describe-g");
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.group_id = Some(group.clone());
    cc.group_protocol = GroupProtocol::Classic;
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().is_empty() {
        assert!(Instant::now() < deadline, "no assignment within 30 s");
        let _ = consumer.poll(Duration::from_millis(200)).await.unwrap();
    }
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let d = admin.describe_consumer_group(&group).await.unwrap();
    assert_eq!(d.members.len(), 1, "{d:?}");
    consumer.close().await.unwrap();
}
