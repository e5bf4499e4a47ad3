//! `strom topics`, `strom offsets`, `strom groups`.

use clap::Subcommand;
use strom_client::{Admin, ClientConfig, ConfigResource, NewTopic};

/// `strom topics ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TopicsAction {
    /// Topic names, one per line.
    List {
        /// Include internal topics.
        #[arg(long)]
        internal: bool,
    },
    /// Partitions, leaders, replicas and non-default configs of a topic.
    Describe {
        /// Topic.
        topic: String,
    },
    /// Create a topic.
    Create {
        /// Topic.
        topic: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// Topic config key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Delete a topic.
    Delete {
        /// Topic.
        topic: String,
    },
}

/// `strom groups ...`
#[derive(Debug, Subcommand)]
pub(crate) enum GroupsAction {
    /// Group ids with type and state.
    List,
    /// Members, assignments, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
}

fn e(err: strom_client::Error) -> String {
    err.to_string()
}

pub(crate) async fn topics(config: ClientConfig, action: TopicsAction) -> Result<(), String> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        TopicsAction::List { internal } => {
            for t in admin.list_topics(internal).await.map_err(e)? {
                println!("{t}");
            }
        }
        TopicsAction::Describe { topic } => {
            let d = admin.describe_topics(&[&topic]).await.map_err(e)?.remove(0);
            println!(
                "topic {} id {} partitions {}{}",
                d.name,
                d.topic_id,
                d.partitions.len(),
                if d.is_internal { " internal" } else { "" }
            );
            for p in &d.partitions {
                println!(
                    "  partition {} leader {} epoch {} replicas {:?} isr {:?}{}",
                    p.partition,
                    p.leader,
                    p.leader_epoch,
                    p.replicas,
                    p.isr,
                    if p.error.is_ok() {
                        String::new()
                    } else {
                        format!(" error {}", p.error.name())
                    }
                );
            }
            let configs = admin.describe_configs(&ConfigResource::Topic(topic)).await.map_err(e)?;
            for c in configs.iter().filter(|c| !c.is_default) {
                println!(
                    "  config {}={}",
                    c.name,
                    c.value
                        .as_deref()
                        .unwrap_or(if c.is_sensitive { "[sensitive]" } else { "" })
                );
            }
        }
        TopicsAction::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut t = NewTopic {
                name: topic.clone(),
                partitions,
                replication_factor,
                configs: Vec::new(),
            };
            for c in configs {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| format!("--config {c}: expected key=value"))?;
                t = t.config(k, v);
            }
            admin.create_topics(&[t]).await.map_err(e)?;
            eprintln!("created topic {topic}");
        }
        TopicsAction::Delete { topic } => {
            admin.delete_topics(&[&topic]).await.map_err(e)?;
            eprintln!("deleted topic {topic}");
        }
    }
    Ok(())
}

pub(crate) async fn offsets(config: ClientConfig, topic: &str) -> Result<(), String> {
    let admin = Admin::connect(config).await.map_err(e)?;
    println!("{:>9} {:>12} {:>12}", "partition", "earliest", "latest");
    for p in admin.partition_offsets(topic).await.map_err(e)? {
        println!("{:>9} {:>12} {:>12}", p.partition, p.earliest, p.latest);
    }
    Ok(())
}

pub(crate) async fn groups(config: ClientConfig, action: GroupsAction) -> Result<(), String> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        GroupsAction::List => {
            for g in admin.list_groups().await.map_err(e)? {
                let ty = if g.group_type.is_empty() {
                    g.protocol_type.as_str()
                } else {
                    g.group_type.as_str()
                };
                println!("{}\t{}\t{}", g.group_id, ty, g.state);
            }
        }
        GroupsAction::Describe { group } => {
            let d = admin.describe_group(&group).await.map_err(e)?;
            println!(
                "group {} state {} protocol {} {}",
                d.group_id, d.state, d.protocol_type, d.protocol
            );
            for m in &d.members {
                println!("  member {} client {} host {}", m.member_id, m.client_id, m.client_host);
                for (t, ps) in &m.assignment {
                    println!("    {t} {ps:?}");
                }
            }
            let committed = admin.group_offsets(&group).await.map_err(e)?;
            if !committed.is_empty() {
                println!(
                    "  {:<30} {:>9} {:>12} {:>12} {:>8}",
                    "topic", "partition", "committed", "end", "lag"
                );
            }
            let mut ends = std::collections::BTreeMap::new();
            for ((topic, partition), offset) in &committed {
                if !ends.contains_key(topic) {
                    let latest = admin.partition_offsets(topic).await.map_err(e)?;
                    ends.insert(topic.clone(), latest);
                }
                let end = ends[topic]
                    .iter()
                    .find(|p| p.partition == *partition)
                    .map_or(-1, |p| p.latest);
                let lag = if end >= 0 {
                    (end - offset).max(0).to_string()
                } else {
                    "?".into()
                };
                println!("  {topic:<30} {partition:>9} {offset:>12} {end:>12} {lag:>8}");
            }
        }
    }
    Ok(())
}
