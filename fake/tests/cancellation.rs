//! Cancellation safety of the client's public async fns, as a user's `select!` or timeout
//! hits it: each call is polled `k` times (the runtime running between polls) and then
//! dropped, for every `k` from 0 until the call completes, and after each drop the
//! invariants are checked: no record lost or duplicated, state consistent (what was asked is
//! either done or not), the client still usable. Against the in-process fake cluster, so
//! every await point of a call is reached in a fraction of a second.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerGroupMetadata, NewTopic, OffsetAndMetadata, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, TopicPartition, TransactionalProducer,
};
use strom_fake::FakeCluster;

use strom_fake::poll_at_most as drive;

/// The most polls any call here needs: each loop over k stops at the first k that lets the
/// call complete, and fails past this.
const MAX_K: usize = 400;

async fn cluster(topics: &[(&str, i32)]) -> FakeCluster {
    let mut b = FakeCluster::builder().brokers(2);
    for (t, p) in topics {
        b = b.topic(t, *p, 2);
    }
    b.start().await.unwrap()
}

/// `n` records over 3 partitions, each in a batch of its own (each send waits for the last),
/// so that a consumer with small fetches often has to wait in `poll`.
async fn produce(bootstrap: &str, topic: &str, n: usize) {
    let mut pc = ProducerConfig::new(bootstrap);
    pc.set("linger.ms", "0").unwrap();
    let p = Producer::new(pc).await.unwrap();
    for i in 0..n {
        let record = ProducerRecord::new(topic, format!("v{i}")).partition((i % 3) as i32);
        p.send(record).await.unwrap().await.unwrap();
    }
    p.close().await.unwrap();
}

fn assigned_consumer_config(bootstrap: &str, group: Option<&str>) -> ConsumerConfig {
    let mut cc = ConsumerConfig::new(bootstrap);
    cc.set("auto.offset.reset", "earliest").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    cc.set("max.poll.records", "7").unwrap();
    cc.set("fetch.max.bytes", "600").unwrap();
    if let Some(g) = group {
        cc.set("group.id", g).unwrap();
    }
    cc
}

fn tps(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

/// `Consumer::poll` dropped at every await point, over and over: every record is returned
/// exactly once, in order per partition, and commits count exactly what was returned.
#[tokio::test(flavor = "multi_thread")]
async fn a_poll_dropped_at_any_point_loses_and_repeats_nothing() {
    const N: usize = 600;
    let cluster = cluster(&[("t", 3)]).await;
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "t", N).await;
    let mut c = Consumer::new(assigned_consumer_config(&bootstrap, Some("g-poll")))
        .await
        .unwrap();
    c.assign(tps("t", 3)).unwrap();
    let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let (mut n, mut dropped, mut i) = (0, 0, 0usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    while n < N {
        assert!(
            Instant::now() < deadline,
            "{n} of {N} records after {dropped} dropped polls"
        );
        // k cycles through the await points of a poll (group events, positions, fetches).
        let k = i % 6;
        match drive(c.poll(Duration::from_millis(50)), k).await {
            Some(records) => {
                for r in records.unwrap() {
                    got.entry(r.partition).or_default().push(r.offset);
                    n += 1;
                }
            }
            // Dropped after at least one poll: the call had started.
            None if k > 0 => dropped += 1,
            None => {}
        }
        i += 1;
    }
    assert!(
        dropped >= 5,
        "only {dropped} polls were dropped while pending: the test did not exercise cancellation"
    );
    for (p, offsets) in &got {
        let want: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &want,
            "partition {p}: offsets out of order, repeated or missing"
        );
    }
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), N);
    // Positions and the commit count exactly what was returned.
    for tp in tps("t", 3) {
        assert_eq!(c.position(&tp).await.unwrap(), got[&tp.partition].len() as i64);
    }
    c.commit_sync().await.unwrap();
    let committed = c.committed(&tps("t", 3)).await.unwrap();
    for tp in tps("t", 3) {
        assert_eq!(committed[&tp].offset, got[&tp.partition].len() as i64);
    }
    c.close().await.unwrap();
}

