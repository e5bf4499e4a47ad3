//! Every public error kind a producer can meet, produced against the real broker: what
//! `Error::kind` says, whether it is fatal or requires an abort (the Java client's
//! classification), where it happened, its cause, and records handed back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as _;
use std::time::Duration;

use strom_client::ErrorCode;
use strom_client::{
    Admin, ClientConfig, ErrorKind, NewTopic, Producer, ProducerConfig, ProducerRecord, TransactionalProducer,
};
use strom_integration_tests::{broker, unique_topic};

async fn admin() -> Admin {
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

async fn txn_producer(id: &str) -> TransactionalProducer {
    let mut c = ProducerConfig::new(&broker().bootstrap);
    c.transactional_id = Some(id.to_owned());
    let p = TransactionalProducer::new(c).await.unwrap();
    p.init_transactions().await.unwrap();
    p
}

#[tokio::test]
async fn a_fenced_producer_is_fatal_and_says_so_on_every_later_call() {
    let topic = unique_topic("kinds-fenced");
    admin().await.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let id = unique_topic("kinds-fenced-id");
    let old = txn_producer(&id).await;
    old.begin_transaction().await.unwrap();
    let _pending = old.send(ProducerRecord::new(&topic, "a")).await.unwrap();
    let _new = txn_producer(&id).await; // bumps the epoch: `old` is fenced
    let e = old.commit_transaction().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert!(e.is_fatal() && !e.requires_abort() && !e.is_retriable(), "{e}");
    // A later send names the fencing too, with it as the cause.
    let e = old.send(ProducerRecord::new(&topic, "b")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert!(e.is_fatal(), "{e}");
    let cause = e.source().expect("the fencing error as the cause");
    assert!(
        cause.to_string().contains("FENCED") || cause.to_string().contains("EPOCH"),
        "{cause}"
    );
}

#[tokio::test]
async fn a_failed_record_inside_a_transaction_requires_an_abort() {
    let topic = unique_topic("kinds-abortable");
    admin()
        .await
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let p = txn_producer(&unique_topic("kinds-abortable-id")).await;
    p.begin_transaction().await.unwrap();
    let too_big = p.send(ProducerRecord::new(&topic, vec![1u8; 10_000])).await.unwrap();
    let delivery = too_big.await.unwrap_err();
    assert_eq!(delivery.kind(), ErrorKind::Abortable, "{delivery}");
    assert!(delivery.requires_abort() && !delivery.is_fatal(), "{delivery}");
    assert_eq!(delivery.kafka_code(), Some(ErrorCode::MessageTooLarge));
    assert_eq!(
        (delivery.topic(), delivery.partition()),
        (Some(topic.as_str()), Some(0))
    );
    assert!(delivery.node().is_some(), "the broker that refused it: {delivery:?}");
    // The record comes back with the error, as sent.
    let back = delivery.record().expect("the failed record");
    assert_eq!((back.topic.as_str(), back.partition), (topic.as_str(), Some(0)));
    assert_eq!(back.value.as_deref(), Some(&[1u8; 10_000][..]));
    let e = p.commit_transaction().await.unwrap_err();
    assert!(e.requires_abort() && e.kind() == ErrorKind::Abortable, "{e}");
    p.abort_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    p.send(ProducerRecord::new(&topic, "fine"))
        .await
        .unwrap()
        .await
        .unwrap();
    p.commit_transaction().await.unwrap();
}

#[tokio::test]
async fn sending_outside_a_transaction_is_an_illegal_state_not_fatal() {
    let topic = unique_topic("kinds-state");
    admin().await.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let p = txn_producer(&unique_topic("kinds-state-id")).await;
    let e = p.send(ProducerRecord::new(&topic, "early")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    assert!(!e.is_fatal() && !e.requires_abort(), "{e}");
    let e = p.try_send(ProducerRecord::new(&topic, "early")).unwrap_err();
    assert_eq!(e.error().kind(), ErrorKind::IllegalState, "{e}");
    // The producer is fine: a transaction works after it.
    p.begin_transaction().await.unwrap();
    p.send(ProducerRecord::new(&topic, "in")).await.unwrap().await.unwrap();
    p.commit_transaction().await.unwrap();
    let e = p.commit_transaction().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "commit without a transaction: {e}");
}

#[tokio::test]
async fn try_send_hands_the_record_back_when_it_cannot_queue() {
    let topic = unique_topic("kinds-full");
    admin().await.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let mut c = ProducerConfig::new(&broker().bootstrap);
    // Nothing leaves before 30 s, so 64 KiB of buffer fills up.
    c.set("buffer.memory", "65536").unwrap();
    c.set("linger.ms", "30000").unwrap();
    c.set("batch.size", "1000000").unwrap();
    let producer = Producer::new(c).await.unwrap();

    let unknown = unique_topic("kinds-uncached");
    let e = producer.try_send(ProducerRecord::new(&unknown, "x")).unwrap_err();
    assert_eq!(e.error().kind(), ErrorKind::WouldBlock, "{e}");
    assert_eq!(e.into_record().topic, unknown);

    producer
        .client()
        .refresh_metadata(Some(&[topic.as_str()]))
        .await
        .unwrap();
    let mut queued = Vec::new();
    let back = loop {
        let record = ProducerRecord::new(&topic, vec![7u8; 1000]).key(format!("k{}", queued.len()));
        match producer.try_send(record) {
            Ok(f) => queued.push(f),
            Err(e) => break e,
        }
        assert!(queued.len() < 1000, "64 KiB never filled");
    };
    assert_eq!(back.error().kind(), ErrorKind::BufferFull, "{back}");
    assert!(!back.error().is_fatal());
    let record = back.into_record();
    assert_eq!(record.key.as_deref(), Some(format!("k{}", queued.len()).as_bytes()));
    assert_eq!(record.value.as_deref(), Some(&[7u8; 1000][..]));
    // flush() sends what is queued; the record handed back then fits.
    tokio::time::timeout(Duration::from_secs(30), producer.flush())
        .await
        .unwrap()
        .unwrap();
    for f in queued {
        f.await.unwrap();
    }
    let last = producer.try_send(record).unwrap();
    producer.flush().await.unwrap();
    last.await.unwrap();
    producer.close().await.unwrap();
    let e = producer.send(ProducerRecord::new(&topic, "late")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Closed, "{e}");
}

#[tokio::test]
async fn connection_errors_carry_their_io_cause() {
    // A port nothing listens on (the broker's controller port is taken by the controller,
    // so use a fresh ephemeral one).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = ClientConfig::new(format!("127.0.0.1:{port}"));
    c.set("socket.connection.setup.timeout.ms", "1000").unwrap();
    c.set("default.api.timeout.ms", "1500").unwrap();
    let e = strom_client::Client::connect(c).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout), "{e}");
    let mut chain = Vec::new();
    let mut cur: Option<&dyn std::error::Error> = Some(&e);
    while let Some(x) = cur {
        chain.push(x.to_string());
        cur = x.source();
    }
    assert!(
        chain.iter().any(|m| m.to_lowercase().contains("refused")),
        "no I/O cause in the chain: {chain:?}"
    );
}

