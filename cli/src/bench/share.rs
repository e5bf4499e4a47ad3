//! `strom bench share-consume`: S7's load.

use std::time::{Duration, Instant};

use strom_client::ClientConfig;

use super::usage;
use crate::out::outln;
use crate::{set_error, Failure, Property};

/// `strom bench share-consume`: Java's ShareConsumerPerformance's measurement.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchShareConsumeArgs {
    /// Topic (must hold at least `--records` records the group has not consumed).
    topic: String,
    /// The share group; give it `share.auto.offset.reset=earliest` first.
    #[arg(long)]
    group: String,
    /// Records to read, by all members together.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Share consumers in this process (ShareConsumerPerformance's --threads).
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Give up when no record arrived for this long (ms), like its --timeout.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

/// Reads `--records` records with `--members` [`ShareConsumer`](strom_client::share::ShareConsumer)s of one share group
/// (implicit acknowledgement: each poll accepts the previous one's records), counting key
/// and value bytes as ShareConsumerPerformance does; the clock starts before the members
/// join, as its does.
pub(crate) async fn share_consume(
    config: ClientConfig,
    rest: Vec<Property>,
    args: BenchShareConsumeArgs,
) -> Result<(), Failure> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use strom_client::share::{ShareConsumer, ShareConsumerConfig};

    let mut c = ShareConsumerConfig::from_client(config, &args.group);
    for prop in &rest {
        c.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    if args.members == 0 {
        return Err("--members must be at least 1".into());
    }
    let (cpu0, _) = usage();
    let started = Instant::now();
    let records = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.members {
        let (c, records, bytes) = (c.clone(), records.clone(), bytes.clone());
        let topic = args.topic.clone();
        let (want, idle) = (args.records, Duration::from_millis(args.timeout_ms));
        tasks.push(tokio::spawn(async move {
            let mut consumer = ShareConsumer::new(c).await.map_err(|e| e.to_string())?;
            consumer.subscribe(&[&topic]);
            let mut last = Instant::now();
            let mut first: Option<Instant> = None;
            let mut mine = 0u64;
            while records.load(Ordering::Relaxed) < want {
                let batch = consumer
                    .poll(Duration::from_millis(100))
                    .await
                    .map_err(|e| e.to_string())?;
                if batch.is_empty() {
                    if last.elapsed() > idle {
                        break;
                    }
                    continue;
                }
                last = Instant::now();
                first.get_or_insert(last);
                let b: u64 = batch
                    .iter()
                    .map(|r| {
                        r.key.as_ref().map_or(0, |k| k.len() as u64) + r.value.as_ref().map_or(0, |v| v.len() as u64)
                    })
                    .sum();
                bytes.fetch_add(b, Ordering::Relaxed);
                records.fetch_add(batch.len() as u64, Ordering::Relaxed);
                mine += batch.len() as u64;
            }
            let done = Instant::now();
            consumer.close().await.map_err(|e| e.to_string())?;
            Ok::<(u64, Instant, Option<Instant>), String>((mine, done, first))
        }));
    }
    let mut per_member = Vec::new();
    let mut end = started;
    let mut first: Option<Instant> = None;
    for t in tasks {
        let (mine, done, f) = t.await.map_err(|e| e.to_string())??;
        per_member.push(mine);
        end = end.max(done);
        first = match (first, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let first_ms = first.map_or(0.0, |t| t.duration_since(started).as_secs_f64() * 1000.0);
    let n = records.load(Ordering::Relaxed);
    if n < args.records {
        return Err(format!(
            "only {n} of {} records arrived (none in {} ms)",
            args.records, args.timeout_ms
        )
        .into());
    }
    let secs = end.duration_since(started).as_secs_f64();
    let (cpu1, rss) = usage();
    let b = bytes.load(Ordering::Relaxed);
    outln!(
        "{{\"client\":\"strom\",\"members\":{},\"records\":{n},\"bytes\":{b},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{:.2},\"max_rss_kib\":{rss},\"first_record_ms\":{first_ms:.1},\"per_member\":{:?}}}",
        args.members,
        n as f64 / secs,
        b as f64 / secs / (1 << 20) as f64,
        cpu1 - cpu0,
        per_member,
    )
}