/// A commit dropped at any point leaves the old or the new offsets, never anything else;
/// the consumer commits, looks up and polls normally afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_or_lookup_dropped_at_any_point_leaves_old_or_new() {
    let cluster = cluster(&[("t", 3), ("commits", 1)]).await;
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "t", 90).await;
    let mut c = Consumer::new(assigned_consumer_config(&bootstrap, Some("g-commit")))
        .await
        .unwrap();
    c.assign(tps("t", 3)).unwrap();
    // Offsets committed for a partition the consumer does not read, so the reads below
    // start from the beginning.
    let tp = TopicPartition::new("commits", 0);
    let mut current = -1i64;
    let mut value = 0i64;
    let mut drops = 0;
    for _round in 0..6 {
        for k in 0..=MAX_K {
            assert!(k < MAX_K, "a commit never completed");
            value += 1;
            let want = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(value))]);
            let done = drive(c.commit_offsets_sync(&want), k).await;
            let now = c
                .committed(std::slice::from_ref(&tp))
                .await
                .unwrap()
                .get(&tp)
                .map_or(-1, |o| o.offset);
            let completed = done.is_some();
            match done {
                Some(r) => {
                    r.unwrap();
                    assert_eq!(now, value, "a completed commit is stored");
                }
                None => {
                    drops += 1;
                    assert!(
                        now == current || now == value,
                        "a dropped commit left {now}; before it {current}, it asked {value}"
                    );
                }
            }
            current = now;
            if completed {
                break;
            }
        }
    }
    assert!(drops > 5, "only {drops} commits were dropped");
    // Lookups dropped at every k, then run whole, answer as if nothing happened.
    let all = tps("t", 3);
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "a lookup never completed");
        let a = drive(c.end_offsets(&all), k).await.is_some();
        let b = drive(c.beginning_offsets(&all), k).await.is_some();
        let d = drive(c.position(&all[0]), k).await.is_some();
        let e = drive(c.offsets_for_times(&BTreeMap::from([(all[2].clone(), 0)])), k)
            .await
            .is_some();
        let whole = c.end_offsets(&all).await.unwrap();
        assert!(whole.values().all(|o| *o == 30), "{whole:?}");
        if a && b && d && e {
            break;
        }
    }
    assert_eq!(c.position(&all[0]).await.unwrap(), 0);
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < 90 {
        assert!(
            Instant::now() < deadline,
            "{n} of 90 records after the dropped lookups; positions {:?}",
            [
                c.position(&all[0]).await,
                c.position(&all[1]).await,
                c.position(&all[2]).await
            ]
        );
        n += c.poll(Duration::from_millis(100)).await.unwrap().len();
    }
    c.close().await.unwrap();
}

/// `send` dropped while it waits for buffer space or metadata queues the record entirely or
/// not at all; `flush` dropped stops only the wait. The topic holds exactly the records
/// whose `send` returned, once each, in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_send_or_flush_dropped_at_any_point_queues_all_or_nothing() {
    let cluster = cluster(&[("t", 3)]).await;
    let bootstrap = cluster.bootstrap_servers();
    let mut pc = ProducerConfig::new(&bootstrap);
    // A small buffer, so that sends wait for room, and idempotence, so retries cannot
    // duplicate.
    pc.set("buffer.memory", "8192").unwrap();
    pc.set("batch.size", "2048").unwrap();
    pc.set("linger.ms", "2").unwrap();
    let p = Producer::new(pc).await.unwrap();
    let mut accepted: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut deliveries = Vec::new();
    let mut dropped = 0;
    for i in 0..1500usize {
        let partition = (i % 3) as i32;
        let value = format!("{i:05}-{}", "x".repeat(200));
        match drive(
            p.send(ProducerRecord::new("t", value.clone()).partition(partition)),
            i % 4,
        )
        .await
        {
            Some(r) => {
                deliveries.push(r.unwrap());
                accepted.entry(partition).or_default().push(value);
            }
            None => dropped += 1,
        }
        if i % 97 == 0 {
            let _ = drive(p.flush(), i % 5).await;
        }
    }
    assert!(dropped > 100, "only {dropped} sends were dropped");
    p.flush().await.unwrap();
    for d in deliveries {
        d.await.unwrap();
    }
    let c = Consumer::new(assigned_consumer_config(&bootstrap, None)).await.unwrap();
    let got = read_all(c, "t", 3).await;
    assert_eq!(got, accepted, "the topic holds exactly the accepted records, in order");
    p.close().await.unwrap();
}

