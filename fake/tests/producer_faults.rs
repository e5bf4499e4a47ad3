//! The producer's recovery paths, driven by the fake's faults and checked against its
//! request log (what the producer sent, batch by batch): KIP-360's epoch bump after
//! OUT_OF_ORDER_SEQUENCE_NUMBER, retries that back off and keep their sequence, refused
//! batches with their error kinds, a transactional id whose authorization is revoked, and a
//! blocked partition that fills one batch instead of one per linger.
//!
//! The fake checks sequences as a broker does, so a producer that renumbered wrongly or
//! reused a sequence would be refused here, not only mis-logged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strom_client::{ErrorKind, Producer, ProducerConfig, ProducerRecord, TransactionalProducer};
use strom_fake::{ApiKey, ErrorCode, FakeCluster, Fault, ProducedBatch};

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("hung")
}

async fn cluster() -> FakeCluster {
    FakeCluster::builder().topic("t", 1, 1).start().await.unwrap()
}

fn config(cluster: &FakeCluster) -> ProducerConfig {
    let mut cfg = ProducerConfig::new(cluster.bootstrap_servers());
    cfg.client.retry_backoff = Duration::from_millis(10);
    cfg
}

/// Every Produce batch the cluster received, with when its request arrived.
fn batches(cluster: &FakeCluster) -> Vec<(ProducedBatch, std::time::Instant)> {
    cluster
        .requests()
        .into_iter()
        .filter(|r| r.api == ApiKey::Produce)
        .flat_map(|r| r.batches.into_iter().map(move |b| (b, r.at)))
        .collect()
}

/// (producer id, epoch, base sequence, records) of each batch.
fn sequences(cluster: &FakeCluster) -> Vec<(i64, i16, i32, i32)> {
    batches(cluster)
        .iter()
        .map(|(b, _)| (b.producer_id, b.producer_epoch, b.base_sequence, b.records))
        .collect()
}

fn count(cluster: &FakeCluster, api: ApiKey) -> usize {
    cluster.requests().iter().filter(|r| r.api == api).count()
}

#[tokio::test]
async fn out_of_order_on_the_first_batch_bumps_the_epoch_and_renumbers() {
    let cluster = cluster().await;
    // The first batch ever is refused as if the broker had lost our sequence.
    cluster.inject(Fault::error(ApiKey::Produce, ErrorCode::OutOfOrderSequenceNumber));
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let f = producer.send(ProducerRecord::new("t", "hello").key("k")).await.unwrap();
    let md = bounded(f.wait()).await.unwrap();
    assert_eq!((md.partition, md.offset), (0, 0));
    assert_eq!(cluster.end_offset("t", 0), Some(1), "written once");

    // A fresh id; the KIP-360 bump of an idempotent producer is local (epoch + 1), as
    // Java's bumpIdempotentProducerEpoch: no second InitProducerId.
    assert_eq!(count(&cluster, ApiKey::InitProducerId), 1);
    let seqs = sequences(&cluster);
    let pid = seqs[0].0;
    assert!(pid >= 0, "{seqs:?}");
    // Refused at epoch 0 sequence 0, resent at epoch 1 from sequence 0: one record, once.
    assert_eq!(seqs, vec![(pid, 0, 0, 1), (pid, 1, 0, 1)]);

    // The next record follows on the bumped epoch.
    let md = bounded(producer.send(ProducerRecord::new("t", "next").key("k")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(md.offset, 1);
    assert_eq!(sequences(&cluster)[2], (pid, 1, 1, 1));
}

/// A batch refused with a retriable error is retried after retry.backoff.ms, doubling per
/// attempt (KIP-580), with its original producer id, epoch and sequence: never resent at
/// once in a loop (it once was, 164 times a second against a broker that had lost
/// leadership), never renumbered.
#[tokio::test]
async fn retries_back_off_exponentially_and_keep_their_sequence() {
    let cluster = cluster().await;
    cluster.inject(Fault::error(ApiKey::Produce, ErrorCode::NotLeaderOrFollower).times(3));
    let mut cfg = config(&cluster);
    cfg.set("retry.backoff.ms", "50").unwrap();
    cfg.set("retry.backoff.max.ms", "1000").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    let f = producer.send(ProducerRecord::new("t", "hello").key("k")).await.unwrap();
    let md = bounded(f).await.unwrap();
    assert_eq!((md.partition, md.offset), (0, 0));

    let seen = batches(&cluster);
    let seqs = sequences(&cluster);
    assert_eq!(seqs, vec![(seqs[0].0, 0, 0, 1); 4], "the same batch, resent as it was");
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    // 50, 100, 200 ms, each -20 % at worst.
    for (gap, want) in gaps.iter().zip([40, 80, 160]) {
        assert!(*gap >= Duration::from_millis(want), "retries came {gaps:?} apart");
    }
    // Each resend counts its record once, globally and for its topic (Java's
    // record-retry-total); the record itself was sent once and failed never.
    let m = producer.metrics();
    let g = "producer-metrics";
    assert_eq!(m.get(g, "record-retry-total", &[]).unwrap(), 3.0);
    assert_eq!(
        m.get("producer-topic-metrics", "record-retry-total", &[("topic", "t")])
            .unwrap(),
        3.0
    );
    assert_eq!(m.get(g, "record-send-total", &[]).unwrap(), 1.0);
    assert_eq!(m.get(g, "record-error-total", &[]).unwrap(), 0.0);
}

/// A batch the broker refuses for lack of an ACL fails as Authorization, one refused with
/// a non-retriable code of its own as Broker with that code; each delivery hands its record
/// back, names where it failed, and the producer goes on (Java treats neither as fatal for
/// an idempotent producer), with sequences the broker accepts.
#[tokio::test]
async fn refused_batches_name_their_kind_and_the_producer_goes_on() {
    let cluster = cluster().await;
    cluster.inject(Fault::error(ApiKey::Produce, ErrorCode::TopicAuthorizationFailed));
    cluster.inject(Fault::error(ApiKey::Produce, ErrorCode::InvalidRecord));
    let producer = Producer::new(config(&cluster)).await.unwrap();

    let f = producer.send(ProducerRecord::new("t", "one").key("k")).await.unwrap();
    let e = bounded(f).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authorization, "{e}");
    assert_eq!(
        e.kafka_code(),
        Some(strom_client::ErrorCode::TopicAuthorizationFailed),
        "{e}"
    );
    assert!(!e.is_retriable() && !e.is_fatal(), "{e}");
    assert_eq!((e.topic(), e.partition()), (Some("t"), Some(0)));
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"one"[..]));

    let f = producer.send(ProducerRecord::new("t", "two").key("k")).await.unwrap();
    let e = bounded(f).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broker, "{e}");
    assert_eq!(e.kafka_code(), Some(strom_client::ErrorCode::InvalidRecord), "{e}");
    assert!(!e.is_fatal(), "{e}");
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"two"[..]));

    let f = producer.send(ProducerRecord::new("t", "three").key("k")).await.unwrap();
    let md = bounded(f).await.unwrap();
    assert_eq!((md.partition, md.offset), (0, 0));
    assert_eq!(batches(&cluster).len(), 3, "no retries of refused batches");
    assert_eq!(cluster.end_offset("t", 0), Some(1));
}

