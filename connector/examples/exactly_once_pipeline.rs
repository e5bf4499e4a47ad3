//! Reads topic A, transforms each record, writes topic B exactly once, checkpointing to a
//! directory; kill it (even with `kill -9`) and start it again with the same arguments, and
//! topic B, read with `isolation.level=read_committed`, still holds every input record
//! exactly once.
//!
//! ```text
//! cargo run -p strom-connector --example exactly_once_pipeline -- \
//!     --bootstrap 127.0.0.1:9092 --input A --output B --checkpoint-dir /tmp/a-to-b \
//!     [--subtask 0 --parallelism 1] [--interval-ms 1000] [--bounded] \
//!     [--transform upper|json|none] [--guarantee exactly-once|at-least-once|none] \
//!     [--transactional-id-prefix P] [--group G] [--rate RECORDS_PER_S] [--progress-ms MS] \
//!     [--metrics-addr HOST:PORT]
//! cargo run -p strom-connector --example exactly_once_pipeline -- \
//!     --bootstrap 127.0.0.1:9092 --input A --output B --elastic --group G [--member M] ...
//! ```
//!
//! * `--bounded`: read up to the end offsets seen at the first start, then take a final
//!   checkpoint and exit 0 (a restart after the end exits at once). Without it the pipeline
//!   runs until killed, discovering new partitions every 10 s.
//! * `--transform upper` (default) uppercases each value; `json` parses it as JSON and adds
//!   `"processed_by": "strom"` and `"length"` (a value that is not a JSON object is wrapped as
//!   `{"value": ...}`); `none` copies values as they are.
//! * `--rate` slows processing down to that many records per second (to watch a demo).
//! * The transactional id prefix defaults to `strom-example-<output>`: it must stay the same
//!   across restarts (that is how a restart finds the transactions to commit or abort) and
//!   be unique to this pipeline.
//!
//! * `--elastic --group G`: elastic mode (`Pipeline::elastic`): start as many processes as
//!   you like, with the same arguments and a different `--member` each (default
//!   `<hostname>-<pid>`; keep it stable across restarts so a restart fences the old process
//!   at once). They share topic A's partitions through consumer group G and commit their
//!   outputs with the offsets they consumed, in one transaction every `--interval-ms`: no
//!   checkpoint directory. Stop one with Ctrl-C or SIGTERM (a last commit, then it leaves the
//!   group); kill it and the others take its partitions after the session timeout. The
//!   transaction timeout is 60 s here (how long a killed process's open transaction holds
//!   read_committed readers of B).
//!
//! Prints a progress line every second (`--progress-ms`) and a summary at the end.
//! `--metrics-addr` serves the pipeline's metrics under Flink's names in the Prometheus text
//! format at `http://HOST:PORT/metrics` while it runs (`HOST:0` picks a port; the address is
//! printed as `metrics: http://.../metrics`).

use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use strom_connector::checkpoint::FileCheckpointStore;
use strom_connector::pipeline::Pipeline;
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_connector::ConnectorError;

const USAGE: &str = "usage: exactly_once_pipeline --input TOPIC --output TOPIC --checkpoint-dir DIR \
[--bootstrap HOST:PORT] [--subtask I --parallelism N] [--interval-ms MS] [--bounded] [--transform upper|json|none] \
[--guarantee exactly-once|at-least-once|none] [--transactional-id-prefix P] [--group G] [--rate RECORDS_PER_S] \
[--progress-ms MS] [--metrics-addr HOST:PORT]\n       exactly_once_pipeline --input TOPIC --output TOPIC --elastic --group G [--member M] \
[--bootstrap HOST:PORT] [--interval-ms MS] [--transform upper|json|none] [--transactional-id-prefix P] \
[--rate RECORDS_PER_S] [--progress-ms MS] [--metrics-addr HOST:PORT]";

