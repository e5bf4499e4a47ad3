//! `strom consume T`: records to stdout, one formatted line each.
//!
//! Reads every partition of the topic from one consumer loop: Fetch per leader, batches
//! decoded lazily, positions advanced by batch (so control batches and compacted gaps never
//! stall), `read_committed` honoured with the fetch response's aborted-transaction list.
//! With `--group`, the offsets of the records written out (no more) are committed every 5 s
//! and on exit, for a group with no active members (as kcat's `-o stored` workflow). The
//! full consumer with group membership (issue: consumer) replaces this loop.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use strom_client::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_client::protocol::messages::{ApiKey, FetchRequest, TopicName};
use strom_client::protocol::record_batch::{Batches, ControlRecordType, DecodeOptions, Record};
use strom_client::protocol::ErrorCode;
use strom_client::{Admin, ClientConfig, ConsumerConfig, Error, IsolationLevel, OffsetReset, OffsetSpec};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reset {
    Earliest,
    Latest,
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

struct PartitionState {
    position: i64,
    end: Option<i64>,
    /// Position after the last record written out: what a commit stores.
    delivered: Option<i64>,
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
    let reset = match cc.auto_offset_reset {
        OffsetReset::Earliest => Reset::Earliest,
        OffsetReset::Latest => Reset::Latest,
        OffsetReset::None => return Err("auto.offset.reset=none is not supported by strom consume".into()),
    };
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
    let reset_spec = if reset == Reset::Earliest {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
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
            let fallback = admin.list_offsets(&topic, &[], reset_spec).await.map_err(e)?;
            for o in fallback {
                let c = committed.get(&(topic.clone(), o.partition)).copied();
                start.insert(o.partition, c.unwrap_or(o.offset));
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
    let mut states: BTreeMap<i32, PartitionState> = start
        .into_iter()
        .map(|(p, o)| {
            (
                p,
                PartitionState {
                    position: o,
                    end: None,
                    delivered: None,
                },
            )
        })
        .collect();
    if args.until_end {
        // The end a read_committed reader can reach is the last stable offset.
        for o in admin
            .list_offsets_isolated(&topic, &[], OffsetSpec::Latest, read_committed)
            .await
            .map_err(e)?
        {
            if let Some(s) = states.get_mut(&o.partition) {
                s.end = Some(o.offset);
            }
        }
    }

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut written = 0u64;
    let mut last_commit = Instant::now();
    let done = |states: &BTreeMap<i32, PartitionState>, written: u64| {
        args.count.is_some_and(|c| written >= c)
            || (args.until_end && states.values().all(|s| s.end.is_some_and(|end| s.position >= end)))
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while !done(&states, written) {
        let info = client.topic(&topic).await.map_err(e)?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &info.partitions {
            if let Some(s) = states.get(&p.partition) {
                if s.end.is_none_or(|end| s.position < end) {
                    by_leader.entry(p.leader).or_default().push(p.partition);
                }
            }
        }
        for (leader, parts) in by_leader {
            if leader < 0 {
                client.invalidate_topic(&topic);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let conn = client.broker(leader).await.map_err(e)?;
            let v = conn.versions().version(ApiKey::Fetch).map_err(|x| x.to_string())?;
            let mut ft = FetchTopic::default().with_partitions(
                parts
                    .iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(states[p].position)
                            .with_partition_max_bytes(1 << 20)
                            .with_current_leader_epoch(-1)
                    })
                    .collect(),
            );
            // Fetch v13+ names topics by id (KIP-516).
            ft = if v >= 13 {
                ft.with_topic_id(info.topic_id)
            } else {
                ft.with_topic(TopicName(topic.clone().into()))
            };
            let req = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(8 << 20)
                .with_isolation_level(i8::from(read_committed))
                .with_session_epoch(-1)
                .with_topics(vec![ft]);
            let resp = tokio::select! {
                r = conn.send(&req) => r.map_err(e)?,
                _ = &mut ctrl_c => { args_commit(&admin, &args, &topic, &states).await?; return Ok(()); }
            };
            let code = ErrorCode::from(resp.error_code);
            if !code.is_ok() {
                return Err(Error::kafka(code)
                    .with_context(format!("Fetch from broker {leader}"))
                    .to_string());
            }
            for t in resp.responses {
                for pd in t.partitions {
                    let p = pd.partition_index;
                    let Some(state) = states.get_mut(&p) else {
                        continue;
                    };
                    match ErrorCode::from(pd.error_code) {
                        ErrorCode::None => {}
                        ErrorCode::OffsetOutOfRange => {
                            let s = if reset == Reset::Earliest {
                                OffsetSpec::Earliest
                            } else {
                                OffsetSpec::Latest
                            };
                            let o = admin.list_offsets(&topic, &[p], s).await.map_err(e)?;
                            state.position = o.first().map_or(0, |o| o.offset);
                            continue;
                        }
                        c if c.is_retriable() => {
                            client.invalidate_topic(&topic);
                            continue;
                        }
                        c => {
                            return Err(Error::kafka(c)
                                .with_context(format!("topic {topic} partition {p}"))
                                .to_string())
                        }
                    }
                    let mut aborted: Vec<(i64, i64)> = pd
                        .aborted_transactions
                        .unwrap_or_default()
                        .iter()
                        .map(|a| (a.first_offset, a.producer_id.0))
                        .collect();
                    aborted.sort_unstable();
                    let mut aborted = aborted.into_iter().peekable();
                    let mut aborting: HashSet<i64> = HashSet::new();
                    for batch in Batches::new(pd.records.unwrap_or_default(), opts) {
                        let batch = batch.map_err(|x| format!("topic {topic} partition {p}: {x}"))?;
                        if batch.next_offset() <= state.position {
                            continue;
                        }
                        if read_committed {
                            // KIP-98 (Java Fetcher/CompletedFetch): a producer's aborted records
                            // start at its first offset and end at its ABORT marker.
                            while let Some(&(first, pid)) = aborted.peek() {
                                if first > batch.last_offset() {
                                    break;
                                }
                                aborting.insert(pid);
                                aborted.next();
                            }
                        }
                        if batch.is_control() {
                            if let Ok(Some(c)) = batch.control_record(&opts) {
                                if c.kind == ControlRecordType::Abort {
                                    aborting.remove(&batch.producer_id());
                                }
                            }
                            state.position = batch.next_offset();
                            continue;
                        }
                        let skip =
                            read_committed && batch.is_transactional() && aborting.contains(&batch.producer_id());
                        if !skip {
                            for r in batch
                                .records(&opts)
                                .map_err(|x| format!("topic {topic} partition {p}: {x}"))?
                            {
                                let r = r.map_err(|x| format!("topic {topic} partition {p}: {x}"))?;
                                if r.offset < state.position || state.end.is_some_and(|end| r.offset >= end) {
                                    continue;
                                }
                                if args.count.is_some_and(|c| written >= c) {
                                    break;
                                }
                                write_format(&mut out, &args.format, &topic, p, &r)
                                    .map_err(|x| format!("writing stdout: {x}"))?;
                                written += 1;
                                state.position = r.offset + 1;
                                state.delivered = Some(r.offset + 1);
                            }
                        }
                        if args.count.is_some_and(|c| written >= c) {
                            break;
                        }
                        state.position = state.position.max(batch.next_offset());
                    }
                }
            }
        }
        out.flush().map_err(|x| format!("writing stdout: {x}"))?;
        if last_commit.elapsed() >= Duration::from_secs(5) {
            args_commit(&admin, &args, &topic, &states).await?;
            last_commit = Instant::now();
        }
    }
    out.flush().map_err(|x| format!("writing stdout: {x}"))?;
    args_commit(&admin, &args, &topic, &states).await?;
    Ok(())
}

/// Commits the offsets of records written out, when consuming with `--group`.
async fn args_commit(
    admin: &Admin,
    args: &ConsumeArgs,
    topic: &str,
    states: &BTreeMap<i32, PartitionState>,
) -> Result<(), String> {
    let Some(group) = &args.group else {
        return Ok(());
    };
    let offsets: Vec<(i32, i64)> = states
        .iter()
        .filter_map(|(p, s)| s.delivered.map(|d| (*p, d)))
        .collect();
    if offsets.is_empty() {
        return Ok(());
    }
    admin
        .alter_group_offsets(group, topic, &offsets)
        .await
        .map_err(|e| format!("committing offsets of group {group}: {e}"))
}
