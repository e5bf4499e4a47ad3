//! A tour of the admin client: create, describe and delete a topic; set, list and describe
//! a consumer group and its committed offsets; delete the group.
//!
//! ```sh
//! cargo run -p strom-client --example admin -- [TOPIC]
//! ```
//!
//! `KAFKA_BOOTSTRAP_SERVERS` names the brokers (default `127.0.0.1:9092`). The topic
//! (default `strom-admin-example`) and the group `<TOPIC>-group` must not exist yet; both
//! are deleted at the end.

use strom_client::{Admin, ClientConfig, ConfigResource, NewTopic};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = std::env::args().nth(1).unwrap_or_else(|| "strom-admin-example".into());
    let group = format!("{topic}-group");

    let admin = Admin::connect(ClientConfig::new(&bootstrap)).await?;
    let cluster = admin.describe_cluster().await?;
    println!(
        "cluster {}: controller {:?}, {} broker(s)",
        cluster.cluster_id,
        cluster.controller,
        cluster.brokers.len()
    );

    // Returns once every partition has a leader.
    admin
        .create_topics(&[NewTopic::new(&topic, 3).config("retention.ms", "3600000")])
        .await?;
    for description in admin.describe_topics(&[&topic]).await? {
        for p in &description.partitions {
            println!(
                "{} partition {}: leader {}, replicas {:?}",
                description.name, p.partition, p.leader, p.replicas
            );
        }
    }
    let configs = admin.describe_configs(&ConfigResource::Topic(topic.clone())).await?;
    for entry in configs.iter().filter(|e| e.name == "retention.ms") {
        println!("{topic} {}={:?}", entry.name, entry.value);
    }

    // A group with committed offsets and no members (what an application that consumed and
    // stopped leaves behind); Java's `alterConsumerGroupOffsets`.
    admin
        .alter_group_offsets(&group, &topic, &[(0, 0), (1, 0), (2, 0)])
        .await?;
    for listing in admin.list_groups().await?.iter().filter(|g| g.group_id == group) {
        println!(
            "group {}: state {:?}, type {:?}",
            listing.group_id, listing.state, listing.group_type
        );
    }
    let description = admin.describe_consumer_group(&group).await?;
    println!(
        "group {}: {:?} protocol, state {}, {} member(s)",
        description.group_id,
        description.group_type,
        description.state,
        description.members.len()
    );
    for ((t, partition), offset) in admin.group_offsets(&group).await? {
        println!("group {group} committed {t}-{partition}: {offset}");
    }

    admin.delete_groups(&[&group]).await?;
    admin.delete_topics(&[&topic]).await?; // returns once the topic is gone from metadata
    println!("created, described and deleted topic {topic} and group {group}");
    Ok(())
}
