//! Fidelity of strom-fake, through the high-level clients: every codec, classic groups
//! (eager and cooperative) joining, committing and leaving, a transaction's consumer offsets,
//! DescribeConfigs, and the transaction admin APIs, each scenario run with the same code and
//! assertions against the real broker and against the fake (see fake_fidelity.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fidelity_util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, ConfigResource, ConfigSource, Consumer, ConsumerConfig, ErrorCode, NewTopic,
    OffsetAndMetadata, Producer, ProducerConfig, ProducerRecord, TopicPartition, TransactionalProducer,
};
use strom_integration_tests::{read_to_end, unique_topic};

use fidelity_util::{on_both, produce_to, topic};

#[tokio::test(flavor = "multi_thread")]
async fn every_codec_round_trips_keys_values_and_headers() {
    on_both(|bootstrap, target| async move {
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let t = topic(&bootstrap, &format!("fidelity-codec-{codec}"), 1).await;
            let mut pc = ProducerConfig::new(&bootstrap);
            pc.set("compression.type", codec).unwrap();
            pc.set("linger.ms", "20").unwrap();
            let p = Producer::new(pc).await.unwrap();
            let mut deliveries = Vec::new();
            for i in 0..300 {
                let value = format!("{codec} value {i} {}", "compressible text ".repeat(i % 7));
                let record = ProducerRecord::new(&t, Bytes::from(value))
                    .key(Bytes::from(format!("k{i}")))
                    .header("n", Bytes::from(i.to_string()))
                    .partition(0);
                deliveries.push(p.send(record).await.unwrap());
            }
            for (i, d) in deliveries.into_iter().enumerate() {
                assert_eq!(d.await.unwrap().offset, i as i64, "{target}/{codec}");
            }
            p.close().await.unwrap();
            let records = read_to_end(admin.client(), &t, false).await;
            assert_eq!(records.len(), 300, "{target}/{codec}");
            for (i, r) in records.iter().enumerate() {
                let want = format!("{codec} value {i} {}", "compressible text ".repeat(i % 7));
                assert_eq!(r.offset, i as i64, "{target}/{codec}");
                assert_eq!(r.value.as_deref(), Some(want.as_bytes()), "{target}/{codec}");
                assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()), "{target}/{codec}");
                let h = r.headers.last(b"n").unwrap();
                assert_eq!(h.value.as_deref(), Some(i.to_string().as_bytes()), "{target}/{codec}");
            }
        }
    })
    .await;
}

/// Polls `consumers` in turn until `done` holds of their assignments, checking after every
/// poll that no partition has two owners; returns what each consumed, by value.
async fn poll_until(
    target: &str,
    consumers: &mut [&mut Consumer],
    consumed: &mut [BTreeSet<String>],
    done: impl Fn(&[BTreeSet<TopicPartition>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for (i, c) in consumers.iter_mut().enumerate() {
            for r in c.poll(Duration::from_millis(50)).await.unwrap() {
                let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
                let g = c.group_metadata().map(|m| m.generation_id);
                assert!(
                    consumed[i].insert(v.clone()),
                    "{target}: member {i} read {v} (offset {}) twice, generation {g:?}",
                    r.offset
                );
            }
        }
        let owned: Vec<BTreeSet<TopicPartition>> =
            consumers.iter().map(|c| c.assignment().into_iter().collect()).collect();
        for (i, a) in owned.iter().enumerate() {
            for b in &owned[i + 1..] {
                assert!(a.is_disjoint(b), "{target}: a partition owned twice: {owned:?}");
            }
        }
        if done(&owned) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{target}: the group did not settle: {owned:?}"
        );
    }
}

