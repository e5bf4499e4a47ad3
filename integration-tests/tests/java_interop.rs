//! Interop with the Java client: what Strom's producer writes, Java's console consumer reads
//! (every codec; read_committed hides aborted transactions), not only Strom's own reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use strom_client::Compression;
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord, TransactionalProducer};
use strom_integration_tests::{broker, java_console_consume, unique_topic};

fn java_consume(topic: &str, max: usize, read_committed: bool) -> Vec<String> {
    let isolation = format!(
        "isolation.level={}",
        if read_committed {
            "read_committed"
        } else {
            "read_uncommitted"
        }
    );
    let extra = ["--consumer-property", &isolation, "--property", "print.key=true"];
    let mut lines = java_console_consume(&broker().bootstrap, topic, max, 15_000, &extra);
    lines.sort();
    lines
}

#[tokio::test]
async fn java_console_consumer_reads_every_codec() {
    let topic = unique_topic("interop-codecs");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let mut want = Vec::new();
    for codec in Compression::ALL {
        let mut c = ProducerConfig::new(&broker().bootstrap);
        c.compression = codec;
        let p = Producer::new(c).await.unwrap();
        for i in 0..100 {
            let (k, v) = (format!("{codec}-k{i}"), format!("{codec} value {i} {}", "x".repeat(i)));
            want.push(format!("{k}\t{v}"));
            p.send(ProducerRecord::new(&topic, Bytes::from(v)).key(Bytes::from(k)))
                .await
                .unwrap()
                .await
                .unwrap();
        }
        p.close().await.unwrap();
    }
    want.sort();
    let got = java_consume(&topic, want.len(), false);
    assert_eq!(
        got.len(),
        want.len(),
        "Java read {} of {} records",
        got.len(),
        want.len()
    );
    assert!(
        got == want,
        "first difference: {:?}",
        got.iter().zip(&want).find(|(g, w)| g != w)
    );
}

#[tokio::test]
async fn java_read_committed_sees_only_committed_transactions() {
    let topic = unique_topic("interop-txn");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let mut c = ProducerConfig::new(&broker().bootstrap);
    c.transactional_id = Some(unique_topic("interop-txn-id"));
    c.compression = Compression::Lz4;
    let p = TransactionalProducer::new(c).await.unwrap();
    p.init_transactions().await.unwrap();
    let mut want = Vec::new();
    for round in 0..4 {
        p.begin_transaction().await.unwrap();
        for i in 0..10 {
            let v = format!("round{round}-{i}");
            if round % 2 == 0 {
                want.push(format!("k\t{v}"));
            }
            // Inside a transaction: a failed record fails the commit (aborted rounds drop them).
            let _delivery = p
                .send(ProducerRecord::new(&topic, Bytes::from(v)).key("k"))
                .await
                .unwrap();
        }
        p.flush().await.unwrap();
        if round % 2 == 0 {
            p.commit_transaction().await.unwrap();
        } else {
            p.abort_transaction().await.unwrap();
        }
    }
    want.sort();
    // Java waits for the markers itself: --max-messages stops it at the committed count.
    assert_eq!(java_consume(&topic, want.len(), true), want);
    assert_eq!(
        java_consume(&topic, 40, false).len(),
        40,
        "read_uncommitted sees aborted records too"
    );
}

/// A keyed record lands on the same partition whether Java's producer or Strom's writes it.
#[tokio::test]
async fn keyed_records_land_where_javas_producer_puts_them() {
    let b = broker();
    let java_topic = unique_topic("interop-keys-java");
    let strom_topic = unique_topic("interop-keys-strom");
    let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&java_topic, 7), NewTopic::new(&strom_topic, 7)])
        .await
        .unwrap();
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}-{}", "é".repeat(i % 3))).collect();
    let input: String = keys.iter().map(|k| format!("{k}\t{k}\n")).collect();
    let dir = std::env::temp_dir().join(unique_topic("keys"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.txt");
    std::fs::write(&file, input).unwrap();
    // ConsoleProducer reads stdin; run it through sh to redirect the file.
    let libs = format!("{}/*", b.var("STROM_KAFKA_LIBS"));
    let opts = b.env.get("STROM_KAFKA_TOOLS_JAVA_OPTS").cloned().unwrap_or_default();
    let cmd = format!(
        "java {opts} -cp '{libs}' {} --bootstrap-server {} --topic {java_topic} --property parse.key=true --property 'key.separator=\t' < '{}'",
        b.var("STROM_KAFKA_CONSOLE_PRODUCER_CLASS"),
        b.bootstrap,
        file.display()
    );
    let out = std::process::Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();

    let p = Producer::new(ProducerConfig::new(&b.bootstrap)).await.unwrap();
    for k in &keys {
        p.send(ProducerRecord::new(&strom_topic, Bytes::from(k.clone())).key(Bytes::from(k.clone())))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    p.close().await.unwrap();

    let placement = |topic: String| {
        let client = admin.client().clone();
        async move {
            let mut m = std::collections::BTreeMap::new();
            for r in strom_integration_tests::read_to_end(&client, &topic, false).await {
                m.insert(String::from_utf8(r.key.unwrap().to_vec()).unwrap(), r.partition);
            }
            m
        }
    };
    let java = placement(java_topic).await;
    let ours = placement(strom_topic).await;
    assert_eq!(java.len(), keys.len());
    assert_eq!(
        ours, java,
        "a key landed on another partition than with the Java producer"
    );
    assert!(
        java.values().collect::<std::collections::BTreeSet<_>>().len() > 3,
        "keys spread over partitions"
    );
}
