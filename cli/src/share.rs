//! `strom share consume` (kafka-console-share-consumer.sh): a member of a share group that
//! prints what it gets and acknowledges each record once it is written out: accepted by
//! default, or released / rejected (`--ack`), for scripts and for trying queues from a
//! shell. Records acquired but not written (a count reached, a signal) are released.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use strom_client::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
use strom_client::ClientConfig;

use crate::out::{write_failure, Failure};
use crate::signals::Signals;
use crate::Property;

/// `strom share ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ShareAction {
    /// Consume as a member of a share group, acknowledging every record written out.
    ///
    /// Example: `strom share consume jobs --group workers --count 10 --ack release`. A share
    /// group starts at the latest offset unless its share.auto.offset.reset config says
    /// earliest (`strom configs alter --group workers --set share.auto.offset.reset=earliest`).
    Consume(ShareConsumeArgs),
}

/// How `--ack` acknowledges what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Ack {
    /// Done: never delivered again.
    Accept,
    /// Delivered again (its delivery count raised).
    Release,
    /// Never delivered again (archived).
    Reject,
}

/// `strom share consume`.
#[derive(Debug, Args)]
pub(crate) struct ShareConsumeArgs {
    /// Topic (repeatable through -t for more).
    topic: String,
    /// More topics.
    #[arg(long = "topic", short = 't')]
    topics: Vec<String>,
    /// The share group (or -X group.id=G).
    #[arg(long)]
    group: Option<String>,
    /// Stop after N records.
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// How each written record is acknowledged.
    #[arg(long, value_enum, default_value = "accept")]
    ack: Ack,
    /// Stop when no record came for this long (ms), counted from when the broker first
    /// assigned this member partitions.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
    /// Output format, as `strom consume --format`, plus %d: the delivery count.
    #[arg(long, default_value = "%s\\n")]
    format: String,
}

pub(crate) async fn run(config: ClientConfig, rest: Vec<Property>, args: ShareConsumeArgs) -> Result<(), Failure> {
    let mut signals = Signals::new()?;
    let group = args
        .group
        .clone()
        .or_else(|| rest.iter().rev().find(|p| p.key == "group.id").map(|p| p.value.clone()))
        .ok_or("--group (or -X group.id=G) is required: the share group to join")?;
    let mut cfg = ShareConsumerConfig::from_client(config, &group);
    for p in &rest {
        cfg.set(&p.key, &p.value)
            .map_err(|e| crate::set_error(&p.key, &p.value, &e))?;
    }
    cfg.set("share.acknowledgement.mode", "explicit")
        .map_err(|e| e.to_string())?;
    let mut consumer = ShareConsumer::new(cfg).await.map_err(|e| e.to_string())?;
    let mut topics = vec![args.topic.as_str()];
    topics.extend(args.topics.iter().map(String::as_str));
    consumer.subscribe(&topics);
    let kind = match args.ack {
        Ack::Accept => AcknowledgeType::Accept,
        Ack::Release => AcknowledgeType::Release,
        Ack::Reject => AcknowledgeType::Reject,
    };
    // Acknowledgements the broker refused (a lock that expired meanwhile): reported, and
    // the run fails, as those records go to another member too.
    let refused: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink = refused.clone();
    consumer.set_acknowledgement_commit_callback(Box::new(move |tp, outcome| {
        if let Err(e) = outcome {
            crate::out::note(&format!(
                "strom: warning: acknowledgements of {}-{} refused: {e}",
                tp.topic, tp.partition
            ));
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(e.to_string());
        }
    }));
    let mut written = 0u64;
    // The idle clock starts once the member has partitions (a new member gets them up to
    // group.share.heartbeat.interval.ms after joining).
    let mut last_record: Option<Instant> = None;
    let outcome: Result<Option<crate::signals::Signal>, Failure> = async {
        loop {
            if args.count.is_some_and(|c| written >= c) {
                return Ok(None);
            }
            if last_record.is_none() && !consumer.assignment().is_empty() {
                last_record = Some(Instant::now());
            }
            if args
                .timeout_ms
                .zip(last_record)
                .is_some_and(|(t, last)| last.elapsed() >= Duration::from_millis(t))
            {
                return Ok(None);
            }
            let records = tokio::select! {
                s = signals.recv() => return Ok(Some(s)),
                r = consumer.poll(Duration::from_millis(500)) => r.map_err(|e| e.to_string())?,
            };
            if !records.is_empty() {
                last_record = Some(Instant::now());
            }
            let mut out = std::io::stdout().lock();
            for r in &records {
                // Past the count: not written, not acknowledged (released on close).
                if args.count.is_some_and(|c| written >= c) {
                    consumer
                        .acknowledge(r, AcknowledgeType::Release)
                        .map_err(|e| e.to_string())?;
                    continue;
                }
                let fmt = args.format.replace("%d", &r.delivery_count.to_string());
                crate::consume::write_record(&mut out, &fmt, r).map_err(|e| write_failure(&e))?;
                out.flush().map_err(|e| write_failure(&e))?;
                consumer.acknowledge(r, kind).map_err(|e| e.to_string())?;
                written += 1;
            }
        }
    }
    .await;
    // Everything written is acknowledged as asked; the rest goes back to the group.
    let closed = consumer.close().await.map_err(|e| e.to_string());
    match outcome? {
        Some(signal) => Err(Failure::Signal {
            signal,
            report: format!(
                "{} after {written} records (acknowledged; the rest released)",
                signal.name()
            ),
        }),
        None => {
            closed.map_err(Failure::Error)?;
            let refused = refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match refused.first() {
                Some(e) => Err(Failure::Error(format!(
                    "{} acknowledgements were refused (their records go to the group again): {e}",
                    refused.len()
                ))),
                None => Ok(()),
            }
        }
    }
}