/// A dropped `flush` does not leave the producer flushing: `linger.ms` holds again for the
/// records sent after it (a flush left open made every later batch go at once).
#[tokio::test(flavor = "multi_thread")]
async fn linger_holds_again_after_a_dropped_flush() {
    let cluster = cluster(&[("t", 1)]).await;
    let bootstrap = cluster.bootstrap_servers();
    let mut pc = ProducerConfig::new(&bootstrap);
    pc.set("linger.ms", "60000").unwrap();
    let p = Producer::new(pc).await.unwrap();
    let first = p.send(ProducerRecord::new("t", "first")).await.unwrap();
    // A flush dropped after its first poll (it asked for the batch to go, then stopped
    // waiting); the batch still goes.
    assert!(drive(p.flush(), 1).await.is_none());
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    let second = p.send(ProducerRecord::new("t", "second")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        second.try_result().is_none(),
        "the record after a dropped flush was sent without waiting for linger.ms"
    );
    p.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .unwrap()
        .unwrap();
}

/// Transaction steps dropped at any point: the producer's transaction either moved on or
/// not, the records of a committed transaction are readable once, and the producer goes on
/// with new transactions.
#[tokio::test(flavor = "multi_thread")]
async fn transaction_calls_dropped_at_any_point_commit_all_or_nothing() {
    let cluster = cluster(&[("t", 2), ("in", 1)]).await;
    let bootstrap = cluster.bootstrap_servers();
    let mut pc = ProducerConfig::new(&bootstrap);
    pc.transactional_id = Some("tx-cancel".into());
    let p = TransactionalProducer::new(pc).await.unwrap();
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "init_transactions never completed");
        if drive(p.init_transactions(), k).await.is_some() {
            break;
        }
    }
    // Whatever the dropped calls left, a completed init makes the producer ready.
    p.init_transactions().await.unwrap();
    let group = ConsumerGroupMetadata::new("g-tx");
    let mut committed_values: Vec<String> = Vec::new();
    let mut txn = 0;
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "a transaction never committed");
        txn += 1;
        p.begin_transaction().await.unwrap();
        let values: Vec<String> = (0..4).map(|i| format!("txn{txn}-{i}")).collect();
        for (i, v) in values.iter().enumerate() {
            drop(
                p.send(ProducerRecord::new("t", v.clone()).partition((i % 2) as i32))
                    .await
                    .unwrap(),
            );
        }
        let offsets = BTreeMap::from([(TopicPartition::new("in", 0), OffsetAndMetadata::new(txn))]);
        match drive(p.send_offsets_to_transaction(&offsets, &group), k).await {
            Some(r) => r.unwrap(),
            None => {
                // Its outcome is unknown to the caller: the transaction is aborted.
                abort_settled(&p).await;
                continue;
            }
        }
        match drive(p.commit_transaction(), k).await {
            Some(r) => {
                r.unwrap();
                committed_values.extend(values);
                break;
            }
            None => {
                // The commit may have reached the coordinator: it finishes or not, and the
                // producer settles to be ready for the next transaction either way.
                if settle(&p).await {
                    committed_values.extend(values);
                }
            }
        }
    }
    let mut cc = assigned_consumer_config(&bootstrap, None);
    cc.set("isolation.level", "read_committed").unwrap();
    let got: Vec<String> = read_all(Consumer::new(cc).await.unwrap(), "t", 2)
        .await
        .into_values()
        .flatten()
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    committed_values.sort();
    assert_eq!(
        got_sorted, committed_values,
        "read_committed sees exactly the committed transactions"
    );
    p.close().await.unwrap();
}

