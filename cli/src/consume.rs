//! `strom consume T`: records to stdout, one formatted line each, read by
//! [`strom_client::Consumer`].
//!
//! Two modes, as Java's console consumer and kcat have them:
//! - **Group member** (`--group G` without `--partition`): the consumer subscribes, so every
//!   `strom consume --group G` process (and any Java consumer of G) shares the topic's
//!   partitions. Positions start at the group's committed offsets.
//! - **Manual assignment** (no `--group`, or `--partition P`): the given partitions (all
//!   when none is given) are read without joining a group; with `--group`, committed
//!   offsets are read and written as a standalone consumer (kcat's `-o stored` workflow; the
//!   broker refuses those commits while the group has active members).
//!
//! Commits (with a group): exactly the offsets of records written out — never what was
//! merely fetched — every `auto.commit.interval.ms` (5 s), before partitions are revoked in
//! a rebalance, and on exit. `enable.auto.commit` is therefore always off. A record counts
//! as written once stdout has taken it (the flush after each batch succeeded).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::borrow::Cow;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, OffsetAndMetadata, OffsetReset,
    OffsetSpec, RebalanceContext, RebalanceListener, TopicPartition,
};

use bytes::Bytes;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tracing::warn;

use crate::formats::{Decoder, Format};
use crate::signals::Signals;
use crate::{agree, set_error, Failure, Property};

/// Arguments of `strom consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    /// Topic.
    topic: String,
    /// Consumer group (or -X group.id=G). Without --partition this process joins the group
    /// (like kcat -G and kafka-console-consumer --group): the group's members split the
    /// partitions and start at its committed offsets. With --partition, the partitions are
    /// read without joining, as a standalone consumer of the group. Either way the offsets
    /// of the records written out (no more) are committed every auto.commit.interval.ms
    /// (5 s), before partitions move to another member, and on exit; enable.auto.commit is
    /// ignored. Ctrl-C (SIGINT) or SIGTERM ends the run that way too. -X group.protocol=consumer
    /// joins with the KIP-848 protocol.
    #[arg(long, verbatim_doc_comment)]
    group: Option<String>,
    /// Read only this partition (repeatable); no group membership.
    #[arg(long = "partition", value_name = "P")]
    partitions: Vec<i32>,
    /// Where to start: earliest, latest, committed, an OFFSET, -N (N records before the end
    /// of each partition, kcat's -o -N), or @TIMESTAMP_MS.
    /// Without --group the default is earliest. With --group the default is committed:
    /// earliest and latest then apply only to partitions the group has no committed offset
    /// for (auto.offset.reset, earliest unless -X says otherwise), while an OFFSET or
    /// @TIMESTAMP_MS is applied to each partition the first time this process gets it.
    /// @TIMESTAMP_MS starts at the first record at or after that time (at the end when none).
    #[arg(long, short = 'o', verbatim_doc_comment, allow_hyphen_values = true)]
    from: Option<String>,
    /// Stop after N records.
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Stop before the first record at or after @TIMESTAMP_MS in each partition (kcat's
    /// -o e@TS): records from then on are not written, and the run ends once every
    /// partition got there (partitions with no record that late end at their end seen at
    /// start).
    #[arg(
        long,
        value_name = "@TIMESTAMP_MS",
        conflicts_with = "until_end",
        verbatim_doc_comment
    )]
    until: Option<String>,
    /// Stop at the end offsets seen at start (under read_committed the last stable offsets,
    /// after up to 5 s for the markers of transactions committed just before).
    /// A group member stops once its assigned partitions are there, or, holding none, once
    /// the group's committed offsets are.
    #[arg(long, short = 'e', verbatim_doc_comment)]
    until_end: bool,
    /// read_committed or read_uncommitted (default).
    #[arg(long)]
    isolation: Option<String>,
    /// Output format: %s value, %k key, %t topic, %p partition, %o offset, %T timestamp,
    /// %h headers, %S value size, %K key size, \n, \t, %% (default: "%s\n").
    #[arg(long, default_value = "%s\\n")]
    format: String,
    /// One JSON object per record, as kcat -J writes them: topic, partition, offset,
    /// tstype (create or logappend), ts, leader_epoch, headers ([key, value, ...]), key and
    /// payload. A key or value of a JSON-valued format (--key-format/--value-format json,
    /// avro, json-schema, protobuf) is embedded as JSON; bytes follow --json-encoding.
    #[arg(short = 'J', long = "json", conflicts_with = "format", verbatim_doc_comment)]
    json: bool,
    /// How -J writes bytes (keys and values in the bytes format, headers): utf8 (a JSON
    /// string; bytes that are not UTF-8 stop the run, naming the record), base64 or hex.
    #[arg(long, value_enum, default_value = "utf8", requires = "json")]
    json_encoding: JsonEncoding,
    /// How %k is printed: bytes (as they are), string (checked UTF-8), json (checked,
    /// compact), avro (Confluent-framed Avro through the schema registry, as JSON),
    /// json-schema (Confluent-framed JSON through the schema registry), protobuf
    /// (Confluent-framed Protobuf through the schema registry, in Protobuf's JSON mapping).
    #[arg(long, value_enum, default_value = "bytes")]
    key_format: crate::formats::Format,
    /// How %s is printed; see --key-format. A value that does not decode stops the run
    /// with an error naming its topic, partition and offset (what was printed before it
    /// is committed).
    #[arg(long, value_enum, default_value = "bytes")]
    value_format: crate::formats::Format,
    #[command(flatten)]
    registry: crate::formats::RegistryArgs,
}

