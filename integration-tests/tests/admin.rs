//! Every Admin call against the real broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_client::ErrorCode;
use strom_client::{Admin, ClientConfig, ConfigResource, NewTopic, OffsetSpec};
use strom_integration_tests::{broker, unique_topic};

async fn admin() -> Admin {
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

/// The resource's configs once `settled` holds, or after 10 s (the caller's assertion then says
/// what was seen). A broker answers an alter once its controller has committed it and applies
/// it to what it describes a moment later: Java's AdminClient sees the same.
async fn configs_when(
    admin: &Admin,
    res: &ConfigResource,
    settled: impl Fn(&[strom_client::ConfigEntry]) -> bool,
) -> Vec<strom_client::ConfigEntry> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let entries = admin.describe_configs(res).await.unwrap();
        if settled(&entries) || std::time::Instant::now() > deadline {
            return entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn topics_configs_partitions_and_offsets() {
    let admin = admin().await;
    let topic = unique_topic("admin");
    admin
        .create_topics(&[NewTopic::new(&topic, 2)
            .replication_factor(1)
            .config("retention.ms", "3600000")])
        .await
        .unwrap();
    // Creating it again names the topic and the Kafka error.
    let err = admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::TopicAlreadyExists));
    assert!(err.to_string().contains(&topic), "{err}");

    assert!(admin.list_topics(false).await.unwrap().contains(&topic));
    assert!(!admin
        .list_topics(false)
        .await
        .unwrap()
        .iter()
        .any(|t| t.starts_with("__")));
    let d = admin.describe_topics(&[&topic]).await.unwrap().remove(0);
    assert_eq!(d.partitions.len(), 2);
    assert!(d.partitions.iter().all(|p| p.leader == 1 && p.replicas == [1]));
    assert!(!d.topic_id.is_nil());

    // Configs: the one we set, then alter and delete.
    let res = ConfigResource::Topic(topic.clone());
    let get = |entries: &[strom_client::ConfigEntry], k: &str| entries.iter().find(|e| e.name == k).cloned().unwrap();
    let entries = admin.describe_configs(&res).await.unwrap();
    assert_eq!(get(&entries, "retention.ms").value.as_deref(), Some("3600000"));
    let retention = get(&entries, "retention.ms");
    assert!(!retention.is_default() && retention.is_override());
    assert_eq!(retention.source, strom_client::ConfigSource::DynamicTopic);
    // The effective level first: the override.
    assert_eq!(
        retention.synonyms[0].source,
        strom_client::ConfigSource::DynamicTopic,
        "{:?}",
        retention.synonyms
    );
    // A key not set on the topic is not an override; the broker's own settings (sources 3
    // and 4) are not listed as topic overrides any more.
    let segment = get(&entries, "segment.bytes");
    assert!(!segment.is_override(), "{segment:?}");
    let min_isr = get(&entries, "min.insync.replicas");
    assert!(!min_isr.is_override(), "{min_isr:?}");
    admin
        .alter_configs(
            &res,
            &[("retention.ms", Some("7200000")), ("cleanup.policy", Some("compact"))],
        )
        .await
        .unwrap();
    let entries = configs_when(&admin, &res, |e| {
        e.iter()
            .any(|e| e.name == "cleanup.policy" && e.value.as_deref() == Some("compact"))
    })
    .await;
    assert_eq!(get(&entries, "retention.ms").value.as_deref(), Some("7200000"));
    assert_eq!(get(&entries, "cleanup.policy").value.as_deref(), Some("compact"));
    admin.alter_configs(&res, &[("cleanup.policy", None)]).await.unwrap();
    let entries = configs_when(&admin, &res, |e| {
        e.iter()
            .any(|e| e.name == "cleanup.policy" && e.value.as_deref() == Some("delete"))
    })
    .await;
    assert_eq!(get(&entries, "cleanup.policy").value.as_deref(), Some("delete"));
    let err = admin
        .alter_configs(&res, &[("no.such.config", Some("1"))])
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidConfig), "{err}");
    let broker_cfg = admin.describe_configs(&ConfigResource::Broker(1)).await.unwrap();
    assert_eq!(
        get(&broker_cfg, "transaction.max.timeout.ms").value.as_deref(),
        Some("7200000")
    );

    // Partition count change is visible through the client's metadata.
    admin.create_partitions(&topic, 3).await.unwrap();
    assert_eq!(admin.client().topic(&topic).await.unwrap().partitions.len(), 3);
    let err = admin.create_partitions(&topic, 2).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidPartitions), "{err}");

    // Offsets of an empty topic.
    let offs = admin.partition_offsets(&topic).await.unwrap();
    assert_eq!(offs.len(), 3);
    assert!(offs.iter().all(|o| o.earliest == 0 && o.latest == 0));
    let ts = admin
        .list_offsets(&topic, &[1], OffsetSpec::Timestamp(0))
        .await
        .unwrap();
    assert_eq!((ts.len(), ts[0].partition, ts[0].offset), (1, 1, -1));
    let err = admin.list_offsets(&topic, &[9], OffsetSpec::Latest).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(err.to_string().contains("partition 9"), "{err}");

    let cluster = admin.describe_cluster().await.unwrap();
    assert!(!cluster.cluster_id.is_empty());
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].addr(), broker().bootstrap);
    assert!(cluster.controller.is_some_and(|c| c >= 0));

    admin.delete_topics(&[&topic]).await.unwrap();
    let err = admin.describe_topics(&[&topic]).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(err.to_string().contains(&topic));
    let err = admin.delete_topics(&[&topic]).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition));
}

