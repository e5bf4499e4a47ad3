//! `strom produce T`: one record per stdin line through the producer (idempotent by default,
//! like Java's), or in one transaction with `--transactional-id`. Exit status 0 only when
//! every record was acknowledged (with acks=0: written); otherwise the first error is printed.

use std::time::Instant;

use bytes::Bytes;
use strom_client::{
    Acks, ClientConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, TransactionalProducer,
};
use tokio::io::AsyncBufReadExt;

/// Arguments of `strom produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    /// Topic.
    topic: String,
    /// Split each line at the first DELIM into key and value.
    #[arg(short = 'K', value_name = "DELIM")]
    key_delimiter: Option<String>,
    /// Acknowledgements: all, 1 or 0.
    #[arg(long, default_value = "all")]
    acks: String,
    /// Compression: none, gzip, snappy, lz4, zstd.
    #[arg(long)]
    compression: Option<String>,
    /// Produce in one transaction with this transactional.id.
    #[arg(long)]
    transactional_id: Option<String>,
    /// A header key=value added to every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Write every record to this partition.
    #[arg(long)]
    partition: Option<i32>,
}

/// The producer settings: -X/-F properties by Java name, then the flags. The producer's
/// own defaults apply, as in Java's console producer (`batch.size` 16 KiB): records
/// without a key switch partition every `batch.size` bytes (KIP-794), so a larger default
/// here would leave inputs of a few MB on a few partitions. Bulk loads raise it with -X.
fn settings(config: ClientConfig, rest: &[(String, String)], args: &ProduceArgs) -> Result<ProducerConfig, String> {
    let mut p = ProducerConfig::from_client(config);
    for (k, v) in rest {
        if !p.set(k, v).map_err(|e| e.to_string())? {
            return Err(format!("unknown property {k:?}"));
        }
    }
    p.set("acks", &args.acks).map_err(|e| e.to_string())?;
    if let Some(c) = &args.compression {
        p.set("compression.type", c).map_err(|e| e.to_string())?;
    }
    if let Some(t) = &args.transactional_id {
        p.set("transactional.id", t).map_err(|e| e.to_string())?;
    }
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

/// Checks delivery futures as they complete, keeping memory flat for long inputs.
struct Outcomes {
    pending: std::collections::VecDeque<DeliveryFuture>,
    acked: u64,
}

impl Outcomes {
    /// Collects finished futures from the front; fails on the first error.
    fn reap(&mut self, wait_all: bool) -> Result<(), String> {
        while let Some(f) = self.pending.front() {
            match f.try_result() {
                Some(Ok(_)) => {
                    self.acked += 1;
                    self.pending.pop_front();
                }
                Some(Err(e)) => return Err(e.to_string()),
                None if wait_all => return Err("internal: a record has no outcome after flush".into()),
                None => break,
            }
        }
        Ok(())
    }
}

pub(crate) async fn run(config: ClientConfig, rest: Vec<(String, String)>, args: ProduceArgs) -> Result<(), String> {
    let s = settings(config, &rest, &args)?;
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_owned(), Some(Bytes::copy_from_slice(v.as_bytes()))))
                .ok_or_else(|| format!("--header {h}: expected key=value"))
        })
        .collect::<Result<_, _>>()?;
    let acks_none = s.acks == Acks::None;
    let txn = if s.transactional_id.is_some() {
        let t = TransactionalProducer::new(s.clone()).await.map_err(|e| e.to_string())?;
        t.init_transactions().await.map_err(|e| e.to_string())?;
        t.begin_transaction().await.map_err(|e| e.to_string())?;
        Some(t)
    } else {
        None
    };
    let producer: Producer = match &txn {
        Some(t) => (**t).clone(),
        None => Producer::new(s).await.map_err(|e| e.to_string())?,
    };
    // Fail early with a clear message for an unknown topic or partition.
    let info = producer.client().topic(&args.topic).await.map_err(|e| e.to_string())?;
    if let Some(p) = args.partition {
        if p < 0 || p as usize >= info.partitions.len() {
            return Err(format!(
                "topic {} has no partition {p} (it has {})",
                args.topic,
                info.partitions.len()
            ));
        }
    }
    let mut out = Outcomes {
        pending: Default::default(),
        acked: 0,
    };
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let mut stdin = tokio::io::BufReader::with_capacity(1 << 16, tokio::io::stdin());
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = stdin
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| format!("reading stdin: {e}"))?;
        if n == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = match &args.key_delimiter {
            Some(d) if !d.is_empty() => match line.windows(d.len()).position(|w| w == d.as_bytes()) {
                Some(i) => (
                    Some(Bytes::copy_from_slice(&line[..i])),
                    Bytes::copy_from_slice(&line[i + d.len()..]),
                ),
                None => (None, Bytes::copy_from_slice(&line)),
            },
            _ => (None, Bytes::copy_from_slice(&line)),
        };
        records += 1;
        bytes += (value.len() + key.as_ref().map_or(0, Bytes::len)) as u64;
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value: Some(value),
            headers: headers.clone(),
            timestamp: None,
        };
        out.pending
            .push_back(producer.send(record).await.map_err(|e| e.to_string())?);
        if out.pending.len() >= 4096 {
            out.reap(false)?;
        }
    }
    producer.flush().await.map_err(|e| e.to_string())?;
    out.reap(true)?;
    if let Some(t) = &txn {
        t.commit_transaction()
            .await
            .map_err(|e| format!("committing the transaction: {e}"))?;
    }
    producer.close().await.map_err(|e| e.to_string())?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {records} records ({bytes} bytes) to {} in {secs:.2}s{}{}",
        args.topic,
        if txn.is_some() {
            ", committed in one transaction"
        } else {
            ""
        },
        if acks_none {
            " (acks=0: written, not acknowledged)"
        } else {
            ""
        }
    );
    Ok(())
}