/// Where `--from` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The group's committed offsets, else `auto.offset.reset`.
    Committed,
    /// Earliest or latest (without a group: for every partition; with one: the reset).
    Reset(OffsetReset),
    /// This offset in every partition read.
    Offset(i64),
    /// The first record at or after this time (ms).
    Timestamp(i64),
    /// This many records before the end of every partition read (from its start when it
    /// holds fewer).
    FromEnd(i64),
}

fn parse_from(from: Option<&str>, group: bool) -> Result<Start, String> {
    Ok(match from {
        None if group => Start::Committed,
        None | Some("earliest") => Start::Reset(OffsetReset::Earliest),
        Some("latest") => Start::Reset(OffsetReset::Latest),
        Some("committed") if group => Start::Committed,
        Some("committed") => return Err("--from committed needs --group".into()),
        Some(ts) if ts.starts_with('@') => match ts[1..].parse::<i64>() {
            Ok(ms) if ms >= 0 => Start::Timestamp(ms),
            _ => {
                return Err(format!(
                    "--from {ts}: expected @TIMESTAMP_MS (milliseconds since the epoch)"
                ))
            }
        },
        Some(n) => match n.parse::<i64>() {
            Ok(o) if o >= 0 && !n.starts_with('-') => Start::Offset(o),
            Ok(o) if o < 0 => Start::FromEnd(-o),
            _ => {
                return Err(format!(
                    "--from {n}: expected earliest, latest, committed, an OFFSET >= 0, -N or @TIMESTAMP_MS"
                ))
            }
        },
    })
}

/// The consumer settings: -X/-F by Java name, then the flags. The CLI resets to earliest
/// unless told otherwise, and commits itself (what was written out), never automatically.
fn settings(config: ClientConfig, rest: &[Property], args: &ConsumeArgs) -> Result<(ConsumerConfig, Start), String> {
    let mut cc = ConsumerConfig::from_client(config);
    cc.auto_offset_reset = OffsetReset::Earliest;
    for p in rest.iter().filter(|p| !crate::formats::is_registry_key(&p.key)) {
        if p.key == "group.id" && p.value.trim().is_empty() {
            return Err("-X group.id= is empty: give a group id, or leave group.id out".into());
        }
        cc.set(&p.key, &p.value).map_err(|e| set_error(&p.key, &p.value, &e))?;
    }
    agree("--isolation", args.isolation.as_deref(), rest, "isolation.level")?;
    agree("--group", args.group.as_deref(), rest, "group.id")?;
    if rest.iter().any(|p| p.key == "enable.auto.commit") {
        warn!("enable.auto.commit is not used: strom consume commits the offsets of the records it wrote out");
    }
    if let Some(isolation) = &args.isolation {
        cc.set("isolation.level", isolation)
            .map_err(|e| format!("--isolation: {e}"))?;
    }
    if let Some(g) = &args.group {
        if g.trim().is_empty() {
            return Err("--group is empty: give a group id, or leave --group out".into());
        }
        cc.set("group.id", g).map_err(|e| e.to_string())?;
    }
    cc.enable_auto_commit = false;
    let start = parse_from(args.from.as_deref(), cc.group_id.is_some())?;
    if let Start::Reset(r) = start {
        cc.auto_offset_reset = r;
    }
    cc.validate().map_err(|e| e.to_string())?;
    Ok((cc, start))
}

/// One record in `--format`'s format (the key and value as they are).
pub(crate) fn write_record(out: &mut impl Write, fmt: &str, r: &ConsumerRecord) -> std::io::Result<()> {
    write_decoded(out, fmt, r, r.key.as_deref(), r.value.as_deref())
}

