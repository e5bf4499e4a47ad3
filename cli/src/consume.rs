//! `strom consume T`: records to stdout, one formatted line each.
//!
//! Reads every partition of the topic from one consumer loop: Fetch per leader, batches
//! decoded lazily, positions advanced by batch (so control batches and compacted gaps never
//! stall), `read_committed` honoured with the fetch response's aborted-transaction list.
//! With `--group`, the offsets of the records written out (no more) are committed every 5 s
//! and on exit, for a group with no active members (as kcat's `-o stored` workflow). The
//! full consumer with group membership (issue: consumer) replaces this loop.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use strom_client::protocol::record_batch::{DecodeOptions, Record};
use strom_client::{Admin, ClientConfig, ConsumerConfig, Error, IsolationLevel, OffsetReset, OffsetSpec, TopicReader};

/// Arguments of `strom consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumeArgs {
    /// Topic.
    topic: String,
    /// Consumer group whose committed offsets are read (`--from committed`) and written.
    #[arg(long)]
    group: Option<String>,
    /// Where to start: earliest, latest, committed, an OFFSET, or @TIMESTAMP_MS.
    #[arg(long)]
    from: Option<String>,
    /// Stop after N records.
    #[arg(long)]
    count: Option<u64>,
    /// Stop at the end offsets seen at start.
    #[arg(long)]
    until_end: bool,
    /// read_committed or read_uncommitted (default).
    #[arg(long)]
    isolation: Option<String>,
    /// Output format: %s value, %k key, %t topic, %p partition, %o offset, %T timestamp,
    /// %h headers, %S value size, %K key size, \n, \t, %% (default: "%s\n").
    #[arg(long, default_value = "%s\\n")]
    format: String,
}

