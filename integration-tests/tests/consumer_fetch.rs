//! The consumer's fetch path against the real broker, with manual assignment: exact contents
//! and order, fetch sessions, seek/pause/resume, offsets by time, auto.offset.reset,
//! read_committed with several interleaved transactional producers (checked against Java's
//! consumer too), Java-produced codecs, bounded memory, a broker killed mid-consume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::TimestampType;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, Producer, ProducerConfig, ProducerRecord,
    TopicPartition, TransactionalProducer,
};
use strom_client::{Compression, ErrorCode};
use strom_integration_tests::{broker, init_test_logging, run_java_tool, unique_topic, PrivateBroker};

async fn create(bootstrap: &str, topic: &str, partitions: i32) -> Admin {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(topic, partitions)]).await.unwrap();
    admin
}

fn consumer_config(bootstrap: &str, f: impl FnOnce(&mut ConsumerConfig)) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(bootstrap);
    c.auto_offset_reset = strom_client::OffsetReset::Earliest;
    f(&mut c);
    c
}

/// Produces `n` records "p{partition}-{i}" round-robin over `partitions`, keyed by i.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: usize, codec: Compression) {
    let mut c = ProducerConfig::new(bootstrap);
    c.compression = codec;
    let p = Producer::new(c).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..n {
        let part = (i % partitions as usize) as i32;
        let rec = ProducerRecord::new(topic, Bytes::from(format!("p{part}-{i}")))
            .key(Bytes::from(i.to_string()))
            .partition(part)
            .header("i", Bytes::from(i.to_string()));
        futs.push(p.send(rec).await.unwrap());
    }
    p.flush().await.unwrap();
    for f in futs {
        f.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

/// Polls until `n` records arrived (bounded).
async fn consume_n(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} records arrived", out.len());
        out.extend(c.poll(Duration::from_millis(500)).await.unwrap());
    }
    out
}

fn by_partition(recs: &[ConsumerRecord]) -> BTreeMap<i32, Vec<(i64, String)>> {
    let mut out: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for r in recs {
        out.entry(r.partition)
            .or_default()
            .push((r.offset, String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()));
    }
    out
}