/// After a dropped commit: the producer either finished the commit (a new transaction can
/// begin) or is still in the transaction (commit it again). Whether it committed.
async fn settle(p: &TransactionalProducer) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the producer did not settle after a dropped commit"
        );
        match p.begin_transaction().await {
            Ok(()) => {
                // The dropped commit completed; close the transaction just begun.
                p.abort_transaction().await.unwrap();
                return true;
            }
            Err(_) => match p.commit_transaction().await {
                Ok(()) => return true,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

async fn abort_settled(p: &TransactionalProducer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.abort_transaction().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the producer could not abort after a dropped call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Admin calls dropped at any point: a change is made or not (asking again converges), and
/// the admin keeps answering.
#[tokio::test(flavor = "multi_thread")]
async fn admin_calls_dropped_at_any_point_leave_the_cluster_consistent() {
    let cluster = cluster(&[("t", 3)]).await;
    let bootstrap = cluster.bootstrap_servers();
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "create_topics never completed");
        let name = format!("new-{k}");
        let done = drive(admin.create_topics(&[NewTopic::new(&name, 2).replication_factor(1)]), k).await;
        let completed = done.is_some();
        if let Some(r) = done {
            r.unwrap();
        }
        // Asking again converges: created now, or already there from the dropped call.
        if let Err(e) = admin
            .create_topics(&[NewTopic::new(&name, 2).replication_factor(1)])
            .await
        {
            assert_eq!(e.kafka_code(), Some(strom_client::ErrorCode::TopicAlreadyExists), "{e}");
        }
        let d = admin.describe_topics(&[name.as_str()]).await.unwrap();
        assert_eq!(d[0].partitions.len(), 2);
        if completed {
            break;
        }
    }
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "an admin lookup never completed");
        let a = drive(admin.list_topics(false), k).await.is_some();
        let b = drive(admin.describe_topics(&["t"]), k).await.is_some();
        let c = drive(admin.list_offsets("t", &[], OffsetSpec::Latest), k)
            .await
            .is_some();
        let d = drive(admin.group_offsets("nobody"), k).await.is_some();
        assert!(admin.list_topics(false).await.unwrap().contains(&"t".to_string()));
        if a && b && c && d {
            break;
        }
    }
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "create_partitions never completed");
        let done = drive(admin.create_partitions("t", 5), k).await.is_some();
        let now = admin.describe_topics(&["t"]).await.unwrap()[0].partitions.len();
        assert!(now == 3 || now == 5, "{now} partitions");
        if done {
            break;
        }
        if now == 5 {
            break;
        }
    }
    assert_eq!(admin.describe_topics(&["t"]).await.unwrap()[0].partitions.len(), 5);
}

