//! `strom bench txn` (S4): transactions of a fixed number of records, one after another,
//! through [`TransactionalProducer`]; records/s over the whole run and each transaction's
//! commit latency, from `begin_transaction` to `commit_transaction` returning.

use std::path::PathBuf;
use std::time::Instant;

use strom_client::{ClientConfig, ProducerConfig, ProducerRecord, TransactionalProducer};

use super::{payloads, usage, Latencies};
use crate::out::outln;
use crate::{set_error, Failure, Property};

/// Arguments of `strom bench txn`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchTxnArgs {
    /// Topic (must exist).
    topic: String,
    /// Transactions to commit.
    #[arg(long, default_value_t = 100)]
    transactions: u64,
    /// Records in each transaction.
    #[arg(long, default_value_t = 1_000)]
    per_transaction: u64,
    /// Value size in bytes of the constant payload (without --payload-file).
    #[arg(long, default_value_t = 100, conflicts_with = "payload_file")]
    record_size: usize,
    /// Send the values of this file in turn (bench/corpus.py).
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
}

pub(crate) async fn txn(config: ClientConfig, rest: Vec<Property>, args: BenchTxnArgs) -> Result<(), Failure> {
    if args.transactions == 0 || args.per_transaction == 0 {
        return Err("--transactions and --per-transaction must be at least 1".into());
    }
    let mut p = ProducerConfig::from_client(config);
    for prop in rest.iter().filter(|p| !crate::formats::is_registry_key(&p.key)) {
        p.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    if p.transactional_id.is_none() {
        p.transactional_id = Some(format!("strom-bench-txn-{}", std::process::id()));
    }
    p.validate().map_err(|e| e.to_string())?;
    let values = payloads(args.payload_file.as_deref(), args.record_size)?;
    let payload = match &args.payload_file {
        Some(file) => format!(
            "\"payload_file\":{},\"payload_values\":{}",
            serde_json::Value::from(file.display().to_string()),
            values.len()
        ),
        None => format!("\"record_size\":{}", args.record_size),
    };
    let settings = format!(
        "{{\"acks\":\"{:?}\",\"enable.idempotence\":{},\"compression.type\":\"{}\",\"linger.ms\":{},\"batch.size\":{},\"max.in.flight.requests.per.connection\":{},\"transactional.id\":{},\"transaction.timeout.ms\":{},\"per_transaction\":{},{payload}}}",
        p.acks,
        p.enable_idempotence,
        p.compression,
        p.linger.as_millis(),
        p.batch_size,
        p.max_in_flight,
        serde_json::Value::from(p.transactional_id.clone().unwrap_or_default()),
        p.transaction_timeout.as_millis(),
        args.per_transaction,
    );
    let producer = TransactionalProducer::new(p).await.map_err(|e| e.to_string())?;
    producer.init_transactions().await.map_err(|e| e.to_string())?;
    // Metadata before the clock starts, as `bench produce` does.
    producer.client().topic(&args.topic).await.map_err(|e| e.to_string())?;
    let mut commits = Latencies::new()?;
    let (cpu0, _) = usage();
    let started = Instant::now();
    let (mut next, mut bytes) = (0usize, 0u64);
    let mut retried = 0u64;
    let mut first_retry: Option<String> = None;
    for _ in 0..args.transactions {
        let begun = Instant::now();
        let start = next;
        let mut attempts = 0;
        // An application aborts a transaction that failed without fencing the producer and
        // sends it again (TransactionalProducer's docs); so does the bench, counting it: the
        // retries are reported, and a transaction's commit latency runs from its first begin.
        loop {
            next = start;
            match run_transaction(&producer, &args.topic, &values, &mut next, args.per_transaction).await {
                Ok(sent) => {
                    bytes += sent;
                    break;
                }
                Err(e) if !e.is_fatal() && attempts < MAX_ATTEMPTS => {
                    attempts += 1;
                    retried += 1;
                    first_retry.get_or_insert_with(|| e.to_string());
                    producer.abort_transaction().await.map_err(|e| e.to_string())?;
                }
                Err(e) => return Err(e.to_string().into()),
            }
        }
        commits.record(begun.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss) = usage();
    let records = args.transactions * args.per_transaction;
    outln!(
        "{{\"client\":\"strom\",\"records\":{records},\"transactions\":{},\"per_transaction\":{},\"bytes\":{bytes},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},{},\"retried_transactions\":{retried},\"cpu_seconds\":{:.2},\"max_rss_kib\":{rss},\"settings\":{settings}}}",
        args.transactions,
        args.per_transaction,
        records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        commits.json("commit_"),
        cpu1 - cpu0,
    )?;
    producer.close().await.map_err(|e| e.to_string())?;
    if let Some(e) = first_retry {
        crate::out::note(&format!(
            "{retried} transaction(s) failed, were aborted and sent again (the first: {e})"
        ));
    }
    Ok(())
}

/// Attempts of one transaction before the bench gives up.
const MAX_ATTEMPTS: u32 = 5;

/// One transaction: begin, `count` records (the payload values from `next`, in turn), commit.
/// Returns the value bytes sent.
async fn run_transaction(
    producer: &TransactionalProducer,
    topic: &str,
    values: &[bytes::Bytes],
    next: &mut usize,
    count: u64,
) -> strom_client::Result<u64> {
    producer.begin_transaction().await?;
    let mut bytes = 0;
    for _ in 0..count {
        let value = values[*next].clone();
        *next = if *next + 1 == values.len() { 0 } else { *next + 1 };
        bytes += value.len() as u64;
        // A record's failure fails the commit, which is checked; its delivery future is not
        // needed. The topic is a String per record: ProducerRecord owns it (the public API).
        let _delivery = producer
            .send(ProducerRecord {
                topic: topic.to_owned(),
                value: Some(value),
                ..Default::default()
            })
            .await?;
    }
    producer.commit_transaction().await?;
    Ok(bytes)
}
