//! `strom topics`, `strom offsets`, `strom groups`.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use strom_client::{
    Admin, ClientConfig, ConfigResource, ConsumerGroupDescription, ConsumerGroupMember, GroupType, NewTopic, OffsetSpec,
};

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
        /// A JSON array of {"topic": NAME} instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Partitions, leaders, replicas and non-default configs of a topic.
    Describe {
        /// Topic.
        topic: String,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a topic.
    ///
    /// Examples: `strom topics create orders --partitions 12 --replication-factor 3
    /// --config retention.ms=86400000`; `strom topics create orders --replica-assignment
    /// 1:2,2:3,3:1` (three partitions of two replicas, the first of each the preferred
    /// leader); `--dry-run` has the broker validate it and creates nothing.
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
        /// Where each partition's replicas go, as kafka-topics.sh takes it: partitions
        /// separated by commas, each one's broker ids by colons, the preferred leader first.
        #[arg(
            long,
            value_name = "B:B,B:B,...",
            value_parser = parse_replica_assignment,
            conflicts_with_all = ["partitions", "replication_factor"]
        )]
        replica_assignment: Option<BTreeMap<i32, Vec<i32>>>,
        /// Have the broker validate the topic (validate_only) and create nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete a topic.
    Delete {
        /// Topic.
        topic: String,
    },
    /// Delete the records before an offset (rpk's `trim`, Java's `kafka-delete-records.sh`).
    ///
    /// Example: `strom topics delete-records orders --partition 0 --before 1000`. Without
    /// `--partition`, every partition; `--before -1` (the default) deletes everything up to
    /// the high watermark. Prints each partition's new earliest offset.
    DeleteRecords {
        /// Topic.
        topic: String,
        /// Partition (repeatable; default: every partition).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
        /// Delete the records before this offset; -1: every record up to the high watermark.
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        before: i64,
        /// A JSON array of {"partition", "low_watermark"} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a topic's configs (`strom configs alter --topic T` in short).
    ///
    /// Example: `strom topics alter-config orders --set retention.ms=86400000 --delete
    /// segment.bytes --append cleanup.policy=compact --dry-run`.
    AlterConfig {
        /// Topic.
        topic: String,
        #[command(flatten)]
        changes: crate::configs::Changes,
        /// Have the broker check the changes (validate_only), changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Add partitions to a topic (kafka-topics.sh --alter --partitions, rpk topic
    /// add-partitions).
    ///
    /// Example: `strom topics add-partitions orders --total 12` or `--add 6`. Keys map to
    /// new partitions afterwards: records of a key may land elsewhere than before.
    #[command(group(clap::ArgGroup::new("how_many").required(true).args(["total", "add"])))]
    AddPartitions {
        /// Topic.
        topic: String,
        /// The partition count to reach.
        #[arg(long)]
        total: Option<i32>,
        /// How many partitions to add.
        #[arg(long)]
        add: Option<i32>,
    },
}

/// `strom cluster` (kcat -L): the cluster, its brokers and its topics' partitions.
#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    /// Only this topic (repeatable; default: every topic).
    #[arg(long = "topic", short = 't')]
    topics: Vec<String>,
    /// Include internal topics (`__consumer_offsets`, `__transaction_state`).
    #[arg(long)]
    internal: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    json: bool,
}

