//! `strom transactions list|describe|producers|abort|fence` (kafka-transactions.sh).

use clap::Subcommand;
use strom_client::{Admin, ClientConfig};

use crate::out::outln;
use crate::Failure;

/// `strom transactions ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TransactionsAction {
    /// Every transactional id the coordinators know, with its producer id and state.
    List {
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// One transactional id: state, producer id and epoch, timeout, start time, partitions.
    Describe {
        /// Transactional id.
        transactional_id: String,
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// The active producers of a partition (to find a hanging transaction).
    Producers {
        /// Topic.
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Abort a hanging transaction on one partition by writing its ABORT marker; the
    /// producer id, epoch and coordinator epoch come from `transactions producers`.
    Abort {
        /// Topic.
        topic: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// The hanging producer's id.
        #[arg(long)]
        producer_id: i64,
        /// Its epoch.
        #[arg(long)]
        producer_epoch: i16,
        /// The coordinator epoch of its transaction.
        #[arg(long)]
        coordinator_epoch: i32,
    },
    /// Fence the producers of transactional ids (KIP-664): each one's epoch is bumped, its
    /// producer fails at its next call, and an open transaction is aborted.
    ///
    /// Example: `strom transactions fence payments-0 payments-1`.
    Fence {
        /// Transactional ids.
        #[arg(required = true)]
        transactional_ids: Vec<String>,
    },
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

/// `strom transactions ...`.
pub(crate) async fn transactions(config: ClientConfig, action: TransactionsAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        TransactionsAction::List { json } => {
            let mut all = admin.list_transactions().await.map_err(e)?;
            all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
            if json {
                let doc: Vec<serde_json::Value> = all
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "transactional_id": t.transactional_id,
                            "producer_id": t.producer_id,
                            "state": t.state,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
            } else {
                for t in &all {
                    outln!("{}\tproducer {}\t{}", t.transactional_id, t.producer_id, t.state)?;
                }
            }
        }
        TransactionsAction::Describe { transactional_id, json } => {
            let t = admin.describe_transaction(&transactional_id).await.map_err(e)?;
            if json {
                let doc = serde_json::json!({
                    "transactional_id": t.transactional_id,
                    "state": t.state,
                    "producer_id": t.producer_id,
                    "producer_epoch": t.producer_epoch,
                    "timeout_ms": t.timeout_ms,
                    "start_time_ms": t.start_time_ms,
                    "partitions": t.partitions.iter().map(|(topic, ps)| serde_json::json!({"topic": topic, "partitions": ps})).collect::<Vec<_>>(),
                });
                outln!("{doc}")?;
            } else {
                outln!(
                    "{} state {} producer {} epoch {} timeout {} ms started {}",
                    t.transactional_id,
                    t.state,
                    t.producer_id,
                    t.producer_epoch,
                    t.timeout_ms,
                    t.start_time_ms
                )?;
                for (topic, ps) in &t.partitions {
                    outln!("  {topic} {ps:?}")?;
                }
            }
        }
        TransactionsAction::Producers { topic, partition, json } => {
            let ps = admin.describe_producers(&topic, partition).await.map_err(e)?;
            if json {
                let doc: Vec<serde_json::Value> = ps
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "producer_id": p.producer_id,
                            "producer_epoch": p.producer_epoch,
                            "last_sequence": p.last_sequence,
                            "last_timestamp": p.last_timestamp,
                            "coordinator_epoch": p.coordinator_epoch,
                            "current_txn_start_offset": p.current_txn_start_offset,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
            } else {
                for p in &ps {
                    outln!(
                        "producer {} epoch {} last sequence {} coordinator epoch {} open transaction from {}",
                        p.producer_id,
                        p.producer_epoch,
                        p.last_sequence,
                        p.coordinator_epoch,
                        p.current_txn_start_offset.map_or("-".to_owned(), |o| o.to_string())
                    )?;
                }
            }
        }
        TransactionsAction::Abort {
            topic,
            partition,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            admin
                .abort_transaction(&topic, partition, producer_id, producer_epoch, coordinator_epoch)
                .await
                .map_err(e)?;
            outln!("aborted producer {producer_id}'s transaction on {topic}:{partition}")?;
        }
        TransactionsAction::Fence { transactional_ids } => {
            for id in &transactional_ids {
                let (pid, epoch) = admin.fence_producers(id).await.map_err(e)?;
                outln!("fenced {id}: producer {pid} epoch {epoch}")?;
            }
        }
    }
    Ok(())
}