/// Every record of `topic` (its `partitions` partitions) up to the end offsets as they are
/// now: values per partition in offset order.
async fn read_all(mut c: Consumer, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<String>> {
    let all = tps(topic, partitions);
    c.assign(all.clone()).unwrap();
    let ends = c.end_offsets(&all).await.unwrap();
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut done = true;
        for tp in &all {
            if c.position(tp).await.unwrap() < ends[tp] {
                done = false;
            }
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "reading {topic} to {ends:?}");
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            got.entry(r.partition)
                .or_default()
                .push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    c.close().await.unwrap();
    got
}

/// A rebalance reaching a `poll` that is then dropped (while the revocation's commit is
/// slow): the consumer still gives the partitions up at once, so two members never hold
/// one partition. (A dropped poll used to lose the revocation: the consumer kept fetching
/// partitions the group had given to another member.)
#[tokio::test(flavor = "multi_thread")]
async fn a_rebalance_in_a_dropped_poll_still_gives_the_partitions_up() {
    for strategy in ["range", "cooperative-sticky"] {
        let cluster = cluster(&[("t", 4)]).await;
        let bootstrap = cluster.bootstrap_servers();
        produce(&bootstrap, "t", 400).await;
        let member = |group: &str| {
            let mut cc = assigned_consumer_config(&bootstrap, Some(group));
            cc.set("enable.auto.commit", "true").unwrap();
            cc.set("auto.commit.interval.ms", "600000").unwrap();
            cc.set("partition.assignment.strategy", strategy).unwrap();
            cc.set("heartbeat.interval.ms", "100").unwrap();
            cc
        };
        let group = format!("g-rebalance-{strategy}");
        let mut c1 = Consumer::new(member(&group)).await.unwrap();
        c1.subscribe(&["t"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = 0;
        while got < 20 {
            assert!(Instant::now() < deadline, "the first member got {got} records");
            got += c1.poll(Duration::from_millis(100)).await.unwrap().len();
        }
        // Every commit from now on is slow: the revocation's auto-commit is in flight when
        // the polls below are dropped.
        cluster
            .inject(strom_fake::Fault::delay(strom_fake::ApiKey::OffsetCommit, Duration::from_millis(300)).times(50));
        let mut c2 = Consumer::new(member(&group)).await.unwrap();
        c2.subscribe(&["t"]).unwrap();
        let second = tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && c2.assignment().len() < 2 {
                c2.poll(Duration::from_millis(50)).await.unwrap();
            }
            c2
        });
        let mut k = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && c1.assignment().len() != 2 {
            k += 1;
            let _ = drive(c1.poll(Duration::from_millis(50)), 1 + k % 3).await;
        }
        let mut c2 = second.await.unwrap();
        // Let the rebalance settle on both sides, then no partition has two owners.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (a, b) = (c1.assignment(), c2.assignment());
            let overlap: Vec<_> = a.iter().filter(|tp| b.contains(tp)).collect();
            if overlap.is_empty() && a.len() + b.len() == 4 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{strategy}: partitions held by both members: {overlap:?} (first {a:?}, second {b:?})"
            );
            let _ = c1.poll(Duration::from_millis(50)).await.unwrap();
            let _ = c2.poll(Duration::from_millis(50)).await.unwrap();
        }
        cluster.clear_faults();
        c1.close().await.unwrap();
        c2.close().await.unwrap();
    }
}

/// Drops `call()` after k polls for k = 0, 1, ... until one completes; its output.
async fn completes<T, Fut: std::future::Future<Output = T>>(what: &str, mut call: impl FnMut() -> Fut) -> T {
    for k in 0..MAX_K {
        if let Some(out) = drive(call(), k).await {
            return out;
        }
    }
    panic!("{what} did not complete within {MAX_K} polls");
}

