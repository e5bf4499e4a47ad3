//! `strom produce T`: one record per stdin line through the producer (idempotent by default,
//! like Java's), or in one transaction with `--transactional-id`.
//!
//! Exit status 0 only when every record was acknowledged (with acks=0: written). On an
//! error the message names the input line of the first record that failed and how many
//! records landed; a transaction is aborted on every error and on SIGINT/SIGTERM. A signal
//! stops reading, waits (up to delivery.timeout.ms) for what was read, reports how many
//! records landed and exits 130 (SIGINT) or 143 (SIGTERM); a second signal stops waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Acks, ClientConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, TransactionalProducer,
};
use tokio::io::AsyncBufReadExt;

use crate::signals::{Signal, Signals};
use crate::{agree, set_error, Failure, Property};

/// Arguments of `strom produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    /// Topic.
    topic: String,
    /// Split each line at the first DELIM into key and value. A line without DELIM is an
    /// error naming the line (see --allow-null-key).
    #[arg(short = 'K', value_name = "DELIM")]
    key_delimiter: Option<String>,
    /// With -K: send a line without the delimiter as a value with a null key.
    #[arg(long, requires = "key_delimiter")]
    allow_null_key: bool,
    /// The record delimiter (kcat -D), instead of a newline; \n, \t, \r, \0 and \\ are
    /// read as escapes, e.g. -D '\0' for NUL-separated input or -D '\n---\n'.
    #[arg(short = 'D', value_name = "DELIM", default_value = "\\n")]
    delimiter: String,
    /// Send an empty value (and an empty key, with -K) as null (kcat -Z): an empty value
    /// is a tombstone.
    #[arg(short = 'Z')]
    empty_as_null: bool,
    /// Read the records from FILE instead of stdin (a progress line with the time left
    /// on a terminal).
    #[arg(long, short = 'f', value_name = "FILE")]
    file: Option<std::path::PathBuf>,
    /// Acknowledgements: all, 1 or 0 (default: -X acks, else all).
    #[arg(long)]
    acks: Option<String>,
    /// Compression: none, gzip, snappy, lz4, zstd (--compression-codec, as Java's console
    /// producer names it). Its level is a property: -X compression.zstd.level=19 (or
    /// compression.gzip.level, compression.lz4.level; KIP-390).
    #[arg(long, visible_alias = "compression-codec")]
    compression: Option<String>,
    /// A producer property by its Java name (repeatable), as Java's console producer takes
    /// it: --producer-property compression.gzip.level=9. The same as -X, and applied after
    /// it (--command-property is Kafka 4.1's name for it).
    #[arg(
        long = "producer-property",
        visible_alias = "command-property",
        value_name = "KEY=VALUE"
    )]
    producer_properties: Vec<String>,
    /// Produce in one transaction with this transactional.id (aborted on any error and on
    /// SIGINT/SIGTERM).
    #[arg(long)]
    transactional_id: Option<String>,
    /// A header key=value added to every record (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Write every record to this partition.
    #[arg(long)]
    partition: Option<i32>,
    /// How the key (with -K) is read: bytes (as they are), string (checked UTF-8), json
    /// (checked), avro (a JSON object encoded with --key-schema-file, Confluent-framed,
    /// the schema registered in the schema registry), json-schema (JSON checked against
    /// --key-schema-file, Confluent-framed, the schema registered).
    #[arg(long, value_enum, default_value = "bytes")]
    key_format: crate::formats::Format,
    /// How each line (or its value part, with -K) is read; see --key-format. A line that
    /// does not encode stops the run with an error naming the line.
    #[arg(long, value_enum, default_value = "bytes")]
    value_format: crate::formats::Format,
    /// The schema (an Avro schema or a JSON Schema, a JSON file) of --key-format avro or
    /// json-schema.
    #[arg(long, value_name = "FILE")]
    key_schema_file: Option<std::path::PathBuf>,
    /// The schema of --value-format avro, json-schema or protobuf (a .proto file).
    #[arg(long, value_name = "FILE")]
    value_schema_file: Option<std::path::PathBuf>,
    /// The message type (package.Message) of --key-format protobuf (default: the file's
    /// first message).
    #[arg(long, value_name = "NAME")]
    key_message: Option<String>,
    /// The message type of --value-format protobuf (default: the file's first message).
    #[arg(long, value_name = "NAME")]
    value_message: Option<String>,
    #[command(flatten)]
    registry: crate::formats::RegistryArgs,
}