#[cfg(test)]
fn write_format(out: &mut impl Write, fmt: &str, r: &ConsumerRecord) -> std::io::Result<()> {
    write_decoded(out, fmt, r, r.key.as_deref(), r.value.as_deref())
}

/// `write_format` with the key and value as decoded (`--key-format`, `--value-format`).
fn write_decoded(
    out: &mut impl Write,
    fmt: &str,
    r: &ConsumerRecord,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut chars = fmt.as_bytes().iter().copied().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            (b'%', Some(n)) => {
                chars.next();
                match n {
                    b's' => out.write_all(value.unwrap_or_default())?,
                    b'k' => out.write_all(key.unwrap_or_default())?,
                    b't' => out.write_all(r.topic.as_bytes())?,
                    b'p' => write!(out, "{}", r.partition)?,
                    b'o' => write!(out, "{}", r.offset)?,
                    b'T' => write!(out, "{}", r.timestamp)?,
                    b'S' => write!(out, "{}", r.value.as_ref().map_or(-1, |v| v.len() as i64))?,
                    b'K' => write!(out, "{}", r.key.as_ref().map_or(-1, |v| v.len() as i64))?,
                    b'h' => {
                        for (i, h) in r.headers.iter().enumerate() {
                            if i > 0 {
                                out.write_all(b",")?;
                            }
                            out.write_all(&h.key)?;
                            out.write_all(b"=")?;
                            out.write_all(h.value.as_deref().unwrap_or_default())?;
                        }
                    }
                    b'%' => out.write_all(b"%")?,
                    other => out.write_all(&[b'%', other])?,
                }
            }
            (b'\\', Some(n)) => {
                chars.next();
                match n {
                    b'n' => out.write_all(b"\n")?,
                    b't' => out.write_all(b"\t")?,
                    b'\\' => out.write_all(b"\\")?,
                    other => out.write_all(&[b'\\', other])?,
                }
            }
            (c, _) => out.write_all(&[c])?,
        }
    }
    Ok(())
}

/// How `-J` writes key, value and header bytes that are not JSON already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum JsonEncoding {
    /// As a JSON string (the bytes must be UTF-8; others stop the run, naming the record).
    Utf8,
    /// Base64 (standard alphabet, padded), as a JSON string.
    Base64,
    /// Lowercase hex, as a JSON string.
    Hex,
}

/// One record as a JSON object (kcat -J): topic, partition, offset, tstype, ts, headers
/// (`[key, value, ...]`), key and payload. A key or value decoded from a JSON-valued format
/// (json, avro, json-schema, protobuf) is embedded as JSON; a string one is a JSON string;
/// bytes follow `encoding`.
fn record_json(
    r: &ConsumerRecord,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    key_format: Format,
    value_format: Format,
    encoding: JsonEncoding,
) -> Result<String, String> {
    use serde_json::{json, Value};
    let encode = |b: &[u8], what: &str| -> Result<Value, String> {
        Ok(match encoding {
            JsonEncoding::Utf8 => Value::String(
                std::str::from_utf8(b)
                    .map_err(|_| {
                        format!(
                            "the {what} of {}-{} at offset {} is not UTF-8: use --json-encoding base64 or hex",
                            r.topic, r.partition, r.offset
                        )
                    })?
                    .to_owned(),
            ),
            JsonEncoding::Base64 => {
                use base64::Engine as _;
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            JsonEncoding::Hex => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        })
    };
    let field = |b: Option<&[u8]>, format: Format, what: &str| -> Result<Value, String> {
        match (b, format) {
            (None, _) => Ok(Value::Null),
            (Some(b), Format::Json | Format::Avro | Format::JsonSchema | Format::Protobuf) => serde_json::from_slice(b)
                .map_err(|e| format!("the {what} of {}-{} at offset {}: {e}", r.topic, r.partition, r.offset)),
            (Some(b), Format::String) => Ok(Value::String(String::from_utf8_lossy(b).into_owned())),
            (Some(b), Format::Bytes) => encode(b, what),
        }
    };
    let mut headers = Vec::new();
    for h in r.headers.iter() {
        headers.push(encode(&h.key, "header key")?);
        headers.push(match &h.value {
            Some(v) => encode(v, "header value")?,
            None => Value::Null,
        });
    }
    let doc = json!({
        "topic": &*r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "tstype": match r.timestamp_type {
            strom_protocol::record_batch::TimestampType::CreateTime => "create",
            strom_protocol::record_batch::TimestampType::LogAppendTime => "logappend",
        },
        "ts": r.timestamp,
        "leader_epoch": r.leader_epoch,
        "headers": headers,
        "key": field(key, key_format, "key")?,
        "payload": field(value, value_format, "value")?,
    });
    Ok(doc.to_string())
}

/// The key and value decoders (`None`: printed as they are).
struct Decoders {
    key: Option<Decoder>,
    value: Option<Decoder>,
}

impl Decoders {
    fn new(args: &ConsumeArgs, rest: &[Property]) -> Result<Self, String> {
        let needs_registry = args.key_format.needs_registry() || args.value_format.needs_registry();
        let registry = if needs_registry {
            Some(crate::formats::registry_client(&args.registry, rest)?)
        } else {
            if args.registry.url.is_some() {
                return Err("--schema-registry is for the avro and json-schema formats".into());
            }
            None
        };
        let make = |f: Format| (f != Format::Bytes).then(|| Decoder::new(f, registry.as_ref()));
        Ok(Decoders {
            key: make(args.key_format),
            value: make(args.value_format),
        })
    }
}

type Decoded<'a> = Option<Cow<'a, [u8]>>;

/// A record's key and value as `--key-format` and `--value-format` print them; an error
/// names the record.
async fn decode<'a>(d: &Decoders, r: &'a ConsumerRecord) -> Result<(Decoded<'a>, Decoded<'a>), String> {
    async fn one<'a>(
        dec: Option<&Decoder>,
        data: Option<&'a Bytes>,
        r: &ConsumerRecord,
        what: &str,
    ) -> Result<Decoded<'a>, String> {
        match (dec, data) {
            (Some(dec), Some(b)) => dec.decode(&r.topic, b).await.map(Some).map_err(|e| {
                format!(
                    "the {what} of {}-{} at offset {} does not decode: {e}",
                    r.topic, r.partition, r.offset
                )
            }),
            (_, b) => Ok(b.map(|b| Cow::Borrowed(&b[..]))),
        }
    }
    Ok((
        one(d.key.as_ref(), r.key.as_ref(), r, "key").await?,
        one(d.value.as_ref(), r.value.as_ref(), r, "value").await?,
    ))
}