/// A plain `Producer` never begins a transaction, so a configuration with
/// `transactional.id` is refused when it is built (every send would fail otherwise), and the
/// message names the type that takes it. A `TransactionalProducer` takes the same config.
#[tokio::test]
async fn a_plain_producer_refuses_a_transactional_id() {
    let mut c = ProducerConfig::new(&broker().bootstrap);
    c.transactional_id = Some(unique_topic("kinds-plain-txn"));
    let e = Producer::new(c.clone()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert!(e.to_string().contains("TransactionalProducer"), "{e}");
    let client = strom_client::Client::connect(c.client.clone()).await.unwrap();
    let e = Producer::with_client(client.clone(), c.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    let p = TransactionalProducer::with_client(client, c).unwrap();
    p.init_transactions().await.unwrap();
    p.close().await.unwrap();
}

/// What the client refuses before sending (a record over `max.request.size`) is
/// RecordTooLarge with the record handed back; what the broker refuses with a code of its
/// own is Broker with that code, and the call's context.
#[tokio::test]
async fn refusals_by_the_client_and_by_the_broker_name_their_kind() {
    let topic = unique_topic("kinds-refused");
    let admin = admin().await;
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let mut c = ProducerConfig::new(&broker().bootstrap);
    c.set("max.request.size", "5000").unwrap();
    let producer = Producer::new(c).await.unwrap();

    let e = match producer.send(ProducerRecord::new(&topic, vec![3u8; 8000])).await {
        Err(e) => e,
        Ok(f) => f.await.unwrap_err(),
    };
    assert_eq!(e.kind(), ErrorKind::RecordTooLarge, "{e}");
    assert!(!e.is_retriable() && !e.is_fatal(), "{e}");
    assert_eq!(
        e.record().map(|r| r.value.as_deref().map(<[u8]>::len)),
        Some(Some(8000))
    );

    // Under max.request.size, over the topic's max.message.bytes: the broker refuses it.
    let f = producer
        .send(ProducerRecord::new(&topic, vec![3u8; 4000]))
        .await
        .unwrap();
    let e = f.await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::MessageTooLarge), "{e}");
    // RecordTooLarge is the client's own refusal; the broker's is a Broker error.
    assert_eq!(e.kind(), ErrorKind::Broker, "{e}");
    assert_eq!((e.topic(), e.partition()), (Some(topic.as_str()), Some(0)));
    assert!(e.record().is_some(), "the refused record comes back: {e:?}");
    producer.close().await.unwrap();

    // An admin call the broker refuses: Broker, with its code and the resource.
    let e = admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broker, "{e}");
    assert_eq!(e.kafka_code(), Some(ErrorCode::TopicAlreadyExists), "{e}");
    assert!(e.to_string().contains(&topic), "{e}");
}