/// The producer settings: -X/-F properties by Java name, then --producer-property, then the
/// flags. The producer's
/// own defaults apply, as in Java's console producer (`batch.size` 16 KiB): records
/// without a key switch partition every `batch.size` bytes (KIP-794), so a larger default
/// here would leave inputs of a few MB on a few partitions. Bulk loads raise it with -X.
fn settings(config: ClientConfig, rest: &[Property], args: &ProduceArgs) -> Result<ProducerConfig, String> {
    let mut rest = rest.to_vec();
    for kv in &args.producer_properties {
        let (key, value) = kv.split_once('=').ok_or_else(|| {
            // Never echo what may be a secret: the key alone.
            let key = kv.split([' ', '\t', ':']).next().unwrap_or_default();
            format!("--producer-property {key}...: expected KEY=VALUE (the value is not shown)")
        })?;
        rest.push(Property {
            key: key.trim().to_owned(),
            value: value.trim().to_owned(),
        });
    }
    let rest = &rest[..];
    let mut p = ProducerConfig::from_client(config);
    for prop in rest.iter().filter(|p| !crate::formats::is_registry_key(&p.key)) {
        p.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    agree("--acks", args.acks.as_deref(), rest, "acks")?;
    agree("--compression", args.compression.as_deref(), rest, "compression.type")?;
    agree(
        "--transactional-id",
        args.transactional_id.as_deref(),
        rest,
        "transactional.id",
    )?;
    if let Some(a) = &args.acks {
        p.set("acks", a).map_err(|e| e.to_string())?;
    }
    if let Some(c) = &args.compression {
        p.set("compression.type", c).map_err(|e| e.to_string())?;
    }
    if let Some(t) = &args.transactional_id {
        if t.is_empty() {
            return Err("--transactional-id is empty".into());
        }
        p.set("transactional.id", t).map_err(|e| e.to_string())?;
    }
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

type Encoders = (Option<crate::formats::Encoder>, Option<crate::formats::Encoder>);

/// The key and value encoders of --key-format and --value-format (`None`: bytes as read).
fn encoders(args: &ProduceArgs, rest: &[Property]) -> Result<Encoders, String> {
    use crate::formats::{Encoder, Format};
    let avro = args.key_format.needs_registry() || args.value_format.needs_registry();
    let registry = if avro {
        Some(crate::formats::registry_client(&args.registry, rest)?)
    } else if args.registry.url.is_some() {
        return Err("--schema-registry is for the avro and json-schema formats".into());
    } else {
        None
    };
    if args.key_format != Format::Bytes && args.key_delimiter.is_none() {
        return Err("--key-format needs -K (a key delimiter): without it records have no key".into());
    }
    let make = |f: Format, file: Option<&std::path::PathBuf>, message: Option<&str>, is_key: bool, flag: &str| {
        if f == Format::Bytes {
            match (file, message) {
                (None, None) => Ok(None),
                _ => Err(format!(
                    "{flag} and the message name are for the avro, json-schema and protobuf formats"
                )),
            }
        } else {
            Encoder::new(f, file, message, registry.as_ref(), is_key, flag).map(Some)
        }
    };
    Ok((
        make(
            args.key_format,
            args.key_schema_file.as_ref(),
            args.key_message.as_deref(),
            true,
            "--key-schema-file",
        )?,
        make(
            args.value_format,
            args.value_schema_file.as_ref(),
            args.value_message.as_deref(),
            false,
            "--value-schema-file",
        )?,
    ))
}

/// The first record that failed: its input line and why.
#[derive(Debug)]
struct FirstFailure {
    line: u64,
    error: String,
    /// Records acknowledged before it (all of them from earlier lines); `None` when the
    /// line was never sent (then every record sent came before it).
    landed_before: Option<u64>,
}

/// Delivery outcomes, checked in input order as they complete (memory stays flat).
#[derive(Debug, Default)]
struct Outcomes {
    /// (input line, its delivery), oldest first.
    pending: VecDeque<(u64, DeliveryFuture)>,
    landed: u64,
    failed: u64,
    /// The first delivery that failed.
    first_failure: Option<FirstFailure>,
    /// A line refused before it was sent (the client refused the record, its key delimiter
    /// is missing, stdin failed): the last line read.
    refused: Option<FirstFailure>,
}

impl Outcomes {
    /// Collects finished deliveries from the front.
    fn reap(&mut self) {
        while let Some((line, f)) = self.pending.front() {
            let Some(result) = f.try_result() else { break };
            match result {
                Ok(_) => self.landed += 1,
                Err(e) => {
                    self.failed += 1;
                    if self.first_failure.is_none() {
                        self.first_failure = Some(FirstFailure {
                            line: *line,
                            error: e.to_string(),
                            landed_before: Some(self.landed),
                        });
                    }
                }
            }
            self.pending.pop_front();
        }
    }

    /// Line `line` was not sent: nothing after it is read.
    fn refuse(&mut self, line: u64, error: String) {
        self.refused.get_or_insert(FirstFailure {
            line,
            error,
            landed_before: None,
        });
    }

    /// The earliest failure: a failed delivery always comes from a line before a refused one.
    fn first(&self) -> Option<&FirstFailure> {
        self.first_failure.as_ref().or(self.refused.as_ref())
    }
}

/// Why reading stopped.
#[derive(Debug)]
enum Stop {
    EndOfInput,
    Signal(Signal),
    Failed,
}

/// Splits a line into key and value at the first `delim`.
/// `-D`'s bytes: \n, \t, \r, \0 and \\ escapes; any other backslash stays as it is.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.bytes().peekable();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.peek() {
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'0') => out.push(0),
            Some(b'\\') => out.push(b'\\'),
            _ => {
                out.push(b'\\');
                continue;
            }
        }
        chars.next();
    }
    if out.is_empty() {
        return Err("-D: the record delimiter is empty".into());
    }
    Ok(out)
}