fn tps(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn assigned_partitions_are_read_exactly_in_order_with_fetch_sessions() {
    init_test_logging();
    let b = broker();
    let topic = unique_topic("consume-exact");
    create(&b.bootstrap, &topic, 3).await;
    const N: usize = 30_000;
    produce(&b.bootstrap, &topic, 3, N, Compression::Lz4).await;

    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| {
        c.max_partition_fetch_bytes = 16 * 1024; // many fetches: sessions get exercised
    }))
    .await
    .unwrap();
    c.assign(tps(&topic, 3)).unwrap();
    let recs = consume_n(&mut c, N).await;
    assert_eq!(recs.len(), N, "more records than produced");
    let parts = by_partition(&recs);
    for (p, rows) in &parts {
        let expected: Vec<(i64, String)> = (0..N)
            .filter(|i| (i % 3) as i32 == *p)
            .enumerate()
            .map(|(off, i)| (off as i64, format!("p{p}-{i}")))
            .collect();
        assert_eq!(rows, &expected, "partition {p}: contents or order differ");
    }
    let r = &recs[0];
    assert_eq!(r.timestamp_type, TimestampType::CreateTime);
    assert!(r.leader_epoch.is_some());
    let i: usize = String::from_utf8(r.key.clone().unwrap().to_vec())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.headers.last(b"i").unwrap().value.unwrap(), Bytes::from(i.to_string()));
    for tp in tps(&topic, 3) {
        assert_eq!(c.position(&tp).await.unwrap(), (N / 3) as i64);
        assert_eq!(c.current_lag(&tp), Some(0));
    }
    let m = c.metrics();
    assert!(m.incremental_fetches > 10, "fetch sessions not used: {m:?}");
    assert_eq!(m.fetch_session_resets, 0, "{m:?}");
    assert_eq!(m.records_consumed, N as u64);
    // Nothing more arrives.
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_pause_resume_offsets_for_times_and_bounds() {
    let b = broker();
    let topic = unique_topic("consume-seek");
    let admin = create(&b.bootstrap, &topic, 2).await;
    // Records with known timestamps: partition 0 at t0 + i*1000.
    let t0 = 1_700_000_000_000_i64;
    let p = Producer::new(ProducerConfig::new(&b.bootstrap)).await.unwrap();
    for i in 0..100_i64 {
        for part in 0..2 {
            p.send(
                ProducerRecord::new(&topic, Bytes::from(format!("{part}:{i}")))
                    .partition(part)
                    .timestamp(t0 + i * 1000),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    }
    p.flush().await.unwrap();
    let (p0, p1) = (TopicPartition::new(&topic, 0), TopicPartition::new(&topic, 1));

    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| c.max_poll_records = 7))
        .await
        .unwrap();
    c.assign([p0.clone(), p1.clone()]).unwrap();
    assert_eq!(c.beginning_offsets(&[p0.clone(), p1.clone()]).await.unwrap()[&p0], 0);
    assert_eq!(c.end_offsets(&[p0.clone(), p1.clone()]).await.unwrap()[&p1], 100);

    let times = BTreeMap::from([(p0.clone(), t0 + 42_500), (p1.clone(), t0 + 1_000_000)]);
    let found = c.offsets_for_times(&times).await.unwrap();
    let f0 = found[&p0].unwrap();
    assert_eq!((f0.offset, f0.timestamp), (43, t0 + 43_000));
    assert_eq!(found[&p1], None, "no record that recent");

    // seek, then read from there; max.poll.records is honoured.
    c.seek(&p0, f0.offset).unwrap();
    c.pause(std::slice::from_ref(&p1)).unwrap();
    assert_eq!(c.paused(), vec![p1.clone()]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 57 {
        assert!(Instant::now() < deadline);
        let batch = c.poll(Duration::from_millis(300)).await.unwrap();
        assert!(batch.len() <= 7);
        assert!(
            batch.iter().all(|r| r.partition == 0),
            "a paused partition returned records"
        );
        got.extend(batch);
    }
    assert_eq!(got.first().unwrap().offset, 43);
    assert_eq!(got.last().unwrap().offset, 99);
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    assert_eq!(c.position(&p1).await.unwrap(), 0, "paused partition did not move");
    c.resume(std::slice::from_ref(&p1)).unwrap();
    let rest = consume_n(&mut c, 100).await;
    assert!(rest.iter().all(|r| r.partition == 1));
    assert_eq!(
        rest.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..100).collect::<Vec<_>>()
    );

    // seek_to_beginning / seek_to_end (lazy).
    c.seek_to_beginning(std::slice::from_ref(&p0)).unwrap();
    assert_eq!(c.position(&p0).await.unwrap(), 0);
    c.seek_to_end(&[]).unwrap();
    assert_eq!(c.position(&p1).await.unwrap(), 100);
    // Seeking back re-reads the same records (what buffered data there was is dropped).
    c.seek(&p1, 98).unwrap();
    let again = consume_n(&mut c, 2).await;
    assert_eq!(again.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![98, 99]);
    // assign() on a partition that does not exist fails on position lookup with a typed error.
    drop(admin);
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_offset_reset_none_is_a_typed_error_and_out_of_range_resets() {
    let b = broker();
    let topic = unique_topic("consume-reset");
    create(&b.bootstrap, &topic, 1).await;
    produce(&b.bootstrap, &topic, 1, 10, Compression::None).await;
    let tp = TopicPartition::new(&topic, 0);

    // none: no committed offset → error, not a silent guess.
    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| {
        c.auto_offset_reset = strom_client::OffsetReset::None;
        c.group_id = Some(unique_topic("g-none"));
    }))
    .await
    .unwrap();
    c.assign([tp.clone()]).unwrap();
    let e = c.poll(Duration::from_secs(2)).await.unwrap_err();
    assert!(e.to_string().contains("auto.offset.reset=none"), "{e}");
    // none + a position past the end → OFFSET_OUT_OF_RANGE surfaces.
    c.seek(&tp, 1_000).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let e = loop {
        assert!(Instant::now() < deadline, "out of range not reported");
        match c.poll(Duration::from_millis(500)).await {
            Err(e) => break e,
            Ok(r) => assert!(r.is_empty()),
        }
    };
    assert_eq!(e.kafka_code(), Some(ErrorCode::OffsetOutOfRange), "{e}");

    // latest: starts at the end; an out-of-range position resets to the end too.
    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| {
        c.auto_offset_reset = strom_client::OffsetReset::Latest
    }))
    .await
    .unwrap();
    c.assign([tp.clone()]).unwrap();
    assert_eq!(c.position(&tp).await.unwrap(), 10);
    // earliest with an out-of-range seek: reset to the start, every record once.
    let mut c = Consumer::new(consumer_config(&b.bootstrap, |_| {})).await.unwrap();
    c.assign([tp.clone()]).unwrap();
    c.seek(&tp, 500).unwrap();
    let recs = consume_n(&mut c, 10).await;
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
}

