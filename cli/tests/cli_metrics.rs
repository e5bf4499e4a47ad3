//! `--metrics-addr`: the Prometheus endpoint of a running `strom consume --group`, scraped
//! over HTTP and parsed with prometheus_client's own parser; bad addresses and taken ports
//! fail at start with a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, strom};
use strom_integration_tests::{broker, parse_prometheus, unique_topic};

/// GET `path` from `addr`: (status line, body).
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[test]
fn a_running_group_consumer_serves_its_metrics() {
    let topic = unique_topic("cli-metrics");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);
    let input: String = (0..300).map(|i| format!("k{i}:v{i}\n")).collect();
    ok(&["produce", &topic, "-K", ":"], Some(&input));

    let group = unique_topic("cli-metrics-group");
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "consume",
            &topic,
            "--group",
            &group,
            "--from",
            "earliest",
            "--metrics-addr",
            "127.0.0.1:0",
            "-X",
            "client.id=cli-metrics",
        ])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The address is the first stderr line.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("strom: serving metrics at http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no metrics address on stderr: {line:?}"))
        .to_owned();
    let stdout = child.stdout.take().unwrap();
    let printed = std::thread::spawn(move || BufReader::new(stdout).lines().count());

    // Scrape until the 300 records are counted (the consumer is running meanwhile).
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let (status, body) = get(&addr, "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        let samples = parse_prometheus(&body);
        let consumed = samples.iter().find(|s| {
            s.name == "kafka_consumer_records_consumed_total"
                && s.labels.get("topic").and_then(|t| t.as_str()) == Some(topic.as_str())
        });
        if consumed.is_some_and(|s| s.value == Some(300.0)) {
            break samples;
        }
        assert!(Instant::now() < deadline, "never counted 300 consumed records:\n{body}");
        std::thread::sleep(Duration::from_millis(300));
    };
    let has = |name: &str| {
        samples
            .iter()
            .any(|s| s.name == name && s.labels.get("client_id").and_then(|c| c.as_str()) == Some("cli-metrics"))
    };
    for name in [
        "kafka_consumer_fetch_total",
        "kafka_consumer_fetch_latency_seconds_count",
        "kafka_consumer_records_lag_max",
        "kafka_consumer_rebalance_total",
        "kafka_node_request_total",
        "kafka_node_request_latency_seconds",
        "kafka_node_incoming_byte_total",
    ] {
        assert!(has(name), "no {name} in the scrape");
    }
    let (status, _) = get(&addr, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // Ctrl-C ends the consumer normally.
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(printed.join().unwrap(), 300);
}

#[test]
fn a_bad_or_taken_metrics_address_fails_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for (addr, says) in [
        (format!("127.0.0.1:{port}"), "in use"),
        ("nonsense".to_owned(), "HOST:PORT"),
        ("127.0.0.1:99999".to_owned(), "HOST:PORT"),
    ] {
        let out = strom(&["topics", "list", "--metrics-addr", &addr], None);
        assert!(!out.status.success(), "--metrics-addr {addr} accepted");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--metrics-addr") && err.contains(&addr) && err.contains(says),
            "{addr}: {err}"
        );
    }
}

/// `-X statistics.interval.ms`: as kcat, each statistics document is a JSON line on stderr.
#[test]
fn statistics_documents_go_to_stderr() {
    let topic = unique_topic("cli-stats");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "produce",
            &topic,
            "-X",
            "statistics.interval.ms=50",
            "-X",
            "client.id=cli-stats",
        ])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "one\ntwo\nthree").unwrap();
    stdin.flush().unwrap();
    // A user's pace: the input stays open while documents go out.
    std::thread::sleep(Duration::from_millis(600));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!docs.is_empty(), "no statistics line on stderr");
    let last = docs.last().unwrap();
    assert_eq!(last["client_id"], "cli-stats", "{last}");
    assert_eq!(last["type"], "producer", "{last}");
    assert!(last["brokers"].as_object().is_some_and(|b| !b.is_empty()), "{last}");
}

/// Runs `command` (a shell line) under a pseudo-terminal, as a user's terminal runs it;
/// returns what the terminal showed.
fn on_a_terminal(command: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux runs a command on a pseudo-terminal: install util-linux");
    assert!(
        out.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// On a terminal, long work shows a progress line (rate, share, time left); through a
/// pipe, nothing.
#[test]
fn progress_on_a_terminal_only() {
    let topic = unique_topic("cli-progress");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);
    let exe = env!("CARGO_BIN_EXE_strom");
    let shown = on_a_terminal(&format!("{exe} bench produce {topic} --records 200000"));
    assert!(
        shown.contains("\x1b[2K[########################] 100% 200,000 records, "),
        "{shown:?}"
    );

    // strom produce from a file: the file's size gives the share and the time left.
    let dir = std::env::temp_dir().join(&topic);
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("input.txt");
    let lines: String = (0..50_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&input, &lines).unwrap();
    let shown = on_a_terminal(&format!("{exe} produce {topic} < {}", input.display()));
    assert!(shown.contains("] 100% 50,000 records, "), "{shown:?}");

    // Through pipes (stdin, stdout and stderr): no progress line.
    let out = strom(&["produce", &topic], Some(&lines));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("\x1b[2K") && !err.contains("records, "), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}
