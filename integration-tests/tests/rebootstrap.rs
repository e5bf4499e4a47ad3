//! `metadata.recovery.strategy` (KIP-899): a cluster replaced behind the same bootstrap
//! list. A client learns cluster A (node 1 on one port); A goes away and cluster B answers
//! on another address of the bootstrap list. With `rebootstrap` (the default, as in Java 4)
//! the next call finds B; with `none` it fails, naming the strategy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, MetadataRecoveryStrategy, NewTopic};
use strom_integration_tests::{unique_topic, PrivateBroker};

const A: u16 = 22692;
const B: u16 = 22792;

fn config(strategy: &str) -> ClientConfig {
    let mut c = ClientConfig::new(format!("127.0.0.1:{A},127.0.0.1:{B}"));
    c.set("metadata.recovery.strategy", strategy).unwrap();
    c.default_api_timeout = Duration::from_secs(20);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replaced_cluster_is_found_again_through_the_bootstrap_list() {
    let a = PrivateBroker::start(A);
    let on_a = unique_topic("on-a");
    let rebootstrap = Admin::connect(config("rebootstrap")).await.unwrap();
    let none = Admin::connect(config("none")).await.unwrap();
    assert_eq!(
        none.client().config().metadata_recovery_strategy,
        MetadataRecoveryStrategy::None
    );
    rebootstrap.create_topics(&[NewTopic::new(&on_a, 1)]).await.unwrap();
    for admin in [&rebootstrap, &none] {
        assert!(admin.list_topics(false).await.unwrap().contains(&on_a));
    }

    drop(a);
    let b = PrivateBroker::start(B);
    let on_b = unique_topic("on-b");
    Admin::connect(ClientConfig::new(&b.bootstrap))
        .await
        .unwrap()
        .create_topics(&[NewTopic::new(&on_b, 1)])
        .await
        .unwrap();

    let started = Instant::now();
    let topics = rebootstrap.list_topics(false).await.unwrap();
    assert!(
        topics.contains(&on_b) && !topics.contains(&on_a),
        "after rebootstrap: {topics:?}"
    );
    eprintln!("rebootstrapped in {:.1}s", started.elapsed().as_secs_f64());

    let err = none
        .list_topics(false)
        .await
        .expect_err("metadata.recovery.strategy=none found cluster B");
    assert!(
        err.to_string().contains("metadata.recovery.strategy=none"),
        "the error does not name the strategy: {err}"
    );
    assert!(
        "metadata.recovery.strategy=sometimes"
            .split_once('=')
            .map(|(k, v)| ClientConfig::default().set(k, v).is_err())
            .unwrap(),
        "an unknown strategy was accepted"
    );
}