/// `strom cluster`: the cluster id, the controller, the brokers (id, address, rack) and,
/// per topic, every partition's leader, replicas and in-sync replicas.
pub(crate) async fn cluster(config: ClientConfig, args: ClusterArgs) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    let c = admin.describe_cluster().await.map_err(e)?;
    let names = if args.topics.is_empty() {
        admin.list_topics(args.internal).await.map_err(e)?
    } else {
        args.topics.clone()
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut topics = if refs.is_empty() {
        Vec::new()
    } else {
        admin.describe_topics(&refs).await.map_err(e)?
    };
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut brokers = c.brokers.clone();
    brokers.sort_by_key(|b| b.node_id);
    // Each broker's listeners, from its own configs (advertised.listeners, else listeners);
    // None where the caller may not describe them (no DESCRIBE_CONFIGS on the cluster).
    let mut listeners: BTreeMap<i32, Option<String>> = BTreeMap::new();
    for b in &brokers {
        let found = admin
            .describe_configs(&ConfigResource::Broker(b.node_id))
            .await
            .ok()
            .and_then(|entries| {
                let value = |k: &str| {
                    entries
                        .iter()
                        .find(|c| c.name == k)
                        .and_then(|c| c.value.clone())
                        .filter(|v| !v.is_empty())
                };
                value("advertised.listeners").or_else(|| value("listeners"))
            });
        listeners.insert(b.node_id, found);
    }
    // Finalized features (KIP-584); None from a broker that does not say (or refuses).
    let features = admin.describe_features().await.ok().map(|f| f.finalized);
    if args.json {
        let doc = serde_json::json!({
            "cluster_id": c.cluster_id,
            "controller": c.controller,
            "brokers": brokers.iter().map(|b| serde_json::json!({
                "id": b.node_id,
                "host": b.host,
                "port": b.port,
                "rack": b.rack,
                "listeners": listeners.get(&b.node_id).cloned().flatten().map(|l| {
                    l.split(',').map(|x| x.trim().to_owned()).collect::<Vec<_>>()
                }),
            })).collect::<Vec<_>>(),
            "features": features.as_ref().map(|f| f.iter().map(|(name, (_, max))| {
                (name.clone(), serde_json::json!(max))
            }).collect::<serde_json::Map<_, _>>()),
            "topics": topics.iter().map(|t| serde_json::json!({
                "topic": t.name,
                "topic_id": t.topic_id.to_string(),
                "internal": t.is_internal,
                "partitions": partitions_json(&t.partitions),
            })).collect::<Vec<_>>(),
        });
        outln!("{doc}")?;
        return Ok(());
    }
    outln!(
        "cluster {} controller {}",
        or_dash(&c.cluster_id),
        c.controller.map_or("-".to_owned(), |id| id.to_string())
    )?;
    if let Some(f) = features.as_ref().filter(|f| !f.is_empty()) {
        let list: Vec<String> = f.iter().map(|(name, (_, max))| format!("{name}={max}")).collect();
        outln!("features: {}", list.join(", "))?;
    }
    outln!("{} brokers:", brokers.len())?;
    for b in &brokers {
        outln!(
            "  broker {} at {}:{}{}{}{}",
            b.node_id,
            b.host,
            b.port,
            if c.controller == Some(b.node_id) {
                " (controller)"
            } else {
                ""
            },
            b.rack.as_deref().map(|r| format!(" rack {r}")).unwrap_or_default(),
            listeners
                .get(&b.node_id)
                .cloned()
                .flatten()
                .map(|l| format!(", listeners {l}"))
                .unwrap_or_default()
        )?;
    }
    outln!("{} topics:", topics.len())?;
    for t in &topics {
        outln!(
            "  topic \"{}\" with {} partitions{}:",
            t.name,
            t.partitions.len(),
            if t.is_internal { " (internal)" } else { "" }
        )?;
        for p in &t.partitions {
            let offline = if p.offline_replicas.is_empty() {
                String::new()
            } else {
                format!(", offline: {}", partition_list(&p.offline_replicas))
            };
            outln!(
                "    partition {}, leader {}, replicas: {}, isrs: {}{offline}",
                p.partition,
                p.leader,
                partition_list(&p.replicas),
                partition_list(&p.isr)
            )?;
        }
    }
    Ok(())
}

