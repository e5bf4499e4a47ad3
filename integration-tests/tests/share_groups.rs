//! Share groups (KIP-932) against the broker: members of one share group split the records
//! of a one-partition topic, each record delivered to one member at a time and seen once
//! when accepted; released records come back with a higher delivery count, rejected ones
//! never; explicit mode insists on an acknowledgement per record; commits report per
//! partition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig, ShareRecord};
use strom_client::{
    Admin, AlterConfigOp, ClientConfig, ConfigResource, ErrorKind, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

/// A topic with `n` records `r0..`, and a share group that starts at the earliest offset
/// (share groups start at the latest by default: `share.auto.offset.reset`).
async fn setup(prefix: &str, n: usize) -> (String, String) {
    setup_batched(prefix, n, 16_384).await
}

/// [`setup`] with the producer's `batch.size` (small ones: many batches, which the broker
/// acquires one at a time).
async fn setup_batched(prefix: &str, n: usize, batch_size: usize) -> (String, String) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic(prefix);
    let group = format!("{topic}-share");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    admin
        .incremental_alter_configs(
            &ConfigResource::Group(group.clone()),
            &[AlterConfigOp::Set("share.auto.offset.reset".into(), "earliest".into())],
            false,
        )
        .await
        .unwrap();
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("batch.size", &batch_size.to_string()).unwrap();
    pc.set("linger.ms", "0").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(
            producer
                .send(ProducerRecord::new(&topic, format!("r{i}")))
                .await
                .unwrap(),
        );
    }
    for f in pending {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
    (topic, group)
}

