//! Strom's own client against the fake: produce (idempotent, every codec), consume in a
//! classic group, admin; and the fake's faults seen the way a client sees them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_fake::{ApiKey, ErrorCode, FakeCluster, Fault};

async fn produce(bootstrap: &str, topic: &str, n: usize, extra: &[(&str, &str)]) {
    let mut pc = ProducerConfig::new(bootstrap);
    pc.set("linger.ms", "5").unwrap();
    for (k, v) in extra {
        pc.set(k, v).unwrap();
    }
    let p = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        let rec = ProducerRecord::new(topic, format!("v{i}")).key(format!("k{}", i % 17));
        pending.push(p.send(rec).await.unwrap());
    }
    for f in pending {
        f.await.unwrap();
    }
    p.close().await.unwrap();
}

/// Consumes `n` records in group `group`, committing; values per partition in order.
async fn consume(bootstrap: &str, topic: &str, group: &str, n: usize) -> BTreeMap<i32, Vec<String>> {
    let mut cc = ConsumerConfig::new(bootstrap);
    cc.set("group.id", group).unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut count = 0;
    while count < n {
        assert!(Instant::now() < deadline, "consumed {count} of {n}");
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            got.entry(r.partition).or_default().push(v);
            count += 1;
        }
    }
    c.commit_sync().await.unwrap();
    c.close().await.unwrap();
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_and_consume_in_a_group_with_every_codec() {
    let started = Instant::now();
    let cluster = FakeCluster::builder()
        .brokers(3)
        .topic("t", 4, 3)
        .start()
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "started in {:?}",
        started.elapsed()
    );
    let b = cluster.bootstrap_servers();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        produce(&b, "t", 100, &[("compression.type", codec)]).await;
    }
    let got = consume(&b, "t", "g", 500).await;
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 500);
    let total: i64 = (0..4).map(|p| cluster.end_offset("t", p).unwrap()).sum();
    assert_eq!(total, 500, "idempotent retries never duplicate");
    // The committed offsets are there for the next member of the group.
    let admin = Admin::connect(ClientConfig::new(&b)).await.unwrap();
    let committed = admin.group_offsets("g").await.unwrap();
    assert_eq!(committed.values().sum::<i64>(), 500, "{committed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_retries_injected_errors_and_writes_each_record_once() {
    let cluster = FakeCluster::builder().topic("t", 1, 1).start().await.unwrap();
    let b = cluster.bootstrap_servers();
    cluster.inject(
        Fault::error(ApiKey::Produce, ErrorCode::NotLeaderOrFollower)
            .on_partition("t", 0)
            .times(3),
    );
    produce(&b, "t", 50, &[]).await;
    assert_eq!(cluster.end_offset("t", 0), Some(50));
    let produces = cluster.requests().iter().filter(|r| r.api == ApiKey::Produce).count();
    assert!(
        produces >= 4,
        "three refused, then accepted: {produces} produce requests"
    );
    // A connection closed before the request was handled: retried, written once.
    cluster.inject(Fault::close_connection(ApiKey::Produce));
    produce(&b, "t", 20, &[]).await;
    assert_eq!(cluster.end_offset("t", 0), Some(70));
    // The answer lost after the records were written: the idempotent retry is answered
    // with the first write's offsets, nothing is written twice.
    cluster.inject(Fault::drop_response(ApiKey::Produce).times(2));
    produce(&b, "t", 20, &[]).await;
    assert_eq!(cluster.end_offset("t", 0), Some(90));
    // Without idempotence the same loss writes the records twice (what the fake is for:
    // showing the difference).
    cluster.inject(Fault::drop_response(ApiKey::Produce));
    produce(&b, "t", 1, &[("enable.idempotence", "false"), ("linger.ms", "0")]).await;
    assert_eq!(cluster.end_offset("t", 0), Some(92));
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_and_deletes_topics_and_errors_are_the_brokers() {
    let cluster = FakeCluster::builder().brokers(2).start().await.unwrap();
    let admin = Admin::connect(ClientConfig::new(cluster.bootstrap_servers()))
        .await
        .unwrap();
    admin.create_topics(&[NewTopic::new("a", 3)]).await.unwrap();
    let e = admin.create_topics(&[NewTopic::new("a", 3)]).await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::TopicAlreadyExists), "{e}");
    let e = admin
        .create_topics(&[NewTopic {
            replication_factor: Some(3),
            ..NewTopic::new("b", 1)
        }])
        .await
        .unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::InvalidReplicationFactor), "{e}");
    let topics = admin.list_topics(false).await.unwrap();
    assert!(topics.iter().any(|t| t == "a"), "{topics:?}");
    admin.delete_topics(&["a"]).await.unwrap();
    assert_eq!(cluster.end_offset("a", 0), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_leader_moves_its_partitions_and_the_producer_follows() {
    let mut cluster = FakeCluster::builder()
        .brokers(3)
        .topic("t", 3, 3)
        .start()
        .await
        .unwrap();
    let b = cluster.bootstrap_servers();
    produce(&b, "t", 30, &[]).await;
    cluster.stop_broker(1);
    produce(&b, "t", 30, &[]).await;
    let total: i64 = (0..3).map(|p| cluster.end_offset("t", p).unwrap()).sum();
    assert_eq!(total, 60);
    cluster.start_broker(1).await.unwrap();
    assert!(cluster.move_leader("t", 0, 1));
    let got = consume(&b, "t", "g2", 60).await;
    assert_eq!(got.values().map(Vec::len).sum::<usize>(), 60);
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_plain_and_scram_and_a_wrong_password() {
    let cluster = FakeCluster::builder()
        .topic("t", 1, 1)
        .sasl_user("alice", "alice-secret")
        .start()
        .await
        .unwrap();
    let b = cluster.bootstrap_servers();
    let config = |mechanism: &str, password: &str| {
        let mut c = ClientConfig::new(&b);
        c.set("security.protocol", "SASL_PLAINTEXT").unwrap();
        c.set("sasl.mechanism", mechanism).unwrap();
        c.set("sasl.username", "alice").unwrap();
        c.set("sasl.password", password).unwrap();
        c.set("request.timeout.ms", "5000").unwrap();
        c
    };
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let t = std::time::Instant::now();
        let admin = Admin::connect(config(mechanism, "alice-secret")).await.unwrap();
        let topics = admin.list_topics(false).await.unwrap();
        assert_eq!(topics, ["t"], "{mechanism}");
        let e = Admin::connect(config(mechanism, "wrong")).await.unwrap_err();
        assert_eq!(e.kind(), strom_client::ErrorKind::Authentication, "{mechanism}: {e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{mechanism}");
    }
    let t = std::time::Instant::now();
    // Without SASL the broker closes the connection at the first request after ApiVersions.
    let mut plain = ClientConfig::new(&b);
    plain.set("request.timeout.ms", "2000").unwrap();
    plain.set("default.api.timeout.ms", "2000").unwrap();
    let e = match Admin::connect(plain).await {
        Ok(a) => a.list_topics(false).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(e.to_string().contains("security.protocol=SASL_PLAINTEXT"), "{e}");
}

/// Ten runs: the first member's commit, right after it revoked half its partitions, can race
/// the heartbeat that moves it to its next epoch (CI saw STALE_MEMBER_EPOCH here once).
#[tokio::test(flavor = "multi_thread")]
async fn kip848_members_share_the_partitions_and_take_over_from_one_that_leaves() {
    for run in 0..10 {
        share_and_take_over(&format!("g848-{run}")).await;
    }
}

async fn share_and_take_over(group: &str) {
    use std::collections::BTreeSet;
    let cluster = FakeCluster::builder()
        .topic("t", 6, 1)
        .consumer_group_timing(Duration::from_millis(200), Duration::from_secs(6))
        .start()
        .await
        .unwrap();
    let b = cluster.bootstrap_servers();
    produce(&b, "t", 600, &[]).await;
    let member = || {
        let mut cc = ConsumerConfig::new(&b);
        cc.set("group.id", group).unwrap();
        cc.set("group.protocol", "consumer").unwrap();
        cc.set("auto.offset.reset", "earliest").unwrap();
        cc.set("max.poll.records", "20").unwrap();
        cc
    };
    let mut a = Consumer::new(member()).await.unwrap();
    let mut c2 = Consumer::new(member()).await.unwrap();
    a.subscribe(&["t"]).unwrap();
    c2.subscribe(&["t"]).unwrap();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Both poll until both have partitions, disjoint and covering all six.
    loop {
        assert!(
            Instant::now() < deadline,
            "a {:?} b {:?}",
            a.assignment(),
            c2.assignment()
        );
        for c in [&mut a, &mut c2] {
            for r in c.poll(Duration::from_millis(50)).await.unwrap() {
                seen.insert(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
            }
        }
        let (x, y): (BTreeSet<_>, BTreeSet<_>) = (
            a.assignment().into_iter().collect(),
            c2.assignment().into_iter().collect(),
        );
        assert!(x.is_disjoint(&y), "a partition owned twice: {x:?} {y:?}");
        if x.len() == 3 && y.len() == 3 {
            break;
        }
    }
    a.commit_sync().await.unwrap();
    // a leaves: c2 takes everything and reads what is left.
    a.close().await.unwrap();
    while seen.len() < 600 {
        assert!(
            Instant::now() < deadline,
            "seen {} of 600; c2 has {:?}",
            seen.len(),
            c2.assignment()
        );
        for r in c2.poll(Duration::from_millis(50)).await.unwrap() {
            seen.insert(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(c2.assignment().len(), 6);
    c2.close().await.unwrap();
}

/// A KIP-848 commit can race the member's own heartbeat: the coordinator moved the member to
/// a new epoch a moment before and refuses the commit with STALE_MEMBER_EPOCH. The client
/// commits again under the new epoch when the member still owns the partitions, and never
/// for a partition it gave up.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_refused_for_a_stale_epoch_is_sent_again_only_for_partitions_still_owned() {
    use strom_client::{OffsetAndMetadata, TopicPartition};
    let cluster = FakeCluster::builder()
        .topic("t", 2, 1)
        .topic("u", 2, 1)
        .consumer_group_timing(Duration::from_millis(200), Duration::from_secs(6))
        .start()
        .await
        .unwrap();
    let mut cc = ConsumerConfig::new(cluster.bootstrap_servers());
    cc.set("group.id", "gstale").unwrap();
    cc.set("group.protocol", "consumer").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    cc.set("default.api.timeout.ms", "8000").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    let (t0, t1, u0, u1) = (
        TopicPartition::new("t", 0),
        TopicPartition::new("t", 1),
        TopicPartition::new("u", 0),
        TopicPartition::new("u", 1),
    );
    c.subscribe(&["t"]).unwrap();
    poll_until_assigned(&mut c, vec![t0.clone(), t1.clone()]).await;
    let at = |offset| {
        BTreeMap::from([(
            t0.clone(),
            OffsetAndMetadata {
                offset,
                leader_epoch: None,
                metadata: String::new(),
            },
        )])
    };
    let commits = || {
        cluster
            .requests()
            .iter()
            .filter(|r| r.api == ApiKey::OffsetCommit)
            .count()
    };

    // The member gains partitions (a new epoch) and keeps t-0: the commit goes through.
    cluster.inject(Fault::error(ApiKey::OffsetCommit, ErrorCode::StaleMemberEpoch));
    let before = commits();
    let h = c.handle().unwrap();
    let offsets = at(1);
    let commit = tokio::spawn(async move { h.commit(&offsets).await });
    while commits() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.subscribe(&["t", "u"]).unwrap();
    poll_until_assigned(&mut c, vec![t0.clone(), t1.clone(), u0.clone(), u1.clone()]).await;
    commit.await.unwrap().unwrap();
    assert_eq!(
        commits(),
        before + 2,
        "refused once, then sent again under the new epoch"
    );
    assert_eq!(c.committed(std::slice::from_ref(&t0)).await.unwrap()[&t0].offset, 1);

    // The member gives t-0 up (a new epoch without it): the refusal stands, at once.
    cluster.inject(Fault::error(ApiKey::OffsetCommit, ErrorCode::StaleMemberEpoch));
    let before = commits();
    let h = c.handle().unwrap();
    let offsets = at(2);
    let started = Instant::now();
    let commit = tokio::spawn(async move { h.commit(&offsets).await });
    while commits() == before {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.subscribe(&["u"]).unwrap();
    poll_until_assigned(&mut c, vec![u0, u1]).await;
    let e = commit.await.unwrap().unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::StaleMemberEpoch), "{e}");
    assert!(started.elapsed() < Duration::from_secs(6), "{e}");
    assert_eq!(commits(), before + 1, "never sent again for a partition given up");
    assert_eq!(c.committed(std::slice::from_ref(&t0)).await.unwrap()[&t0].offset, 1);
    c.close().await.unwrap();
}

/// Polls until `c` owns exactly `want`.
async fn poll_until_assigned(c: &mut Consumer, mut want: Vec<strom_client::TopicPartition>) {
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.poll(Duration::from_millis(50)).await.unwrap();
        let mut have = c.assignment();
        have.sort();
        if have == want {
            return;
        }
        assert!(Instant::now() < deadline, "assignment {have:?}, waiting for {want:?}");
    }
}