/// Reads up to and including the next `delim` (or to the end of input) into `buf`; the
/// bytes read, 0 at the end. Cancel-safe as `read_until` is: what was read stays in `buf`.
async fn read_record<R: tokio::io::AsyncBufRead + Unpin>(
    input: &mut R,
    delim: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let Some(&last) = delim.last() else { return Ok(0) };
    let mut total = 0;
    loop {
        let n = input.read_until(last, buf).await?;
        total += n;
        if n == 0 || buf.ends_with(delim) {
            return Ok(total);
        }
    }
}

fn split_key(line: &[u8], delim: &[u8]) -> Option<(Bytes, Bytes)> {
    let i = line.windows(delim.len()).position(|w| w == delim)?;
    Some((
        Bytes::copy_from_slice(&line[..i]),
        Bytes::copy_from_slice(&line[i + delim.len()..]),
    ))
}

pub(crate) async fn run(config: ClientConfig, rest: Vec<Property>, args: ProduceArgs) -> Result<(), Failure> {
    if args.key_delimiter.as_deref() == Some("") {
        return Err("-K: the key delimiter is empty (give one, e.g. -K :)".into());
    }
    let s = settings(config, &rest, &args)?;
    let (key_encoder, value_encoder) = encoders(&args, &rest)?;
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
    let delivery_timeout = s.delivery_timeout;
    let api_timeout = s.client.default_api_timeout.max(s.client.request_timeout);
    let mut signals = Signals::new()?;

    // Connect, start the transaction, check the topic; a signal meanwhile ends the run
    // (nothing was read, and no transaction has records yet).
    let setup = async {
        let txn = if s.transactional_id.is_some() {
            let t = TransactionalProducer::new(s.clone()).await.map_err(|e| e.to_string())?;
            t.init_transactions().await.map_err(|e| e.to_string())?;
            t.begin_transaction().await.map_err(|e| e.to_string())?;
            Some(t)
        } else {
            None
        };
        let producer = match &txn {
            Some(t) => Out::Txn(t.clone()),
            None => Out::Plain(Producer::new(s.clone()).await.map_err(|e| e.to_string())?),
        };
        crate::metrics_http::publish(producer.client().metric_registry());
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
        Ok::<_, String>((txn, producer))
    };
    let (txn, producer) = tokio::select! {
        r = setup => r?,
        sig = signals.recv() => {
            return Err(Failure::Signal { signal: sig, report: format!("{}: stopped before reading any input", sig.name()) })
        }
    };

    let mut out = Outcomes::default();
    let (mut records, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    let record_delim = unescape(&args.delimiter)?;
    // On a terminal: a progress line, with a bar and the time left when the input is a
    // file (`--file F` or `strom produce T < file`), whose size is then known.
    let (mut stdin, input_size): (Box<dyn tokio::io::AsyncBufRead + Unpin + Send>, Option<u64>) = match &args.file {
        Some(path) => {
            let f = tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("--file {}: {e}", path.display()))?;
            let size = f.metadata().await.ok().map(|m| m.len());
            (Box::new(tokio::io::BufReader::with_capacity(1 << 16, f)), size)
        }
        None => (
            Box::new(tokio::io::BufReader::with_capacity(1 << 16, tokio::io::stdin())),
            std::fs::metadata("/dev/stdin")
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|m| m.len()),
        ),
    };
    let mut progress = crate::progress::Progress::new(input_size);
    let mut input_read = 0u64;
    let mut line = Vec::new();
    let delim = args.key_delimiter.as_deref().map(str::as_bytes);
    let stop = loop {
        line.clear();
        let n = tokio::select! {
            r = read_record(&mut stdin, &record_delim, &mut line) => match r {
                Ok(n) => n,
                Err(e) => {
                    let source = args.file.as_ref().map_or("stdin".to_owned(), |f| f.display().to_string());
                    out.refuse(records + 1, format!("reading {source}: {e}"));
                    break Stop::Failed;
                }
            },
            sig = signals.recv() => break Stop::Signal(sig),
        };
        if n == 0 {
            break Stop::EndOfInput;
        }
        input_read += n as u64;
        let line_no = records + 1;
        if line.ends_with(&record_delim) {
            line.truncate(line.len() - record_delim.len());
            // Windows line ends, when records are lines.
            if record_delim == b"\n" && line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = match delim {
            Some(d) => match split_key(&line, d) {
                Some((k, v)) => (Some(k), v),
                None if args.allow_null_key => (None, Bytes::copy_from_slice(&line)),
                None => {
                    out.refuse(
                        line_no,
                        format!(
                            "no key delimiter {:?} in the line (-K; --allow-null-key sends such lines with a null key)",
                            String::from_utf8_lossy(d)
                        ),
                    );
                    break Stop::Failed;
                }
            },
            None => (None, Bytes::copy_from_slice(&line)),
        };
        let encoded = async {
            let key = match (&key_encoder, key) {
                (Some(e), Some(k)) => Some(e.encode(&args.topic, &k).await.map_err(|e| format!("the key: {e}"))?),
                (_, k) => k,
            };
            let value = match &value_encoder {
                Some(e) => e
                    .encode(&args.topic, &value)
                    .await
                    .map_err(|e| format!("the value: {e}"))?,
                None => value,
            };
            Ok::<_, String>((key, value))
        };
        // Encoding may wait for the schema registry; nothing is queued yet, so a signal
        // meanwhile simply stops reading (this line was not sent).
        let encoded = tokio::select! {
            r = encoded => r,
            sig = signals.recv() => break Stop::Signal(sig),
        };
        let (key, value) = match encoded {
            Ok(kv) => kv,
            Err(e) => {
                out.refuse(line_no, e);
                break Stop::Failed;
            }
        };
        let size = (value.len() + key.as_ref().map_or(0, Bytes::len)) as u64;
        let (key, value) = if args.empty_as_null {
            (key.filter(|k| !k.is_empty()), Some(value).filter(|v| !v.is_empty()))
        } else {
            (key, Some(value))
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value,
            headers: headers.clone(),
            timestamp: None,
        };
        // Not raced with the signals: a send cut short could queue a record this run then
        // does not count. It waits at most max.block.ms; a signal meanwhile is kept.
        match producer.send(record).await {
            Ok(f) => {
                records += 1;
                bytes += size;
                out.pending.push_back((line_no, f));
                progress.update(records, bytes, input_read);
            }
            Err(e) => {
                out.refuse(line_no, e.to_string());
                break Stop::Failed;
            }
        }
        if out.pending.len() >= 4096 {
            out.reap();
        }
        if out.first().is_some() {
            break Stop::Failed;
        }
    };

    // Wait for what was read: flush (bounded by delivery.timeout.ms); a (second) signal
    // stops waiting.
    let mut stop = stop;
    let abandoned = tokio::select! {
        // Failures come through the delivery futures; what the time limit leaves
        // unanswered is reported as unconfirmed.
        _ = tokio::time::timeout(delivery_timeout + Duration::from_secs(5), producer.flush()) => None,
        sig = signals.recv() => Some(sig),
    };
    out.reap();
    if let Some(sig) = abandoned {
        if !matches!(stop, Stop::Signal(_)) {
            stop = Stop::Signal(sig);
        }
    }
    let unconfirmed = out.pending.len() as u64;
    let failure_end = out.first().is_some();
    if failure_end || matches!(stop, Stop::Signal(_)) {
        progress.clear();
    } else {
        progress.finish();
    }
    let signal = match stop {
        Stop::Signal(sig) => Some(sig),
        Stop::EndOfInput | Stop::Failed => None,
    };
    // Inside a transaction, records are written, and visible only if it commits.
    let verb = if txn.is_some() { "were written" } else { "landed" };

    // A transaction commits only when everything was read and acknowledged.
    let mut txn_note = String::new();
    if let Some(t) = &txn {
        let commit = matches!(stop, Stop::EndOfInput) && !failure_end && unconfirmed == 0;
        if commit {
            if let Err(e) = with_timeout(api_timeout, t.commit_transaction()).await {
                let aborted = match with_timeout(api_timeout, t.abort_transaction()).await {
                    Ok(()) => {
                        "it was aborted: none of the records read is visible to read_committed readers".to_owned()
                    }
                    Err(a) => {
                        format!("aborting it failed too ({a}): it stays open until transaction.timeout.ms ends it")
                    }
                };
                return Err(format!("committing the transaction: {e}; {aborted}").into());
            }
        } else {
            txn_note = match with_timeout(api_timeout, t.abort_transaction()).await {
                Ok(()) => format!(
                    "; the transaction was aborted: none of the {records} records read is visible to read_committed readers"
                ),
                Err(e) => format!(
                    "; aborting the transaction failed ({e}): it stays open until transaction.timeout.ms ({} ms) ends it",
                    t.config().transaction_timeout.as_millis()
                ),
            };
        }
    }
    let _ = with_timeout(api_timeout, producer.close()).await;

    let landed_note = |landed: u64| {
        let mut s = format!("{landed} of the {records} records read {verb}");
        if out.failed > 0 {
            s.push_str(&format!(", {} failed", out.failed));
        }
        if unconfirmed > 0 {
            s.push_str(&format!(", {unconfirmed} unconfirmed"));
        }
        s
    };
    if let Some(f) = out.first() {
        // Refused before sending: everything acknowledged came from earlier lines.
        let before = f.landed_before.unwrap_or(out.landed);
        // After a refused line nothing more was read: the records read are those before it.
        let in_all = if f.landed_before.is_none() && unconfirmed == 0 {
            String::new()
        } else {
            format!(" (in all: {})", landed_note(out.landed))
        };
        let before = match f.line - 1 {
            0 => String::new(),
            n => format!("; {before} of the {n} records before it {verb}"),
        };
        let mut msg = format!("line {}: {}{before}{in_all}{txn_note}", f.line, f.error);
        if let Some(sig) = signal {
            msg = format!("{}: {msg}", sig.name());
            return Err(Failure::Signal {
                signal: sig,
                report: msg,
            });
        }
        return Err(msg.into());
    }
    if let Some(sig) = signal {
        let waited = if abandoned.is_some() {
            "; a second signal stopped the wait"
        } else {
            ""
        };
        return Err(Failure::Signal {
            signal: sig,
            report: format!(
                "{}: stopped reading; {}{waited}{txn_note}",
                sig.name(),
                landed_note(out.landed)
            ),
        });
    }
    if unconfirmed > 0 {
        return Err(format!(
            "{} after waiting delivery.timeout.ms{txn_note}",
            landed_note(out.landed)
        )
        .into());
    }
    let secs = started.elapsed().as_secs_f64();
    crate::out::note(&format!(
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
    ));
    Ok(())
}

