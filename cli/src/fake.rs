//! `strom fake`: a fake Kafka cluster (strom-fake) in the foreground, for trying a client
//! or an application without a broker: in-memory, on loopback, until Ctrl-C or SIGTERM.

use std::io::Write;

use crate::out::Failure;
use crate::signals::Signals;

/// `strom fake` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct FakeArgs {
    /// Brokers, ids 1..=N.
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// Listen on PORT_BASE+1, PORT_BASE+2, ... instead of free ports.
    #[arg(long)]
    port_base: Option<u16>,
    /// A topic created at start: `NAME:PARTITIONS[:REPLICATION]` (repeatable).
    #[arg(long = "topic", value_name = "NAME:PARTITIONS[:REPLICATION]")]
    topics: Vec<String>,
    /// Partitions of a topic a client creates by naming it (auto-creation is on).
    #[arg(long, default_value_t = 1)]
    default_partitions: i32,
}

fn parse_topic(spec: &str) -> Result<(String, i32, i16), String> {
    let bad = || format!("--topic {spec:?}: expected NAME:PARTITIONS[:REPLICATION], e.g. orders:6:3");
    let mut it = spec.split(':');
    let name = it.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
    let partitions: i32 = it.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let replication: i16 = match it.next() {
        Some(r) => r.parse().map_err(|_| bad())?,
        None => 1,
    };
    if it.next().is_some() || partitions <= 0 || replication <= 0 {
        return Err(bad());
    }
    Ok((name.to_owned(), partitions, replication))
}

/// Runs the fake cluster until a signal; prints its bootstrap address on stdout.
pub(crate) async fn run(args: FakeArgs) -> Result<(), Failure> {
    let mut signals = Signals::new()?;
    let mut b = strom_fake::FakeCluster::builder()
        .brokers(args.brokers)
        .default_partitions(args.default_partitions);
    if let Some(p) = args.port_base {
        b = b.port_base(p);
    }
    for spec in &args.topics {
        let (name, partitions, replication) = parse_topic(spec)?;
        if usize::try_from(replication).unwrap_or(usize::MAX) > args.brokers.max(1) {
            return Err(format!("--topic {spec}: replication {replication} needs at least that many --brokers").into());
        }
        b = b.topic(&name, partitions, replication);
    }
    let cluster = b
        .start()
        .await
        .map_err(|e| format!("cannot start the fake cluster: {e}"))?;
    crate::out::print(&format!("{}\n", cluster.bootstrap_servers()))?;
    let _ = writeln!(
        std::io::stderr(),
        "strom: fake cluster of {} broker(s) at {} (in memory; Ctrl-C stops it)",
        args.brokers.max(1),
        cluster.bootstrap_servers()
    );
    let signal = signals.recv().await;
    let _ = writeln!(std::io::stderr(), "strom: {}: fake cluster stopped", signal.name());
    cluster.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_topic;

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic("orders:6:3").unwrap(), ("orders".into(), 6, 3));
        assert_eq!(parse_topic("t:1").unwrap(), ("t".into(), 1, 1));
        for bad in ["", "t", ":3", "t:0", "t:x", "t:1:0", "t:1:2:3"] {
            assert!(parse_topic(bad).is_err(), "{bad}");
        }
    }
}