/// `strom groups ...`
#[derive(Debug, Subcommand)]
pub(crate) enum GroupsAction {
    /// Group ids with type and state.
    List {
        /// A JSON array of {"group", "type", "protocol_type", "state"} instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Members, assignments, committed offsets and lag.
    ///
    /// Members (id, instance id, client id, host, assignment), then per partition the
    /// committed offset, the end offset (high watermark) and the lag between them. Classic
    /// groups are described by DescribeGroups, KIP-848 (group.protocol=consumer) groups by
    /// ConsumerGroupDescribe.
    Describe {
        /// Group id.
        group: String,
        /// One JSON object (group, members, offsets with lag) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Set a group's committed offsets for a topic (kafka-consumer-groups.sh
    /// --reset-offsets, rpk group seek).
    ///
    /// The group must have no active members (as Java's tool requires). Examples:
    /// `strom groups reset-offsets billing --topic orders --to-earliest`,
    /// `... --to-datetime 2026-12-01T00:00:00Z`, `... --shift-by -100 --partition 3`.
    /// Offsets past either end are moved to that end. Prints the new offsets;
    /// `--dry-run` prints them without committing.
    #[command(visible_alias = "seek")]
    ResetOffsets {
        /// Group id.
        group: String,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition (repeatable; default: every partition of the topic).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
        #[command(flatten)]
        to: ResetTo,
        /// Print the new offsets; commit nothing.
        #[arg(long)]
        dry_run: bool,
        /// A JSON array of {"group", "topic", "partition", "offset"} instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a group's committed offsets of a topic (kafka-consumer-groups.sh
    /// --delete-offsets). The broker refuses partitions the group is consuming.
    DeleteOffsets {
        /// Group id.
        group: String,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partition (repeatable; default: every partition of the topic).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
    },
    /// Delete groups (they must have no active members).
    Delete {
        /// Group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// Where `groups reset-offsets` moves a group: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ResetTo {
    /// The earliest offset of each partition.
    #[arg(long)]
    to_earliest: bool,
    /// The end (high watermark) of each partition.
    #[arg(long)]
    to_latest: bool,
    /// This offset in each partition.
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// The first record at or after this time: RFC 3339 UTC (`2026-12-01T00:00:00Z`,
    /// `2026-12-01T00:00:00.250Z`) or milliseconds since the epoch.
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// The committed offset plus N (negative: back).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

fn e(err: strom_client::Error) -> String {
    err.to_string()
}

/// `1:2,2:3,3:1` (kafka-topics.sh's `--replica-assignment`): partition i's replicas are the
/// i-th comma-separated item, broker ids separated by colons.
fn parse_replica_assignment(s: &str) -> Result<BTreeMap<i32, Vec<i32>>, String> {
    let mut out = BTreeMap::new();
    for (i, part) in s.split(',').enumerate() {
        let brokers: Result<Vec<i32>, _> = part.split(':').map(|b| b.trim().parse::<i32>()).collect();
        let brokers = brokers
            .ok()
            .filter(|b| b.iter().all(|id| *id >= 0))
            .ok_or_else(|| format!("partition {i}: {part:?} is not broker ids separated by ':' (e.g. 1:2,2:3)"))?;
        let partition = i32::try_from(i).map_err(|_| "too many partitions".to_owned())?;
        out.insert(partition, brokers);
    }
    Ok(out)
}

/// A topic's partitions as `strom cluster --json` and `strom topics describe --json` write them.
fn partitions_json(partitions: &[strom_client::PartitionInfo]) -> serde_json::Value {
    partitions
        .iter()
        .map(|p| {
            serde_json::json!({
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isrs": p.isr,
                "offline_replicas": p.offline_replicas,
                "error": (!p.error.is_ok()).then(|| p.error.name()),
            })
        })
        .collect()
}

pub(crate) async fn topics(config: ClientConfig, action: TopicsAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        TopicsAction::List { internal, json } => {
            let names = admin.list_topics(internal).await.map_err(e)?;
            if json {
                let doc: Vec<_> = names.iter().map(|t| serde_json::json!({ "topic": t })).collect();
                outln!("{}", serde_json::Value::Array(doc))?;
            } else {
                for t in names {
                    outln!("{t}")?;
                }
            }
        }
        TopicsAction::Describe { topic, json } => {
            let d = admin
                .describe_topics(&[&topic])
                .await
                .map_err(e)?
                .into_iter()
                .next()
                .ok_or_else(|| format!("the broker described no topic {topic}"))?;
            let configs = admin
                .describe_configs(&ConfigResource::Topic(topic.clone()))
                .await
                .map_err(e)?;
            // Only the topic's own overrides, as kafka-topics --describe shows them.
            let overrides: Vec<_> = configs
                .iter()
                .filter(|c| c.source == strom_client::ConfigSource::DynamicTopic)
                .collect();
            if json {
                let doc = serde_json::json!({
                    "topic": d.name,
                    "topic_id": d.topic_id.to_string(),
                    "internal": d.is_internal,
                    "partitions": partitions_json(&d.partitions),
                    "configs": overrides
                        .iter()
                        .map(|c| (c.name.clone(), serde_json::json!(c.value)))
                        .collect::<serde_json::Map<_, _>>(),
                });
                outln!("{doc}")?;
                return Ok(());
            }
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
            for c in overrides {
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
            replica_assignment,
            dry_run,
        } => {
            let mut t = match replica_assignment {
                Some(a) => NewTopic::with_replica_assignment(&topic, a),
                None => {
                    let mut t = NewTopic::with_broker_defaults(&topic);
                    t.partitions = partitions;
                    t.replication_factor = replication_factor;
                    t
                }
            };
            for c in configs {
                let (k, v) = c
                    .split_once('=')
                    .ok_or_else(|| format!("--config {c}: expected key=value"))?;
                t = t.config(k, v);
            }
            let options = strom_client::CreateTopicsOptions::default().validate_only(dry_run);
            let created = admin.create_topics_with_options(&[t], options).await.map_err(e)?;
            let shape = created
                .first()
                .filter(|c| c.partitions >= 0)
                .map(|c| {
                    format!(
                        ": {} partitions, replication factor {}",
                        c.partitions, c.replication_factor
                    )
                })
                .unwrap_or_default();
            if dry_run {
                outln!("dry run: the broker would create topic {topic}{shape}")?;
            } else {
                crate::out::note(&format!("created topic {topic}{shape}"));
            }
        }
        TopicsAction::Delete { topic } => {
            admin.delete_topics(&[&topic]).await.map_err(e)?;
            crate::out::note(&format!("deleted topic {topic}"));
        }
        TopicsAction::DeleteRecords {
            topic,
            partitions,
            before,
            json,
        } => {
            if before < -1 {
                return Err(format!("--before {before}: expected an offset >= 0, or -1 for everything").into());
            }
            let partitions = if partitions.is_empty() {
                admin
                    .partition_offsets(&topic)
                    .await
                    .map_err(e)?
                    .iter()
                    .map(|p| p.partition)
                    .collect()
            } else {
                partitions
            };
            let wanted: Vec<(i32, i64)> = partitions.iter().map(|p| (*p, before)).collect();
            let deleted = admin.delete_records(&topic, &wanted).await.map_err(e)?;
            if json {
                let doc: Vec<_> = deleted
                    .iter()
                    .map(|d| serde_json::json!({ "partition": d.partition, "low_watermark": d.low_watermark }))
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            outln!("{:>9} {:>12}", "partition", "earliest")?;
            for d in deleted {
                outln!("{:>9} {:>12}", d.partition, d.low_watermark)?;
            }
        }
        TopicsAction::AlterConfig {
            topic,
            changes,
            dry_run,
        } => {
            crate::configs::alter(&admin, &ConfigResource::Topic(topic), &changes, dry_run).await?;
        }
        TopicsAction::AddPartitions { topic, total, add } => {
            let now = admin
                .describe_topics(&[&topic])
                .await
                .map_err(e)?
                .first()
                .map_or(0, |d| d.partitions.len());
            let now = i32::try_from(now).map_err(|_| format!("topic {topic} has too many partitions"))?;
            let target = match (total, add) {
                (Some(t), _) => t,
                (None, Some(n)) if n > 0 => now.saturating_add(n),
                (None, n) => return Err(format!("--add {}: expected at least 1", n.unwrap_or(0)).into()),
            };
            if target <= now {
                return Err(format!(
                    "topic {topic} has {now} partitions; --total {target} would not add any (partitions cannot be removed)"
                )
                .into());
            }
            admin.create_partitions(&topic, target).await.map_err(e)?;
            outln!("topic {topic}: {now} -> {target} partitions")?;
        }
    }
    Ok(())
}

/// Milliseconds since the epoch of `2026-12-01T00:00:00Z` (fraction optional, UTC only), or
/// of a plain millisecond count.
fn parse_datetime(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad =
        || format!("--to-datetime {s}: expected YYYY-MM-DDTHH:MM:SS[.fff]Z (UTC) or milliseconds since the epoch");
    let rest = s.strip_suffix('Z').ok_or_else(bad)?;
    let (date, time) = rest.split_once('T').ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let t: Vec<&str> = hms.split(':').collect();
    if d.len() != 3 || t.len() != 3 || frac.len() > 3 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let num = |x: &str, lo: i64, hi: i64| x.parse::<i64>().ok().filter(|v| (lo..=hi).contains(v)).ok_or_else(bad);
    let (y, m, day) = (num(d[0], 1970, 9999)?, num(d[1], 1, 12)?, num(d[2], 1, 31)?);
    let (h, min, sec) = (num(t[0], 0, 23)?, num(t[1], 0, 59)?, num(t[2], 0, 59)?);
    let millis = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<3}").parse::<i64>().map_err(|_| bad())?
    };
    // Days from 1970-01-01 to y-m-d (Howard Hinnant's days_from_civil).
    let (yy, mm) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + millis)
}

pub(crate) async fn offsets(config: ClientConfig, topic: &str, json: bool) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    // Asked first: an error (say, no such topic) is then the only output.
    let offsets = admin.partition_offsets(topic).await.map_err(e)?;
    if json {
        let doc: Vec<_> = offsets
            .iter()
            .map(|p| serde_json::json!({ "partition": p.partition, "earliest": p.earliest, "latest": p.latest }))
            .collect();
        outln!("{}", serde_json::Value::Array(doc))?;
        return Ok(());
    }
    outln!("{:>9} {:>12} {:>12}", "partition", "earliest", "latest")?;
    for p in offsets {
        outln!("{:>9} {:>12} {:>12}", p.partition, p.earliest, p.latest)?;
    }
    Ok(())
}

/// The offsets `groups reset-offsets` commits: (partition, offset), each within the
/// partition's earliest and latest offsets.
async fn reset_plan(
    admin: &Admin,
    group: &str,
    topic: &str,
    partitions: &[i32],
    to: &ResetTo,
) -> Result<Vec<(i32, i64)>, String> {
    // Arguments first: a bad time is reported as such, whatever the group's state.
    let time = to.to_datetime.as_deref().map(parse_datetime).transpose()?;
    // A group that does not exist yet may get offsets (as with Java's tool): it has no members.
    match admin.describe_consumer_group(group).await {
        Ok(d) if !d.members.is_empty() => {
            return Err(format!(
                "group {group} has {} active member(s) (state {}): offsets can only be reset while the group is \
                 inactive; stop its consumers first",
                d.members.len(),
                or_dash(&d.state)
            ));
        }
        Ok(_) => {}
        Err(err) if err.kafka_code() == Some(strom_client::ErrorCode::GroupIdNotFound) => {}
        Err(err) => return Err(e(err)),
    }
    let bounds = admin.partition_offsets(topic).await.map_err(e)?;
    let chosen: Vec<_> = if partitions.is_empty() {
        bounds.iter().collect()
    } else {
        partitions
            .iter()
            .map(|p| {
                bounds
                    .iter()
                    .find(|b| b.partition == *p)
                    .ok_or_else(|| format!("topic {topic} has no partition {p}"))
            })
            .collect::<Result<_, _>>()?
    };
    let committed = if to.shift_by.is_some() {
        admin.group_offsets(group).await.map_err(e)?
    } else {
        BTreeMap::new()
    };
    let at_time = match time {
        Some(ms) => {
            let ps: Vec<i32> = chosen.iter().map(|b| b.partition).collect();
            admin
                .list_offsets(topic, &ps, OffsetSpec::Timestamp(ms))
                .await
                .map_err(e)?
                .into_iter()
                .map(|o| (o.partition, o.offset))
                .collect()
        }
        None => BTreeMap::new(),
    };
    let mut plan = Vec::new();
    for b in chosen {
        let wanted = if to.to_earliest {
            b.earliest
        } else if to.to_latest {
            b.latest
        } else if let Some(o) = to.to_offset {
            o
        } else if let Some(n) = to.shift_by {
            let current = committed.get(&(topic.to_owned(), b.partition)).ok_or_else(|| {
                format!(
                    "--shift-by: group {group} has no committed offset for {topic} partition {}",
                    b.partition
                )
            })?;
            current.saturating_add(n)
        } else {
            // No record at or after the time: the end, as Java's tool does.
            match at_time.get(&b.partition) {
                Some(&o) if o >= 0 => o,
                _ => b.latest,
            }
        };
        plan.push((b.partition, wanted.clamp(b.earliest, b.latest)));
    }
    Ok(plan)
}

/// The header line after `group G` of a group described by
/// [`Admin::describe_consumer_group`] (classic groups by DescribeGroups, KIP-848 groups by
/// ConsumerGroupDescribe).
fn group_header(d: &ConsumerGroupDescription) -> String {
    match d.group_type {
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
    }
}

/// `classic` or `consumer`, as the describe header and `--json` name a group's protocol.
fn group_type_name(t: &GroupType) -> &'static str {
    match t {
        GroupType::Classic => "classic",
        _ => "consumer",
    }
}

fn member_json(m: &ConsumerGroupMember) -> serde_json::Value {
    serde_json::json!({
        "member_id": m.member_id,
        "group_instance_id": m.group_instance_id,
        "client_id": m.client_id,
        "client_host": m.client_host,
        "member_epoch": m.member_epoch,
        "assignment": m.assignment,
        "target_assignment": m.target_assignment,
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
        GroupsAction::ResetOffsets {
            group,
            topic,
            partitions,
            to,
            dry_run,
            json,
        } => {
            let plan = reset_plan(&admin, &group, &topic, &partitions, &to).await?;
            if !dry_run {
                admin.alter_group_offsets(&group, &topic, &plan).await.map_err(e)?;
            }
            if json {
                let doc: Vec<_> = plan
                    .iter()
                    .map(|(p, o)| serde_json::json!({ "group": group, "topic": topic, "partition": p, "offset": o }))
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                if dry_run {
                    crate::out::note("dry run: nothing was committed");
                }
                return Ok(());
            }
            outln!(
                "{:<24} {:<24} {:>9} {:>12}",
                "GROUP",
                "TOPIC",
                "PARTITION",
                "NEW-OFFSET"
            )?;
            for (p, o) in &plan {
                outln!("{group:<24} {topic:<24} {p:>9} {o:>12}")?;
            }
            if dry_run {
                crate::out::note("dry run: nothing was committed");
            }
        }
        GroupsAction::DeleteOffsets {
            group,
            topic,
            partitions,
        } => {
            let partitions = if partitions.is_empty() {
                admin
                    .partition_offsets(&topic)
                    .await
                    .map_err(e)?
                    .iter()
                    .map(|p| p.partition)
                    .collect()
            } else {
                partitions
            };
            admin
                .delete_group_offsets(&group, &topic, &partitions)
                .await
                .map_err(e)?;
            crate::out::note(&format!(
                "deleted the committed offsets of group {group} for {topic} partitions {}",
                partition_list(&partitions)
            ));
        }
        GroupsAction::Delete { groups } => {
            let names: Vec<&str> = groups.iter().map(String::as_str).collect();
            admin.delete_groups(&names).await.map_err(e)?;
            for g in &groups {
                crate::out::note(&format!("deleted group {g}"));
            }
        }
        GroupsAction::List { json } => {
            let groups = admin.list_groups().await.map_err(e)?;
            if json {
                let doc: Vec<_> = groups
                    .iter()
                    .map(|g| {
                        serde_json::json!({
                            "group": g.group_id,
                            "type": (!g.group_type.is_empty()).then_some(g.group_type.as_str()),
                            "protocol_type": g.protocol_type,
                            "state": g.state,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            for g in groups {
                let ty = if g.group_type.is_empty() {
                    g.protocol_type.as_str()
                } else {
                    g.group_type.as_str()
                };
                outln!("{}\t{}\t{}", g.group_id, ty, g.state)?;
            }
        }
        GroupsAction::Describe { group, json } => {
            // A share group answers ShareGroupDescribe; any other group (or a broker
            // without share groups) does not.
            if let Ok(d) = admin.describe_share_group(&group).await {
                return describe_share_group(&admin, &group, &d, json).await;
            }
            let d = admin.describe_consumer_group(&group).await.map_err(e)?;
            let committed = admin.group_offsets(&group).await.map_err(e)?;
            let mut out = format!("group {group} {} members {}\n", group_header(&d), d.members.len());
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
            let mut offsets_json = Vec::with_capacity(rows.len());
            for key in &rows {
                let (topic, partition) = key;
                let c = committed.get(key).copied();
                let end = ends.get(topic).and_then(|m| m.get(partition)).copied();
                let lag = match (c, end) {
                    (Some(c), Some(end)) => Some((end - c).max(0)),
                    _ => None,
                };
                let member = owner.get(key).copied();
                if json {
                    offsets_json.push(serde_json::json!({
                        "topic": topic,
                        "partition": partition,
                        "committed": c,
                        "end": end,
                        "lag": lag,
                        "member_id": member,
                    }));
                    continue;
                }
                let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
                out.push_str(&format!(
                    "  {topic:<30} {partition:>9} {:>12} {:>12} {:>8}  {}\n",
                    show(c),
                    show(end),
                    show(lag),
                    member.unwrap_or("-")
                ));
            }
            if json {
                let doc = serde_json::json!({
                    "group": group,
                    "type": group_type_name(&d.group_type),
                    "protocol_type": d.protocol_type,
                    "state": d.state,
                    "assignor": d.assignor,
                    "group_epoch": d.group_epoch,
                    "members": d.members.iter().map(member_json).collect::<Vec<_>>(),
                    "offsets": offsets_json,
                });
                outln!("{doc}")?;
                return Ok(());
            }
            crate::out::print(&out)?;
        }
    }
    Ok(())
}

/// `strom groups describe` of a share group: its members and what each was assigned (a
/// partition may be shared), then each partition's start offset (the share-partition
/// state's start: records before it are done; records after it may be done too, which
/// DescribeShareGroupOffsets v0 does not say, so no lag is shown) and its end.
async fn describe_share_group(
    admin: &Admin,
    group: &str,
    d: &strom_client::ShareGroupDescription,
    json: bool,
) -> Result<(), Failure> {
    let starts = admin.share_group_offsets(group).await.map_err(e)?;
    let mut ends: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for (topic, _) in starts.keys() {
        if !ends.contains_key(topic) {
            let latest = admin
                .list_offsets(topic, &[], OffsetSpec::Latest)
                .await
                .unwrap_or_default();
            ends.insert(topic.clone(), latest.iter().map(|o| (o.partition, o.offset)).collect());
        }
    }
    let rows: Vec<(String, i32, i64, Option<i64>)> = starts
        .iter()
        .map(|((t, p), start)| (t.clone(), *p, *start, ends.get(t).and_then(|m| m.get(p)).copied()))
        .collect();
    if json {
        let doc = serde_json::json!({
            "group": group,
            "type": "share",
            "state": d.state,
            "group_epoch": d.group_epoch,
            "assignment_epoch": d.assignment_epoch,
            "assignor": d.assignor,
            "members": d.members.iter().map(|m| serde_json::json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_epoch": m.member_epoch,
                "subscribed_topics": m.subscribed_topics,
                "assignment": m.assignment,
            })).collect::<Vec<_>>(),
            "offsets": rows.iter().map(|(t, p, start, end)| serde_json::json!({
                "topic": t,
                "partition": p,
                "start_offset": start,
                "end": end,
            })).collect::<Vec<_>>(),
        });
        outln!("{doc}")?;
        return Ok(());
    }
    let mut out = format!(
        "group {group} type share state {} epoch {} assignor {} members {}\n",
        or_dash(&d.state),
        d.group_epoch,
        or_dash(&d.assignor),
        d.members.len()
    );
    for m in &d.members {
        out.push_str(&format!(
            "  member {} client {} host {} epoch {}\n",
            m.member_id,
            or_dash(&m.client_id),
            or_dash(&m.client_host),
            m.member_epoch
        ));
        for (t, ps) in &m.assignment {
            out.push_str(&format!("    assigned {t} {}\n", partition_list(ps)));
        }
    }
    if !rows.is_empty() {
        out.push_str(&format!(
            "  {:<30} {:>9} {:>12} {:>12}\n",
            "topic", "partition", "start", "end"
        ));
    }
    for (t, p, start, end) in &rows {
        let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        out.push_str(&format!("  {t:<30} {p:>9} {start:>12} {:>12}\n", show(*end)));
    }
    crate::out::print(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_as_java_users_write_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_datetime("2026-12-01T00:00:00Z"), Ok(1_796_083_200_000));
        assert_eq!(parse_datetime("2000-02-29T12:34:56.5Z"), Ok(951_827_696_500));
        assert_eq!(parse_datetime("1700000000000"), Ok(1_700_000_000_000));
        for bad in [
            "2026-12-01",
            "2026-12-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-12-01T00:00:00.1234Z",
            "yesterday",
        ] {
            let e = parse_datetime(bad).unwrap_err();
            assert!(e.contains("--to-datetime") && e.contains(bad), "{bad}: {e}");
        }
    }
}