fn config(group: &str, extra: &[(&str, &str)]) -> ShareConsumerConfig {
    let mut c = ShareConsumerConfig::new(&broker().bootstrap, group);
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

fn value(r: &ShareRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_split_one_partition_and_see_every_record_once() {
    init_test_logging();
    const N: usize = 600;
    // About ten records a batch: the broker acquires whole batches.
    let (topic, group) = setup_batched("share-split", N, 200).await;
    let seen: Arc<Mutex<BTreeMap<String, Vec<usize>>>> = Arc::default();
    let mut members = Vec::new();
    for m in 0..3 {
        let (topic, group, seen) = (topic.clone(), group.clone(), seen.clone());
        members.push(tokio::spawn(async move {
            let mut c = ShareConsumer::new(config(&group, &[("max.poll.records", "10")]))
                .await
                .unwrap();
            c.subscribe(&[&topic]);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut mine = 0;
            while seen.lock().unwrap().len() < N && Instant::now() < deadline {
                let records = c.poll(Duration::from_millis(500)).await.unwrap();
                for r in &records {
                    assert_eq!(r.delivery_count, 1, "nothing was released: {r:?}");
                    seen.lock().unwrap().entry(value(r)).or_default().push(m);
                }
                mine += records.len();
                // Work takes time: the other members get their share meanwhile.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c.close().await.unwrap();
            mine
        }));
    }
    let mut per_member = Vec::new();
    for m in members {
        per_member.push(m.await.unwrap());
    }
    let seen = seen.lock().unwrap();
    let twice: Vec<_> = seen.iter().filter(|(_, ms)| ms.len() > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {:?}", &twice[..twice.len().min(5)]);
    assert_eq!(seen.len(), N, "records seen");
    assert!(
        per_member.iter().all(|n| *n > 0),
        "every member got work: {per_member:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn released_records_come_back_rejected_ones_never() {
    init_test_logging();
    let (topic, group) = setup("share-ack", 5).await;
    let mut c = ShareConsumer::new(config(&group, &[("share.acknowledgement.mode", "explicit")]))
        .await
        .unwrap();
    c.subscribe(&[&topic]);
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.len() < 5 {
        assert!(Instant::now() < deadline, "got {} of 5 records", first.len());
        let got = c.poll(Duration::from_millis(500)).await.unwrap();
        for r in &got {
            // r0 released, r1 rejected, the rest accepted.
            let kind = match value(r).as_str() {
                "r0" => AcknowledgeType::Release,
                "r1" => AcknowledgeType::Reject,
                _ => AcknowledgeType::Accept,
            };
            c.acknowledge(r, kind).unwrap();
        }
        first.extend(got);
    }
    // Acknowledged twice, or never delivered: IllegalState, naming the record.
    let e = c.acknowledge(&first[2], AcknowledgeType::Accept).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    assert!(e.to_string().contains("offset 2"), "{e}");
    let results = c.commit_sync().await.unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results.values().all(Result::is_ok), "{results:?}");

    // r0 comes back, delivered a second time; r1 never does.
    let again = loop {
        assert!(Instant::now() < deadline, "r0 was not redelivered");
        let got = c.poll(Duration::from_millis(500)).await.unwrap();
        if !got.is_empty() {
            break got;
        }
    };
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!((value(&again[0]), again[0].delivery_count), ("r0".to_owned(), 2));
    // Explicit mode: polling with it unacknowledged is an error.
    let e = c.poll(Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    c.acknowledge(&again[0], AcknowledgeType::Accept).unwrap();
    assert!(
        c.poll(Duration::from_secs(1)).await.unwrap().is_empty(),
        "r1 stays rejected"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_mode_refuses_explicit_acknowledgements_and_settings_that_do_not_apply() {
    init_test_logging();
    let (topic, group) = setup("share-implicit", 3).await;
    let mut c = ShareConsumer::new(config(&group, &[])).await.unwrap();
    c.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(Instant::now() < deadline);
        got.extend(c.poll(Duration::from_millis(500)).await.unwrap());
    }
    let e = c.acknowledge(&got[0], AcknowledgeType::Accept).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    // The next poll accepted them: a second member sees nothing.
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.close().await.unwrap();
    let mut other = ShareConsumer::new(config(&group, &[])).await.unwrap();
    other.subscribe(&[&topic]);
    assert!(other.poll(Duration::from_secs(2)).await.unwrap().is_empty());
    other.close().await.unwrap();

    let mut bad = ShareConsumerConfig::new(&broker().bootstrap, &group);
    for key in [
        "auto.offset.reset",
        "isolation.level",
        "enable.auto.commit",
        "group.instance.id",
    ] {
        let e = bad.set(key, "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{key}: {e}");
        assert!(e.to_string().contains(key), "{e}");
    }
    assert!(bad.set("share.acknowledgement.mode", "sometimes").is_err());
    assert!(bad.set("no.such.key", "1").is_err());
}

/// Polls until `want` records came (or 30 s), accepting each (explicit mode) unless
/// `kind` says otherwise for it.
async fn take(c: &mut ShareConsumer, want: usize, kind: impl Fn(&ShareRecord) -> AcknowledgeType) -> Vec<ShareRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "got {} of {want} records: {got:?}",
            got.len()
        );
        for r in c.poll(Duration::from_millis(500)).await.unwrap() {
            c.acknowledge(&r, kind(&r)).unwrap();
            got.push(r);
        }
    }
    got
}

async fn group_config(group: &str, key: &str, value: &str) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin
        .incremental_alter_configs(
            &ConfigResource::Group(group.to_owned()),
            &[AlterConfigOp::Set(key.into(), value.into())],
            false,
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_delivery_count_limit_archives_a_record_released_too_often() {
    init_test_logging();
    let (topic, group) = setup("share-limit", 1).await;
    group_config(&group, "share.delivery.count.limit", "2").await;
    let explicit = [("share.acknowledgement.mode", "explicit")];
    let mut c = ShareConsumer::new(config(&group, &explicit)).await.unwrap();
    c.subscribe(&[&topic]);
    let first = take(&mut c, 1, |_| AcknowledgeType::Release).await;
    let second = take(&mut c, 1, |_| AcknowledgeType::Release).await;
    assert_eq!((first[0].delivery_count, second[0].delivery_count), (1, 2));
    // Released at the limit: archived, not delivered a third time, to anyone.
    assert!(c.poll(Duration::from_secs(2)).await.unwrap().is_empty());
    c.close().await.unwrap();
    let mut other = ShareConsumer::new(config(&group, &[])).await.unwrap();
    other.subscribe(&[&topic]);
    assert!(other.poll(Duration::from_secs(2)).await.unwrap().is_empty());
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_share_consumption_sees_no_aborted_record() {
    init_test_logging();
    let (topic, group) = setup("share-rc", 0).await;
    group_config(&group, "share.isolation.level", "read_committed").await;
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.transactional_id = Some(format!("{topic}-tx"));
    let p = strom_client::TransactionalProducer::new(pc).await.unwrap();
    p.init_transactions().await.unwrap();
    for (round, commit) in [(0, true), (1, false), (2, true), (3, false)] {
        p.begin_transaction().await.unwrap();
        for i in 0..5 {
            let _d = p
                .send(ProducerRecord::new(&topic, format!("t{round}-{i}-{commit}")))
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
    let mut c = ShareConsumer::new(config(&group, &[])).await.unwrap();
    c.subscribe(&[&topic]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 && Instant::now() < deadline {
        got.extend(c.poll(Duration::from_millis(500)).await.unwrap().iter().map(value));
    }
    // Nothing more comes: the aborted ones are not for consumers.
    got.extend(c.poll(Duration::from_secs(2)).await.unwrap().iter().map(value));
    got.sort();
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(got.iter().all(|v| v.ends_with("-true")), "{got:?}");
    c.close().await.unwrap();
}

/// A member that holds records past their acquisition lock loses them to another member
/// (delivery count 2), and its late acknowledgement is refused, naming the partition; a
/// member that dies (its connections close, as on SIGKILL) gives its records back at once.
#[tokio::test(flavor = "multi_thread")]
async fn held_records_come_back_after_the_lock_or_when_their_member_dies() {
    init_test_logging();
    let (topic, group) = setup("share-lock", 20).await;
    // The shortest lock the broker allows for a group (group.share.min.record.lock.duration.ms).
    group_config(&group, "share.record.lock.duration.ms", "15000").await;
    let explicit = [("share.acknowledgement.mode", "explicit")];
    let mut slow = ShareConsumer::new(config(&group, &explicit)).await.unwrap();
    slow.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held = Vec::new();
    while held.is_empty() {
        assert!(Instant::now() < deadline);
        held = slow.poll(Duration::from_millis(500)).await.unwrap();
    }
    let acquired = Instant::now();
    let mut other = ShareConsumer::new(config(&group, &explicit)).await.unwrap();
    other.subscribe(&[&topic]);
    let mut back = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while back.len() < held.len() {
        assert!(Instant::now() < deadline, "{} of {} came back", back.len(), held.len());
        for r in other.poll(Duration::from_millis(500)).await.unwrap() {
            other.acknowledge(&r, AcknowledgeType::Release).unwrap();
            if r.delivery_count == 2 {
                back.push(r);
            }
        }
    }
    assert!(
        acquired.elapsed() >= Duration::from_secs(14),
        "held records came back after {:?}, before their 15 s lock expired",
        acquired.elapsed()
    );
    // Too late: the slow member's acknowledgement is refused for its partition.
    for r in &held {
        slow.acknowledge(r, AcknowledgeType::Accept).unwrap();
    }
    let results = slow.commit_sync().await.unwrap();
    let e = results.values().next().unwrap().as_ref().unwrap_err();
    assert_eq!(e.kafka_code(), Some(strom_client::ErrorCode::InvalidRecordState), "{e}");
    assert!(e.to_string().contains(&topic), "{e}");
    other.commit_sync().await.unwrap();

    // A member that dies holding records: they are back at once (delivery count 3 now).
    let mut dying = ShareConsumer::new(config(&group, &explicit)).await.unwrap();
    dying.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held = Vec::new();
    while held.is_empty() {
        assert!(Instant::now() < deadline);
        held = dying.poll(Duration::from_millis(500)).await.unwrap();
        for r in slow.poll(Duration::from_millis(10)).await.unwrap() {
            slow.acknowledge(&r, AcknowledgeType::Release).unwrap();
        }
        for r in other.poll(Duration::from_millis(10)).await.unwrap() {
            other.acknowledge(&r, AcknowledgeType::Release).unwrap();
        }
    }
    drop(dying);
    let died = Instant::now();
    drop(slow);
    let mut seen = 0;
    while seen < held.len() {
        assert!(
            died.elapsed() < Duration::from_secs(10),
            "the dead member's records did not come back"
        );
        for r in other.poll(Duration::from_millis(500)).await.unwrap() {
            other.acknowledge(&r, AcknowledgeType::Accept).unwrap();
            seen += usize::from(held.iter().any(|h| h.offset == r.offset));
        }
    }
    other.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn strom_and_java_share_consumers_split_the_work() {
    init_test_logging();
    const N: usize = 400;
    let (topic, group) = setup_batched("share-java", 0, 200).await;
    let java = {
        let (topic, group) = (topic.clone(), group.clone());
        std::thread::spawn(move || {
            strom_integration_tests::run_java_tool(
                "org.apache.kafka.tools.consumer.ConsoleShareConsumer",
                &[
                    "--bootstrap-server",
                    &broker().bootstrap,
                    "--topic",
                    &topic,
                    "--group",
                    &group,
                    "--timeout-ms",
                    "20000",
                ],
            )
        })
    };
    let mut c = ShareConsumer::new(config(&group, &[("max.poll.records", "10")]))
        .await
        .unwrap();
    c.subscribe(&[&topic]);
    // Both members in the group, then the records, a few at a time.
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(c.poll(Duration::from_millis(200)).await.unwrap().is_empty());
        // Assigned, both (a new member gets its assignment with a later heartbeat, up to
        // group.share.heartbeat.interval.ms after joining).
        let both = admin
            .describe_share_group(&group)
            .await
            .is_ok_and(|d| d.members.len() == 2 && d.members.iter().all(|m| !m.assignment.is_empty()));
        if both && !c.assignment().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "Java's share consumer did not join");
    }
    let producer = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut pc = ProducerConfig::new(&broker().bootstrap);
            pc.set("linger.ms", "0").unwrap();
            let p = Producer::new(pc).await.unwrap();
            for i in 0..N {
                p.send(ProducerRecord::new(&topic, format!("r{i}")))
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                if i % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            p.close().await.unwrap();
        })
    };
    let mut mine: Vec<String> = Vec::new();
    let mut quiet_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && quiet_since.elapsed() < Duration::from_secs(5) {
        let got = c.poll(Duration::from_millis(500)).await.unwrap();
        if !got.is_empty() {
            quiet_since = Instant::now();
        }
        mine.extend(got.iter().map(value));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    producer.await.unwrap();
    c.close().await.unwrap();
    let out = java.join().unwrap();
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let mut all: Vec<String> = mine.iter().chain(&theirs).cloned().collect();
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a record went to both");
    assert_eq!(all.len(), N, "Strom {} + Java {} records", mine.len(), theirs.len());
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "Strom {} Java {}",
        mine.len(),
        theirs.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_without_share_groups_says_so() {
    init_test_logging();
    let b = strom_integration_tests::PrivateBroker::start_with(
        24592,
        &[("STROM_KAFKA_FORMAT_ARGS", "--feature share.version=0")],
    );
    let mut c = ShareConsumer::new(ShareConsumerConfig::new(&b.bootstrap, "no-shares"))
        .await
        .unwrap();
    c.subscribe(&["anything"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        match c.poll(Duration::from_millis(500)).await {
            Err(e) => break e,
            Ok(r) => assert!(r.is_empty() && Instant::now() < deadline, "no error within 20 s"),
        }
    };
    assert!(e.to_string().contains("share"), "{e}");
    eprintln!("{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn share_group_admin_describes_resets_and_deletes() {
    init_test_logging();
    let (topic, group) = setup("share-admin", 5).await;
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let mut c = ShareConsumer::new(config(&group, &[])).await.unwrap();
    c.subscribe(&[&topic]);
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 5 {
        assert!(Instant::now() < deadline);
        got += c.poll(Duration::from_millis(500)).await.unwrap().len();
    }
    let d = admin.describe_share_group(&group).await.unwrap();
    assert_eq!((d.state.as_str(), d.members.len()), ("Stable", 1), "{d:?}");
    assert_eq!(d.members[0].member_id, c.member_id());
    assert_eq!(d.members[0].assignment.get(&topic), Some(&vec![0]), "{d:?}");
    assert_eq!(d.members[0].subscribed_topics, vec![topic.clone()]);
    // Offsets cannot move under a member.
    let e = admin
        .alter_share_group_offsets(&group, &topic, &[(0, 0)])
        .await
        .unwrap_err();
    assert!(e.kafka_code().is_some(), "{e}");
    c.close().await.unwrap();

    // Empty: back to the start, and the five records come again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin.describe_share_group(&group).await.unwrap().state != "Empty" {
        assert!(Instant::now() < deadline, "the group did not become empty");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin
        .alter_share_group_offsets(&group, &topic, &[(0, 0)])
        .await
        .unwrap();
    let starts = admin.share_group_offsets(&group).await.unwrap();
    assert_eq!(starts.get(&(topic.clone(), 0)), Some(&0), "{starts:?}");
    let mut again = ShareConsumer::new(config(&group, &[])).await.unwrap();
    again.subscribe(&[&topic]);
    let mut n = 0;
    while n < 5 {
        assert!(Instant::now() < deadline, "{n} records after the reset");
        n += again.poll(Duration::from_millis(500)).await.unwrap().len();
    }
    again.close().await.unwrap();
    while admin.describe_share_group(&group).await.unwrap().state != "Empty" {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    admin.delete_share_group_offsets(&group, &[&topic]).await.unwrap();
    assert!(admin.share_group_offsets(&group).await.unwrap().is_empty());
    admin.delete_groups(&[&group]).await.unwrap();
    let e = admin.describe_share_group(&group).await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(strom_client::ErrorCode::GroupIdNotFound), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_of_records_and_a_topic_deleted_under_the_consumer() {
    use futures_util::StreamExt;
    init_test_logging();
    let (topic, group) = setup("share-stream", 50).await;
    let mut c = ShareConsumer::new(config(&group, &[])).await.unwrap();
    c.subscribe(&[&topic]);
    {
        let stream = c.stream();
        futures_util::pin_mut!(stream);
        let mut seen = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.len() < 50 {
            assert!(Instant::now() < deadline, "{} of 50", seen.len());
            let r = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(seen.insert(value(&r)), "twice: {r:?}");
        }
    }
    // The topic goes away under the member: polls go on (nothing to fetch, no panic, no
    // hang) and close works.
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.delete_topics(&[&topic]).await.unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let polled = tokio::time::timeout(Duration::from_secs(5), c.poll(Duration::from_millis(300))).await;
        match polled.expect("a poll hung after the topic was deleted") {
            Ok(r) => assert!(r.is_empty(), "{r:?}"),
            Err(e) => assert!(e.to_string().contains(&topic) || e.kafka_code().is_some(), "{e}"),
        }
    }
    tokio::time::timeout(Duration::from_secs(10), c.close())
        .await
        .unwrap()
        .unwrap();

    // Explicit mode has no stream.
    let mut explicit = ShareConsumer::new(config(&group, &[("share.acknowledgement.mode", "explicit")]))
        .await
        .unwrap();
    let e = {
        let stream = explicit.stream();
        futures_util::pin_mut!(stream);
        stream.next().await.unwrap().unwrap_err()
    };
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    explicit.close().await.unwrap();
}

/// The broker acquires whole batches; a member that works through them slowly (ten records
/// a poll, a poll every 0.6 s here) still acknowledges what it did every few seconds, before
/// the rest of the batch is handed out, so the acquisition lock cannot expire on records
/// already done.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_member_acknowledges_while_working_through_a_batch() {
    init_test_logging();
    let (topic, group) = setup("share-slow", 0).await;
    // One batch: the producer lingers until all hundred are in it.
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("linger.ms", "500").unwrap();
    let p = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..100 {
        pending.push(p.send(ProducerRecord::new(&topic, format!("r{i}"))).await.unwrap());
    }
    for f in pending {
        f.await.unwrap();
    }
    p.close().await.unwrap();
    let mut c = ShareConsumer::new(config(&group, &[("max.poll.records", "10")]))
        .await
        .unwrap();
    let polled = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acked_at: Arc<Mutex<Vec<usize>>> = Arc::default();
    {
        let (polled, acked_at) = (polled.clone(), acked_at.clone());
        c.set_acknowledgement_commit_callback(Box::new(move |_, outcome| {
            assert!(outcome.is_ok(), "{outcome:?}");
            acked_at
                .lock()
                .unwrap()
                .push(polled.load(std::sync::atomic::Ordering::SeqCst));
        }));
    }
    c.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while polled.load(std::sync::atomic::Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline);
        let got = c.poll(Duration::from_millis(500)).await.unwrap();
        polled.fetch_add(got.len(), std::sync::atomic::Ordering::SeqCst);
        if !got.is_empty() {
            tokio::time::sleep(Duration::from_millis(600)).await;
        }
    }
    let acked_at = acked_at.lock().unwrap().clone();
    assert!(
        acked_at.iter().any(|n| *n > 0 && *n < 100),
        "acknowledgements went out only after the batch was done: at {acked_at:?} records"
    );
    c.close().await.unwrap();
}

/// KIP-1222: a member renewing the records it still works on keeps them past the 15 s
/// acquisition lock. Each poll sends the renewals and returns the renewed records again
/// (same delivery count); another member polling all the while gets none of them; once
/// accepted they are gone for good. `share.acquire.mode=record_limit` fetches no more than
/// `max.poll.records`.
#[tokio::test(flavor = "multi_thread")]
async fn renewed_records_stay_with_their_member_past_the_lock() {
    init_test_logging();
    let (topic, group) = setup_batched("share-renew", 6, 100).await;
    group_config(&group, "share.record.lock.duration.ms", "15000").await;
    let explicit = ("share.acknowledgement.mode", "explicit");
    let opts = [
        explicit,
        ("share.acquire.mode", "record_limit"),
        ("max.poll.records", "3"),
    ];
    let mut worker = ShareConsumer::new(config(&group, &opts)).await.unwrap();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let failures = failures.clone();
        worker.set_acknowledgement_commit_callback(Box::new(move |tp, outcome| {
            if let Err(e) = outcome {
                failures.lock().unwrap().push(format!("{tp:?}: {e}"));
            }
        }));
    }
    worker.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held: BTreeMap<i64, i16> = BTreeMap::new();
    while held.is_empty() {
        assert!(Instant::now() < deadline, "nothing delivered");
        for r in worker.poll(Duration::from_millis(500)).await.unwrap() {
            held.insert(r.offset, r.delivery_count);
            worker.acknowledge(&r, AcknowledgeType::Renew).unwrap();
        }
    }
    let acquired = Instant::now();
    assert!(
        held.len() <= 3,
        "record_limit fetched more than max.poll.records: {held:?}"
    );
    assert_eq!(worker.acquisition_lock_timeout(), Some(Duration::from_secs(15)));
    let mut other = ShareConsumer::new(config(&group, &[explicit])).await.unwrap();
    other.subscribe(&[&topic]);
    let mut others: BTreeMap<i64, i16> = BTreeMap::new();
    let mut passes = 0;
    while acquired.elapsed() < Duration::from_secs(22) {
        let again = worker.poll(Duration::from_millis(500)).await.unwrap();
        let offsets: BTreeMap<i64, i16> = again.iter().map(|r| (r.offset, r.delivery_count)).collect();
        assert_eq!(offsets, held, "a pass returned other than the renewed records");
        for r in &again {
            worker.acknowledge(r, AcknowledgeType::Renew).unwrap();
        }
        passes += 1;
        // The other member takes what the worker does not hold, and none of what it holds.
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            for r in other.poll(Duration::from_millis(500)).await.unwrap() {
                assert!(
                    !held.contains_key(&r.offset),
                    "offset {} was renewed, yet delivered to another member",
                    r.offset
                );
                others.insert(r.offset, r.delivery_count);
                other.acknowledge(&r, AcknowledgeType::Accept).unwrap();
            }
        }
    }
    assert!(passes >= 5, "{passes} renewal passes");
    assert!(failures.lock().unwrap().is_empty(), "{:?}", failures.lock().unwrap());
    assert_eq!(held.len() + others.len(), 6, "held {held:?}, other {others:?}");
    // Done: the renewed records are accepted and never seen again.
    let last = worker.poll(Duration::from_millis(500)).await.unwrap();
    assert_eq!(last.len(), held.len());
    for r in &last {
        worker.acknowledge(r, AcknowledgeType::Accept).unwrap();
    }
    let results = worker.commit_sync().await.unwrap();
    assert!(results.values().all(Result::is_ok), "{results:?}");
    assert!(worker.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let got = other.poll(Duration::from_millis(500)).await.unwrap();
        assert!(got.is_empty(), "accepted records delivered again: {got:?}");
    }
    worker.close().await.unwrap();
    other.close().await.unwrap();
    // Renewing needs explicit mode; an unknown acquire mode is refused by name.
    let mut implicit = ShareConsumer::new(config(&group, &[])).await.unwrap();
    assert_eq!(
        implicit
            .acknowledge(&last[0], AcknowledgeType::Renew)
            .unwrap_err()
            .kind(),
        ErrorKind::IllegalState
    );
    implicit.close().await.unwrap();
    let e = ShareConsumerConfig::new("x:1", "g")
        .set("share.acquire.mode", "greedy")
        .unwrap_err();
    assert!(e.to_string().contains("share.acquire.mode"), "{e}");
}

/// Records acquired from a partition the member is no longer assigned (its subscription
/// moved on) are still acknowledged: the broker accepts them, and another member never gets
/// them, not even after their lock would have expired.
#[tokio::test(flavor = "multi_thread")]
async fn records_of_a_revoked_partition_are_still_acknowledged() {
    init_test_logging();
    let (topic, group) = setup("share-revoked", 5).await;
    let (elsewhere, _) = setup("share-revoked-next", 0).await;
    group_config(&group, "share.record.lock.duration.ms", "15000").await;
    let explicit = [("share.acknowledgement.mode", "explicit")];
    let mut a = ShareConsumer::new(config(&group, &explicit)).await.unwrap();
    a.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut held = Vec::new();
    while held.len() < 5 {
        assert!(Instant::now() < deadline, "got {held:?}");
        held.extend(a.poll(Duration::from_millis(500)).await.unwrap());
        // Not acknowledged yet: hold them until the partition is revoked.
        if held.len() < 5 && !held.is_empty() {
            for r in &held {
                a.acknowledge(r, AcknowledgeType::Renew).unwrap();
            }
            held.clear();
        }
    }
    a.subscribe(&[&elsewhere]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while a.assignment().iter().any(|tp| *tp.topic == *topic) {
        assert!(Instant::now() < deadline, "still assigned {:?}", a.assignment());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in &held {
        a.acknowledge(r, AcknowledgeType::Accept).unwrap();
    }
    let results = a.commit_sync().await.unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results.values().all(Result::is_ok), "{results:?}");
    let acked = Instant::now();
    let mut b = ShareConsumer::new(config(&group, &explicit)).await.unwrap();
    b.subscribe(&[&topic]);
    while acked.elapsed() < Duration::from_secs(17) {
        let got = b.poll(Duration::from_millis(500)).await.unwrap();
        assert!(
            got.is_empty(),
            "acknowledged records of a revoked partition came back: {got:?}"
        );
    }
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// `commit_async` sends the acknowledgements without waiting for the broker; their outcomes
/// reach the callback when the next poll (or close) collects them, and nothing is lost: every
/// record is accepted once, in either mode.
#[tokio::test(flavor = "multi_thread")]
async fn commit_async_reports_through_the_callback() {
    init_test_logging();
    let (topic, group) = setup_batched("share-async", 30, 200).await;
    let mut got: Vec<String> = Vec::new();
    for (mode, until) in [("explicit", 15), ("implicit", 30)] {
        let outcomes: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut c = ShareConsumer::new(config(
            &group,
            &[("share.acknowledgement.mode", mode), ("max.poll.records", "4")],
        ))
        .await
        .unwrap();
        {
            let outcomes = outcomes.clone();
            c.set_acknowledgement_commit_callback(Box::new(move |tp, outcome| {
                outcomes
                    .lock()
                    .unwrap()
                    .push(format!("{}-{}: {outcome:?}", tp.topic, tp.partition));
            }));
        }
        c.subscribe(&[&topic]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < until {
            assert!(Instant::now() < deadline, "{mode}: got {}", got.len());
            let records = c.poll(Duration::from_millis(500)).await.unwrap();
            if records.is_empty() {
                continue;
            }
            if mode == "explicit" {
                for r in &records {
                    c.acknowledge(r, AcknowledgeType::Accept).unwrap();
                }
            }
            got.extend(records.iter().map(value));
            outcomes.lock().unwrap().clear();
            c.commit_async().await.unwrap();
            assert!(outcomes.lock().unwrap().is_empty(), "reported before collected");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(outcomes.lock().unwrap().is_empty(), "reported before collected");
            if got.len() >= until {
                break;
            }
            // The next poll collects the answers first.
            let next = c.poll(Duration::from_millis(10)).await.unwrap();
            let reported = outcomes.lock().unwrap().clone();
            assert_eq!(reported, [format!("{topic}-0: Ok(())")], "{mode}");
            if mode == "explicit" {
                for r in &next {
                    c.acknowledge(r, AcknowledgeType::Accept).unwrap();
                }
            }
            got.extend(next.iter().map(value));
        }
        if mode == "explicit" {
            // Dropped without close, its last round never collected: the acknowledgements
            // left anyway (the records it had not handed out come back to the group, and
            // an accepted record that came back would show up twice below).
            c.commit_async().await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(c);
        } else {
            // Close collects the last round.
            c.close().await.unwrap();
            assert!(
                outcomes.lock().unwrap().iter().any(|o| o.ends_with("Ok(())")),
                "{mode}: {:?}",
                outcomes.lock().unwrap()
            );
        }
    }
    // Both members together: all 30 records, each once, and nothing left.
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        (unique.len(), got.len()),
        (30, 30),
        "a record lost or delivered twice: {got:?}"
    );
    let mut c = ShareConsumer::new(config(&group, &[])).await.unwrap();
    c.subscribe(&[&topic]);
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let rest = c.poll(Duration::from_millis(500)).await.unwrap();
        assert!(rest.is_empty(), "accepted records delivered again: {rest:?}");
    }
    c.close().await.unwrap();
}
