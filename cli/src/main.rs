//! `strom`: a kcat-style command line Kafka client (see DESIGN.md "cli").
//!
//! Java property names everywhere (`-X key=value`, `-F file.properties`), plus the
//! librdkafka aliases kcat users type. Errors: one line on stderr, non-zero exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strom_client::{parse_properties, ClientConfig};

mod admin_cmds;
mod bench;
mod consume;
mod produce;

/// A kcat-style Kafka client, in pure Rust.
#[derive(Debug, Parser)]
#[command(name = "strom", version, about)]
struct Cli {
    /// Bootstrap servers, host:port[,host:port...].
    #[arg(
        short = 'b',
        long,
        env = "STROM_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    bootstrap_servers: String,
    /// A client property by its Java name (repeatable), e.g. -X request.timeout.ms=5000.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    property: Vec<String>,
    /// A Java .properties file of client settings (applied before -X).
    #[arg(short = 'F', value_name = "FILE", global = true)]
    properties_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, describe, create or delete topics.
    Topics {
        #[command(subcommand)]
        action: admin_cmds::TopicsAction,
    },
    /// Earliest and latest offset of every partition of a topic.
    Offsets {
        /// Topic.
        topic: String,
    },
    /// List or describe consumer groups.
    Groups {
        #[command(subcommand)]
        action: admin_cmds::GroupsAction,
    },
    /// Produce one record per stdin line.
    Produce(produce::ProduceArgs),
    /// Consume records to stdout.
    Consume(consume::ConsumeArgs),
    /// Load tests, reported as one JSON object.
    Bench {
        #[command(subcommand)]
        action: BenchAction,
    },
}

#[derive(Debug, Subcommand)]
enum BenchAction {
    /// Produce a fixed number of records as fast as the producer allows.
    Produce(bench::BenchProduceArgs),
    /// Consume a fixed number of records (assign mode, from the earliest offsets).
    Consume(bench::BenchConsumeArgs),
}

/// Settings from -F, then -X, then -b; the CLI waits 10 s (not Java's 60 s) for an API call
/// unless told otherwise, so a wrong address fails quickly.
fn config(cli: &Cli) -> Result<(ClientConfig, Vec<(String, String)>), String> {
    let mut props: Vec<(String, String)> = Vec::new();
    if let Some(path) = &cli.properties_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        props.extend(parse_properties(&text));
    }
    for p in &cli.property {
        let (k, v) = p.split_once('=').ok_or_else(|| format!("-X {p}: expected key=value"))?;
        props.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut c = ClientConfig {
        default_api_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    };
    c.set("bootstrap.servers", &cli.bootstrap_servers)
        .map_err(|e| e.to_string())?;
    let mut rest = Vec::new();
    for (k, v) in props {
        if !c.set(&k, &v).map_err(|e| e.to_string())? {
            rest.push((k, v));
        }
    }
    Ok((c, rest))
}

/// Fails on properties no part of the CLI understood.
fn reject_unknown(rest: &[(String, String)], known: &[&str]) -> Result<(), String> {
    match rest.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(format!("unknown property {k:?}")),
        None => Ok(()),
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let (config, rest) = config(&cli)?;
    match cli.command {
        Command::Topics { action } => {
            reject_unknown(&rest, &[])?;
            admin_cmds::topics(config, action).await
        }
        Command::Offsets { topic } => {
            reject_unknown(&rest, &[])?;
            admin_cmds::offsets(config, &topic).await
        }
        Command::Groups { action } => {
            reject_unknown(&rest, &[])?;
            admin_cmds::groups(config, action).await
        }
        Command::Produce(args) => produce::run(config, rest, args).await,
        Command::Consume(args) => consume::run(config, rest, args).await,
        Command::Bench {
            action: BenchAction::Produce(args),
        } => bench::produce(config, rest, args).await,
        Command::Bench {
            action: BenchAction::Consume(args),
        } => bench::consume(config, rest, args).await,
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("STROM_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strom: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strom: {e}");
            ExitCode::FAILURE
        }
    }
}