/// Per partition, the offset after the last record written out: what a commit may store.
/// Shared with the rebalance listener, which commits and forgets partitions as they go.
type Written = Arc<Mutex<BTreeMap<TopicPartition, OffsetAndMetadata>>>;

fn lock(w: &Written) -> std::sync::MutexGuard<'_, BTreeMap<TopicPartition, OffsetAndMetadata>> {
    w.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The group member's rebalance listener: commits what was written of partitions before
/// they go (so the next owner continues exactly there), and applies an explicit `--from`
/// the first time this process gets a partition (later assignments continue from the
/// committed offset, or a partition coming back would be read twice).
struct CommitWritten {
    written: Written,
    starts: BTreeMap<TopicPartition, i64>,
    seeded: BTreeSet<TopicPartition>,
}

impl RebalanceListener for CommitWritten {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        let mut w = lock(&self.written);
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = partitions
            .iter()
            .filter_map(|tp| w.remove(tp).map(|o| (tp.clone(), o)))
            .collect();
        if !offsets.is_empty() {
            ctx.commit(offsets);
        }
    }

    fn on_partitions_lost(&mut self, partitions: &[TopicPartition], _ctx: &mut RebalanceContext) {
        // Already someone else's: a commit would fail, or overwrite the new owner's progress.
        let mut w = lock(&self.written);
        for tp in partitions {
            w.remove(tp);
        }
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        for tp in partitions {
            if let Some(&offset) = self.starts.get(tp) {
                if self.seeded.insert(tp.clone()) {
                    ctx.seek(tp, offset);
                }
            }
        }
    }
}

/// Watches stdout for its reader going away (`strom consume T | head -n 1`), so a run
/// waiting for records ends without having to write one. Only a pipe or socket can be
/// watched (a file or /dev/null cannot be registered); then nothing is watched.
struct StdoutWatch(Option<AsyncFd<std::io::Stdout>>);

impl StdoutWatch {
    fn new() -> Self {
        // SAFETY: `Stdout` always returns descriptor 1, which this process never closes or
        // replaces: it stays open, and the same file description, while the watch lives.
        let fd = unsafe { AsyncFd::register_with_interest(std::io::stdout(), Interest::ERROR) };
        StdoutWatch(fd.ok())
    }