#[derive(Debug)]
struct Args {
    bootstrap: String,
    input: String,
    output: String,
    checkpoint_dir: String,
    subtask: usize,
    parallelism: usize,
    interval: Duration,
    bounded: bool,
    transform: String,
    guarantee: DeliveryGuarantee,
    prefix: Option<String>,
    group: Option<String>,
    rate: Option<f64>,
    progress: Duration,
    metrics_addr: Option<String>,
    elastic: bool,
    member: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        bootstrap: std::env::var("STROM_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into()),
        input: String::new(),
        output: String::new(),
        checkpoint_dir: String::new(),
        subtask: 0,
        parallelism: 1,
        interval: Duration::from_secs(1),
        bounded: false,
        transform: "upper".into(),
        guarantee: DeliveryGuarantee::ExactlyOnce,
        prefix: None,
        group: None,
        rate: None,
        progress: Duration::from_secs(1),
        metrics_addr: None,
        elastic: false,
        member: None,
    };
    fn num<T: FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag} {v:?}: not a number"))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bootstrap" | "-b" => a.bootstrap = it.next().ok_or("--bootstrap needs a value")?,
            "--input" => a.input = it.next().ok_or("--input needs a value")?,
            "--output" => a.output = it.next().ok_or("--output needs a value")?,
            "--checkpoint-dir" => a.checkpoint_dir = it.next().ok_or("--checkpoint-dir needs a value")?,
            "--subtask" => a.subtask = num(&flag, it.next())?,
            "--parallelism" => a.parallelism = num(&flag, it.next())?,
            "--interval-ms" => a.interval = Duration::from_millis(num(&flag, it.next())?),
            "--bounded" => a.bounded = true,
            "--transform" => a.transform = it.next().ok_or("--transform needs a value")?,
            "--guarantee" => {
                a.guarantee = it
                    .next()
                    .ok_or("--guarantee needs a value")?
                    .parse()
                    .map_err(|e: ConnectorError| e.to_string())?
            }
            "--transactional-id-prefix" => a.prefix = Some(it.next().ok_or("--transactional-id-prefix needs a value")?),
            "--group" => a.group = Some(it.next().ok_or("--group needs a value")?),
            "--rate" => a.rate = Some(num(&flag, it.next())?),
            "--progress-ms" => a.progress = Duration::from_millis(num::<u64>(&flag, it.next())?.max(10)),
            "--metrics-addr" => a.metrics_addr = Some(it.next().ok_or("--metrics-addr needs a value")?),
            "--elastic" => a.elastic = true,
            "--member" => a.member = Some(it.next().ok_or("--member needs a value")?),
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if a.elastic {
        if a.input.is_empty() || a.output.is_empty() || a.group.is_none() {
            return Err(format!("--elastic needs --input, --output and --group\n{USAGE}"));
        }
        let checkpointed = !a.checkpoint_dir.is_empty() || a.subtask != 0 || a.parallelism != 1 || a.bounded;
        if checkpointed || a.guarantee != DeliveryGuarantee::ExactlyOnce {
            return Err(format!(
                "--elastic keeps its state in group {}'s offsets, exactly once: it takes no --checkpoint-dir, \
                 --subtask, --parallelism, --bounded or --guarantee\n{USAGE}",
                a.group.as_deref().unwrap_or_default()
            ));
        }
    } else if a.member.is_some() {
        return Err(format!("--member names an --elastic process\n{USAGE}"));
    } else if a.input.is_empty() || a.output.is_empty() || a.checkpoint_dir.is_empty() {
        return Err(format!("--input, --output and --checkpoint-dir are required\n{USAGE}"));
    }
    if !["upper", "json", "none"].contains(&a.transform.as_str()) {
        return Err(format!("--transform {:?}: expected upper, json or none", a.transform));
    }
    Ok(a)
}

/// `{"processed_by": "strom", "length": n, ...the object}`.
fn enrich(value: &str) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::json!({ "value": value }));
    if !v.is_object() {
        v = serde_json::json!({ "value": v });
    }
    if let Some(o) = v.as_object_mut() {
        o.insert("processed_by".into(), "strom".into());
        o.insert("length".into(), value.len().into());
    }
    v.to_string()
}

/// Sleeps so that `n` records take at least `n / rate` seconds since `start`.
fn throttle(rate: Option<f64>) -> impl FnMut() + Send {
    let start = Instant::now();
    let mut n = 0u64;
    move || {
        let Some(rate) = rate else { return };
        n += 1;
        let due = Duration::from_secs_f64(n as f64 / rate.max(1.0));
        let elapsed = start.elapsed();
        if due > elapsed + Duration::from_millis(5) {
            std::thread::sleep(due - elapsed);
        }
    }
}

