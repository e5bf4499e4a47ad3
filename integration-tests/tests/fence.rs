//! Fencing producers (KIP-664) against the broker: Admin::fence_producers bumps the epoch of
//! a transactional id while its producer has a transaction open; the producer's commit then
//! fails as fenced, the transaction is aborted (nothing visible to read_committed), and the
//! coordinator reports the new epoch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strom_client::{Admin, ClientConfig, ErrorKind, NewTopic, ProducerConfig, ProducerRecord, TransactionalProducer};
use strom_integration_tests::{broker, init_test_logging, unique_topic, wait_no_open_transaction};

#[tokio::test]
async fn a_fenced_producer_cannot_commit_and_its_transaction_is_aborted() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic("fence");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let id = unique_topic("fence-txn");
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("transactional.id", &id).unwrap();
    let p = TransactionalProducer::new(pc).await.unwrap();
    p.init_transactions().await.unwrap();
    p.begin_transaction().await.unwrap();
    let sent = p.send(ProducerRecord::new(&topic, "doomed")).await.unwrap();
    sent.await.unwrap();
    let before = admin.describe_transaction(&id).await.unwrap();
    assert_eq!(before.state, "Ongoing");

    let (pid, epoch) = admin.fence_producers(&id).await.unwrap();
    assert_eq!(pid, before.producer_id);
    assert!(
        epoch > before.producer_epoch,
        "epoch {epoch} after {}",
        before.producer_epoch
    );

    let e = p.commit_transaction().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    wait_no_open_transaction(&admin, &topic, Duration::from_secs(30)).await;
    let after = admin.describe_transaction(&id).await.unwrap();
    assert!(after.producer_epoch >= epoch, "{after:?}");
    assert_ne!(after.state, "Ongoing");
    // Nothing committed: read_committed sees no record (the LSO is past the aborted one).
    let committed = admin
        .list_offsets_isolated(&topic, &[0], strom_client::OffsetSpec::Latest, true)
        .await
        .unwrap();
    let end = admin
        .list_offsets(&topic, &[0], strom_client::OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(committed[0].offset, end[0].offset, "the LSO reached the end (aborted)");

    // An empty id is refused before sending.
    assert_eq!(
        admin.fence_producers("").await.unwrap_err().kind(),
        ErrorKind::InvalidConfig
    );
}