/// The public async fns not covered above, each dropped at every poll count: constructors
/// leave nothing running, lookups lose only their answer, commits through a handle leave old
/// or new offsets, closing and unsubscribing leave the consumer closed or unsubscribed as
/// soon as they start, and every client goes on working.
#[tokio::test(flavor = "multi_thread")]
async fn the_remaining_calls_dropped_at_any_point_leave_the_clients_usable() {
    use strom_client::serialization::{TypedProducer, TypedRecord, Utf8};
    use strom_client::{abort_lingering, resume_transaction, Client, TransactionalProducer};

    let cluster = cluster(&[("t", 3)]).await;
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "t", 30).await;

    // Client.
    let mut cfg = ClientConfig::new(&bootstrap);
    cfg.set("statistics.interval.ms", "50").unwrap();
    let client = completes("Client::connect", || Client::connect(cfg.clone()))
        .await
        .unwrap();
    completes("refresh_metadata", || client.refresh_metadata(Some(&["t"])))
        .await
        .unwrap();
    completes("topic", || client.topic("t")).await.unwrap();
    completes("any_broker", || client.any_broker()).await.unwrap();
    let (node, _) = completes("leader", || client.leader("t", 0)).await.unwrap();
    completes("broker", || client.broker(node)).await.unwrap();
    completes("with_retries", || client.with_retries("Metadata", || client.topic("t")))
        .await
        .unwrap();
    let mut stats = client.statistics().unwrap();
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "no statistics document");
        if drive(stats.recv(), k).await.is_some() {
            break;
        }
    }
    assert!(
        stats.recv().await.is_some(),
        "the statistics stream goes on after dropped receives"
    );

    // Producer: construction, typed sends, deliveries, close.
    let p = completes("Producer::new", || Producer::new(ProducerConfig::new(&bootstrap)))
        .await
        .unwrap();
    let typed = TypedProducer::new(p.clone(), Utf8, Utf8);
    let delivery = completes("TypedProducer::send", || {
        typed.send(TypedRecord::<String, String>::new("t", "typed".to_string()).partition(0))
    })
    .await
    .unwrap();
    let serialized = completes("TypedRecord::serialize", || {
        TypedRecord::<String, String>::new("t", "x".to_string()).serialize(&Utf8, &Utf8)
    })
    .await
    .unwrap();
    assert_eq!(serialized.value.as_deref(), Some(&b"x"[..]));
    let wait = delivery.clone();
    completes("DeliveryFuture::wait", || wait.clone().wait()).await.unwrap();
    assert!(
        delivery.try_result().is_some_and(|r| r.is_ok()),
        "the delivery outlived the dropped waits"
    );
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "close never completed");
        if drive(p.close(), k).await.is_some() {
            break;
        }
        // A dropped close leaves the producer open.
        drop(
            p.send(ProducerRecord::new("t", "after a dropped close").partition(1))
                .await
                .unwrap(),
        );
    }
    assert!(
        p.send(ProducerRecord::new("t", "closed")).await.is_err(),
        "close completed"
    );

    // Consumer: construction, a handle's commits, deserializing, unsubscribe, close.
    let mut c = completes("Consumer::new", || {
        Consumer::new(assigned_consumer_config(&bootstrap, Some("g-rest")))
    })
    .await
    .unwrap();
    c.assign(tps("t", 3)).unwrap();
    let mut records = Vec::new();
    while records.is_empty() {
        records = c.poll(Duration::from_millis(100)).await.unwrap();
    }
    let first = records[0].clone();
    let typed_record = completes("ConsumerRecord::deserialize", || {
        first.deserialize::<String, String, _, _>(&Utf8, &Utf8)
    })
    .await
    .unwrap();
    assert!(typed_record.value.is_some());
    let handle = c.handle().unwrap();
    let tp = first.topic_partition();
    let want = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(3))]);
    completes("ConsumerHandle::commit", || handle.commit(&want))
        .await
        .unwrap();
    completes("ConsumerHandle::commit_record", || handle.commit_record(&first))
        .await
        .unwrap();
    let committed = c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp].offset;
    assert_eq!(committed, first.offset + 1);
    // unsubscribe dropped at its first poll: unsubscribed already (assign mode: the
    // assignment is gone).
    drop(drive(c.unsubscribe(), 1).await);
    assert!(c.assignment().is_empty());
    // Assigned again, it reads again (from the committed offsets of group g-rest).
    c.assign(tps("t", 3)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = 0;
    while again == 0 {
        assert!(Instant::now() < deadline, "no record after a dropped unsubscribe");
        again = c.poll(Duration::from_millis(100)).await.unwrap().len();
    }
    drop(drive(c.close(), 1).await);

    // Transactions: prepare, abort and begin dropped; a prepared transaction resumed and a
    // lingering one aborted with the calls dropped too.
    let mut pc = ProducerConfig::new(&bootstrap);
    pc.transactional_id = Some("tx-rest".into());
    let tp_producer = completes("TransactionalProducer::new", || TransactionalProducer::new(pc.clone()))
        .await
        .unwrap();
    tp_producer.init_transactions().await.unwrap();
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "begin never completed");
        if drive(tp_producer.begin_transaction(), k).await.is_some() {
            break;
        }
        // Whatever the dropped begin did, an abort brings the producer back to ready.
        let _ = tp_producer.abort_transaction().await;
    }
    drop(
        tp_producer
            .send(ProducerRecord::new("t", "prepared").partition(2))
            .await
            .unwrap(),
    );
    completes("TransactionalProducer::flush", || tp_producer.flush())
        .await
        .unwrap();
    let prepared = completes("prepare", || tp_producer.prepare()).await.unwrap();
    completes("resume_transaction", || resume_transaction(&client, &prepared, true))
        .await
        .unwrap();
    completes("abort_lingering", || abort_lingering(&client, "tx-other"))
        .await
        .unwrap();
    let mut pc = ProducerConfig::new(&bootstrap);
    pc.transactional_id = Some("tx-rest-2".into());
    let second = TransactionalProducer::new(pc).await.unwrap();
    second.init_transactions().await.unwrap();
    second.begin_transaction().await.unwrap();
    drop(
        second
            .send(ProducerRecord::new("t", "aborted").partition(2))
            .await
            .unwrap(),
    );
    // A dropped abort still runs in the sender: asked again, it is done or finishes now.
    if let Err(e) = completes("abort_transaction", || second.abort_transaction()).await {
        assert_eq!(e.kind(), strom_client::ErrorKind::IllegalState, "{e}");
    }
    completes("TransactionalProducer::close", || second.close())
        .await
        .unwrap();
    let mut cc = assigned_consumer_config(&bootstrap, None);
    cc.set("isolation.level", "read_committed").unwrap();
    let got = read_all(Consumer::new(cc).await.unwrap(), "t", 3).await;
    assert!(
        got[&2].iter().any(|v| v == "prepared"),
        "the resumed transaction committed"
    );
    assert!(
        !got[&2].iter().any(|v| v == "aborted"),
        "the aborted transaction is not read"
    );
}

