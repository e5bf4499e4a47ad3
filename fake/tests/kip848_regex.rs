//! KIP-848 subscriptions by regular expression (`subscribed_topic_regex`, resolved by the
//! coordinator as Kafka does with RE2J), on the wire: a member that subscribes with a regex
//! is assigned the partitions of the topics whose whole name matches, a topic created later
//! joins at a following heartbeat, and an invalid regex is INVALID_REGULAR_EXPRESSION.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use strom_client::lowlevel::protocol::message_traits::StrBytes;
use strom_client::lowlevel::protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use strom_client::lowlevel::protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, MetadataRequest,
};
use strom_client::lowlevel::{Connection, ConnectionConfig};
use strom_fake::{ErrorCode, FakeCluster};
use uuid::Uuid;

fn heartbeat(member: &str, epoch: i32, regex: Option<&str>, owned: &[(Uuid, i32)]) -> ConsumerGroupHeartbeatRequest {
    let mut by_topic: std::collections::BTreeMap<Uuid, Vec<i32>> = Default::default();
    for (id, p) in owned {
        by_topic.entry(*id).or_default().push(*p);
    }
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("regex-group")))
        .with_member_id(StrBytes::from_string(member.to_owned()))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_regex(regex.map(|r| StrBytes::from_string(r.to_owned())))
        .with_topic_partitions(Some(
            by_topic
                .into_iter()
                .map(|(id, ps)| TopicPartitions::default().with_topic_id(id).with_partitions(ps))
                .collect(),
        ))
}

fn assigned(r: &ConsumerGroupHeartbeatResponse) -> Option<BTreeSet<(Uuid, i32)>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
            .collect()
    })
}

async fn ids(conn: &Connection, names: &[&str]) -> BTreeSet<Uuid> {
    let md = conn.send(&MetadataRequest::default().with_topics(None)).await.unwrap();
    md.topics
        .iter()
        .filter(|t| names.contains(&t.name.as_ref().unwrap().as_str()))
        .map(|t| t.topic_id)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_regex_subscription_is_resolved_by_the_coordinator() {
    let cluster = FakeCluster::builder()
        .in_memory()
        .topic("orders-eu", 2, 1)
        .topic("orders-us", 1, 1)
        .topic("audit-orders-eu", 1, 1)
        .start()
        .await
        .unwrap();
    let config = ConnectionConfig {
        transport: Some(Arc::new(cluster.transport().unwrap())),
        ..ConnectionConfig::default()
    };
    let conn = Connection::connect("broker-1.strom-fake:9092", config).await.unwrap();

    let r = conn.send(&heartbeat("", 0, Some("orders-.*"), &[])).await.unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let member = r.member_id.clone().unwrap().to_string();
    let first = assigned(&r).expect("an assignment");
    let topics: BTreeSet<Uuid> = first.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        topics,
        ids(&conn, &["orders-eu", "orders-us"]).await,
        "whole names only"
    );
    assert_eq!(first.len(), 3);

    // A new matching topic: the next heartbeat (which does not repeat the regex) gets it.
    cluster.create_topic("orders-apac", 1, 1).unwrap();
    let owned: Vec<(Uuid, i32)> = first.iter().copied().collect();
    let r = conn
        .send(&heartbeat(&member, r.member_epoch, None, &owned))
        .await
        .unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let now = assigned(&r).expect("a new assignment");
    let apac = ids(&conn, &["orders-apac"]).await;
    assert!(now.iter().any(|(id, _)| apac.contains(id)), "{now:?}");
    assert_eq!(now.len(), 4);

    // An invalid expression is refused with its own error code.
    let r = conn.send(&heartbeat("", 0, Some("orders-["), &[])).await.unwrap();
    assert_eq!(ErrorCode::from(r.error_code), ErrorCode::InvalidRegularExpression);
    assert!(r.error_message.unwrap().contains("orders-["));
}