/// Two members of a classic group with `strategy`: the first takes every partition, the
/// second joins and they split them, commits carry each member's progress over to the
/// other, and when one leaves the other takes its partitions back from its committed
/// offsets. No record is read twice or missed.
async fn classic_join_commit_leave(strategy: &'static str) {
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-classic", 4).await;
        let values = |p: i32, from: usize| (from..from + 10).map(move |i| format!("p{p}-{i}"));
        for p in 0..4 {
            let batch: Vec<String> = values(p, 0).collect();
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            produce_to(&bootstrap, &t, p, &batch).await;
        }
        let group = unique_topic("fidelity-classic-group");
        let member = || {
            let mut cc = ConsumerConfig::new(&bootstrap);
            cc.set("group.id", &group).unwrap();
            cc.set("group.protocol", "classic").unwrap();
            cc.set("partition.assignment.strategy", strategy).unwrap();
            cc.set("auto.offset.reset", "earliest").unwrap();
            // Only the commit of revoked partitions (and the test's own): an eager rebalance
            // revokes every partition, and without it a member reads again from its last
            // commit what it read in the generation before.
            cc.set("enable.auto.commit", "true").unwrap();
            cc.set("auto.commit.interval.ms", "600000").unwrap();
            cc
        };
        let mut a = Consumer::new(member()).await.unwrap();
        a.subscribe(&[&t]).unwrap();
        let mut consumed = vec![BTreeSet::new(), BTreeSet::new()];
        poll_until(target, &mut [&mut a], &mut consumed[..1], |o| o[0].len() == 4).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumed[0].len() < 40 {
            assert!(Instant::now() < deadline, "{target}: {} of 40", consumed[0].len());
            poll_until(target, &mut [&mut a], &mut consumed[..1], |_| true).await;
        }
        a.commit_sync().await.unwrap();

        let mut b = Consumer::new(member()).await.unwrap();
        b.subscribe(&[&t]).unwrap();
        poll_until(target, &mut [&mut a, &mut b], &mut consumed, |o| {
            o[0].len() == 2 && o[1].len() == 2
        })
        .await;
        // Each member's new records, from the offsets the first committed.
        for p in 0..4 {
            let batch: Vec<String> = values(p, 10).collect();
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            produce_to(&bootstrap, &t, p, &batch).await;
        }
        poll_until(target, &mut [&mut a, &mut b], &mut consumed, |_| true).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while consumed[0].len() + consumed[1].len() < 80 {
            assert!(Instant::now() < deadline, "{target}: {consumed:?}");
            poll_until(target, &mut [&mut a, &mut b], &mut consumed, |_| true).await;
        }
        assert_eq!(
            consumed[1].len(),
            20,
            "{target}: b read only its partitions' new records"
        );
        a.commit_sync().await.unwrap();
        b.commit_sync().await.unwrap();
        b.close().await.unwrap();

        // a takes b's partitions back, from b's commits: only the new records are read.
        for p in 0..4 {
            produce_to(&bootstrap, &t, p, &[&format!("p{p}-last")]).await;
        }
        let lasts: BTreeSet<String> = (0..4).map(|p| format!("p{p}-last")).collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while a.assignment().len() < 4 || !consumed[0].is_superset(&lasts) {
            assert!(
                Instant::now() < deadline,
                "{target}: {:?} {:?}",
                a.assignment(),
                consumed[0]
            );
            poll_until(target, &mut [&mut a], &mut consumed[..1], |_| true).await;
        }
        assert!(
            consumed[0].is_disjoint(&consumed[1]),
            "{target}: a read b's records again"
        );
        assert_eq!(consumed[0].len(), 64, "{target}");
        a.commit_sync().await.unwrap();
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let committed = admin.group_offsets(&group).await.unwrap();
        let want: BTreeMap<(String, i32), i64> = (0..4).map(|p| ((t.clone(), p), 21)).collect();
        assert_eq!(committed, want, "{target}");
        a.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_eager_group_join_commit_leave() {
    classic_join_commit_leave("range").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_cooperative_group_join_commit_leave() {
    classic_join_commit_leave("cooperative-sticky").await;
}

/// A consume-transform-produce step: the output and the input offsets commit together, and
/// an aborted step leaves the group's offsets where they were.
#[tokio::test(flavor = "multi_thread")]
async fn transaction_offsets_commit_with_the_output_or_not_at_all() {
    on_both(|bootstrap, target| async move {
        let out = topic(&bootstrap, "fidelity-txn-out", 1).await;
        let input = topic(&bootstrap, "fidelity-txn-in", 1).await;
        let group = unique_topic("fidelity-txn-group");
        let mut pc = ProducerConfig::new(&bootstrap);
        pc.set("transactional.id", &unique_topic("fidelity-txn-offsets"))
            .unwrap();
        let p = TransactionalProducer::new(pc).await.unwrap();
        p.init_transactions().await.unwrap();
        let meta = strom_client::ConsumerGroupMetadata::new(group.clone());
        let tp = TopicPartition::new(&input, 0);
        let step = |offset: i64, commit: bool| {
            let (p, out, meta, tp) = (&p, &out, &meta, &tp);
            async move {
                p.begin_transaction().await.unwrap();
                let _d = p
                    .send(ProducerRecord::new(out, Bytes::from(format!("at {offset}"))).partition(0))
                    .await
                    .unwrap();
                let offsets = BTreeMap::from([(tp.clone(), OffsetAndMetadata::new(offset))]);
                p.send_offsets_to_transaction(&offsets, meta).await.unwrap();
                if commit {
                    p.commit_transaction().await.unwrap();
                } else {
                    p.abort_transaction().await.unwrap();
                }
            }
        };
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        // The coordinator applies a transaction's offsets after EndTxn returns, as it writes
        // the markers.
        let committed = |want: i64| {
            let (admin, group, input) = (&admin, &group, &input);
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let got = admin
                        .group_offsets(group)
                        .await
                        .unwrap()
                        .get(&(input.clone(), 0))
                        .copied();
                    if got == Some(want) {
                        return;
                    }
                    assert!(Instant::now() < deadline, "{target}: committed {got:?}, not {want}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        step(5, true).await;
        committed(5).await;
        step(9, false).await;
        // Then a commit: if the aborted offsets had been applied, they would show first.
        step(12, true).await;
        committed(12).await;
        let values: Vec<String> = read_to_end(admin.client(), &out, true)
            .await
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(values, ["at 5", "at 12"], "{target}");
        p.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_configs_of_topics_and_brokers() {
    on_both(|bootstrap, target| async move {
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let t = unique_topic("fidelity-configs");
        admin
            .create_topics(&[NewTopic::new(&t, 1)
                .config("retention.ms", "3600000")
                .config("cleanup.policy", "compact")])
            .await
            .unwrap();
        let entries = admin.describe_configs(&ConfigResource::Topic(t.clone())).await.unwrap();
        let get = |k: &str| {
            entries
                .iter()
                .find(|e| e.name == k)
                .unwrap_or_else(|| panic!("{target}: {k}"))
        };
        let retention = get("retention.ms");
        assert_eq!(retention.value.as_deref(), Some("3600000"), "{target}");
        assert_eq!(retention.source, ConfigSource::DynamicTopic, "{target}");
        let policy = get("cleanup.policy");
        assert_eq!(policy.value.as_deref(), Some("compact"), "{target}");
        assert_eq!(
            policy.synonyms.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["cleanup.policy", "log.cleanup.policy"],
            "{target}"
        );
        let segment = get("segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("1073741824"), "{target}");
        assert_eq!(segment.source, ConfigSource::Default, "{target}");
        assert_eq!(get("max.message.bytes").value.as_deref(), Some("1048588"), "{target}");
        assert_eq!(get("compression.type").value.as_deref(), Some("producer"), "{target}");

        // An unknown topic config is refused at creation; an unknown topic cannot be described.
        let bad = unique_topic("fidelity-configs-bad");
        let err = admin
            .create_topics(&[NewTopic::new(&bad, 1).config("no.such.config", "1")])
            .await
            .unwrap_err();
        assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidConfig), "{target}: {err}");
        let err = admin
            .describe_configs(&ConfigResource::Topic(unique_topic("fidelity-configs-none")))
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_code(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "{target}: {err}"
        );

        // A broker describes itself.
        let id = *admin.client().metadata().brokers.keys().next().unwrap();
        let broker = admin.describe_configs(&ConfigResource::Broker(id)).await.unwrap();
        let node = broker.iter().find(|e| e.name == "node.id").unwrap();
        assert_eq!(node.value.as_deref(), Some(id.to_string().as_str()), "{target}");
        assert!(broker.iter().any(|e| e.name == "num.partitions"), "{target}");
    })
    .await;
}

/// IncrementalAlterConfigs of a topic: set, append to and subtract from a list, delete an
/// override, validate-only; and what both refuse (unknown names, values of the wrong type,
/// append to a non-list, an unknown topic).
#[tokio::test(flavor = "multi_thread")]
async fn topic_configs_are_altered_and_refused_alike() {
    use strom_client::AlterConfigOp::{Append, Delete, Set, Subtract};
    on_both(|bootstrap, target| async move {
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let t = topic(&bootstrap, "fidelity-alter", 1).await;
        let res = ConfigResource::Topic(t.clone());
        // A broker applies an alteration through its controller and metadata log: a describe
        // right after may still show the old value (seen once in a loop on Kafka 4.4). So a
        // value is read until it is `want`, for at most 10 s, and the last one read returned.
        let read = |k: &'static str, want: Option<&'static str>| {
            let (admin, res) = (&admin, &res);
            async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let e = admin.describe_configs(res).await.unwrap();
                    let e = e.into_iter().find(|e| e.name == k).unwrap();
                    let got = (e.value.unwrap_or_default(), e.source);
                    if want.is_none_or(|w| got.0 == w) || Instant::now() > deadline {
                        return got;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let value_when = |k: &'static str, want: &'static str| read(k, Some(want));
        // What must not have changed is read once: there is nothing to wait for.
        let value = |k: &'static str| read(k, None);
        admin
            .incremental_alter_configs(
                &res,
                &[
                    Set("retention.ms".into(), "7200000".into()),
                    Append("cleanup.policy".into(), "compact".into()),
                ],
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            value_when("retention.ms", "7200000").await,
            ("7200000".into(), ConfigSource::DynamicTopic),
            "{target}"
        );
        assert_eq!(
            value_when("cleanup.policy", "delete,compact").await.0,
            "delete,compact",
            "{target}"
        );
        admin
            .incremental_alter_configs(&res, &[Subtract("cleanup.policy".into(), "delete".into())], false)
            .await
            .unwrap();
        assert_eq!(value_when("cleanup.policy", "compact").await.0, "compact", "{target}");
        // Validate-only changes nothing; a delete restores the default.
        admin
            .incremental_alter_configs(&res, &[Set("retention.ms".into(), "1000".into())], true)
            .await
            .unwrap();
        assert_eq!(value("retention.ms").await.0, "7200000", "{target}");
        admin
            .incremental_alter_configs(&res, &[Delete("retention.ms".into())], false)
            .await
            .unwrap();
        assert_eq!(
            value_when("retention.ms", "604800000").await,
            ("604800000".into(), ConfigSource::Default),
            "{target}"
        );

        for (ops, code) in [
            (vec![Set("no.such.config".into(), "1".into())], ErrorCode::InvalidConfig),
            (
                vec![Set("retention.ms".into(), "soon".into())],
                ErrorCode::InvalidConfig,
            ),
            (
                vec![Append("retention.ms".into(), "5".into())],
                ErrorCode::InvalidConfig,
            ),
        ] {
            let err = admin.incremental_alter_configs(&res, &ops, false).await.unwrap_err();
            assert_eq!(err.kafka_code(), Some(code), "{target}: {ops:?}: {err}");
        }
        // All or nothing: a good change beside a bad one is not applied.
        let err = admin
            .incremental_alter_configs(
                &res,
                &[
                    Set("retention.ms".into(), "5000".into()),
                    Set("segment.ms".into(), "x".into()),
                ],
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidConfig), "{target}: {err}");
        assert_eq!(value("retention.ms").await.0, "604800000", "{target}");
        let missing = ConfigResource::Topic(unique_topic("fidelity-alter-none"));
        let err = admin
            .incremental_alter_configs(&missing, &[Set("retention.ms".into(), "1".into())], false)
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_code(),
            Some(ErrorCode::UnknownTopicOrPartition),
            "{target}: {err}"
        );
        // A value of the wrong type at creation too.
        let err = admin
            .create_topics(&[NewTopic::new(unique_topic("fidelity-alter-bad"), 1).config("retention.ms", "soon")])
            .await
            .unwrap_err();
        assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidConfig), "{target}: {err}");
    })
    .await;
}

/// `Admin::describe_consumer_group` of a KIP-848 group (ConsumerGroupDescribe) and of a
/// classic one (GROUP_ID_NOT_FOUND there, then DescribeGroups): the same description from
/// both targets once the group is stable.
#[tokio::test(flavor = "multi_thread")]
async fn consumer_groups_of_both_protocols_are_described_alike() {
    use strom_client::GroupType;
    on_both(|bootstrap, target| async move {
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let t = topic(&bootstrap, "fidelity-describe", 4).await;
        let group = unique_topic("fidelity-describe-848");
        let member = |name: &str| {
            let mut cc = ConsumerConfig::new(&bootstrap);
            cc.set("group.id", &group).unwrap();
            cc.set("group.protocol", "consumer").unwrap();
            cc.set("client.id", name).unwrap();
            cc
        };
        let mut a = Consumer::new(member("member-a")).await.unwrap();
        let mut b = Consumer::new(member("member-b")).await.unwrap();
        a.subscribe(&[&t]).unwrap();
        b.subscribe(&[&t]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let d = loop {
            a.poll(Duration::from_millis(50)).await.unwrap();
            b.poll(Duration::from_millis(50)).await.unwrap();
            assert!(Instant::now() < deadline, "{target}: the group did not settle");
            // Unknown until the first heartbeat reaches the coordinator.
            let d = match admin.describe_consumer_group(&group).await {
                Err(e) if e.kafka_code() == Some(ErrorCode::GroupIdNotFound) => continue,
                other => other.unwrap(),
            };
            let settled = a.assignment().len() == 2 && b.assignment().len() == 2;
            if settled && d.state == "Stable" && d.members.iter().all(|m| m.target_assignment.is_none()) {
                break d;
            }
        };
        assert_eq!(d.group_type, GroupType::Consumer, "{target}");
        assert_eq!(d.protocol_type, "consumer", "{target}");
        assert_eq!(d.assignor, "uniform", "{target}");
        assert!(d.group_epoch.is_some_and(|e| e > 0), "{target}: {d:?}");
        let mut clients: Vec<&str> = d.members.iter().map(|m| m.client_id.as_str()).collect();
        clients.sort_unstable();
        assert_eq!(clients, ["member-a", "member-b"], "{target}");
        let mut all: Vec<i32> = Vec::new();
        for m in &d.members {
            assert!(m.member_epoch.is_some_and(|e| e > 0), "{target}: {m:?}");
            assert_eq!(m.assignment.keys().collect::<Vec<_>>(), [&t], "{target}: {m:?}");
            assert_eq!(m.assignment[&t].len(), 2, "{target}: {m:?}");
            all.extend(&m.assignment[&t]);
        }
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2, 3], "{target}: every partition once");
        a.close().await.unwrap();
        b.close().await.unwrap();

        // A classic group: described through DescribeGroups.
        let classic = unique_topic("fidelity-describe-classic");
        let mut cc = ConsumerConfig::new(&bootstrap);
        cc.set("group.id", &classic).unwrap();
        cc.set("group.protocol", "classic").unwrap();
        cc.set("client.id", "member-c").unwrap();
        let mut c = Consumer::new(cc).await.unwrap();
        c.subscribe(&[&t]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let d = loop {
            assert!(Instant::now() < deadline, "{target}: the classic group did not settle");
            c.poll(Duration::from_millis(50)).await.unwrap();
            let d = match admin.describe_consumer_group(&classic).await {
                Err(e) if e.kafka_code() == Some(ErrorCode::GroupIdNotFound) => continue,
                other => other.unwrap(),
            };
            if c.assignment().len() == 4 && d.state == "Stable" {
                break d;
            }
        };
        assert_eq!(d.group_type, GroupType::Classic, "{target}");
        assert_eq!(d.members.len(), 1, "{target}");
        assert_eq!(d.members[0].client_id, "member-c", "{target}");
        c.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_are_listed_and_described_in_every_state() {
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-txn-admin", 2).await;
        let tid = unique_topic("fidelity-txn-admin-id");
        let mut pc = ProducerConfig::new(&bootstrap);
        pc.set("transactional.id", &tid).unwrap();
        pc.set("transaction.timeout.ms", "45000").unwrap();
        let p = TransactionalProducer::new(pc).await.unwrap();
        p.init_transactions().await.unwrap();
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let d = admin.describe_transaction(&tid).await.unwrap();
        assert_eq!(d.state, "Empty", "{target}");
        assert_eq!(d.timeout_ms, 45_000, "{target}");
        assert!(d.partitions.is_empty(), "{target}");

        p.begin_transaction().await.unwrap();
        for part in 0..2 {
            let _d = p
                .send(ProducerRecord::new(&t, Bytes::from_static(b"x")).partition(part))
                .await
                .unwrap();
        }
        p.flush().await.unwrap();
        let d = admin.describe_transaction(&tid).await.unwrap();
        assert_eq!(d.state, "Ongoing", "{target}");
        let mut partitions = d.partitions.clone();
        partitions.values_mut().for_each(|v| v.sort_unstable());
        assert_eq!(partitions, BTreeMap::from([(t.clone(), vec![0, 1])]), "{target}");
        assert!(d.start_time_ms > 0, "{target}");
        let listed = admin.list_transactions().await.unwrap();
        let mine = listed.iter().find(|l| l.transactional_id == tid).unwrap();
        assert_eq!(
            (mine.state.as_str(), mine.producer_id),
            ("Ongoing", d.producer_id),
            "{target}"
        );

        p.commit_transaction().await.unwrap();
        // The coordinator completes the commit after answering EndTxn.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let d = admin.describe_transaction(&tid).await.unwrap();
            if d.state == "CompleteCommit" {
                assert!(d.partitions.is_empty(), "{target}");
                break;
            }
            assert!(Instant::now() < deadline, "{target}: {}", d.state);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.begin_transaction().await.unwrap();
        let _d = p
            .send(ProducerRecord::new(&t, Bytes::from_static(b"y")).partition(0))
            .await
            .unwrap();
        // Written, so that the partition is in the transaction whatever the protocol (under
        // KIP-890 the first Produce adds it).
        p.flush().await.unwrap();
        p.abort_transaction().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = admin.describe_transaction(&tid).await.unwrap().state;
            if state == "CompleteAbort" {
                break;
            }
            assert!(Instant::now() < deadline, "{target}: {state}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let err = admin
            .describe_transaction(&unique_topic("fidelity-no-such-txn"))
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_code(),
            Some(ErrorCode::TransactionalIdNotFound),
            "{target}: {err}"
        );
        p.close().await.unwrap();
    })
    .await;
}