async fn with_timeout(
    after: Duration,
    f: impl std::future::Future<Output = strom_client::Result<()>>,
) -> Result<(), String> {
    match tokio::time::timeout(after, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("timed out after {after:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_delimiter() {
        assert_eq!(
            split_key(b"k::v:w", b"::"),
            Some((Bytes::from_static(b"k"), Bytes::from_static(b"v:w")))
        );
        assert_eq!(split_key(b":v", b":"), Some((Bytes::new(), Bytes::from_static(b"v"))));
        assert_eq!(split_key(b"no delimiter", b":"), None);
    }
}

/// Where records go: a plain producer, or the transactional one inside its transaction.
#[derive(Debug, Clone)]
enum Out {
    Plain(Producer),
    Txn(TransactionalProducer),
}

impl Out {
    async fn send(&self, record: strom_client::ProducerRecord) -> strom_client::Result<strom_client::DeliveryFuture> {
        match self {
            Out::Plain(p) => p.send(record).await,
            Out::Txn(t) => t.send(record).await,
        }
    }

    async fn flush(&self) -> strom_client::Result<()> {
        match self {
            Out::Plain(p) => p.flush().await,
            Out::Txn(t) => t.flush().await,
        }
    }

    async fn close(&self) -> strom_client::Result<()> {
        match self {
            Out::Plain(p) => p.close().await,
            Out::Txn(t) => t.close().await,
        }
    }

    fn client(&self) -> &strom_client::Client {
        match self {
            Out::Plain(p) => p.client(),
            Out::Txn(t) => t.client(),
        }
    }
}