/// Records still queued when the transaction is aborted are discarded unsent: each
/// delivery fails with TransactionAborted (not fatal, no abort needed: it was one) and
/// hands its record back.
#[tokio::test]
async fn records_queued_at_an_abort_fail_as_transaction_aborted() {
    let topic = unique_topic("kinds-txn-aborted");
    admin().await.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let mut c = ProducerConfig::new(&broker().bootstrap);
    c.transactional_id = Some(unique_topic("kinds-txn-aborted-id"));
    // Nothing leaves before 60 s unless flushed, so the abort finds the records queued.
    c.set("linger.ms", "60000").unwrap();
    c.set("batch.size", "1000000").unwrap();
    let p = TransactionalProducer::new(c).await.unwrap();
    p.init_transactions().await.unwrap();
    p.begin_transaction().await.unwrap();
    let mut deliveries = Vec::new();
    for i in 0..5 {
        deliveries.push(p.send(ProducerRecord::new(&topic, format!("v{i}"))).await.unwrap());
    }
    tokio::time::timeout(Duration::from_secs(30), p.abort_transaction())
        .await
        .expect("abort hung")
        .unwrap();
    for (i, d) in deliveries.into_iter().enumerate() {
        let e = tokio::time::timeout(Duration::from_secs(10), d)
            .await
            .expect("a delivery hung after the abort")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::TransactionAborted, "{e}");
        assert!(!e.is_fatal() && !e.requires_abort(), "{e}");
        let back = e.record().expect("the discarded record");
        assert_eq!(back.value.as_deref(), Some(format!("v{i}").as_bytes()));
    }
    // The producer goes on.
    p.begin_transaction().await.unwrap();
    let d = p.send(ProducerRecord::new(&topic, "after")).await.unwrap();
    p.commit_transaction().await.unwrap();
    d.await.unwrap();
    p.close().await.unwrap();
}