#[tokio::test]
async fn groups_offsets_and_lag() {
    let admin = admin().await;
    let topic = unique_topic("groups");
    let group = unique_topic("group");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    admin
        .alter_group_offsets(&group, &topic, &[(0, 5), (1, 7)])
        .await
        .unwrap();

    let listed = admin.list_groups().await.unwrap();
    let g = listed.iter().find(|g| g.group_id == group).expect("group listed");
    assert_eq!(g.state, "Empty");
    let d = admin.describe_group(&group).await.unwrap();
    assert_eq!(d.state, "Empty");
    assert!(d.members.is_empty());
    let offsets = admin.group_offsets(&group).await.unwrap();
    assert_eq!(offsets.get(&(topic.clone(), 0)), Some(&5));
    assert_eq!(offsets.get(&(topic.clone(), 1)), Some(&7));

    admin.delete_groups(&[&group]).await.unwrap();
    assert!(admin.group_offsets(&group).await.unwrap().is_empty());
    assert!(!admin.list_groups().await.unwrap().iter().any(|g| g.group_id == group));
    let err = admin.delete_groups(&[&group]).await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::GroupIdNotFound), "{err}");
    assert!(err.to_string().contains(&group));
    admin.delete_topics(&[&topic]).await.unwrap();
}

/// Issue #12 item 9: `describe_consumer_group` describes groups of both protocols (a KIP-848
/// group is "not a classic group" to DescribeGroups): type, state, assignor, members and
/// their assignments.
#[tokio::test(flavor = "multi_thread")]
async fn describe_consumer_group_covers_classic_and_kip848_groups() {
    use std::time::{Duration, Instant};
    use strom_client::{Consumer, ConsumerConfig, GroupProtocol, GroupType};

    let admin = admin().await;
    let topic = unique_topic("describe-cg");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let mut described = Vec::new();
    for (protocol, want_type) in [
        (GroupProtocol::Consumer, GroupType::Consumer),
        (GroupProtocol::Classic, GroupType::Classic),
    ] {
        let group = unique_topic("describe-cg-g");
        let mut cfg = ConsumerConfig::new(&broker().bootstrap);
        cfg.group_id = Some(group.clone());
        cfg.group_protocol = protocol;
        cfg.client.client_id = "describe-me".into();
        let mut c = Consumer::new(cfg).await.unwrap();
        c.subscribe(&[&topic]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.assignment().len() < 2 {
            assert!(Instant::now() < deadline, "{protocol:?}: no assignment");
            c.poll(Duration::from_millis(200)).await.unwrap();
        }
        // The broker's view catches up with the member's (KIP-848 reconciles by heartbeat).
        let d = loop {
            let d = admin.describe_consumer_group(&group).await.unwrap();
            let owned: usize = d.members.iter().flat_map(|m| m.assignment.values()).map(Vec::len).sum();
            if d.state == "Stable" && owned == 2 {
                break d;
            }
            assert!(Instant::now() < deadline, "{protocol:?}: {d:?}");
            c.poll(Duration::from_millis(200)).await.unwrap();
        };
        assert_eq!(d.group_id, group);
        assert_eq!(d.group_type, want_type, "{d:?}");
        assert!(!d.assignor.is_empty(), "{d:?}");
        assert_eq!(d.members.len(), 1, "{d:?}");
        let m = &d.members[0];
        assert_eq!(m.client_id, "describe-me");
        assert_eq!(m.assignment.get(&topic), Some(&vec![0, 1]), "{d:?}");
        match want_type {
            GroupType::Consumer => {
                assert!(
                    d.group_epoch.is_some_and(|e| e > 0) && m.member_epoch.is_some(),
                    "{d:?}"
                );
                // describe_group (classic API) refuses it, pointing at the new call.
                let e = admin.describe_group(&group).await.unwrap_err();
                assert_eq!(e.kafka_code(), Some(ErrorCode::GroupIdNotFound), "{e}");
            }
            _ => assert_eq!(d.protocol_type, "consumer", "{d:?}"),
        }
        described.push((group, want_type, c));
    }
    // Both groups at once, with one nobody knows: each has its own outcome.
    let unknown = unique_topic("describe-cg-none");
    let names: Vec<&str> = described
        .iter()
        .map(|(g, _, _)| g.as_str())
        .chain([unknown.as_str()])
        .collect();
    let all = admin.describe_consumer_groups(&names).await;
    assert_eq!(all.len(), 3, "{all:?}");
    for (group, want_type, _) in &described {
        let d = all[group].as_ref().unwrap();
        assert_eq!((d.group_type, d.members.len()), (*want_type, 1), "{d:?}");
    }
    match &all[&unknown] {
        Ok(d) => assert_eq!(d.state, "Dead", "{d:?}"),
        Err(e) => assert_eq!(e.kafka_code(), Some(ErrorCode::GroupIdNotFound), "{e}"),
    }
    for (_, _, c) in described {
        c.close().await.unwrap();
    }
}

#[tokio::test]
async fn create_topics_validate_only_and_explicit_replica_assignment() {
    use std::collections::BTreeMap;
    use strom_client::CreateTopicsOptions;
    let admin = admin().await;
    let topic = unique_topic("admin-create-opts");

    // validate_only: what the broker would create, with the effective configs; nothing is.
    let validate = CreateTopicsOptions::default().validate_only(true);
    let would = admin
        .create_topics_with_options(&[NewTopic::new(&topic, 4).config("retention.ms", "60000")], validate)
        .await
        .unwrap();
    assert_eq!(would.len(), 1);
    assert_eq!((would[0].partitions, would[0].replication_factor), (4, 1));
    assert_eq!(would[0].topic_id, None);
    let retention = would[0].configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert!(!admin.list_topics(false).await.unwrap().contains(&topic));
    let err = admin
        .create_topics_with_options(&[NewTopic::new(&topic, 1).replication_factor(3)], validate)
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidReplicationFactor), "{err}");

    // An explicit assignment: partition -> replicas.
    let assignment: BTreeMap<i32, Vec<i32>> = (0..3).map(|p| (p, vec![1])).collect();
    let created = admin
        .create_topics_with_options(
            &[NewTopic::with_replica_assignment(&topic, assignment)],
            CreateTopicsOptions::default(),
        )
        .await
        .unwrap();
    assert!(created[0].topic_id.is_some_and(|id| !id.is_nil()));
    assert_eq!(created[0].partitions, 3);
    let d = admin.describe_topics(&[&topic]).await.unwrap().remove(0);
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(Some(d.topic_id), created[0].topic_id);

    // Refused by the broker (a broker that does not exist), and by the client (an
    // assignment with a partition count beside it).
    let other = unique_topic("admin-create-bad");
    let err = admin
        .create_topics(&[NewTopic::with_replica_assignment(
            &other,
            BTreeMap::from([(0, vec![7])]),
        )])
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::InvalidReplicaAssignment), "{err}");
    let mut both = NewTopic::with_replica_assignment(&other, BTreeMap::from([(0, vec![1])]));
    both.partitions = Some(1);
    let err = admin.create_topics(&[both]).await.unwrap_err();
    assert_eq!(err.kind(), strom_client::ErrorKind::InvalidConfig, "{err}");
    admin.delete_topics(&[&topic]).await.unwrap();
}