    /// Resolves when stdout reports an error condition (a pipe's reader closed it).
    async fn closed(&self) {
        let Some(fd) = &self.0 else {
            return std::future::pending().await;
        };
        loop {
            match fd.ready(Interest::ERROR).await {
                Ok(guard) if guard.ready().is_error() => return,
                Ok(mut guard) => guard.clear_ready(),
                Err(_) => return std::future::pending().await,
            }
        }
    }
}

/// How long one poll waits for records before the stop conditions are checked again.
const POLL_WAIT: Duration = Duration::from_millis(500);
/// How often a group member holding no partitions asks whether the group reached the end.
const GROUP_END_CHECK: Duration = Duration::from_secs(1);

/// What `--until-end` compares against.
struct Ends {
    /// End offsets seen at start (see [`until_end_offsets`]).
    ends: BTreeMap<TopicPartition, i64>,
    /// Where a partition without a committed offset would start (for the group check).
    floors: BTreeMap<TopicPartition, i64>,
    last_group_check: Option<Instant>,
}

impl Ends {
    /// Whether every assigned partition reached its end; a group member holding none asks
    /// the group's committed offsets instead (at most every [`GROUP_END_CHECK`]).
    async fn reached(&mut self, consumer: &mut Consumer, group_member: Option<&str>) -> Result<bool, String> {
        let assigned = consumer.assignment();
        for tp in &assigned {
            // A partition created after start has nothing "seen at start" to read.
            let Some(&end) = self.ends.get(tp) else { continue };
            if consumer.position(tp).await.map_err(|e| e.to_string())? < end {
                return Ok(false);
            }
        }
        let Some(group) = group_member.filter(|_| assigned.is_empty()) else {
            return Ok(true);
        };
        if self.last_group_check.is_some_and(|t| t.elapsed() < GROUP_END_CHECK) {
            return Ok(false);
        }
        self.last_group_check = Some(Instant::now());
        let committed = Admin::new(consumer.client().clone())
            .group_offsets(group)
            .await
            .map_err(|e| e.to_string())?;
        Ok(self.ends.iter().all(|(tp, end)| {
            committed
                .get(&(tp.topic.to_string(), tp.partition))
                .or(self.floors.get(tp))
                .is_some_and(|o| o >= end)
        }))
    }
}

pub(crate) async fn run(config: ClientConfig, rest: Vec<Property>, args: ConsumeArgs) -> Result<(), Failure> {
    run_inner(config, rest, args).await.map_err(Failure::from)
}