/// A transactional producer whose transactional id the broker no longer authorizes
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED on AddPartitionsToTxn, as after an ACL is
/// revoked) is beyond recovery without being fenced: Java raises a fatal
/// `TransactionalIdAuthorizationException`. The delivery fails and hands its record back,
/// every later send fails as `ErrorKind::Fatal` (not `Fenced`: no other producer took
/// over) with the authorization error as its source, and so does a new transaction.
#[tokio::test]
async fn a_revoked_transactional_id_makes_the_producer_fatal_not_fenced() {
    use std::error::Error as _;
    let cluster = cluster().await;
    cluster.inject(
        Fault::error(
            ApiKey::AddPartitionsToTxn,
            ErrorCode::TransactionalIdAuthorizationFailed,
        )
        .times(100),
    );
    let mut cfg = config(&cluster);
    cfg.transactional_id = Some("revoked".into());
    let producer = TransactionalProducer::new(cfg).await.unwrap();
    bounded(producer.init_transactions()).await.unwrap();
    bounded(producer.begin_transaction()).await.unwrap();

    let f = producer.send(ProducerRecord::new("t", "one").key("k")).await.unwrap();
    let e = bounded(f).await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(strom_client::ErrorCode::TransactionalIdAuthorizationFailed),
        "{e}"
    );
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"one"[..]));

    let e = producer
        .send(ProducerRecord::new("t", "two").key("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    assert!(e.is_fatal() && !e.is_retriable() && !e.requires_abort(), "{e}");
    let cause = e.source().expect("the fatal state names its cause").to_string();
    assert!(cause.contains("TRANSACTIONAL_ID_AUTHORIZATION_FAILED"), "{cause}");
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"two"[..]));

    let e = bounded(producer.abort_transaction()).await.unwrap_err();
    assert!(e.is_fatal(), "{e}");
    let e = bounded(producer.begin_transaction()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    assert_eq!(count(&cluster, ApiKey::InitProducerId), 1);
    assert!(
        batches(&cluster).is_empty(),
        "nothing was produced: {:?}",
        batches(&cluster)
    );
    assert_eq!(count(&cluster, ApiKey::EndTxn), 0, "no EndTxn from a fatal producer");
}

