//! The Kafka checkpoint store against the real broker: round trips with chunking and
//! retention, seen again by a second store (a restarted process); torn checkpoints written by
//! hand never restored; subtasks and pipelines sharing one topic kept apart; a save cut short
//! before its manifest; the topic created compacted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, ConfigResource, ConsumerRecord, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use strom_connector::checkpoint::{CheckpointLocation, CheckpointStore};
use strom_connector::kafka_checkpoint::{
    encode_chunk, KafkaCheckpointConfig, KafkaCheckpointLocation, KafkaCheckpointStore, Manifest, RecordKey,
    RecordPart, DEFAULT_CHUNK_SIZE,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

async fn admin() -> Admin {
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

fn config(topic: &str, pipeline: &str) -> KafkaCheckpointConfig {
    KafkaCheckpointConfig::new(&broker().bootstrap, topic, pipeline)
}

/// Runs `f` on tokio's blocking pool, as the pipeline calls a store.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Every record of the topic as written (before any compaction).
async fn raw_records(topic: &str) -> Vec<ConsumerRecord> {
    let admin = admin().await;
    strom_integration_tests::read_to_end(admin.client(), topic, false).await
}

fn key_of(r: &ConsumerRecord) -> String {
    String::from_utf8(r.key.as_deref().unwrap().to_vec()).unwrap()
}

/// A state that is not one byte repeated, so a misplaced chunk shows.
fn state(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 13) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_chunking_retention_and_a_restarted_store() {
    init_test_logging();
    let topic = unique_topic("ckpt-round-trip");
    let store = Arc::new(KafkaCheckpointStore::connect(config(&topic, "rt"), 0).await.unwrap());
    let big = state(3 * 1024 * 1024, 7);
    let s = store.clone();
    let big2 = big.clone();
    blocking(move || {
        assert!(s.latest().unwrap().is_none());
        assert!(s.ids().unwrap().is_empty());
        s.save(1, b"one").unwrap();
        s.save(2, &big2).unwrap();
        s.save(3, b"").unwrap();
        assert_eq!(s.ids().unwrap(), vec![2, 3], "retention keeps the newest 2");
        let latest = s.latest().unwrap().unwrap();
        assert_eq!((latest.id, latest.data.len()), (3, 0));
        assert!(s.load(2).unwrap().unwrap().data == big2, "3 MiB back byte for byte");
        assert!(s.load(1).unwrap().is_none());
        assert!(s.load(9).unwrap().is_none());
    })
    .await;

    // What is in the topic: the 3 MiB state in 512 KiB chunks, its manifest after them;
    // checkpoint 1's manifest tombstoned before its chunk.
    let records = raw_records(&topic).await;
    let chunks_of_2: Vec<&ConsumerRecord> = records
        .iter()
        .filter(|r| {
            matches!(
                RecordKey::parse(r.key.as_deref().unwrap()),
                Some(RecordKey {
                    id: 2,
                    part: RecordPart::Chunk(_),
                    ..
                })
            )
        })
        .collect();
    assert_eq!(chunks_of_2.len(), 3 * 1024 * 1024 / DEFAULT_CHUNK_SIZE);
    assert!(chunks_of_2
        .iter()
        .all(|r| r.value.as_ref().unwrap().len() <= DEFAULT_CHUNK_SIZE + 12));
    let offset_of = |key: &str, tombstone: bool| {
        records
            .iter()
            .find(|r| key_of(r) == key && r.value.is_none() == tombstone)
            .unwrap_or_else(|| panic!("no {key} (tombstone: {tombstone})"))
            .offset
    };
    let manifest_2 = offset_of("rt/0/00000000000000000002/m", false);
    assert!(
        chunks_of_2.iter().all(|c| c.offset < manifest_2),
        "the manifest is written last"
    );
    assert!(
        offset_of("rt/0/00000000000000000001/m", true) < offset_of("rt/0/00000000000000000001/0", true),
        "retention removes the manifest before the chunks"
    );

    // A restarted process: a new store over the same topic sees the same, from a plain
    // thread too, and its retention (its first save reads the topic) drops checkpoint 2.
    let reopened = Arc::new(KafkaCheckpointStore::connect(config(&topic, "rt"), 0).await.unwrap());
    let r = reopened.clone();
    std::thread::spawn(move || {
        assert_eq!(r.ids().unwrap(), vec![2, 3]);
        assert_eq!(r.load(2).unwrap().unwrap().data, big);
        r.save(4, b"four").unwrap();
        assert_eq!(r.ids().unwrap(), vec![3, 4]);
        assert_eq!(r.latest().unwrap().unwrap().data, b"four");
    })
    .join()
    .unwrap();
    let s = store.clone();
    blocking(move || assert_eq!(s.latest().unwrap().unwrap().id, 4)).await;
}

/// Writes records by hand, as a damaged or interrupted writer would leave them.
struct Hand {
    producer: Producer,
    topic: String,
}

impl Hand {
    async fn new(topic: &str) -> Self {
        Hand {
            producer: Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap(),
            topic: topic.to_owned(),
        }
    }

    async fn put(&self, key: RecordKey<'_>, value: Option<Vec<u8>>) {
        let record = ProducerRecord {
            topic: self.topic.clone(),
            partition: Some(0),
            key: Some(Bytes::from(key.encode())),
            value: value.map(Bytes::from),
            ..Default::default()
        };
        self.producer.send(record).await.unwrap().wait().await.unwrap();
    }
}

fn rk(pipeline: &str, id: u64, part: RecordPart) -> RecordKey<'_> {
    RecordKey {
        pipeline,
        subtask: 0,
        id,
        part,
    }
}

fn manifest(id: u64, nonce: u64, chunks: &[&[u8]]) -> Manifest {
    let payload = chunks.concat();
    Manifest {
        id,
        subtask: 0,
        chunks: chunks.len() as u32,
        length: payload.len() as u64,
        crc32c: crc32c::crc32c(&payload),
        nonce,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_checkpoints_are_never_restored() {
    init_test_logging();
    let topic = unique_topic("ckpt-torn");
    let store = Arc::new(KafkaCheckpointStore::connect(config(&topic, "torn"), 0).await.unwrap());
    let s = store.clone();
    blocking(move || s.save(1, b"intact one").unwrap()).await;

    let hand = Hand::new(&topic).await;
    let p = "torn";
    // 2: a manifest for two chunks, only the first written.
    hand.put(rk(p, 2, RecordPart::Chunk(0)), Some(encode_chunk(22, b"first half")))
        .await;
    let m2 = manifest(2, 22, &[b"first half", b"second half"]);
    hand.put(rk(p, 2, RecordPart::Manifest), Some(m2.encode().to_vec()))
        .await;
    // 3: chunks and no manifest.
    hand.put(rk(p, 3, RecordPart::Chunk(0)), Some(encode_chunk(33, b"orphan")))
        .await;
    // 4: chunks all there, the manifest's payload CRC wrong.
    hand.put(rk(p, 4, RecordPart::Chunk(0)), Some(encode_chunk(44, b"four")))
        .await;
    let m4 = Manifest {
        crc32c: manifest(4, 44, &[b"four"]).crc32c ^ 1,
        ..manifest(4, 44, &[b"four"])
    };
    hand.put(rk(p, 4, RecordPart::Manifest), Some(m4.encode().to_vec()))
        .await;
    // 5: a manifest that is garbage, its chunk fine.
    hand.put(rk(p, 5, RecordPart::Chunk(0)), Some(encode_chunk(55, b"five")))
        .await;
    hand.put(rk(p, 5, RecordPart::Manifest), Some(b"not a manifest at all".to_vec()))
        .await;
    // 6: a chunk of another save of the same id (a different nonce).
    hand.put(rk(p, 6, RecordPart::Chunk(0)), Some(encode_chunk(1, b"six")))
        .await;
    hand.put(
        rk(p, 6, RecordPart::Manifest),
        Some(manifest(6, 2, &[b"six"]).encode().to_vec()),
    )
    .await;

    let s = store.clone();
    blocking(move || {
        let latest = s.latest().unwrap().unwrap();
        assert_eq!((latest.id, latest.data.as_slice()), (1, &b"intact one"[..]));
        assert_eq!(
            s.ids().unwrap(),
            vec![1, 2, 4, 5, 6],
            "ids with a manifest, intact or not"
        );
        for id in [2, 3, 4, 5, 6] {
            assert!(s.load(id).unwrap().is_none(), "checkpoint {id} is torn");
        }
        // A newer intact checkpoint wins; once its manifest is tombstoned it is gone.
        s.save(7, b"seven").unwrap();
        assert_eq!(s.latest().unwrap().unwrap().data, b"seven");
    })
    .await;
    hand.put(rk(p, 7, RecordPart::Manifest), None).await;
    let s = store.clone();
    blocking(move || {
        assert_eq!(s.latest().unwrap().unwrap().id, 1);
        assert!(!s.ids().unwrap().contains(&7));
        assert!(s.load(7).unwrap().is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subtasks_and_pipelines_sharing_a_topic_are_kept_apart() {
    init_test_logging();
    let topic = unique_topic("ckpt-location");
    let a = KafkaCheckpointLocation::connect(config(&topic, "pipe-a"))
        .await
        .unwrap();
    // The topic exists now: the other locations use it as it is.
    let b = KafkaCheckpointLocation::connect(config(&topic, "pipe-b"))
        .await
        .unwrap();
    // A pipeline whose name looks like another's key prefix.
    let c = KafkaCheckpointLocation::connect(config(&topic, "pipe-a/1"))
        .await
        .unwrap();
    blocking(move || {
        assert!(a.subtasks().unwrap().is_empty());
        let (a0, a1) = (a.subtask_store(0).unwrap(), a.subtask_store(1).unwrap());
        let (b0, c0) = (b.subtask_store(0).unwrap(), c.subtask_store(0).unwrap());
        a0.save(1, b"a0-1").unwrap();
        a1.save(1, b"a1-1").unwrap();
        a1.save(2, b"a1-2").unwrap();
        b0.save(7, b"b0-7").unwrap();
        c0.save(1, b"c0-1").unwrap();
        let latest = |s: &Arc<dyn CheckpointStore>| s.latest().unwrap().map(|c| (c.id, c.data));
        assert_eq!(latest(&a0), Some((1, b"a0-1".to_vec())));
        assert_eq!(latest(&a1), Some((2, b"a1-2".to_vec())));
        assert_eq!(latest(&b0), Some((7, b"b0-7".to_vec())));
        assert_eq!(latest(&c0), Some((1, b"c0-1".to_vec())));
        assert_eq!(a0.ids().unwrap(), vec![1]);
        assert_eq!(a1.ids().unwrap(), vec![1, 2]);
        assert_eq!(latest(&b.subtask_store(1).unwrap()), None);
        assert_eq!(a.subtasks().unwrap(), vec![0, 1]);
        assert_eq!(b.subtasks().unwrap(), vec![0]);
        assert_eq!(c.subtasks().unwrap(), vec![0]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_cut_before_its_manifest_is_never_restored() {
    init_test_logging();
    let topic = unique_topic("ckpt-crash");
    let cfg = config(&topic, "crash").chunk_size(64 * 1024);
    let store = Arc::new(KafkaCheckpointStore::connect(cfg.clone(), 0).await.unwrap());
    let s = store.clone();
    blocking(move || {
        s.save(1, b"one").unwrap();
        // The crash: every chunk of checkpoint 2 written and acknowledged, no manifest.
        s.save_chunks_only(2, &state(200 * 1024, 2)).unwrap();
        assert_eq!(s.latest().unwrap().unwrap().data, b"one");
        assert_eq!(s.ids().unwrap(), vec![1]);
        assert!(s.load(2).unwrap().is_none());
    })
    .await;

    // The restarted process saves checkpoint 2 again, smaller: the stale chunks of the cut
    // save beyond its single chunk are removed, and 2 reads back as saved now.
    let restarted = Arc::new(KafkaCheckpointStore::connect(cfg, 0).await.unwrap());
    let r = restarted.clone();
    blocking(move || {
        assert_eq!(r.latest().unwrap().unwrap().id, 1);
        r.save(2, b"two, again").unwrap();
        assert_eq!(r.latest().unwrap().unwrap().data, b"two, again");
    })
    .await;
    let records = raw_records(&topic).await;
    let last = |key: &str| records.iter().rev().find(|r| key_of(r) == key).unwrap().value.clone();
    assert!(last("crash/0/00000000000000000002/0").is_some());
    for stale in 1..4 {
        assert!(
            last(&format!("crash/0/00000000000000000002/{stale}")).is_none(),
            "stale chunk {stale} tombstoned"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_is_compacted_and_a_deleting_topic_is_refused() {
    init_test_logging();
    let admin = admin().await;
    let topic = unique_topic("ckpt-config");
    let location = KafkaCheckpointLocation::connect(config(&topic, "cfg")).await.unwrap();
    assert_eq!(location.topic(), topic);
    let entries = admin
        .describe_configs(&ConfigResource::Topic(topic.clone()))
        .await
        .unwrap();
    let policy = entries.iter().find(|e| e.name == "cleanup.policy").unwrap();
    assert_eq!(policy.value.as_deref(), Some("compact"));
    let described = admin.describe_topics(&[topic.as_str()]).await.unwrap();
    assert_eq!(described[0].partitions.len(), 1);

    // A topic someone made with cleanup.policy=delete would lose old checkpoints: refused.
    let deleting = unique_topic("ckpt-delete");
    admin.create_topics(&[NewTopic::new(&deleting, 1)]).await.unwrap();
    let err = KafkaCheckpointLocation::connect(config(&deleting, "cfg"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cleanup.policy"), "{err}");
    // A chunk larger than the topic's max.message.bytes is refused before anything is written.
    let small = unique_topic("ckpt-small");
    admin
        .create_topics(&[NewTopic::new(&small, 1)
            .config("cleanup.policy", "compact")
            .config("max.message.bytes", "100000")])
        .await
        .unwrap();
    let err = KafkaCheckpointLocation::connect(config(&small, "cfg"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("max.message.bytes"), "{err}");
    KafkaCheckpointLocation::connect(config(&small, "cfg").chunk_size(64 * 1024))
        .await
        .unwrap();
}

/// A store's methods block; on the only thread of a current-thread runtime the Kafka work
/// cannot run. The call ends with an error saying so, not a panic or a hang.
#[tokio::test(flavor = "current_thread")]
async fn a_call_on_a_current_thread_runtimes_own_thread_fails_cleanly() {
    init_test_logging();
    let admin = admin().await;
    let topic = unique_topic("ckpt-runtime");
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("cleanup.policy", "compact")])
        .await
        .unwrap();
    let timeout = std::time::Duration::from_secs(1);
    let store = KafkaCheckpointStore::connect(config(&topic, "rt").timeout(timeout), 0)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = store.ids().unwrap_err();
    assert!(err.to_string().contains("spawn_blocking"), "{err}");
    assert!(started.elapsed() < 4 * timeout, "{:?}", started.elapsed());
}