async fn run(a: Args) -> Result<(), ConnectorError> {
    let mut source = KafkaSource::builder()
        .bootstrap_servers(&a.bootstrap)
        .topics([&a.input])
        .property("isolation.level", "read_committed")
        .client_id_prefix(format!("strom-example-{}", a.output))
        .deserializer(deserializer::string());
    if let Some(g) = &a.group {
        source = source.group_id(g);
    }
    source = if a.bounded {
        source.bounded(OffsetsInitializer::latest())
    } else if a.elastic {
        // The group's subscription picks up new partitions itself.
        source
    } else {
        source.partition_discovery_interval(Duration::from_secs(10))
    };
    let source = source.build()?;
    let mut sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&a.bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&a.output)
                .value_serializer(StringSerializer)
                .build()?,
        )
        .delivery_guarantee(a.guarantee)
        // Within the broker's default transaction.max.timeout.ms (15 min). Elastic members
        // have no restart to wait for: a killed one's transaction should expire soon.
        .transaction_timeout(Duration::from_secs(if a.elastic { 60 } else { 600 }));
    if a.guarantee == DeliveryGuarantee::ExactlyOnce {
        sink = sink.transactional_id_prefix(
            a.prefix
                .clone()
                .unwrap_or_else(|| format!("strom-example-{}", a.output)),
        );
    }
    let sink = sink.build()?;

    let transform = a.transform.clone();
    let mut slow = throttle(a.rate);
    let pipeline = Pipeline::new(source, sink)
        .map(move |v: String| {
            slow();
            match transform.as_str() {
                "upper" => v.to_uppercase(),
                "json" => enrich(&v),
                _ => v,
            }
        })
        .checkpoint_interval(a.interval);
    let pipeline = if a.elastic {
        let member = a.member.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "member".into());
            format!("{host}-{}", std::process::id())
        });
        println!(
            "elastic member {member} of group {}",
            a.group.as_deref().unwrap_or_default()
        );
        pipeline.elastic(member)
    } else {
        pipeline
            .checkpoint_store(FileCheckpointStore::new(&a.checkpoint_dir)?)
            .subtask(a.subtask, a.parallelism)
    };

    let metrics = pipeline.metrics();
    if let Some(addr) = &a.metrics_addr {
        let served = metrics.clone();
        let bound = strom_client::metrics::serve_prometheus(addr, move || served.snapshot().prometheus()).await?;
        println!("metrics: http://{bound}/metrics");
    }
    let watch = metrics.clone();
    let every = a.progress;
    let progress = tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let m = metrics.snapshot();
            println!(
                "progress: in={} out={} checkpoints={} last_checkpoint={} ({} ms) restored_from={}",
                m.records_in,
                m.records_out,
                m.checkpoints_completed,
                m.last_checkpoint_id.map_or("-".into(), |c| c.to_string()),
                m.last_checkpoint_duration.as_millis(),
                m.restored_checkpoint_id.map_or("-".into(), |c| c.to_string()),
            );
        }
    });
    if a.elastic {
        println!(
            "pipeline {} -> {} (elastic, exactly-once, a transaction with its offsets every {} ms)",
            a.input,
            a.output,
            a.interval.as_millis()
        );
    } else {
        println!(
            "pipeline {} -> {} ({}, subtask {} of {}, checkpoints every {} ms to {}){}",
            a.input,
            a.output,
            a.guarantee,
            a.subtask,
            a.parallelism,
            a.interval.as_millis(),
            a.checkpoint_dir,
            if a.bounded { ", bounded" } else { "" }
        );
    }
    let result = if a.elastic {
        // Ctrl-C or SIGTERM: a last commit, then the member leaves its group.
        pipeline.run_until(shutdown_signal()).await
    } else {
        pipeline.run().await
    };
    progress.abort();
    let s = result?;
    let m = watch.snapshot();
    let ms = |q: f64| m.checkpoint_duration_quantile(q).map_or(0, |d| d.as_millis());
    println!(
        "done: end={:?} in={} out={} checkpoints={} last_checkpoint={} restored_from={} elapsed={:.1}s \
         checkpoint_ms_p50={} checkpoint_ms_p99={} checkpoint_ms_max={}",
        s.end,
        s.records_in,
        s.records_out,
        s.checkpoints,
        s.last_checkpoint_id,
        s.restored_from.map_or("-".into(), |c| c.to_string()),
        s.elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        m.max_checkpoint_duration.as_millis()
    );
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exactly_once_pipeline: {e}");
            ExitCode::FAILURE
        }
    }
}