/// Records sent at a user's pace (one every 20 ms, linger.ms=5) while their partition is
/// blocked (its first batch waits out a retry backoff of about a second) join one batch
/// that fills up, as in Java, where a batch is closed for appends only when drained. They
/// used to get a new, nearly empty batch every linger.ms of the outage, each with its own
/// batch.size buffer: tens of MB during a broker outage in the chaos soak, and a trickle of
/// one-record requests after it.
#[tokio::test]
async fn a_blocked_partition_fills_one_batch_instead_of_one_per_linger() {
    let cluster = cluster().await;
    // REQUEST_TIMED_OUT (retriable) for the first batch, then success.
    cluster.inject(Fault::error(ApiKey::Produce, ErrorCode::RequestTimedOut));
    let mut cfg = config(&cluster);
    cfg.client.retry_backoff = Duration::from_millis(1000);
    cfg.client.retry_backoff_max = Duration::from_millis(1000);
    cfg.set("linger.ms", "5").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..40 {
        pending.push(
            producer
                .send(ProducerRecord::new("t", format!("v{i}")).key("k"))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for d in pending {
        bounded(d).await.unwrap();
    }
    let counts: Vec<i32> = sequences(&cluster).iter().map(|b| b.3).collect();
    // The first batch (1 record) twice, the one sealed behind it, then everything else.
    assert!(counts.len() <= 5, "batches sent: {counts:?}");
    let delivered: i32 = counts.iter().skip(1).sum();
    assert_eq!(
        delivered, 40,
        "every record once after the failed first attempt: {counts:?}"
    );
    let seqs: Vec<i32> = sequences(&cluster).iter().skip(1).map(|b| b.2).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in sequence order: {seqs:?}");
    assert_eq!(cluster.end_offset("t", 0), Some(40));
}

/// A broker that answers Produce only up to an older version (`max_version`, as an older
/// Kafka would): the producer negotiates down and every record lands; a cap below the
/// producer's oldest version is a prompt error naming the API, not a hang.
#[tokio::test]
async fn a_produce_version_cap_is_negotiated_and_one_below_the_minimum_is_a_clear_error() {
    let cluster = FakeCluster::builder()
        .topic("t", 1, 1)
        .max_version(ApiKey::Produce, 7)
        .start()
        .await
        .unwrap();
    let producer = Producer::new(config(&cluster)).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..20 {
        pending.push(
            producer
                .send(ProducerRecord::new("t", format!("v{i}")).key("k"))
                .await
                .unwrap(),
        );
    }
    for (i, f) in pending.into_iter().enumerate() {
        assert_eq!(bounded(f.wait()).await.unwrap().offset, i as i64);
    }
    let versions: Vec<i16> = cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::Produce)
        .map(|r| r.version)
        .collect();
    assert!(!versions.is_empty());
    assert!(versions.iter().all(|v| (3..=7).contains(v)), "{versions:?}");
    assert_eq!(sequences(&cluster).iter().map(|s| s.3).sum::<i32>(), 20);
    bounded(producer.close()).await.unwrap();

    // No Produce version the producer can speak (record batches need v3): refused at once.
    let too_old = FakeCluster::builder()
        .topic("t", 1, 1)
        .max_version(ApiKey::Produce, 2)
        .start()
        .await
        .unwrap();
    let producer = Producer::new(config(&too_old)).await.unwrap();
    let sent = match producer.send(ProducerRecord::new("t", "x")).await {
        Ok(f) => bounded(f.wait()).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let e = sent.expect_err("a broker without a usable Produce version cannot take the record");
    assert!(e.to_string().to_lowercase().contains("produce"), "{e}");
}

/// A topic whose Metadata keeps answering LEADER_NOT_AVAILABLE: `send` asks again (with
/// backoff) until `max.block.ms`, then fails with a timeout whose cause is that error, as
/// Java's `waitOnMetadata`; an unknown topic fails at once with UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test]
async fn a_send_waits_out_a_leaderless_topic_until_max_block_then_times_out() {
    let cluster = FakeCluster::builder()
        .topic("t", 1, 1)
        .auto_create_topics(false)
        .start()
        .await
        .unwrap();
    let mut cfg = config(&cluster);
    cfg.set("max.block.ms", "600").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    cluster.inject(Fault::error(ApiKey::Metadata, ErrorCode::LeaderNotAvailable).times(1_000));
    let started = std::time::Instant::now();
    let e = bounded(producer.send(ProducerRecord::new("t", "x"))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(
        format!("{e:#}").contains("LEADER_NOT_AVAILABLE") || format!("{e:?}").contains("LeaderNotAvailable"),
        "{e:?}"
    );
    // The budget is used up: the last attempt comes a backoff (100 ms) before max.block.ms.
    // (It gave up as soon as the next backoff would cross it: at about 300 ms, and at 294 ms
    // once with the jitter.)
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "gave up after {:?} of max.block.ms 600 ms",
        started.elapsed()
    );
    assert!(count(&cluster, ApiKey::Metadata) >= 3, "asked again");

    cluster.clear_faults();
    let e = bounded(producer.send(ProducerRecord::new("nope", "x")))
        .await
        .unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition), "{e}");
    // Once the errors stop, the topic is found.
    let md = bounded(producer.send(ProducerRecord::new("t", "x")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(md.offset, 0);
}
