//! Cancellation of every public async method of `Admin` and of the share consumer, against
//! the real broker (the fake cluster does not answer most of these APIs; the producer's and
//! consumer's methods are dropped against it in `fake/tests/cancellation.rs`). Each call is
//! polled `k` times and dropped, for every `k` until it completes; after each drop the admin
//! must still answer, and a change asked again must converge (done once, or refused as
//! already done). Whether a call succeeds is not the point here: several need a broker set
//! up otherwise (an authorizer for ACLs, SASL for delegation tokens), and their refusal is
//! a completed call too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use strom_client::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
use strom_client::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermissionType, AclResourceType, Admin,
    AlterConfigOp, ClientConfig, ConfigResource, CoordinatorType, CreateDelegationTokenOptions, CreateTopicsOptions,
    ElectionType, NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord, QuotaEntity, QuotaFilter, QuotaOp,
    ScramMechanism, TopicPartitionReplica,
};
use strom_fake::poll_at_most;
use strom_integration_tests::{broker, unique_topic};

const MAX_K: usize = 2_000;

/// Drops `call()` after k polls for k = 0, 1, ... until one completes, checking after each
/// drop that the admin still answers; the completed call's output.
async fn at_every_k<T, Fut: Future<Output = T>>(admin: &Admin, what: &str, call: impl Fn() -> Fut) -> T {
    for k in 0..MAX_K {
        if let Some(out) = poll_at_most(call(), k).await {
            return out;
        }
        let usable = tokio::time::timeout(Duration::from_secs(15), admin.list_topics(false)).await;
        assert!(
            matches!(usable, Ok(Ok(_))),
            "{what} dropped after {k} polls left the admin unable to answer: {usable:?}"
        );
    }
    panic!("{what} did not complete within {MAX_K} polls");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_call_dropped_at_any_point_leaves_the_admin_usable() {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic("cancel-admin");
    let group = format!("{topic}-group");
    let node = admin.describe_cluster().await.unwrap().brokers[0].node_id;
    let other = unique_topic("cancel-admin-opts");
    // What the calls borrow, made once (each call borrows it afresh).
    let (new_topic, new_other) = ([NewTopic::new(&topic, 2)], [NewTopic::new(&other, 1)]);
    let (names, both) = ([topic.as_str()], [topic.as_str(), other.as_str()]);
    let groups = [group.as_str()];
    let partition0 = [(topic.as_str(), 0)];
    let no_reassignment = [(topic.as_str(), 0, None)];
    let nodes = [node];
    let all_quotas = QuotaFilter::all();

    // Topics, with convergence checked: made once whatever the dropped calls did.
    let created = at_every_k(&admin, "create_topics", || admin.create_topics(&new_topic)).await;
    if let Err(e) = created {
        assert_eq!(e.kafka_code(), Some(strom_client::ErrorCode::TopicAlreadyExists), "{e}");
    }
    let _ = at_every_k(&admin, "create_topics_with_options", || {
        admin.create_topics_with_options(&new_other, CreateTopicsOptions::default())
    })
    .await;
    assert_eq!(
        admin.describe_topics(&[topic.as_str()]).await.unwrap()[0]
            .partitions
            .len(),
        2
    );
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for i in 0..20 {
        drop(
            p.send(ProducerRecord::new(&topic, format!("v{i}")).partition(i % 2))
                .await
                .unwrap(),
        );
    }
    p.flush().await.unwrap();
    p.close().await.unwrap();

    at_every_k(&admin, "list_topics", || admin.list_topics(true))
        .await
        .unwrap();
    at_every_k(&admin, "describe_topics", || admin.describe_topics(&names))
        .await
        .unwrap();
    at_every_k(&admin, "describe_cluster", || admin.describe_cluster())
        .await
        .unwrap();
    at_every_k(&admin, "list_offsets", || {
        admin.list_offsets(&topic, &[], OffsetSpec::Latest)
    })
    .await
    .unwrap();
    at_every_k(&admin, "list_offsets_isolated", || {
        admin.list_offsets_isolated(&topic, &[0], OffsetSpec::Earliest, true)
    })
    .await
    .unwrap();
    at_every_k(&admin, "partition_offsets", || admin.partition_offsets(&topic))
        .await
        .unwrap();
    let deleted = at_every_k(&admin, "delete_records", || admin.delete_records(&topic, &[(0, 2)])).await;
    deleted.unwrap();
    assert_eq!(admin.partition_offsets(&topic).await.unwrap()[0].earliest, 2);
    at_every_k(&admin, "coordinator", || {
        admin.coordinator(&group, CoordinatorType::Group)
    })
    .await
    .unwrap();
    let _ = at_every_k(&admin, "create_partitions", || admin.create_partitions(&topic, 3)).await;
    assert_eq!(
        admin.describe_topics(&[topic.as_str()]).await.unwrap()[0]
            .partitions
            .len(),
        3
    );

    // Configs: the change holds whatever the dropped calls did.
    let resource = ConfigResource::Topic(topic.clone());
    at_every_k(&admin, "describe_configs", || admin.describe_configs(&resource))
        .await
        .unwrap();
    at_every_k(&admin, "alter_configs", || {
        admin.alter_configs(&resource, &[("retention.ms", Some("86400000"))])
    })
    .await
    .unwrap();
    let set = [AlterConfigOp::Set("segment.ms".into(), "3600000".into())];
    at_every_k(&admin, "incremental_alter_configs", || {
        admin.incremental_alter_configs(&resource, &set, false)
    })
    .await
    .unwrap();
    let configs: BTreeMap<String, Option<String>> = admin
        .describe_configs(&resource)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect();
    assert_eq!(configs["segment.ms"].as_deref(), Some("3600000"));

    // Groups.
    at_every_k(&admin, "list_groups", || admin.list_groups()).await.unwrap();
    at_every_k(&admin, "alter_group_offsets", || {
        admin.alter_group_offsets(&group, &topic, &[(0, 5)])
    })
    .await
    .unwrap();
    assert_eq!(admin.group_offsets(&group).await.unwrap()[&(topic.clone(), 0)], 5);
    at_every_k(&admin, "group_offsets", || admin.group_offsets(&group))
        .await
        .unwrap();
    let _ = at_every_k(&admin, "describe_group", || admin.describe_group(&group)).await;
    let _ = at_every_k(&admin, "describe_consumer_group", || {
        admin.describe_consumer_group(&group)
    })
    .await;
    let _ = at_every_k(&admin, "describe_consumer_groups", || {
        admin.describe_consumer_groups(&groups)
    })
    .await;
    let _ = at_every_k(&admin, "delete_group_offsets", || {
        admin.delete_group_offsets(&group, &topic, &[0])
    })
    .await;
    assert!(!admin
        .group_offsets(&group)
        .await
        .unwrap()
        .contains_key(&(topic.clone(), 0)));
    let _ = at_every_k(&admin, "delete_groups", || admin.delete_groups(&groups)).await;

    // Cluster operations.
    let _ = at_every_k(&admin, "elect_leaders", || {
        admin.elect_leaders(ElectionType::Preferred, Some(&partition0))
    })
    .await;
    let _ = at_every_k(&admin, "list_partition_reassignments", || {
        admin.list_partition_reassignments(None)
    })
    .await;
    let _ = at_every_k(&admin, "alter_partition_reassignments", || {
        admin.alter_partition_reassignments(&no_reassignment)
    })
    .await;
    let _ = at_every_k(&admin, "describe_features", || admin.describe_features()).await;
    let _ = at_every_k(&admin, "update_features", || admin.update_features(&[], true)).await;
    let _ = at_every_k(&admin, "describe_metadata_quorum", || admin.describe_metadata_quorum()).await;
    let _ = at_every_k(&admin, "describe_log_dirs", || admin.describe_log_dirs(&nodes)).await;
    let moves = BTreeMap::from([(
        TopicPartitionReplica::new(topic.clone(), 0, node),
        "/no/such/dir".to_string(),
    )]);
    let _ = at_every_k(&admin, "alter_replica_log_dirs", || {
        admin.alter_replica_log_dirs(&moves)
    })
    .await;

    // Quotas, ACLs, SCRAM users, delegation tokens (refusals count as completed calls).
    let _ = at_every_k(&admin, "describe_client_quotas", || {
        admin.describe_client_quotas(&all_quotas)
    })
    .await;
    let quota = [(
        QuotaEntity::client_id("cancel-test"),
        vec![QuotaOp::Set("producer_byte_rate".into(), 1_048_576.0)],
    )];
    let _ = at_every_k(&admin, "alter_client_quotas", || {
        admin.alter_client_quotas(&quota, true)
    })
    .await;
    let binding = AclBinding {
        resource_type: AclResourceType::Topic,
        resource_name: topic.clone(),
        pattern_type: AclPatternType::Literal,
        principal: "User:cancel".into(),
        host: "*".into(),
        operation: AclOperation::Read,
        permission: AclPermissionType::Allow,
    };
    let _ = at_every_k(&admin, "create_acls", || {
        admin.create_acls(std::slice::from_ref(&binding))
    })
    .await;
    let _ = at_every_k(&admin, "describe_acls", || admin.describe_acls(&AclBindingFilter::ANY)).await;
    let filter = AclBindingFilter::resource(AclResourceType::Topic, &topic);
    let _ = at_every_k(&admin, "delete_acls", || {
        admin.delete_acls(std::slice::from_ref(&filter))
    })
    .await;
    let _ = at_every_k(&admin, "describe_scram_users", || admin.describe_scram_users(None)).await;
    let _ = at_every_k(&admin, "upsert_scram_user", || {
        admin.upsert_scram_user("cancel-user", ScramMechanism::Sha256, "pw-cancel", 4096)
    })
    .await;
    let _ = at_every_k(&admin, "delete_scram_user", || {
        admin.delete_scram_user("cancel-user", ScramMechanism::Sha256)
    })
    .await;
    let options = CreateDelegationTokenOptions::default();
    let _ = at_every_k(&admin, "create_delegation_token", || {
        admin.create_delegation_token(&options)
    })
    .await;
    let _ = at_every_k(&admin, "renew_delegation_token", || {
        admin.renew_delegation_token(b"none", None)
    })
    .await;
    let _ = at_every_k(&admin, "expire_delegation_token", || {
        admin.expire_delegation_token(b"none", None)
    })
    .await;
    let _ = at_every_k(&admin, "describe_delegation_tokens", || {
        admin.describe_delegation_tokens(None)
    })
    .await;

    // Transactions.
    let _ = at_every_k(&admin, "list_transactions", || admin.list_transactions()).await;
    let _ = at_every_k(&admin, "describe_transaction", || {
        admin.describe_transaction("cancel-tx")
    })
    .await;
    let _ = at_every_k(&admin, "describe_producers", || admin.describe_producers(&topic, 0)).await;
    let _ = at_every_k(&admin, "abort_transaction", || {
        admin.abort_transaction(&topic, 0, 1, 0, 0)
    })
    .await;
    let _ = at_every_k(&admin, "fence_producers", || admin.fence_producers("cancel-tx")).await;

    // Share groups.
    let share = format!("{topic}-share");
    let _ = at_every_k(&admin, "describe_share_group", || admin.describe_share_group(&share)).await;
    let _ = at_every_k(&admin, "share_group_offsets", || admin.share_group_offsets(&share)).await;
    let _ = at_every_k(&admin, "alter_share_group_offsets", || {
        admin.alter_share_group_offsets(&share, &topic, &[(0, 0)])
    })
    .await;
    let _ = at_every_k(&admin, "delete_share_group_offsets", || {
        admin.delete_share_group_offsets(&share, &names)
    })
    .await;

    // Last, deletion converges too.
    let _ = at_every_k(&admin, "delete_topics", || admin.delete_topics(&both)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while admin.list_topics(false).await.unwrap().contains(&topic) {
        assert!(std::time::Instant::now() < deadline, "{topic} was not deleted");
        let _ = admin.delete_topics(&[topic.as_str()]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The share consumer's calls dropped at any point: every record is still delivered (again,
/// if its acknowledgement was lost: share groups deliver at least once) and acknowledged
/// once in the end; the consumer keeps polling.
#[tokio::test(flavor = "multi_thread")]
async fn share_consumer_calls_dropped_at_any_point_lose_no_record() {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic("cancel-share");
    let group = format!("{topic}-share");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    admin
        .incremental_alter_configs(
            &ConfigResource::Group(group.clone()),
            &[AlterConfigOp::Set("share.auto.offset.reset".into(), "earliest".into())],
            false,
        )
        .await
        .unwrap();
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for i in 0..60 {
        drop(p.send(ProducerRecord::new(&topic, format!("v{i:02}"))).await.unwrap());
    }
    p.flush().await.unwrap();
    p.close().await.unwrap();

    let mut config = ShareConsumerConfig::new(&broker().bootstrap, &group);
    config.set("share.acknowledgement.mode", "explicit").unwrap();
    config.set("max.poll.records", "5").unwrap();
    let mut c = ShareConsumer::new(config).await.unwrap();
    c.subscribe(&[topic.as_str()]);
    let mut accepted: BTreeMap<String, u32> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (mut i, mut dropped) = (0usize, 0usize);
    while accepted.len() < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of 60 records accepted",
            accepted.len()
        );
        i += 1;
        let Some(records) = poll_at_most(c.poll(Duration::from_millis(200)), i % 7).await else {
            dropped += usize::from(i % 7 > 0);
            continue;
        };
        for r in records.unwrap() {
            c.acknowledge(&r, AcknowledgeType::Accept).unwrap();
            *accepted
                .entry(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
                .or_default() += 1;
        }
        match i % 3 {
            0 => drop(poll_at_most(c.commit_sync(), i % 5).await),
            1 => drop(poll_at_most(c.commit_async(), i % 5).await),
            _ => {}
        }
    }
    assert!(dropped >= 5, "only {dropped} polls were dropped while pending");
    c.commit_sync().await.unwrap();
    // Every record arrived; none arrives again once all were acknowledged.
    let again = c.poll(Duration::from_millis(500)).await.unwrap();
    assert!(
        again.is_empty(),
        "{} records came back after all were accepted",
        again.len()
    );
    let close = poll_at_most(c.close(), 3).await;
    drop(close);
}