fn write_format(out: &mut impl Write, fmt: &str, topic: &str, partition: i32, r: &Record) -> std::io::Result<()> {
    let mut chars = fmt.as_bytes().iter().copied().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek().copied()) {
            (b'%', Some(n)) => {
                chars.next();
                match n {
                    b's' => out.write_all(r.value.as_deref().unwrap_or_default())?,
                    b'k' => out.write_all(r.key.as_deref().unwrap_or_default())?,
                    b't' => out.write_all(topic.as_bytes())?,
                    b'p' => write!(out, "{partition}")?,
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

pub(crate) async fn run(config: ClientConfig, rest: Vec<(String, String)>, args: ConsumeArgs) -> Result<(), String> {
    // Java names via -X/-F; the CLI resets to earliest unless told otherwise.
    let mut cc = ConsumerConfig::from_client(config);
    cc.auto_offset_reset = OffsetReset::Earliest;
    for (k, v) in &rest {
        if !cc.set(k, v).map_err(|e| e.to_string())? {
            return Err(format!("unknown property {k:?}"));
        }
    }
    if let Some(isolation) = &args.isolation {
        cc.set("isolation.level", isolation)
            .map_err(|e| format!("--isolation: {e}"))?;
    }
    if let Some(g) = &args.group {
        cc.set("group.id", g).map_err(|e| e.to_string())?;
    }
    cc.validate().map_err(|e| e.to_string())?;
    let opts = DecodeOptions {
        check_crcs: cc.check_crcs,
        ..Default::default()
    };
    let read_committed = cc.isolation_level == IsolationLevel::ReadCommitted;
    let config = cc.client.clone();
    let admin = Admin::connect(config).await.map_err(|e| e.to_string())?;
    let client = admin.client().clone();
    let topic = args.topic.clone();
    let info = client.topic(&topic).await.map_err(|e| e.to_string())?;
    let e = |e: Error| e.to_string();

    // Starting positions.
    let spec = match args.from.as_deref() {
        None if args.group.is_some() => "committed",
        None => "earliest",
        Some(f) => f,
    };
    let reset_spec = match cc.auto_offset_reset {
        OffsetReset::Earliest => Some(OffsetSpec::Earliest),
        OffsetReset::Latest => Some(OffsetSpec::Latest),
        OffsetReset::None => None,
    };
    let mut start: BTreeMap<i32, i64> = BTreeMap::new();
    match spec {
        "earliest" | "latest" => {
            let s = if spec == "earliest" {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            for o in admin.list_offsets(&topic, &[], s).await.map_err(e)? {
                start.insert(o.partition, o.offset);
            }
        }
        "committed" => {
            let group = args.group.as_deref().ok_or("--from committed needs --group")?;
            let committed = admin.group_offsets(group).await.map_err(e)?;
            let fallback = match reset_spec {
                Some(spec) => admin.list_offsets(&topic, &[], spec).await.map_err(e)?,
                None => Vec::new(),
            };
            for p in &info.partitions {
                let c = committed.get(&(topic.clone(), p.partition)).copied();
                let f = fallback.iter().find(|o| o.partition == p.partition).map(|o| o.offset);
                let o = c.or(f).ok_or_else(|| {
                    format!(
                        "group {group} has no committed offset for partition {} (auto.offset.reset=none)",
                        p.partition
                    )
                })?;
                start.insert(p.partition, o);
            }
        }
        ts if ts.starts_with('@') => {
            let ms: i64 = ts[1..]
                .parse()
                .map_err(|_| format!("--from {ts}: expected @TIMESTAMP_MS"))?;
            let latest = admin.list_offsets(&topic, &[], OffsetSpec::Latest).await.map_err(e)?;
            for o in admin
                .list_offsets(&topic, &[], OffsetSpec::Timestamp(ms))
                .await
                .map_err(e)?
            {
                let end = latest
                    .iter()
                    .find(|l| l.partition == o.partition)
                    .map_or(0, |l| l.offset);
                start.insert(o.partition, if o.offset < 0 { end } else { o.offset });
            }
        }
        n => {
            let off: i64 = n
                .parse()
                .map_err(|_| format!("--from {n}: expected earliest, latest, committed, OFFSET or @TIMESTAMP_MS"))?;
            for p in &info.partitions {
                start.insert(p.partition, off);
            }
        }
    }
    let mut reader = TopicReader::new(client.clone(), topic.clone(), start, read_committed)
        .with_reset(cc.auto_offset_reset)
        .with_decode_options(opts);
    if args.until_end {
        // The end a read_committed reader can reach is the last stable offset.
        for o in admin
            .list_offsets_isolated(&topic, &[], OffsetSpec::Latest, read_committed)
            .await
            .map_err(e)?
        {
            reader.set_end(o.partition, o.offset);
        }
    }
    // Offsets after the last record written out, per partition: what a commit stores.
    let mut delivered: BTreeMap<i32, i64> = BTreeMap::new();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut written = 0u64;
    let mut last_commit = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if args.count.is_some_and(|c| written >= c) || (args.until_end && reader.at_end()) {
            break;
        }
        let records = tokio::select! {
            r = reader.poll() => r.map_err(e)?,
            _ = &mut ctrl_c => break,
        };
        for (p, r) in records {
            if args.count.is_some_and(|c| written >= c) {
                break;
            }
            write_format(&mut out, &args.format, &topic, p, &r).map_err(|x| format!("writing stdout: {x}"))?;
            written += 1;
            delivered.insert(p, r.offset + 1);
        }
        out.flush().map_err(|x| format!("writing stdout: {x}"))?;
        if last_commit.elapsed() >= Duration::from_secs(5) {
            commit(&admin, &args, &topic, &delivered).await?;
            last_commit = Instant::now();
        }
    }
    out.flush().map_err(|x| format!("writing stdout: {x}"))?;
    commit(&admin, &args, &topic, &delivered).await?;
    Ok(())
}

/// Commits the offsets of records written out, when consuming with `--group`.
async fn commit(admin: &Admin, args: &ConsumeArgs, topic: &str, delivered: &BTreeMap<i32, i64>) -> Result<(), String> {
    let Some(group) = &args.group else { return Ok(()) };
    let offsets: Vec<(i32, i64)> = delivered.iter().map(|(p, o)| (*p, *o)).collect();
    if offsets.is_empty() {
        return Ok(());
    }
    admin
        .alter_group_offsets(group, topic, &offsets)
        .await
        .map_err(|e| format!("committing offsets of group {group}: {e}"))
}