/// A group member's `close` commits what it consumed as that member (a coordinator refuses
/// a standalone commit for a group the member is still in), then leaves; dropped at any
/// point, it has committed those offsets or nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_members_close_commits_what_it_consumed_dropped_or_not() {
    let cluster = cluster(&[("t", 3)]).await;
    let bootstrap = cluster.bootstrap_servers();
    produce(&bootstrap, "t", 60).await;
    let mut dropped = 0;
    for k in 0..=MAX_K {
        assert!(k < MAX_K, "close never completed");
        let group = format!("g-close-{k}");
        let mut cc = assigned_consumer_config(&bootstrap, Some(&group));
        cc.set("enable.auto.commit", "true").unwrap();
        cc.set("auto.commit.interval.ms", "600000").unwrap();
        let mut c = Consumer::new(cc).await.unwrap();
        c.subscribe(&["t"]).unwrap();
        let mut got = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while got < 10 {
            assert!(Instant::now() < deadline, "the member got {got} records");
            got += c.poll(Duration::from_millis(100)).await.unwrap().len();
        }
        let want = c.consumed_offsets();
        let done = drive(c.close(), k).await;
        let reader = Consumer::new(assigned_consumer_config(&bootstrap, Some(&group)))
            .await
            .unwrap();
        let committed = reader.committed(&tps("t", 3)).await.unwrap();
        drop(reader);
        match done {
            Some(r) => {
                r.unwrap();
                for (tp, o) in &want {
                    assert_eq!(committed.get(tp).map(|c| c.offset), Some(o.offset), "{tp} after close");
                }
                break;
            }
            None => {
                dropped += 1;
                for (tp, c) in &committed {
                    assert_eq!(
                        Some(c.offset),
                        want.get(tp).map(|o| o.offset),
                        "{tp} after a dropped close"
                    );
                }
            }
        }
    }
    assert!(dropped > 0, "no close was dropped before completing");
}
