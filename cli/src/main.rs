//! `strom`: a kcat-style command line Kafka client (README.md, "The strom command line").
//!
//! Java property names everywhere (`-X key=value`, `-F file.properties`), plus the
//! librdkafka aliases kcat users type. Errors: one line on stderr, non-zero exit.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use strom_client::{is_secret_key, parse_properties, ClientConfig, ConsumerConfig, ProducerConfig};
use tracing::warn;

mod acls;
mod admin_cmds;
mod bench;
mod configs;
mod consume;
mod fake;
mod features;
mod formats;
mod logdirs;
mod metrics_http;
mod out;
mod placement;
mod produce;
mod progress;
mod quotas;
mod share;
mod signals;
mod tokens;
mod transactions;

pub(crate) use out::Failure;

/// A kcat-style Kafka client, in pure Rust.
#[derive(Debug, Parser)]
#[command(
    name = "strom",
    version,
    about,
    after_help = "\
Settings: -X KEY=VALUE beats -b, which beats -F FILE (as --bootstrap-server beats a \
--command-config file in Java's tools), which beats $STROM_BOOTSTRAP_SERVERS. -F reads a Java .properties file (key=value, \
key:value or key value; # and ! comments; backslash continuations and escapes). A valid \
Kafka property a command does not use (say linger.ms for `topics list`) gets a warning; \
an unknown key is an error. Values of keys naming a password, secret, token or jaas \
config are never printed.

Logging: warnings and errors go to stderr. STROM_LOG (or else RUST_LOG) sets the filter, \
e.g. STROM_LOG=strom_client=debug or RUST_LOG=error.

