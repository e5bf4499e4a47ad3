//! Restart strategies against real brokers: a pipeline whose broker is killed and started
//! again recovers by itself from its last checkpoint, exactly once; a failure that keeps
//! coming ends the run once the strategy's budget is spent, saying so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_connector::checkpoint::FileCheckpointStore;
use strom_connector::pipeline::Pipeline;
use strom_connector::restart::{ExponentialDelay, RestartStrategy};
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_connector::ConnectorError;
use strom_integration_tests::{broker, init_test_logging, read_committed_values, unique_topic, PrivateBroker};

async fn produce(bootstrap: &str, topic: &str, n: usize) {
    let mut cfg = ProducerConfig::new(bootstrap);
    cfg.set("linger.ms", "5").unwrap();
    let p = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(
            p.send(ProducerRecord::new(topic, Bytes::from(format!("r-{i:06}"))).partition((i % 2) as i32))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

/// Short client timeouts, so a dead broker fails an attempt in seconds rather than minutes.
const FAST_FAILURE: [(&str, &str); 3] = [
    ("request.timeout.ms", "3000"),
    ("default.api.timeout.ms", "5000"),
    ("socket.connection.setup.timeout.ms", "2000"),
];

fn pipeline(bootstrap: &str, input: &str, output: &str, rate: f64) -> Pipeline<String, String, String> {
    let source = KafkaSource::builder()
        .bootstrap_servers(bootstrap)
        .topics([input])
        .bounded(OffsetsInitializer::latest())
        .property("isolation.level", "read_committed")
        .properties(FAST_FAILURE)
        .deserializer(deserializer::string())
        .build()
        .unwrap();
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(output)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(format!("restart-{output}"))
        .properties(FAST_FAILURE)
        .property("delivery.timeout.ms", "6000")
        .transaction_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    Pipeline::new(source, sink)
        .map(move |v: String| {
            // Paced, so the broker dies with the input half read.
            n += 1;
            let due = Duration::from_secs_f64(n as f64 / rate);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                if n.is_multiple_of(50) {
                    std::thread::sleep(wait);
                }
            }
            v.to_uppercase()
        })
        .checkpoint_interval(Duration::from_millis(500))
}

async fn read_committed(bootstrap: &str, topic: &str) -> Vec<String> {
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    read_committed_values(&admin, topic, Duration::from_secs(90)).await
}

/// The broker is SIGKILLed with the input half read and comes back 8 s later on its data:
/// the pipeline fails, restarts (fixed delay) until the broker answers, restores from its
/// last checkpoint, and finishes; the output holds every input record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_and_restarted_broker_is_ridden_out_by_a_fixed_delay_restart() {
    init_test_logging();
    let b = PrivateBroker::start(24692);
    let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let (input, output) = (unique_topic("restart-in"), unique_topic("restart-out"));
    admin
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 2)])
        .await
        .unwrap();
    let n = 12_000;
    produce(&b.bootstrap, &input, n).await;
    let dir = std::env::temp_dir().join(format!("strom-{output}"));
    let p = pipeline(&b.bootstrap, &input, &output, 2_000.0)
        .checkpoint_store(FileCheckpointStore::new(&dir).unwrap())
        .restart_strategy(RestartStrategy::fixed_delay(40, Duration::from_secs(1)));
    let metrics = p.metrics();
    let run = tokio::spawn(p.run());
    // About 3 s into the 6 s of input.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics.snapshot().records_out < (n as u64) / 3 {
        assert!(Instant::now() < deadline, "the pipeline did not get going");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.kill();
    tokio::time::sleep(Duration::from_secs(8)).await;
    b.restart_keeping_data();
    let summary = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the pipeline finished within 3 minutes of the broker's return")
        .unwrap()
        .unwrap();
    assert!(summary.restarts >= 1, "{summary:?}");
    assert_eq!(metrics.snapshot().restarts, u64::from(summary.restarts));
    assert!(
        summary.restored_from.is_some(),
        "the last attempt restored a checkpoint: {summary:?}"
    );
    let got = read_committed(&b.bootstrap, &output).await;
    let mut want: Vec<String> = (0..n).map(|i| format!("R-{i:06}")).collect();
    want.sort();
    assert_eq!(got.len(), want.len(), "{summary:?}");
    assert!(got == want, "the output is not every input exactly once: {summary:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A failure that comes back on every attempt (a user function that fails on one record)
/// ends the run once the budget is spent: two restarts, then the error, saying so.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_that_keeps_coming_ends_the_run_when_the_budget_is_spent() {
    init_test_logging();
    let bootstrap = broker().bootstrap.clone();
    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
    let (input, output) = (unique_topic("restart-budget-in"), unique_topic("restart-budget-out"));
    admin
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 2)])
        .await
        .unwrap();
    produce(&bootstrap, &input, 200).await;
    let p = pipeline(&bootstrap, &input, &output, 1e9)
        .try_map(|v: String| if v == "R-000150" { Err("poison record") } else { Ok(v) })
        .restart_strategy(RestartStrategy::fixed_delay(2, Duration::from_millis(50)));
    let metrics = p.metrics();
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(60), p.run())
        .await
        .expect("the run ended")
        .unwrap_err();
    match &e {
        ConnectorError::User(m) => {
            assert!(m.contains("poison record"), "{m}");
            assert!(m.contains("after 2 restarts"), "{m}");
        }
        other => panic!("expected the user function's error, got {other:?}"),
    }
    assert_eq!(metrics.snapshot().restarts, 2);
    assert!(started.elapsed() < Duration::from_secs(30));

    // A configuration a restart cannot cure is not restarted at all.
    let refused = pipeline(&bootstrap, &input, &output, 1e9).restart_strategy(RestartStrategy::ExponentialDelay(
        ExponentialDelay {
            multiplier: 0.5,
            ..Default::default()
        },
    ));
    let e = refused.run().await.unwrap_err();
    assert!(matches!(e, ConnectorError::Config(_)), "{e}");
}