/// Several transactional producers interleave committed and aborted transactions on the
/// same partitions, with a non-transactional producer in between: read_committed returns
/// exactly the committed and plain records, in offset order, no control records; Java's
/// console consumer agrees.
#[tokio::test(flavor = "multi_thread")]
async fn read_committed_with_interleaved_transactions_from_several_producers() {
    init_test_logging();
    let b = broker();
    let topic = unique_topic("consume-rc");
    create(&b.bootstrap, &topic, 2).await;
    let mut producers = Vec::new();
    for k in 0..3 {
        let mut cfg = ProducerConfig::new(&b.bootstrap);
        cfg.transactional_id = Some(format!("{topic}-tx{k}"));
        let p = TransactionalProducer::new(cfg).await.unwrap();
        p.init_transactions().await.unwrap();
        producers.push(p);
    }
    let plain = Producer::new(ProducerConfig::new(&b.bootstrap)).await.unwrap();
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut all: BTreeSet<String> = BTreeSet::new();
    for round in 0..6 {
        for p in &producers {
            p.begin_transaction().await.unwrap();
        }
        // Interleave: each producer writes a few records to both partitions in turn.
        for i in 0..5 {
            for (k, p) in producers.iter().enumerate() {
                for part in 0..2 {
                    let v = format!("r{round}-tx{k}-p{part}-{i}");
                    // Inside a transaction: a failed record fails the commit.
                    let _delivery = p
                        .send(ProducerRecord::new(&topic, Bytes::from(v.clone())).partition(part))
                        .await
                        .unwrap();
                    all.insert(v);
                }
            }
            let v = format!("r{round}-plain-{i}");
            plain
                .send(ProducerRecord::new(&topic, Bytes::from(v.clone())).partition(i % 2))
                .await
                .unwrap()
                .await
                .unwrap();
            expected.insert(v.clone());
            all.insert(v);
        }
        for (k, p) in producers.iter().enumerate() {
            // A different mix each round: who commits and who aborts.
            if (round + k) % 3 == 0 {
                p.abort_transaction().await.unwrap();
            } else {
                p.commit_transaction().await.unwrap();
                for i in 0..5 {
                    for part in 0..2 {
                        expected.insert(format!("r{round}-tx{k}-p{part}-{i}"));
                    }
                }
            }
        }
    }
    plain.close().await.unwrap();

    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| {
        c.isolation_level = strom_client::IsolationLevel::ReadCommitted;
        c.max_partition_fetch_bytes = 2048;
    }))
    .await
    .unwrap();
    c.assign(tps(&topic, 2)).unwrap();
    // Wait (bounded) until the markers are written: the LSO reaches the high watermark.
    let deadline = Instant::now() + Duration::from_secs(30);
    let ends = loop {
        let lso = c.end_offsets(&tps(&topic, 2)).await.unwrap();
        let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
        let hw = admin
            .list_offsets(&topic, &[], strom_client::OffsetSpec::Latest)
            .await
            .unwrap();
        if hw
            .iter()
            .all(|o| lso[&TopicPartition::new(&topic, o.partition)] == o.offset)
        {
            break lso;
        }
        assert!(Instant::now() < deadline, "transactions still open");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recs = consume_n(&mut c, expected.len()).await;
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    let got: Vec<String> = recs
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    let got_set: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), got_set.len(), "duplicates");
    assert_eq!(got_set, expected, "read_committed returned the wrong records");
    for part in 0..2 {
        let offs: Vec<i64> = recs.iter().filter(|r| r.partition == part).map(|r| r.offset).collect();
        assert!(offs.windows(2).all(|w| w[0] < w[1]), "partition {part} out of order");
    }
    // Positions moved past the final markers.
    for tp in tps(&topic, 2) {
        assert_eq!(c.position(&tp).await.unwrap(), ends[&tp], "{tp}");
    }
    // read_uncommitted sees the aborted records too (those the producer had sent before
    // aborting; unsent ones are dropped by abort), control records still hidden.
    let mut ru = Consumer::new(consumer_config(&b.bootstrap, |_| {})).await.unwrap();
    ru.assign(tps(&topic, 2)).unwrap();
    let hw: i64 = ends.values().sum();
    let mut uncommitted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        uncommitted.extend(ru.poll(Duration::from_millis(300)).await.unwrap());
        let pos = ru.position(&TopicPartition::new(&topic, 0)).await.unwrap()
            + ru.position(&TopicPartition::new(&topic, 1)).await.unwrap();
        if pos == hw {
            break;
        }
        assert!(Instant::now() < deadline, "read_uncommitted did not reach the end");
    }
    let seen: BTreeSet<String> = uncommitted
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(seen.len(), uncommitted.len(), "duplicates under read_uncommitted");
    assert!(seen.is_superset(&expected));
    assert!(seen.is_subset(&all));
    assert!(
        seen.len() > expected.len(),
        "no aborted record was visible to read_uncommitted"
    );

    // Java's view.
    let out = run_java_tool(
        b.var("STROM_KAFKA_CONSOLE_CONSUMER_CLASS"),
        &[
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            &expected.len().to_string(),
            "--timeout-ms",
            "15000",
            "--consumer-property",
            "isolation.level=read_committed",
        ],
    );
    let java: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("Option --"))
        .map(str::to_owned)
        .collect();
    assert_eq!(java, expected, "Java's read_committed view differs");
}