Exit status: 0 on success (also when the reader of stdout went away, as with | head); 1 \
on an error; `produce` stopped by SIGINT exits 130, by SIGTERM 143, after waiting (up to \
delivery.timeout.ms) for what it read and reporting how much landed. `consume` ends \
normally (exit 0) on SIGINT or SIGTERM, committing what it printed."
)]
struct Cli {
    /// Bootstrap servers, host:port[,host:port...]. Beats bootstrap.servers in a -F file;
    /// -X bootstrap.servers=... beats it. Without -b: -F's, else $STROM_BOOTSTRAP_SERVERS,
    /// else 127.0.0.1:9092.
    #[arg(short = 'b', long, global = true)]
    bootstrap_servers: Option<String>,
    /// A client property by its Java name (repeatable), e.g. -X request.timeout.ms=5000.
    /// Beats -b and -F.
    #[arg(short = 'X', value_name = "KEY=VALUE", global = true)]
    property: Vec<String>,
    /// A Java .properties file of client settings (-b and -X beat it).
    #[arg(short = 'F', value_name = "FILE", global = true)]
    properties_file: Option<std::path::PathBuf>,
    /// Serve the clients' metrics in the Prometheus text format at
    /// http://HOST:PORT/metrics while the command runs (HOST:0 picks a free port; the
    /// address is printed on stderr). Names: kafka_producer_*, kafka_consumer_*,
    /// kafka_node_* (see the README).
    #[arg(long, value_name = "HOST:PORT", global = true)]
    metrics_addr: Option<String>,
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
    /// The cluster, its brokers, and every topic's partitions with leaders, replicas and
    /// ISR (kcat -L). Example: `strom cluster --topic orders --json`.
    Cluster(admin_cmds::ClusterArgs),
    /// Access control lists: list, create, delete (kafka-acls.sh). Example: `strom acls
    /// create --allow-principal User:alice --operation read --topic orders`.
    Acls {
        #[command(subcommand)]
        action: acls::AclsAction,
    },
    /// Describe or alter the configs of a topic, a broker, the broker default, a broker's
    /// loggers, a group or a client metrics subscription (kafka-configs.sh). Example:
    /// `strom configs alter --broker-default --set log.retention.ms=86400000`.
    Configs {
        #[command(subcommand)]
        action: configs::ConfigsAction,
    },
    /// Move partitions between brokers: start, list, cancel (kafka-reassign-partitions.sh).
    /// Example: `strom reassign start --move orders:0=2,3`.
    Reassign {
        #[command(subcommand)]
        action: placement::ReassignAction,
    },
    /// Delegation tokens: create, renew, expire, describe (kafka-delegation-tokens.sh).
    /// Example: `strom -F admin.properties delegation-tokens create --renewer-principal
    /// User:scheduler`.
    DelegationTokens {
        #[command(subcommand)]
        action: tokens::TokensAction,
    },
    /// Brokers' log directories: describe (path, free space, replicas and their size) and
    /// move replicas between the directories of a broker (kafka-log-dirs.sh). Example:
    /// `strom log-dirs describe --broker 1 --json`.
    LogDirs {
        #[command(subcommand)]
        action: logdirs::LogDirsAction,
    },
    /// Elect the preferred (or with --unclean, any live) replica as leader
    /// (kafka-leader-election.sh). Example: `strom elect-leaders --topic orders`.
    ElectLeaders(placement::ElectArgs),
    /// Client quotas of users, client ids and IPs: describe, alter (kafka-configs.sh
    /// --entity-type users|clients|ips). Example: `strom quotas alter --client-id billing
    /// --set producer_byte_rate=1048576`.
    Quotas {
        #[command(subcommand)]
        action: quotas::QuotasAction,
    },
    /// Cluster features (KIP-584): describe, upgrade, downgrade (kafka-features.sh).
    /// Example: `strom features describe`.
    Features {
        #[command(subcommand)]
        action: features::FeaturesAction,
    },
    /// A fake Kafka cluster (strom-fake) in the foreground until Ctrl-C: in memory, on
    /// loopback, for trying clients without a broker. Prints its bootstrap servers.
    /// Example: `strom fake --brokers 3 --topic orders:6:3`.
    Fake(fake::FakeArgs),
    /// The KRaft metadata quorum: leader, epoch, high watermark and each voter's and
    /// observer's lag (kafka-metadata-quorum.sh describe --status --replication).
    Quorum {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Transactions: list, describe, a partition's producers, abort a hanging one, fence
    /// producers (kafka-transactions.sh). Example: `strom transactions fence payments-0`.
    Transactions {
        #[command(subcommand)]
        action: transactions::TransactionsAction,
    },
    /// Earliest and latest offset of every partition of a topic.
    Offsets {
        /// Topic.
        topic: String,
        /// A JSON array of {"partition", "earliest", "latest"} instead of a table.
        #[arg(long)]
        json: bool,
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
    /// Share groups (KIP-932, queues): consume as a member, acknowledging each record
    /// (kafka-console-share-consumer.sh). Example: `strom share consume jobs --group workers`.
    Share {
        #[command(subcommand)]
        action: share::ShareAction,
    },
    /// The schema registry: subjects, versions, schemas, compatibility.
    Registry {
        #[command(flatten)]
        registry: formats::RegistryArgs,
        #[command(subcommand)]
        action: formats::RegistryAction,
    },
    /// Print a shell completion script: `strom completions bash > /etc/bash_completion.d/strom`,
    /// `strom completions zsh > "${fpath[1]}/_strom"`, `strom completions fish >
    /// ~/.config/fish/completions/strom.fish`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
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
    /// Consume a fixed number of records as members of a share group (Java's
    /// ShareConsumerPerformance).
    ShareConsume(bench::BenchShareConsumeArgs),
    /// Produce at a fixed rate while a consumer in the same process reads the topic: the
    /// end-to-end latency of every record (S5).
    Latency(bench::BenchLatencyArgs),
    /// Transactions of a fixed number of records: records/s and commit latency (S4).
    Txn(bench::BenchTxnArgs),
}

/// Which role's settings a command applies; the others' keys only get a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// topics, offsets, groups: client-wide keys only.
    Admin,
    /// produce, bench produce.
    Producer,
    /// consume, bench consume.
    Consumer,
    /// registry: schema registry keys only.
    Registry,
    /// share consume: share consumer keys (consumer keys that do not apply are refused by
    /// the share consumer, naming what to use).
    Share,
}

/// A property as the user gave it (-F, -b or -X).
#[derive(Debug, Clone)]
pub(crate) struct Property {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// An error message from setting `key`, with the value replaced when the key is secret
/// (the client's messages quote bad values).
pub(crate) fn set_error(key: &str, value: &str, e: &strom_client::Error) -> String {
    let msg = e.to_string();
    if is_secret_key(key) && !value.is_empty() {
        msg.replace(value, "[redacted]")
    } else {
        msg
    }
}

/// A subcommand flag with a property equivalent (`--acks` and `acks`): both given and
/// different is an error rather than one silently beating the other.
pub(crate) fn agree(flag: &str, flag_value: Option<&str>, rest: &[Property], key: &str) -> Result<(), String> {
    let Some(v) = flag_value else { return Ok(()) };
    match rest.iter().rev().find(|p| p.key == key) {
        Some(p) if p.value.trim() != v.trim() => Err(format!(
            "{flag} {v} and {key}={} (from -X or -F) disagree: give one",
            p.value
        )),
        _ => Ok(()),
    }
}

/// Parses one `-X` argument; never echoes a secret's value.
fn parse_x(p: &str) -> Result<Property, String> {
    match p.split_once('=') {
        Some((k, v)) => Ok(Property {
            key: k.trim().to_owned(),
            value: v.trim().to_owned(),
        }),
        None => {
            // `-X 'sasl.password TOPSECRET'`: name the key only, never what follows it.
            let key = p.split([' ', '\t', ':']).next().unwrap_or_default();
            Err(format!("-X {key}...: expected KEY=VALUE (the value is not shown)"))
        }
    }
}

/// Settings from $STROM_BOOTSTRAP_SERVERS, -F, -b, then -X (each beats the ones before:
/// the command line beats the environment, and on it the more specific option wins, as
/// Java's tools let --bootstrap-server beat a --command-config file); the CLI waits 10 s (not
/// Java's 60 s) for an API call unless told otherwise, so a wrong address fails quickly.
/// Returns the client settings and every property that is not client-wide, for the role's
/// config to apply; a key no role knows is an error, a key of another role a warning.
fn config(cli: &Cli, role: Role) -> Result<(ClientConfig, Vec<Property>), String> {
    let mut props: Vec<Property> = Vec::new();
    // The environment is a default: anything on the command line beats it.
    if let Ok(b) = std::env::var("STROM_BOOTSTRAP_SERVERS") {
        if !b.trim().is_empty() {
            props.push(Property {
                key: "bootstrap.servers".into(),
                value: b,
            });
        }
    }
    if let Some(path) = &cli.properties_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let parsed = parse_properties(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        props.extend(parsed.into_iter().map(|(key, value)| Property { key, value }));
    }
    if let Some(b) = &cli.bootstrap_servers {
        props.push(Property {
            key: "bootstrap.servers".into(),
            value: b.clone(),
        });
    }
    for p in &cli.property {
        props.push(parse_x(p)?);
    }
    let mut c = ClientConfig::default();
    c.default_api_timeout = std::time::Duration::from_secs(10);
    let mut rest = Vec::new();
    for p in props {
        // Schema registry properties (one properties file often holds both, as Java
        // serializers read theirs from the producer's or consumer's config).
        if strom_registry::RegistryConfig::is_known_key(&p.key) {
            if matches!(role, Role::Producer | Role::Consumer | Role::Registry) {
                rest.push(p);
            } else {
                warn!(
                    "property {} is not used by this command (a schema registry property)",
                    p.key
                );
            }
            continue;
        }
        if role == Role::Registry {
            if !(ClientConfig::is_known_key(&p.key)
                || ProducerConfig::is_known_key(&p.key)
                || ConsumerConfig::is_known_key(&p.key))
            {
                return Err(unknown_property(&p.key));
            }
            continue;
        }
        if ClientConfig::is_known_key(&p.key) {
            c.set(&p.key, &p.value).map_err(|e| set_error(&p.key, &p.value, &e))?;
            continue;
        }
        let producer = ProducerConfig::is_known_key(&p.key);
        let share = strom_client::share::ShareConsumerConfig::is_known_key(&p.key);
        let consumer = ConsumerConfig::is_known_key(&p.key) || (role != Role::Share && share);
        let used = match role {
            Role::Admin | Role::Registry => false,
            Role::Producer => producer,
            Role::Consumer => ConsumerConfig::is_known_key(&p.key),
            Role::Share => share || consumer,
        };
        if used {
            rest.push(p);
        } else if producer || consumer {
            // Java's tools warn about a shared client.properties' other keys and carry on.
            warn!(
                "property {} is not used by this command ({} property)",
                p.key,
                if producer { "a producer" } else { "a consumer" }
            );
        } else {
            return Err(unknown_property(&p.key));
        }
    }
    if c.statistics_interval.is_some() {
        // As kcat: each statistics document is one line on stderr.
        c = c.with_statistics_callback(|json| {
            let _ = writeln!(std::io::stderr(), "{json}");
        });
    }
    Ok((c, rest))
}

/// `unknown property "k"`, without whatever follows a space in the key (a value given
/// with the wrong separator must not be echoed).
pub(crate) fn unknown_property(key: &str) -> String {
    match key.split_once([' ', '\t']) {
        Some((k, _)) => format!("unknown property {k:?}... (a key has no spaces; the rest is not shown)"),
        None => format!("unknown property {key:?}"),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    if let Command::Fake(_) = &cli.command {
        let Command::Fake(args) = cli.command else {
            return Ok(());
        };
        return fake::run(args).await;
    }
    if let Command::Completions { shell } = &cli.command {
        // No settings, no broker: the script for the shell, on stdout.
        let mut script = Vec::new();
        clap_complete::generate(
            *shell,
            &mut <Cli as clap::CommandFactory>::command(),
            "strom",
            &mut script,
        );
        return out::print(&String::from_utf8_lossy(&script));
    }
    let role = match &cli.command {
        Command::Topics { .. }
        | Command::Offsets { .. }
        | Command::Groups { .. }
        | Command::Cluster(_)
        | Command::Acls { .. }
        | Command::Configs { .. }
        | Command::Reassign { .. }
        | Command::LogDirs { .. }
        | Command::DelegationTokens { .. }
        | Command::Quotas { .. }
        | Command::Features { .. }
        | Command::Quorum { .. }
        | Command::Transactions { .. }
        | Command::ElectLeaders(_)
        | Command::Completions { .. }
        | Command::Fake(_) => Role::Admin,
        Command::Registry { .. } => Role::Registry,
        Command::Produce(_)
        | Command::Bench {
            action: BenchAction::Produce(_) | BenchAction::Latency(_) | BenchAction::Txn(_),
        } => Role::Producer,
        Command::Share { .. }
        | Command::Bench {
            action: BenchAction::ShareConsume(_),
        } => Role::Share,
        Command::Consume(_)
        | Command::Bench {
            action: BenchAction::Consume(_),
        } => Role::Consumer,
    };
    let (config, rest) = config(&cli, role)?;
    if let Some(addr) = &cli.metrics_addr {
        let bound = metrics_http::start(addr).await?;
        let _ = writeln!(std::io::stderr(), "strom: serving metrics at http://{bound}/metrics");
    }
    match cli.command {
        Command::Topics { action } => admin_cmds::topics(config, action).await,
        Command::Offsets { topic, json } => admin_cmds::offsets(config, &topic, json).await,
        Command::Cluster(args) => admin_cmds::cluster(config, args).await,
        Command::Acls { action } => acls::acls(config, action).await,
        Command::Configs { action } => configs::configs(config, action).await,
        Command::Reassign { action } => placement::reassign(config, action).await,
        Command::Quotas { action } => quotas::quotas(config, action).await,
        Command::Features { action } => features::features(config, action).await,
        Command::Quorum { json } => features::quorum(config, json).await,
        Command::LogDirs { action } => logdirs::log_dirs(config, action).await,
        Command::DelegationTokens { action } => tokens::tokens(config, action).await,
        Command::Transactions { action } => transactions::transactions(config, action).await,
        Command::ElectLeaders(args) => placement::elect_leaders(config, args).await,
        Command::Completions { .. } | Command::Fake(_) => Ok(()),
        Command::Groups { action } => admin_cmds::groups(config, action).await,
        Command::Registry { registry, action } => formats::registry(registry, rest, action).await,
        Command::Produce(args) => produce::run(config, rest, args).await,
        Command::Consume(args) => consume::run(config, rest, args).await,
        Command::Share {
            action: share::ShareAction::Consume(args),
        } => share::run(config, rest, args).await,
        Command::Bench {
            action: BenchAction::Produce(args),
        } => bench::produce(config, rest, args).await,
        Command::Bench {
            action: BenchAction::Consume(args),
        } => bench::consume(config, rest, args).await,
        Command::Bench {
            action: BenchAction::ShareConsume(args),
        } => bench::share_consume(config, rest, args).await,
        Command::Bench {
            action: BenchAction::Latency(args),
        } => bench::latency(config, rest, args).await,
        Command::Bench {
            action: BenchAction::Txn(args),
        } => bench::txn(config, rest, args).await,
    }
}

/// Warnings and errors on stderr by default; STROM_LOG, else RUST_LOG, sets the filter.
fn init_logging() {
    let filter = ["STROM_LOG", "RUST_LOG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "warn".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|e| {
        let _ = writeln!(std::io::stderr(), "strom: ignoring the log filter {filter:?}: {e}");
        tracing_subscriber::EnvFilter::new("warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(CliFormat)
        .init();
}

/// Log lines as the CLI's own messages: `strom: warning: ...`, with the spans (say, which
/// broker connection) before the message.
struct CliFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for CliFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(writer, "strom: {level}: ")?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}", span.name())?;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<tracing_subscriber::fmt::FormattedFields<N>>() {
                    if !fields.is_empty() {
                        write!(writer, "{{{fields}}}")?;
                    }
                }
                write!(writer, ": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    // `bench produce` runs the producer's sender task on a worker thread of its own, beside
    // the thread that appends records, as Java's Sender thread and librdkafka's broker
    // threads do (and as a service on tokio's default multi-threaded runtime gets); so do
    // `bench txn` and `bench latency` (whose consumer runs on that worker too, as a task
    // beside the sender, while the main thread paces the records). Every other command is
    // one thread.
    let builder = match &cli.command {
        Command::Bench {
            action: BenchAction::Produce(_) | BenchAction::Latency(_) | BenchAction::Txn(_),
        } => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(1);
            b
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let mut builder = builder;
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "strom: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // Standard input is read on a blocking thread that cannot be cancelled: do not wait
    // for it (a `produce` stopped by a signal while its input pipe stays open).
    rt.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn secrets_stay_out_of_messages() {
        let p = parse_x(" acks = all ").unwrap();
        assert_eq!((p.key.as_str(), p.value.as_str()), ("acks", "all"));
        let e = parse_x("sasl.password TOPSECRET").unwrap_err();
        assert!(e.contains("sasl.password") && !e.contains("TOPSECRET"), "{e}");
        let e = unknown_property("sasl.password strom-secret");
        assert!(e.contains("sasl.password") && !e.contains("strom-secret"), "{e}");
        let err = strom_client::Error::config("ssl.key.password=\"hunter2\": bad");
        assert!(!set_error("ssl.key.password", "hunter2", &err).contains("hunter2"));
        assert!(set_error("acks", "2", &strom_client::Error::config("acks=\"2\"")).contains('2'));
    }

    #[test]
    fn a_flag_and_its_property_must_agree() {
        let rest = [Property {
            key: "acks".into(),
            value: "1".into(),
        }];
        assert!(agree("--acks", Some("1"), &rest, "acks").is_ok());
        assert!(agree("--acks", None, &rest, "acks").is_ok());
        assert!(agree("--acks", Some("all"), &rest, "acks")
            .unwrap_err()
            .contains("disagree"));
    }
}
