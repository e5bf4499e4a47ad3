//! `strom reassign start|list|cancel` (kafka-reassign-partitions.sh) and `strom
//! elect-leaders` (kafka-leader-election.sh).

use clap::{Args, Subcommand};
use strom_client::{Admin, ClientConfig, ElectionType, ErrorCode};

use crate::out::outln;
use crate::Failure;

/// `strom reassign ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ReassignAction {
    /// Move partitions to new replica sets; the data moves in the background.
    ///
    /// Example: `strom reassign start --move orders:0=2,3 --move orders:1=3,1`, or
    /// `--reassignment-json-file plan.json` in kafka-reassign-partitions.sh's format
    /// (`{"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3]}]}`).
    /// The first replica is the preferred leader (`strom elect-leaders` makes it the leader).
    #[command(group(clap::ArgGroup::new("plan").required(true).args(["moves", "reassignment_json_file"])))]
    Start {
        /// TOPIC:PARTITION=BROKER,BROKER,... (repeatable).
        #[arg(long = "move", value_name = "TOPIC:PARTITION=REPLICAS")]
        moves: Vec<String>,
        /// A kafka-reassign-partitions.sh plan.
        #[arg(long, value_name = "FILE", conflicts_with = "moves")]
        reassignment_json_file: Option<std::path::PathBuf>,
        /// Print the plan, moving nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The reassignments in progress.
    List {
        /// Only these partitions, TOPIC:PARTITION (repeatable; default: the whole cluster).
        #[arg(long = "partition", value_name = "TOPIC:PARTITION")]
        partitions: Vec<String>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop reassignments in progress: the partitions keep their original replicas.
    Cancel {
        /// TOPIC:PARTITION (repeatable).
        #[arg(long = "partition", value_name = "TOPIC:PARTITION", required = true)]
        partitions: Vec<String>,
    },
}

/// `strom elect-leaders`.
#[derive(Debug, Args)]
pub(crate) struct ElectArgs {
    /// Only this topic's partitions (with `--partition`, only those).
    #[arg(long)]
    topic: Option<String>,
    /// A partition of `--topic` (repeatable).
    #[arg(long = "partition", requires = "topic")]
    partitions: Vec<i32>,
    /// Elect any live replica, even one out of sync: records only the old leader had are
    /// lost (kafka-leader-election.sh --election-type unclean).
    #[arg(long)]
    unclean: bool,
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

/// `TOPIC:PARTITION` (the topic may itself hold ':'; the partition follows the last one).
fn topic_partition(s: &str) -> Result<(String, i32), Failure> {
    s.rsplit_once(':')
        .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
        .filter(|(t, p)| !t.is_empty() && *p >= 0)
        .map(|(t, p)| (t.to_owned(), p))
        .ok_or_else(|| Failure::Error(format!("{s:?}: expected TOPIC:PARTITION")))
}

/// `TOPIC:PARTITION=1,2,3`.
fn parse_move(s: &str) -> Result<(String, i32, Vec<i32>), Failure> {
    let bad = || Failure::Error(format!("--move {s:?}: expected TOPIC:PARTITION=BROKER,BROKER,..."));
    let (tp, replicas) = s.rsplit_once('=').ok_or_else(bad)?;
    let (topic, partition) = topic_partition(tp).map_err(|_| bad())?;
    let replicas: Vec<i32> = replicas
        .split(',')
        .map(|r| r.trim().parse::<i32>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if replicas.is_empty() {
        return Err(bad());
    }
    Ok((topic, partition, replicas))
}

/// The partitions of a kafka-reassign-partitions.sh plan.
fn parse_plan(path: &std::path::Path) -> Result<Vec<(String, i32, Vec<i32>)>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| Failure::Error(format!("cannot read {}: {err}", path.display())))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| Failure::Error(format!("{}: not JSON: {err}", path.display())))?;
    let bad = |what: &str| Failure::Error(format!("{}: {what}", path.display()));
    let parts = doc
        .get("partitions")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad("expected {\"version\":1,\"partitions\":[...]}"))?;
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let topic = p.get("topic").and_then(serde_json::Value::as_str);
        let partition = p
            .get("partition")
            .and_then(serde_json::Value::as_i64)
            .and_then(|n| i32::try_from(n).ok());
        let replicas: Option<Vec<i32>> = p.get("replicas").and_then(serde_json::Value::as_array).and_then(|r| {
            r.iter()
                .map(|n| n.as_i64().and_then(|n| i32::try_from(n).ok()))
                .collect()
        });
        match (topic, partition, replicas) {
            (Some(t), Some(n), Some(r)) if !r.is_empty() => out.push((t.to_owned(), n, r)),
            _ => {
                return Err(bad(&format!(
                    "partitions[{i}] needs \"topic\", \"partition\" and a non-empty \"replicas\" list"
                )))
            }
        }
    }
    if out.is_empty() {
        return Err(bad("the plan moves no partition"));
    }
    Ok(out)
}

