//! Transactions and SCRAM admin against the real broker. A real transaction is opened with
//! raw requests (InitProducerId, AddPartitionsToTxn or the KIP-890 implicit add, a
//! transactional Produce) and left hanging; the admin sees it and aborts it with a marker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_client::lowlevel::protocol::message_traits::StrBytes;
use strom_client::lowlevel::protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_client::lowlevel::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_client::lowlevel::protocol::messages::{
    AddPartitionsToTxnRequest, ApiKey, EndTxnRequest, InitProducerIdRequest, ProduceRequest, ProducerId, TopicName,
    TransactionalId,
};
use strom_client::lowlevel::protocol::record_batch::{BatchBuilder, BatchHeader, NewRecord};
use strom_client::ErrorCode;
use strom_client::{Admin, ClientConfig, NewTopic, OffsetSpec, ScramMechanism};
use strom_integration_tests::{broker, unique_topic};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

#[tokio::test]
async fn hanging_transaction_is_listed_described_and_aborted() {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic("txn-admin");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let txn_id = unique_topic("txn");

    // The first transactional request of a fresh cluster creates __transaction_state and
    // answers COORDINATOR_LOAD_IN_PROGRESS / NOT_COORDINATOR meanwhile: retry (bounded).
    let started = std::time::Instant::now();
    let (coord, init) = loop {
        let coord = admin
            .coordinator(&txn_id, strom_client::CoordinatorType::Transaction)
            .await
            .unwrap();
        let init = coord
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(&txn_id))))
                    .with_transaction_timeout_ms(120_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
            .await
            .unwrap();
        let code = ErrorCode::from(init.error_code);
        if code.is_ok() {
            break (coord, init);
        }
        assert!(
            matches!(
                code,
                ErrorCode::CoordinatorLoadInProgress | ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable
            ) && started.elapsed() < std::time::Duration::from_secs(60),
            "InitProducerId: {code}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);

    let (_, leader) = admin.client().leader(&topic, 0).await.unwrap();
    let tv2 = coord.versions().features().transaction_version() >= 2
        && leader.versions().version(ApiKey::Produce).unwrap() >= 12;
    if !tv2 {
        let resp = coord
            .send(
                &AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(s(&txn_id)))
                    .with_v3_and_below_producer_id(ProducerId(pid))
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s(&topic)))
                        .with_partitions(vec![0])]),
            )
            .await
            .unwrap();
        let code = resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
        assert_eq!(ErrorCode::from(code), ErrorCode::None);
    }
    let mut b = BatchBuilder::new(
        BatchHeader {
            transactional: true,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: 0,
            ..Default::default()
        },
        1024,
    );
    b.append(&NewRecord {
        timestamp: 1,
        key: None,
        value: Some(b"in a hanging txn"),
        headers: &[],
    })
    .unwrap();
    let batch = b.finish().unwrap();
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s(&txn_id))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(&topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let resp = strom_integration_tests::send_produce(&leader, &req).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(ErrorCode::from(p.error_code), ErrorCode::None, "{:?}", p.error_message);

    // The admin sees it.
    let listed = admin.list_transactions().await.unwrap();
    let l = listed.iter().find(|t| t.transactional_id == txn_id).expect("listed");
    assert_eq!((l.producer_id, l.state.as_str()), (pid, "Ongoing"));
    let d = admin.describe_transaction(&txn_id).await.unwrap();
    assert_eq!(d.state, "Ongoing");
    assert_eq!(d.partitions.get(&topic), Some(&vec![0]));
    assert_eq!(d.timeout_ms, 120_000);
    assert!(d.start_time_ms > 0);
    let producers = admin.describe_producers(&topic, 0).await.unwrap();
    let ps = producers.iter().find(|p| p.producer_id == pid).expect("producer");
    assert_eq!(ps.current_txn_start_offset, Some(0));
    // The open transaction holds back the last stable offset.
    let lso = admin
        .list_offsets_isolated(&topic, &[0], OffsetSpec::Latest, true)
        .await
        .unwrap();
    let end = admin.list_offsets(&topic, &[0], OffsetSpec::Latest).await.unwrap();
    assert_eq!((lso[0].offset, end[0].offset), (0, 1));

    // Abort it on the partition with a marker.
    admin
        .abort_transaction(&topic, 0, pid, ps.producer_epoch as i16, ps.coordinator_epoch)
        .await
        .unwrap();
    let producers = admin.describe_producers(&topic, 0).await.unwrap();
    assert_eq!(
        producers
            .iter()
            .find(|p| p.producer_id == pid)
            .unwrap()
            .current_txn_start_offset,
        None
    );
    let lso = admin
        .list_offsets_isolated(&topic, &[0], OffsetSpec::Latest, true)
        .await
        .unwrap();
    assert_eq!(lso[0].offset, 2, "record + ABORT marker");

    // Tidy the coordinator's side too.
    let end = coord
        .send(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&txn_id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(false),
        )
        .await
        .unwrap();
    assert_eq!(ErrorCode::from(end.error_code), ErrorCode::None);
    let err = admin.describe_transaction("no-such-transactional-id").await;
    assert!(err.is_err() || err.unwrap().state == "Dead");
    admin.delete_topics(&[&topic]).await.unwrap();
}

/// Runs the Java client's TopicCommand over the SASL listener with a SCRAM user: proves
/// the credential Strom stored is one Java can authenticate with.
fn java_scram_login(user: &str, password: &str, mechanism: &str) -> bool {
    let b = broker();
    let dir = std::env::temp_dir().join(unique_topic("scram"));
    std::fs::create_dir_all(&dir).unwrap();
    let props = dir.join("client.properties");
    std::fs::write(
        &props,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism={mechanism}\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";\n"
        ),
    )
    .unwrap();
    let props_path = props.to_str().unwrap().to_owned();
    let out = strom_integration_tests::run_java_tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            b.var("STROM_SASL_PLAINTEXT_BOOTSTRAP"),
            "--command-config",
            &props_path,
            "--list",
        ],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    out.status.success()
}

#[tokio::test]
async fn scram_users_created_by_strom_authenticate_with_java() {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let user = unique_topic("scram-user");
    admin
        .upsert_scram_user(&user, ScramMechanism::Sha256, "s3cret-256", 4096)
        .await
        .unwrap();
    admin
        .upsert_scram_user(&user, ScramMechanism::Sha512, "s3cret-512", 8192)
        .await
        .unwrap();
    let described = admin.describe_scram_users(Some(&[&user])).await.unwrap();
    let mut creds = described[0].credentials.clone();
    creds.sort_by_key(|c| c.1);
    assert_eq!(
        creds,
        vec![(ScramMechanism::Sha256, 4096), (ScramMechanism::Sha512, 8192)]
    );

    assert!(
        java_scram_login(&user, "s3cret-512", "SCRAM-SHA-512"),
        "Java could not log in with SCRAM-SHA-512"
    );
    assert!(
        java_scram_login(&user, "s3cret-256", "SCRAM-SHA-256"),
        "Java could not log in with SCRAM-SHA-256"
    );
    assert!(
        !java_scram_login(&user, "wrong", "SCRAM-SHA-256"),
        "a wrong password was accepted"
    );

    admin.delete_scram_user(&user, ScramMechanism::Sha256).await.unwrap();
    admin.delete_scram_user(&user, ScramMechanism::Sha512).await.unwrap();
    let err = admin.describe_scram_users(Some(&[&user])).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::ResourceNotFound), "{err}");
    let err = admin
        .upsert_scram_user(&user, ScramMechanism::Sha256, "x", 10)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&user), "{err}");
}