async fn run_inner(config: ClientConfig, rest: Vec<Property>, args: ConsumeArgs) -> Result<(), String> {
    // An explicit offset out of range is an error, unless the user chose a reset policy.
    let explicit_reset = rest.iter().any(|p| p.key == "auto.offset.reset");
    let (cc, start) = settings(config, &rest, &args)?;
    let decoders = Decoders::new(&args, &rest)?;
    let group = cc.group_id.clone();
    let commit_interval = cc.auto_commit_interval;
    let reset = cc.auto_offset_reset;
    let cc_read_committed = cc.isolation_level == IsolationLevel::ReadCommitted;
    let e = |e: strom_client::Error| e.to_string();
    let mut consumer = Consumer::new(cc).await.map_err(e)?;
    crate::metrics_http::publish(consumer.client().metric_registry());
    let topic = args.topic.as_str();
    let info = consumer.client().topic(topic).await.map_err(e)?;
    let mut wanted = Vec::new();
    for &p in &args.partitions {
        if !info.partitions.iter().any(|i| i.partition == p) {
            return Err(format!(
                "topic {topic} has no partition {p} (it has {})",
                info.partitions.len()
            ));
        }
        wanted.push(TopicPartition::new(topic, p));
    }
    if wanted.is_empty() {
        wanted = info
            .partitions
            .iter()
            .map(|p| TopicPartition::new(topic, p.partition))
            .collect();
    }
    let member = group.as_deref().filter(|_| args.partitions.is_empty());

    // Explicit starting offsets (--from OFFSET / @TIMESTAMP_MS).
    let mut starts: BTreeMap<TopicPartition, i64> = match start {
        Start::Offset(o) => wanted.iter().map(|tp| (tp.clone(), o)).collect(),
        Start::Timestamp(ms) => {
            let times: BTreeMap<TopicPartition, i64> = wanted.iter().map(|tp| (tp.clone(), ms)).collect();
            let found = consumer.offsets_for_times(&times).await.map_err(e)?;
            let ends = consumer.end_offsets(&wanted).await.map_err(e)?;
            found
                .into_iter()
                .filter_map(|(tp, o)| {
                    let offset = o.map(|o| o.offset).or_else(|| ends.get(&tp).copied())?;
                    Some((tp, offset))
                })
                .collect()
        }
        Start::FromEnd(n) => {
            let first = consumer.beginning_offsets(&wanted).await.map_err(e)?;
            let end = consumer.end_offsets(&wanted).await.map_err(e)?;
            end.into_iter()
                .map(|(tp, hi)| {
                    let lo = first.get(&tp).copied().unwrap_or(0);
                    (tp, hi.saturating_sub(n).max(lo))
                })
                .collect()
        }
        Start::Committed | Start::Reset(_) => BTreeMap::new(),
    };
    // An explicit offset outside [log start, end] is an error naming the range, unless the
    // user asked for a reset policy (-X auto.offset.reset): then it applies here, at once
    // and with a warning, rather than after a fetch (which --until-end would not wait for).
    if let Start::Offset(o) = start {
        let first = consumer.beginning_offsets(&wanted).await.map_err(e)?;
        let end = consumer.end_offsets(&wanted).await.map_err(e)?;
        for tp in &wanted {
            let (Some(&lo), Some(&hi)) = (first.get(tp), end.get(tp)) else {
                continue;
            };
            if o >= lo && o <= hi {
                continue;
            }
            let to = match (explicit_reset, reset) {
                (true, OffsetReset::Earliest) => lo,
                (true, OffsetReset::Latest) => hi,
                _ => {
                    return Err(format!(
                        "--from {o}: partition {} of {topic} holds offsets [{lo}, {hi}] (-X auto.offset.reset=earliest or latest starts there instead)",
                        tp.partition
                    ))
                }
            };
            warn!(
                "--from {o}: out of range [{lo}, {hi}] for partition {} of {topic}; auto.offset.reset starts at {to}",
                tp.partition
            );
            starts.insert(tp.clone(), to);
        }
    }

    let until = match args.until.as_deref() {
        None => None,
        Some(u) => Some(
            u.strip_prefix('@')
                .and_then(|ms| ms.parse::<i64>().ok())
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| format!("--until {u}: expected @TIMESTAMP_MS (milliseconds since the epoch)"))?,
        ),
    };
    let mut ends = None;
    let mut cutoff = None;
    if args.until_end || until.is_some() {
        let mut end = until_end_offsets(&consumer, topic, &wanted, cc_read_committed)
            .await
            .map_err(e)?;
        if let Some(ms) = until {
            // The first offset at or after the time; a partition with none ends where it ends.
            let times: BTreeMap<TopicPartition, i64> = wanted.iter().map(|tp| (tp.clone(), ms)).collect();
            for (tp, o) in consumer.offsets_for_times(&times).await.map_err(e)? {
                if let Some(o) = o {
                    end.insert(tp, o.offset);
                }
            }
            cutoff = Some(end.clone());
        }
        let floors = match reset {
            OffsetReset::Earliest => consumer.beginning_offsets(&wanted).await.map_err(e)?,
            OffsetReset::Latest => end.clone(),
            OffsetReset::None => BTreeMap::new(),
        };
        let floors = floors
            .into_iter()
            .map(|(tp, o)| {
                let o = starts.get(&tp).copied().unwrap_or(o);
                (tp, o)
            })
            .collect();
        ends = Some(Ends {
            ends: end,
            floors,
            last_group_check: None,
        });
    }

    let written: Written = Arc::default();
    if member.is_some() {
        consumer.set_rebalance_listener(CommitWritten {
            written: written.clone(),
            starts,
            seeded: BTreeSet::new(),
        });
        consumer.subscribe(&[topic]).map_err(e)?;
    } else {
        consumer.assign(wanted).map_err(e)?;
        for (tp, offset) in &starts {
            consumer.seek(tp, *offset).map_err(e)?;
        }
    }

    // Caught from here on: before, nothing was written and a signal simply ends the process.
    let signals = Signals::new()?;
    let outcome = consume_loop(
        &mut consumer,
        signals,
        &args,
        &written,
        ends,
        cutoff.as_ref(),
        member,
        group.as_deref(),
        commit_interval,
        &decoders,
    )
    .await;
    let finished = finish(consumer, &written, group.as_deref(), member.is_some()).await;
    outcome.and(finished)
}

/// How long `--until-end` under read_committed waits at start for transactions that were
/// already decided to get their markers (see [`until_end_offsets`]).
const MARKER_GRACE: Duration = Duration::from_secs(5);