/// `strom reassign ...`.
pub(crate) async fn reassign(config: ClientConfig, action: ReassignAction) -> Result<(), Failure> {
    match action {
        ReassignAction::Start {
            moves,
            reassignment_json_file,
            dry_run,
        } => {
            let plan = match reassignment_json_file {
                Some(f) => parse_plan(&f)?,
                None => moves.iter().map(|m| parse_move(m)).collect::<Result<_, _>>()?,
            };
            if dry_run {
                outln!("dry run: would move {} partitions", plan.len())?;
                for (t, p, r) in &plan {
                    outln!("  {t}:{p} -> {r:?}")?;
                }
                return Ok(());
            }
            let admin = Admin::connect(config).await.map_err(e)?;
            let request: Vec<(&str, i32, Option<Vec<i32>>)> =
                plan.iter().map(|(t, p, r)| (t.as_str(), *p, Some(r.clone()))).collect();
            admin.alter_partition_reassignments(&request).await.map_err(e)?;
            for (t, p, r) in &plan {
                outln!("started: {t}:{p} -> {r:?}")?;
            }
            Ok(())
        }
        ReassignAction::List { partitions, json } => {
            let tps: Vec<(String, i32)> = partitions
                .iter()
                .map(|s| topic_partition(s))
                .collect::<Result<_, _>>()?;
            let refs: Vec<(&str, i32)> = tps.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            let admin = Admin::connect(config).await.map_err(e)?;
            let mut ongoing = admin
                .list_partition_reassignments(if refs.is_empty() { None } else { Some(&refs) })
                .await
                .map_err(e)?;
            ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            if json {
                let doc: Vec<serde_json::Value> = ongoing
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "topic": r.topic,
                            "partition": r.partition,
                            "replicas": r.replicas,
                            "adding_replicas": r.adding_replicas,
                            "removing_replicas": r.removing_replicas,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            for r in &ongoing {
                outln!(
                    "{}:{} replicas {:?} adding {:?} removing {:?}",
                    r.topic,
                    r.partition,
                    r.replicas,
                    r.adding_replicas,
                    r.removing_replicas
                )?;
            }
            Ok(())
        }
        ReassignAction::Cancel { partitions } => {
            let tps: Vec<(String, i32)> = partitions
                .iter()
                .map(|s| topic_partition(s))
                .collect::<Result<_, _>>()?;
            let request: Vec<(&str, i32, Option<Vec<i32>>)> = tps.iter().map(|(t, p)| (t.as_str(), *p, None)).collect();
            let admin = Admin::connect(config).await.map_err(e)?;
            admin.alter_partition_reassignments(&request).await.map_err(e)?;
            for (t, p) in &tps {
                outln!("cancelled: {t}:{p}")?;
            }
            Ok(())
        }
    }
}

/// `strom elect-leaders`: each partition's outcome; a failure other than "already the
/// leader" fails the command.
pub(crate) async fn elect_leaders(config: ClientConfig, args: ElectArgs) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    let election = if args.unclean {
        ElectionType::Unclean
    } else {
        ElectionType::Preferred
    };
    let partitions: Option<Vec<(String, i32)>> = match (&args.topic, args.partitions.is_empty()) {
        (None, _) => None,
        (Some(t), false) => Some(args.partitions.iter().map(|p| (t.clone(), *p)).collect()),
        (Some(t), true) => Some(
            admin
                .describe_topics(&[t])
                .await
                .map_err(e)?
                .iter()
                .flat_map(|d| d.partitions.iter().map(|p| (t.clone(), p.partition)))
                .collect(),
        ),
    };
    let refs: Option<Vec<(&str, i32)>> = partitions
        .as_ref()
        .map(|ps| ps.iter().map(|(t, p)| (t.as_str(), *p)).collect());
    let results = admin.elect_leaders(election, refs.as_deref()).await.map_err(e)?;
    let mut failed = Vec::new();
    for ((t, p), r) in &results {
        match r {
            Ok(()) => outln!("{t}:{p} elected")?,
            Err(err) if err.kafka_code() == Some(ErrorCode::ElectionNotNeeded) => {
                outln!(
                    "{t}:{p} already led by its {} replica",
                    if args.unclean { "a live" } else { "preferred" }
                )?;
            }
            Err(err) => failed.push(format!("{t}:{p}: {err}")),
        }
    }
    if results.is_empty() {
        outln!("no partition needed an election")?;
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Error(failed.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_and_partitions_parse_or_say_what_is_expected() {
        assert_eq!(parse_move("orders:0=2,3").ok(), Some(("orders".into(), 0, vec![2, 3])));
        assert_eq!(parse_move("a:b:7=1").ok(), Some(("a:b".into(), 7, vec![1])));
        for bad in [
            "orders:0",
            "orders=1",
            "orders:x=1",
            "orders:0=",
            "orders:0=1,x",
            ":0=1",
            "orders:-1=1",
        ] {
            assert!(parse_move(bad).is_err(), "{bad}");
        }
        assert!(topic_partition("t:1").is_ok() && topic_partition("t").is_err());
    }
}