/// Records written by Java's producer in every codec are decoded.
#[tokio::test(flavor = "multi_thread")]
async fn java_produced_records_in_every_codec() {
    let b = broker();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("consume-java-{codec}"));
        create(&b.bootstrap, &topic, 1).await;
        let out = run_java_tool(
            "org.apache.kafka.tools.ProducerPerformance",
            &[
                "--topic",
                &topic,
                "--num-records",
                "2000",
                "--record-size",
                "100",
                "--throughput",
                "-1",
                "--producer-props",
                &format!("bootstrap.servers={}", b.bootstrap),
                &format!("compression.type={codec}"),
                "linger.ms=5",
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut c = Consumer::new(consumer_config(&b.bootstrap, |_| {})).await.unwrap();
        c.assign([TopicPartition::new(&topic, 0)]).unwrap();
        let recs = consume_n(&mut c, 2000).await;
        assert_eq!(recs.len(), 2000, "{codec}");
        assert!(recs.iter().all(|r| r.value.as_ref().unwrap().len() == 100), "{codec}");
        assert_eq!(recs.last().unwrap().offset, 1999, "{codec}");
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// A slow application: the consumer never buffers more than about `fetch.max.bytes`, and
/// the process's memory stays flat however much is in the topic.
#[tokio::test(flavor = "multi_thread")]
async fn memory_stays_bounded_while_the_application_is_slow() {
    let b = broker();
    let topic = unique_topic("consume-slow");
    create(&b.bootstrap, &topic, 4).await;
    // 80 MiB in the topic.
    let mut pc = ProducerConfig::new(&b.bootstrap);
    pc.batch_size = 256 * 1024;
    let p = Producer::new(pc).await.unwrap();
    let value = Bytes::from(vec![7u8; 8192]);
    let mut deliveries = Vec::with_capacity(10_240);
    for i in 0..10_240 {
        deliveries.push(
            p.send(ProducerRecord::new(&topic, value.clone()).partition(i % 4))
                .await
                .unwrap(),
        );
    }
    for d in futures_util::future::join_all(deliveries).await {
        d.unwrap();
    }
    p.close().await.unwrap();

    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| {
        c.fetch_max_bytes = 4 << 20;
        c.max_partition_fetch_bytes = 1 << 20;
        c.max_poll_records = 10;
    }))
    .await
    .unwrap();
    c.assign(tps(&topic, 4)).unwrap();
    let before = rss_kib();
    let mut max_buffered = 0;
    let mut got = 0;
    let started = Instant::now();
    // The application takes 20 ms per 10 records for 4 s.
    while started.elapsed() < Duration::from_secs(4) {
        got += c.poll(Duration::from_millis(200)).await.unwrap().len();
        max_buffered = max_buffered.max(c.metrics().buffered_bytes);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(got > 0);
    assert!(
        max_buffered <= (4 << 20) + (1 << 20) * 4,
        "buffered {max_buffered} bytes, above fetch.max.bytes plus one response"
    );
    assert!(
        grown < 48 * 1024,
        "RSS grew by {grown} KiB while the application was slow"
    );
    eprintln!("slow application: {got} records, max buffered {max_buffered} B, RSS +{grown} KiB");
}

/// kill -9 of the broker mid-consume: the consumer reconnects after restart and carries on
/// from its positions, no record lost or repeated.
#[tokio::test(flavor = "multi_thread")]
async fn broker_killed_mid_consume_resumes_at_the_right_offsets() {
    init_test_logging();
    let b = PrivateBroker::start(20192);
    let topic = unique_topic("consume-kill");
    create(&b.bootstrap, &topic, 2).await;
    const N: usize = 20_000;
    produce(&b.bootstrap, &topic, 2, N, Compression::Snappy).await;
    let mut c = Consumer::new(consumer_config(&b.bootstrap, |c| {
        c.max_partition_fetch_bytes = 32 * 1024;
        c.client.request_timeout = Duration::from_secs(5);
        c.client.default_api_timeout = Duration::from_secs(60);
        c.client.reconnect_backoff_max = Duration::from_millis(500);
    }))
    .await
    .unwrap();
    c.assign(tps(&topic, 2)).unwrap();
    let mut recs = consume_n(&mut c, N / 3).await;
    b.kill();
    // Polls while the broker is down return what was buffered, then nothing, without error,
    // and within their timeout (no metadata retry loop holds them).
    for _ in 0..4 {
        let started = Instant::now();
        recs.extend(c.poll(Duration::from_millis(250)).await.unwrap());
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "poll(250 ms) took {:?}",
            started.elapsed()
        );
    }
    b.restart_keeping_data();
    let deadline = Instant::now() + Duration::from_secs(120);
    while recs.len() < N {
        assert!(Instant::now() < deadline, "only {} of {N} after restart", recs.len());
        recs.extend(c.poll(Duration::from_millis(500)).await.unwrap());
    }
    let parts = by_partition(&recs);
    for (p, rows) in parts {
        let offs: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(
            offs,
            (0..(N / 2) as i64).collect::<Vec<_>>(),
            "partition {p} lost or repeated records"
        );
    }
}
