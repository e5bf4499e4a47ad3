//! Client quotas against the broker: set, describe with exact, default and strict filters,
//! validate-only, remove; and a quota the broker enforces: a producer whose client id has
//! a small `producer_byte_rate` is throttled, which its `produce-throttle-time-max` shows,
//! and waits out a throttle longer than its request timeout (KIP-219) without a retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_client::{
    Admin, ClientConfig, ErrorKind, NewTopic, Producer, ProducerConfig, ProducerRecord, QuotaEntity, QuotaFilter,
    QuotaMatch, QuotaOp, QUOTA_CLIENT_ID, QUOTA_USER,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

/// Describes until `done` holds: a change reaches the brokers' quota cache through the
/// metadata log, a moment after the controller accepted it.
async fn settled(
    admin: &Admin,
    filter: &QuotaFilter,
    done: impl Fn(&strom_client::ClientQuotas) -> bool,
) -> strom_client::ClientQuotas {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let found = admin.describe_client_quotas(filter).await.unwrap();
        if done(&found) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "quotas not settled in 15 s: {found:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn set_describe_validate_and_remove() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let user = unique_topic("quota-user");
    let client = unique_topic("quota-client");
    let alice = QuotaEntity::user(&user);
    let alice_client = QuotaEntity::user(&user).and(QUOTA_CLIENT_ID, Some(&client));

    // Validate only: accepted, nothing changes.
    let r = admin
        .alter_client_quotas(
            &[(alice.clone(), vec![QuotaOp::Set("producer_byte_rate".into(), 1024.0)])],
            true,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let only_alice = QuotaFilter::all().with(QUOTA_USER, QuotaMatch::Exact(user.clone()));
    assert!(admin.describe_client_quotas(&only_alice).await.unwrap().is_empty());
    // An unknown quota name is refused even in a dry run.
    let r = admin
        .alter_client_quotas(
            &[(alice.clone(), vec![QuotaOp::Set("no_such_quota".into(), 1.0)])],
            true,
        )
        .await
        .unwrap();
    assert!(
        r[0].as_ref().unwrap_err().to_string().contains("no_such_quota"),
        "{r:?}"
    );

    let results = admin
        .alter_client_quotas(
            &[
                (
                    alice.clone(),
                    vec![
                        QuotaOp::Set("producer_byte_rate".into(), 1_048_576.0),
                        QuotaOp::Set("consumer_byte_rate".into(), 2_097_152.0),
                    ],
                ),
                (
                    alice_client.clone(),
                    vec![QuotaOp::Set("request_percentage".into(), 50.0)],
                ),
            ],
            false,
        )
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    // Not strict: alice and alice's client; strict: alice alone.
    let found = settled(&admin, &only_alice, |f| f.len() == 2).await;
    assert_eq!(found[&alice]["producer_byte_rate"], 1_048_576.0);
    assert_eq!(found[&alice]["consumer_byte_rate"], 2_097_152.0);
    let mut key = alice_client.0.clone();
    key.sort();
    assert_eq!(found[&QuotaEntity(key)]["request_percentage"], 50.0);
    let strict = admin
        .describe_client_quotas(&only_alice.clone().strict())
        .await
        .unwrap();
    assert_eq!(strict.keys().collect::<Vec<_>>(), vec![&alice]);

    // Remove one; the other stays.
    admin
        .alter_client_quotas(
            &[(alice.clone(), vec![QuotaOp::Remove("consumer_byte_rate".into())])],
            false,
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    let strict_alice = only_alice.clone().strict();
    let found = settled(&admin, &strict_alice, |f| f.get(&alice).is_some_and(|q| q.len() == 1)).await;
    assert!(found[&alice].contains_key("producer_byte_rate"));

    // Clean up, and a bad rate is refused before sending.
    admin
        .alter_client_quotas(
            &[
                (alice.clone(), vec![QuotaOp::Remove("producer_byte_rate".into())]),
                (alice_client, vec![QuotaOp::Remove("request_percentage".into())]),
            ],
            false,
        )
        .await
        .unwrap();
    settled(&admin, &only_alice, |f| f.is_empty()).await;
    let e = admin
        .alter_client_quotas(
            &[(alice, vec![QuotaOp::Set("producer_byte_rate".into(), f64::NAN)])],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}

/// A topic and a client id whose `producer_byte_rate` is `rate` bytes/s, once the brokers
/// apply it: (admin, topic, client id, its quota entity).
async fn throttled_client(prefix: &str, rate: f64) -> (Admin, String, String, QuotaEntity) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic(prefix);
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let client_id = unique_topic(&format!("{prefix}-client"));
    let entity = QuotaEntity::client_id(&client_id);
    admin
        .alter_client_quotas(
            &[(entity.clone(), vec![QuotaOp::Set("producer_byte_rate".into(), rate)])],
            false,
        )
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    let mine = QuotaFilter::all().with(QUOTA_CLIENT_ID, QuotaMatch::Exact(client_id.clone()));
    settled(&admin, &mine, |f| !f.is_empty()).await;
    (admin, topic, client_id, entity)
}

#[tokio::test]
async fn a_producer_over_its_quota_is_throttled() {
    init_test_logging();
    let (admin, topic, client_id, entity) = throttled_client("quota-throttle", 20_000.0).await;

    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("client.id", &client_id).unwrap();
    pc.set("linger.ms", "0").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let value = vec![b'x'; 10_000];
    // 200 kB at 20 kB/s: the broker answers with throttle times.
    for _ in 0..20 {
        producer
            .send(ProducerRecord::new(&topic, value.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let m = producer.metrics();
    let throttled = m.get("producer-metrics", "produce-throttle-time-max", &[]).unwrap();
    assert!(throttled > 0.0, "produce-throttle-time-max {throttled}");
    producer.close().await.unwrap();
    admin
        .alter_client_quotas(&[(entity, vec![QuotaOp::Remove("producer_byte_rate".into())])], false)
        .await
        .unwrap();
}

/// KIP-219 against the broker: once a response says the connection is throttled for longer
/// than `request.timeout.ms`, the producer holds its next request until the throttle is
/// over instead of sending it into the muted connection, where it would time out and be
/// sent again (a retry, on a new connection).
#[tokio::test]
async fn a_throttled_producer_waits_instead_of_timing_out() {
    init_test_logging();
    let (admin, topic, client_id, entity) = throttled_client("quota-kip219", 10_000.0).await;

    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("client.id", &client_id).unwrap();
    pc.set("linger.ms", "0").unwrap();
    pc.set("request.timeout.ms", "2000").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let throttle_max = |p: &Producer| {
        p.metrics()
            .get("producer-metrics", "produce-throttle-time-max", &[])
            .unwrap_or(0.0)
    };
    // Far over 10 kB/s until one answer throttles for more than the request timeout.
    let value = vec![b'x'; 100_000];
    let started = std::time::Instant::now();
    for _ in 0..60 {
        if throttle_max(&producer) > 2_500.0 {
            break;
        }
        producer
            .send(ProducerRecord::new(&topic, value.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no long throttle in 60 s"
        );
    }
    let throttled = throttle_max(&producer);
    assert!(throttled > 2_500.0, "produce-throttle-time-max {throttled}");
    // The next request waits out the throttle: delivered, never retried.
    let sent = std::time::Instant::now();
    producer
        .send(ProducerRecord::new(&topic, b"after".to_vec()))
        .await
        .unwrap()
        .await
        .unwrap();
    let waited = sent.elapsed();
    let m = producer.metrics();
    assert_eq!(
        m.get("producer-metrics", "record-retry-total", &[]).unwrap(),
        0.0,
        "a request timed out in the muted connection and was sent again (waited {waited:?})"
    );
    producer.close().await.unwrap();
    admin
        .alter_client_quotas(&[(entity, vec![QuotaOp::Remove("producer_byte_rate".into())])], false)
        .await
        .unwrap();
}