/// The end `--until-end` reads to. Under read_uncommitted: the high watermarks. Under
/// read_committed: the last stable offsets, but a transaction that is already committed can
/// still hold them back for a moment, because EndTxn returns once the coordinator has
/// logged the decision and the markers reach the partitions just after (right after a
/// transactional `strom produce`, a 3.9 broker often still shows the LSO at the
/// transaction's first record). So while an LSO is below its high watermark, it is read
/// again until it catches up, for at most [`MARKER_GRACE`]; a transaction still open after
/// that stays out (it may never be decided), and the LSO reached then is the end.
async fn until_end_offsets(
    consumer: &Consumer,
    topic: &str,
    wanted: &[TopicPartition],
    read_committed: bool,
) -> Result<BTreeMap<TopicPartition, i64>, strom_client::Error> {
    let admin = Admin::new(consumer.client().clone());
    let partitions: Vec<i32> = wanted.iter().map(|tp| tp.partition).collect();
    let list = |read_committed: bool| {
        let (admin, partitions) = (&admin, &partitions);
        async move {
            let listed = admin
                .list_offsets_isolated(topic, partitions, OffsetSpec::Latest, read_committed)
                .await?;
            Ok::<_, strom_client::Error>(
                listed
                    .into_iter()
                    .map(|l| (TopicPartition::new(topic, l.partition), l.offset))
                    .collect::<BTreeMap<_, _>>(),
            )
        }
    };
    let hwm = list(false).await?;
    if !read_committed {
        return Ok(hwm);
    }
    let deadline = Instant::now() + MARKER_GRACE;
    loop {
        let lso = list(true).await?;
        let behind: Vec<String> = lso
            .iter()
            .filter_map(|(tp, &o)| hwm.get(tp).filter(|&&h| o < h).map(|h| format!("{tp} at {o} < {h}")))
            .collect();
        if behind.is_empty() {
            return Ok(lso);
        }
        if Instant::now() >= deadline {
            warn!(
                partitions = %behind.join(", "),
                "--until-end under read_committed stops at the last stable offset: a transaction open for \
                 {MARKER_GRACE:?} holds these partitions back"
            );
            return Ok(lso);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls and writes until `--count`, `--until-end`, a signal or a closed stdout; commits
/// periodically. Records of a batch that could not be written are not committed.
#[allow(clippy::too_many_arguments)]
async fn consume_loop(
    consumer: &mut Consumer,
    mut signals: Signals,
    args: &ConsumeArgs,
    written: &Written,
    mut ends: Option<Ends>,
    cutoff: Option<&BTreeMap<TopicPartition, i64>>,
    member: Option<&str>,
    group: Option<&str>,
    commit_interval: Duration,
    decoders: &Decoders,
) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut last_commit = Instant::now();
    let watch = StdoutWatch::new();
    loop {
        if args.count.is_some_and(|c| count >= c) {
            return Ok(());
        }
        if let Some(ends) = &mut ends {
            if ends.reached(consumer, member).await? {
                return Ok(());
            }
        }
        let records = tokio::select! {
            r = consumer.poll(POLL_WAIT) => r.map_err(|e| e.to_string())?,
            _ = signals.recv() => return Ok(()),
            // The reader went away: what was written is committed on the way out.
            () = watch.closed() => return Ok(()),
        };
        let mut batch: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
        let mut all_written = true;
        let mut undecodable = None;
        let mut interrupted = false;
        let mut result = Ok(());
        for r in &records {
            if args.count.is_some_and(|c| count >= c) {
                all_written = false;
                break;
            }
            // --until: nothing from the cut-off on (not written, not committed).
            if cutoff.is_some_and(|cut| cut.get(&r.topic_partition()).is_some_and(|&end| r.offset >= end)) {
                all_written = false;
                continue;
            }
            // Decoding may wait for the schema registry (a schema seen for the first time):
            // a signal meanwhile ends the run as it does while polling.
            let decoded = tokio::select! {
                r = decode(decoders, r) => r,
                _ = signals.recv() => {
                    all_written = false;
                    interrupted = true;
                    break;
                }
            };
            let (key, value) = match decoded {
                Ok(kv) => kv,
                Err(e) => {
                    all_written = false;
                    undecodable = Some(e);
                    break;
                }
            };
            let written = if args.json {
                match record_json(
                    r,
                    key.as_deref(),
                    value.as_deref(),
                    args.key_format,
                    args.value_format,
                    args.json_encoding,
                ) {
                    Ok(line) => writeln!(out, "{line}"),
                    Err(e) => {
                        all_written = false;
                        undecodable = Some(e);
                        break;
                    }
                }
            } else {
                write_decoded(&mut out, &args.format, r, key.as_deref(), value.as_deref())
            };
            if let Err(x) = written {
                result = Err(x);
                break;
            }
            count += 1;
            batch.insert(
                r.topic_partition(),
                OffsetAndMetadata {
                    offset: r.offset + 1,
                    leader_epoch: r.leader_epoch,
                    metadata: String::new(),
                },
            );
        }
        if let Err(x) = result.and_then(|()| out.flush()) {
            // A reader that went away (`strom consume T | head`) is a normal end.
            if x.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(format!("writing stdout: {x}"));
        }
        {
            let mut w = lock(written);
            if all_written {
                // Every record poll returned is out: the positions (past control batches and
                // aborted records too) are safe to commit.
                for (tp, o) in consumer.consumed_offsets() {
                    if w.get(&tp).is_none_or(|prev| prev.offset < o.offset) {
                        batch.insert(tp, o);
                    }
                }
            }
            w.extend(batch);
        }
        if let Some(e) = undecodable {
            // What was printed before it is committed on the way out; this record is not.
            return Err(e);
        }
        if interrupted {
            return Ok(());
        }
        if group.is_some() && last_commit.elapsed() >= commit_interval {
            last_commit = Instant::now();
            if let Err(x) = commit_written(consumer, written, group).await {
                // Retried at the next interval, at revocation and on exit.
                warn!(error = %x, "periodic commit failed");
            }
        }
    }
}

/// Commits the written offsets that differ from what this consumer last committed.
async fn commit_written(consumer: &mut Consumer, written: &Written, group: Option<&str>) -> Result<(), String> {
    let Some(group) = group else { return Ok(()) };
    let done = consumer.last_committed();
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = lock(written)
        .iter()
        .filter(|(tp, o)| done.get(*tp) != Some(&o.offset))
        .map(|(tp, o)| (tp.clone(), o.clone()))
        .collect();
    if offsets.is_empty() {
        return Ok(());
    }
    consumer
        .commit_offsets_sync(&offsets)
        .await
        .map_err(|e| format!("committing offsets of group {group}: {e}"))
}

/// The final commit, then leaving the group. When a group member's commit fails (say, a
/// rebalance started), leaving runs the rebalance listener, which commits again with the
/// generation it has; the run fails only if the written offsets are still not committed.
async fn finish(mut consumer: Consumer, written: &Written, group: Option<&str>, member: bool) -> Result<(), String> {
    let wanted = lock(written).clone();
    let mut result = commit_written(&mut consumer, written, group).await;
    if result.is_err() && member {
        if let Err(x) = consumer.unsubscribe().await {
            warn!(error = %x, "leaving the group failed");
        }
        let done = consumer.last_committed();
        if wanted.iter().all(|(tp, o)| done.get(tp) == Some(&o.offset)) {
            result = Ok(());
        }
    } else {
        // Committed: the listener has nothing left to commit when close() revokes.
        lock(written).clear();
    }
    if let Err(x) = consumer.close().await {
        warn!(error = %x, "closing the consumer failed");
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use strom_client::{Headers, TimestampType};

    use super::*;

    #[test]
    fn from_depends_on_the_group() {
        assert_eq!(parse_from(None, false), Ok(Start::Reset(OffsetReset::Earliest)));
        assert_eq!(parse_from(None, true), Ok(Start::Committed));
        assert_eq!(parse_from(Some("latest"), true), Ok(Start::Reset(OffsetReset::Latest)));
        assert_eq!(parse_from(Some("committed"), true), Ok(Start::Committed));
        assert!(parse_from(Some("committed"), false)
            .unwrap_err()
            .contains("needs --group"));
        assert_eq!(parse_from(Some("42"), false), Ok(Start::Offset(42)));
        assert_eq!(
            parse_from(Some("@1700000000000"), true),
            Ok(Start::Timestamp(1_700_000_000_000))
        );
        assert_eq!(parse_from(Some("-1"), false), Ok(Start::FromEnd(1)));
        assert!(parse_from(Some("-0"), false).is_err());
        assert!(parse_from(Some("@-1"), false).is_err());
        assert!(parse_from(Some("soon"), false).unwrap_err().contains("--from soon"));
    }

    #[test]
    fn format_escapes_and_placeholders() {
        let r = ConsumerRecord {
            topic: Arc::from("t"),
            partition: 2,
            offset: 7,
            timestamp: 99,
            timestamp_type: TimestampType::CreateTime,
            leader_epoch: None,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: Headers::default(),
        };
        let mut out = Vec::new();
        write_format(&mut out, "%t/%p@%o %T [%k] %s %S %K %% %x\\t\\n", &r).unwrap();
        assert_eq!(out, b"t/2@7 99 [] v 1 -1 % %x\t\n");
    }
}
