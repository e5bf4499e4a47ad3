//! `strom produce T`: one record per stdin line, acknowledged before exit.
//!
//! Records are batched per partition (murmur2 of the key like Java's default partitioner;
//! sticky per batch for null keys) and each batch is sent to the partition leader and
//! awaited. Not idempotent yet: a retried batch may be written twice (as with
//! `enable.idempotence=false` in Java). The full producer (issue: producer) replaces this.

use std::time::Instant;

use bytes::Bytes;
use strom_client::protocol::message_traits::StrBytes;
use strom_client::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_client::protocol::messages::{ApiKey, ProduceRequest, TopicName};
use strom_client::protocol::murmur2::partition_for_key;
use strom_client::protocol::record_batch::{BatchBuilder, BatchHeader, NewRecord};
use strom_client::protocol::ErrorCode;
use strom_client::{Acks, Client, ClientConfig, Error, ProducerConfig};
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

/// The producer settings: -X/-F properties by Java name, then the flags. The CLI sends
/// 1 MiB batches unless `batch.size` is given (it awaits each batch).
fn settings(config: ClientConfig, rest: &[(String, String)], args: &ProduceArgs) -> Result<ProducerConfig, String> {
    let mut p = ProducerConfig::from_client(config);
    p.batch_size = 1 << 20;
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

struct Sender {
    client: Client,
    topic: String,
    acks: i16,
}

impl Sender {
    /// Sends one batch, retrying retriable errors (after a metadata refresh) until the API
    /// timeout. Returns the base offset (-1 with acks=0).
    async fn send(&self, partition: i32, batch: Bytes) -> Result<i64, Error> {
        let req = ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(self.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        self.client
            .with_retries("Produce", || async {
                let (_, conn) = self.client.leader(&self.topic, partition).await?;
                if self.acks == 0 {
                    let v = conn.versions().version(ApiKey::Produce)?;
                    conn.send_no_response(&req, v).await?;
                    return Ok(-1);
                }
                let resp = conn.send(&req).await?;
                let p = resp
                    .responses
                    .first()
                    .and_then(|t| t.partition_responses.first())
                    .ok_or_else(|| Error::other("empty Produce response"))?;
                let code = ErrorCode::from(p.error_code);
                if code.is_ok() {
                    return Ok(p.base_offset);
                }
                if code.is_retriable() {
                    self.client.invalidate_topic(&self.topic);
                }
                let msg = p
                    .error_message
                    .as_ref()
                    .map(|m| format!(": {}", m.as_str()))
                    .unwrap_or_default();
                Err(Error::kafka(code).with_context(format!("topic {} partition {partition}{msg}", self.topic)))
            })
            .await
    }
}

pub(crate) async fn run(config: ClientConfig, rest: Vec<(String, String)>, args: ProduceArgs) -> Result<(), String> {
    let s = settings(config, &rest, &args)?;
    if s.transactional_id.is_some() {
        return Err("--transactional-id: transactions are not implemented in strom yet".into());
    }
    let headers: Vec<(String, Vec<u8>)> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
                .ok_or_else(|| format!("--header {h}: expected key=value"))
        })
        .collect::<Result<_, _>>()?;
    let header_refs: Vec<(&str, Option<&[u8]>)> =
        headers.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))).collect();
    let client = Client::connect(s.client.clone()).await.map_err(|e| e.to_string())?;
    let info = client.topic(&args.topic).await.map_err(|e| e.to_string())?;
    let partitions = u32::try_from(info.partitions.len()).map_err(|_| "too many partitions".to_string())?;
    if partitions == 0 {
        return Err(format!("topic {} has no partitions", args.topic));
    }
    if let Some(p) = args.partition {
        if p < 0 || p as u32 >= partitions {
            return Err(format!(
                "topic {} has no partition {p} (it has {partitions})",
                args.topic
            ));
        }
    }
    let sender = Sender {
        client,
        topic: args.topic.clone(),
        acks: s.acks.wire(),
    };
    let header = BatchHeader {
        compression: s.compression,
        ..Default::default()
    };
    let mut builders: Vec<Option<BatchBuilder>> = (0..partitions).map(|_| None).collect();
    let mut sticky: u32 = 0;
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
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
        let (key, value): (Option<&[u8]>, &[u8]) = match &args.key_delimiter {
            Some(d) if !d.is_empty() => match line.windows(d.len()).position(|w| w == d.as_bytes()) {
                Some(i) => (Some(&line[..i]), &line[i + d.len()..]),
                None => (None, &line[..]),
            },
            _ => (None, &line[..]),
        };
        let partition = match (args.partition, key) {
            (Some(p), _) => p as u32,
            (None, Some(k)) => partition_for_key(k, partitions),
            (None, None) => sticky,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let b = builders[partition as usize].get_or_insert_with(|| BatchBuilder::new(header, 64 * 1024));
        b.append(&NewRecord {
            timestamp: now,
            key,
            value: Some(value),
            headers: &header_refs,
        })
        .map_err(|e| e.to_string())?;
        records += 1;
        bytes += (value.len() + key.map_or(0, <[u8]>::len)) as u64;
        if b.size_in_bytes() >= s.batch_size {
            if let Some(full) = builders[partition as usize].take() {
                sender
                    .send(partition as i32, full.finish().map_err(|e| e.to_string())?)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if key.is_none() {
                sticky = (sticky + 1) % partitions;
            }
        }
    }
    for (p, b) in builders.iter_mut().enumerate() {
        if let Some(b) = b.take() {
            sender
                .send(p as i32, b.finish().map_err(|e| e.to_string())?)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "produced {records} records ({bytes} bytes) to {} in {secs:.2}s{}",
        args.topic,
        if s.acks == Acks::None {
            " (acks=0: not acknowledged)"
        } else {
            ""
        }
    );
    Ok(())
}
