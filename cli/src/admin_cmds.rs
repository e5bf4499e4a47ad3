//! `strom topics`, `strom offsets`, `strom groups`.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use strom_client::{Admin, ClientConfig, ConfigResource, ConsumerGroupMember, GroupType, NewTopic, OffsetSpec};

use crate::out::outln;
use crate::Failure;

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
    ///
    /// Members (id, instance id, client id, host, assignment), then per partition the
    /// committed offset, the end offset (high watermark) and the lag between them. Classic
    /// groups are described by DescribeGroups, KIP-848 (group.protocol=consumer) groups by
    /// ConsumerGroupDescribe.
    Describe {
        /// Group id.
        group: String,
    },
}

fn e(err: strom_client::Error) -> String {
    err.to_string()
}

pub(crate) async fn topics(config: ClientConfig, action: TopicsAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        TopicsAction::List { internal } => {
            for t in admin.list_topics(internal).await.map_err(e)? {
                outln!("{t}")?;
            }
        }
        TopicsAction::Describe { topic } => {
            let d = admin
                .describe_topics(&[&topic])
                .await
                .map_err(e)?
                .into_iter()
                .next()
                .ok_or_else(|| format!("the broker described no topic {topic}"))?;
            outln!(
                "topic {} id {} partitions {}{}",
                d.name,
                d.topic_id,
                d.partitions.len(),
                if d.is_internal { " internal" } else { "" }
            )?;
            for p in &d.partitions {
                outln!(
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
                )?;
            }
            let configs = admin.describe_configs(&ConfigResource::Topic(topic)).await.map_err(e)?;
            // Only the topic's own overrides, as kafka-topics --describe shows them.
            for c in configs
                .iter()
                .filter(|c| c.source == strom_client::ConfigSource::DynamicTopic)
            {
                outln!(
                    "  config {}={}",
                    c.name,
                    c.value
                        .as_deref()
                        .unwrap_or(if c.is_sensitive { "[sensitive]" } else { "" })
                )?;
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
            crate::out::note(&format!("created topic {topic}"));
        }
        TopicsAction::Delete { topic } => {
            admin.delete_topics(&[&topic]).await.map_err(e)?;
            crate::out::note(&format!("deleted topic {topic}"));
        }
    }
    Ok(())
}

pub(crate) async fn offsets(config: ClientConfig, topic: &str) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    // Asked first: an error (say, no such topic) is then the only output.
    let offsets = admin.partition_offsets(topic).await.map_err(e)?;
    outln!("{:>9} {:>12} {:>12}", "partition", "earliest", "latest")?;
    for p in offsets {
        outln!("{:>9} {:>12} {:>12}", p.partition, p.earliest, p.latest)?;
    }
    Ok(())
}

/// A group's members as either describe API reports them.
#[derive(Debug)]
struct Described {
    /// The header line after `group G`.
    header: String,
    members: Vec<ConsumerGroupMember>,
}

/// [`Admin::describe_consumer_group`]: classic groups by DescribeGroups, KIP-848 groups by
/// ConsumerGroupDescribe.
async fn describe(admin: &Admin, group: &str) -> Result<Described, String> {
    let d = admin.describe_consumer_group(group).await.map_err(e)?;
    let header = match d.group_type {
        GroupType::Classic => format!(
            "type classic state {} protocol-type {} assignor {}",
            or_dash(&d.state),
            or_dash(&d.protocol_type),
            or_dash(&d.assignor)
        ),
        _ => format!(
            "type consumer state {} epoch {} assignor {}",
            or_dash(&d.state),
            d.group_epoch.unwrap_or(-1),
            or_dash(&d.assignor)
        ),
    };
    Ok(Described {
        header,
        members: d.members,
    })
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

fn partition_list(ps: &[i32]) -> String {
    ps.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) async fn groups(config: ClientConfig, action: GroupsAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        GroupsAction::List => {
            for g in admin.list_groups().await.map_err(e)? {
                let ty = if g.group_type.is_empty() {
                    g.protocol_type.as_str()
                } else {
                    g.group_type.as_str()
                };
                outln!("{}\t{}\t{}", g.group_id, ty, g.state)?;
            }
        }
        GroupsAction::Describe { group } => {
            let d = describe(&admin, &group).await?;
            let committed = admin.group_offsets(&group).await.map_err(e)?;
            let mut out = format!("group {group} {} members {}\n", d.header, d.members.len());
            // Who holds each partition, for the offsets table.
            let mut owner: BTreeMap<(String, i32), &str> = BTreeMap::new();
            for m in &d.members {
                out.push_str(&format!(
                    "  member {} instance {} client {} host {}{}\n",
                    m.member_id,
                    m.group_instance_id.as_deref().unwrap_or("-"),
                    or_dash(&m.client_id),
                    or_dash(&m.client_host),
                    m.member_epoch.map(|ep| format!(" epoch {ep}")).unwrap_or_default()
                ));
                for (t, ps) in &m.assignment {
                    out.push_str(&format!("    assigned {t} {}\n", partition_list(ps)));
                    for p in ps {
                        owner.insert((t.clone(), *p), &m.member_id);
                    }
                }
                for (t, ps) in m.target_assignment.iter().flatten() {
                    out.push_str(&format!("    target {t} {}\n", partition_list(ps)));
                }
            }
            let rows: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
            if !rows.is_empty() {
                out.push_str(&format!(
                    "  {:<30} {:>9} {:>12} {:>12} {:>8}  member\n",
                    "topic", "partition", "committed", "end", "lag"
                ));
            }
            // Lag against the high watermark, as kafka-consumer-groups.sh reports it.
            let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
            for (topic, _) in &rows {
                if !ends.contains_key(topic) {
                    // A topic deleted since the commit has no end: shown as "-".
                    let latest = admin
                        .list_offsets(topic, &[], OffsetSpec::Latest)
                        .await
                        .unwrap_or_default();
                    ends.insert(topic.clone(), latest.iter().map(|o| (o.partition, o.offset)).collect());
                }
            }
            for key in &rows {
                let (topic, partition) = key;
                let c = committed.get(key).copied();
                let end = ends.get(topic).and_then(|m| m.get(partition)).copied();
                let lag = match (c, end) {
                    (Some(c), Some(end)) => (end - c).max(0).to_string(),
                    _ => "-".into(),
                };
                let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                out.push_str(&format!(
                    "  {topic:<30} {partition:>9} {:>12} {:>12} {lag:>8}  {}\n",
                    show(c),
                    show(end),
                    owner.get(key).copied().unwrap_or("-")
                ));
            }
            crate::out::print(&out)?;
        }
    }
    Ok(())
}
