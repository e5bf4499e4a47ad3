//! `strom log-dirs describe|move` (kafka-log-dirs.sh, and the `log_dirs` of
//! kafka-reassign-partitions.sh's plans): what each broker's log directories hold and
//! have free, and moving a replica between the directories of its broker.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use strom_client::{Admin, ClientConfig, TopicPartitionReplica};

use crate::out::outln;
use crate::Failure;

/// `strom log-dirs ...`
#[derive(Debug, Subcommand)]
pub(crate) enum LogDirsAction {
    /// Each broker's log directories: path, size and free space of the volume, and the
    /// replicas in it with their size and lag (kafka-log-dirs.sh --describe).
    ///
    /// Example: `strom log-dirs describe --broker 1 --topic orders --json`.
    Describe {
        /// Only this broker (repeatable; default: every broker).
        #[arg(long = "broker", value_name = "ID")]
        brokers: Vec<i32>,
        /// Only replicas of this topic (repeatable; default: every topic). Directories are
        /// listed even when they hold none.
        #[arg(long = "topic")]
        topics: Vec<String>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move replicas to another log directory of their broker; the broker copies the
    /// replica there in the background (`describe` shows the copy as "future").
    ///
    /// Example: `strom log-dirs move --replica orders:0@1 --replica orders:1@1 --to
    /// /var/lib/kafka/disk2`.
    Move {
        /// TOPIC:PARTITION@BROKER (repeatable).
        #[arg(long = "replica", value_name = "TOPIC:PARTITION@BROKER", required = true, value_parser = parse_replica)]
        replicas: Vec<TopicPartitionReplica>,
        /// The directory, as the broker's log.dirs names it.
        #[arg(long, value_name = "PATH")]
        to: String,
    },
}

/// `TOPIC:PARTITION@BROKER` (the topic may hold ':'; the partition follows the last one).
fn parse_replica(s: &str) -> Result<TopicPartitionReplica, String> {
    let bad = || format!("{s:?}: expected TOPIC:PARTITION@BROKER (e.g. orders:0@1)");
    let (tp, broker) = s.rsplit_once('@').ok_or_else(bad)?;
    let (topic, partition) = tp.rsplit_once(':').ok_or_else(bad)?;
    let partition = partition.parse::<i32>().ok().filter(|p| *p >= 0).ok_or_else(bad)?;
    let broker = broker.parse::<i32>().ok().filter(|b| *b >= 0).ok_or_else(bad)?;
    if topic.is_empty() {
        return Err(bad());
    }
    Ok(TopicPartitionReplica::new(topic, partition, broker))
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

fn bytes(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_owned(), |b| b.to_string())
}

pub(crate) async fn log_dirs(config: ClientConfig, action: LogDirsAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        LogDirsAction::Describe { brokers, topics, json } => {
            let all = admin.describe_log_dirs(&brokers).await.map_err(e)?;
            let wanted: BTreeSet<&str> = topics.iter().map(String::as_str).collect();
            let keep = |t: &str| wanted.is_empty() || wanted.contains(t);
            if json {
                let doc: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(id, dirs)| {
                        serde_json::json!({
                            "broker": id,
                            "log_dirs": dirs.iter().map(|d| serde_json::json!({
                                "path": d.path,
                                "error": (!d.error.is_ok()).then(|| d.error.name()),
                                "total_bytes": d.total_bytes,
                                "usable_bytes": d.usable_bytes,
                                "replicas": d.replicas.iter().filter(|((t, _), _)| keep(t)).map(|((t, p), r)| serde_json::json!({
                                    "topic": t,
                                    "partition": p,
                                    "size": r.size,
                                    "offset_lag": r.offset_lag,
                                    "is_future": r.is_future,
                                })).collect::<Vec<_>>(),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            for (id, dirs) in &all {
                outln!("broker {id}: {} log dirs", dirs.len())?;
                for d in dirs {
                    let state = if d.error.is_ok() {
                        String::new()
                    } else {
                        format!(" error {}", d.error.name())
                    };
                    outln!(
                        "  {} total {} usable {}{state}",
                        d.path,
                        bytes(d.total_bytes),
                        bytes(d.usable_bytes)
                    )?;
                    for ((t, p), r) in d.replicas.iter().filter(|((t, _), _)| keep(t)) {
                        outln!(
                            "    {t}:{p} size {} lag {}{}",
                            r.size,
                            r.offset_lag,
                            if r.is_future { " (future)" } else { "" }
                        )?;
                    }
                }
            }
        }
        LogDirsAction::Move { replicas, to } => {
            let moves: BTreeMap<TopicPartitionReplica, String> =
                replicas.into_iter().map(|r| (r, to.clone())).collect();
            let results = admin.alter_replica_log_dirs(&moves).await.map_err(e)?;
            let mut failed = Vec::new();
            for (r, outcome) in &results {
                match outcome {
                    Ok(()) => outln!("moving {}:{}@{} to {to}", r.topic, r.partition, r.broker_id)?,
                    Err(err) => failed.push(err.to_string()),
                }
            }
            if !failed.is_empty() {
                return Err(Failure::Error(failed.join("; ")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_parse_or_say_what_is_expected() {
        assert_eq!(
            parse_replica("orders:0@1"),
            Ok(TopicPartitionReplica::new("orders", 0, 1))
        );
        assert_eq!(parse_replica("a:b:7@2"), Ok(TopicPartitionReplica::new("a:b", 7, 2)));
        for bad in [
            "orders:0",
            "orders@1",
            ":0@1",
            "orders:-1@1",
            "orders:0@x",
            "orders:0@-2",
        ] {
            let err = parse_replica(bad).unwrap_err();
            assert!(err.contains("TOPIC:PARTITION@BROKER"), "{bad}: {err}");
        }
    }
}
