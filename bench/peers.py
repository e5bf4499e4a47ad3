"""What bench/s1_produce.py and bench/s2_consume.py share about their peers and payloads:
building bench/franz-peer, the payload files every client reads, and the checks that a run's
records are what the payload says (values read back, bytes on the broker's disk).
"""
import json, os, re, shutil, subprocess, sys

import corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRANZ = os.path.join(ROOT, "target", "franz-peer", "franz-peer")

# What each payload kind is, for the printed settings.
PAYLOADS = {
    "corpus": "the realistic corpus (bench/corpus.py): distinct event-shaped values",
    "constant": "one constant value of random uppercase letters for every record",
    "random": "fresh random uppercase letters per record (ProducerPerformance --record-size; S2 only)",
}


def build_franz():
    """Builds bench/franz-peer with `go build` (a cached build is quick) and returns its path."""
    go = shutil.which("go")
    if not go:
        sys.exit("--with-franz needs the Go toolchain (Go 1.26, https://go.dev/dl/) to build bench/franz-peer, "
                 "and `go` is not on PATH")
    os.makedirs(os.path.dirname(FRANZ), exist_ok=True)
    subprocess.run([go, "build", "-buildvcs=false", "-o", FRANZ, "."], cwd=os.path.join(ROOT, "bench", "franz-peer"),
                   check=True)
    return FRANZ


def payload_kinds(arg, allowed):
    """--payload's value as a list of kinds: both = corpus and constant, or a comma-separated list."""
    kinds = ["corpus", "constant"] if arg == "both" else [k for k in arg.split(",") if k]
    for k in kinds:
        if k not in allowed:
            sys.exit(f"--payload {arg}: {k} is not one of {', '.join(allowed)} (or both)")
    return kinds


def payload_file(kind, size, values, seed):
    """The file a payload kind is read from (None for "random", which has none). The corpus is
    written by describe_files(), in a child process."""
    if kind == "corpus":
        return corpus.default_path(values, size, seed)
    if kind == "constant":
        return corpus.ensure_constant(size)
    return None


def describe_files(kinds, size, values, seed):
    """One line per payload kind: what it is, its file, and the file's lz4 ratio. Writes the
    corpus if it is missing and exits unless it passes `bench/corpus.py --check`. Both run in a
    child process: see reset_peak_rss() for why this one stays small."""
    lines = []
    for kind in kinds:
        path = payload_file(kind, size, values, seed)
        if kind == "corpus":
            check = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "corpus.py"), "--check",
                                    "--values", str(values), "--size", str(size), "--seed", str(seed)],
                                   capture_output=True, text=True)
            if check.returncode != 0:
                sys.exit(f"bench/corpus.py --check: {check.stdout}{check.stderr}")
            ratio = re.search(r"lz4 ratio ([0-9.]+)x", check.stdout).group(1)
            lines.append(f"payload corpus: {PAYLOADS[kind]}; {path}, {values:,} values x {size} B, seed {seed}, "
                         f"lz4 {ratio}x in 1 MiB batches")
        elif kind == "constant":
            lines.append(f"payload constant: {PAYLOADS[kind]}; {path} (one line), sent by every client")
        else:
            lines.append(f"payload random: {PAYLOADS[kind]}")
    return lines


def count_values(path):
    """How many values a payload file holds, counted without keeping them."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip(b"\n"))


def check_values(strom, bootstrap, label, topic, kind, path, size, n=200):
    """Reads the first n records of the topic back and exits unless every value is one the
    payload allows (one of the file's values; for "random", `size` uppercase letters): each
    client really sent the payload. Returns n."""
    out = subprocess.run([strom, "-b", bootstrap, "consume", topic, "--count", str(n)], check=True,
                         capture_output=True, timeout=120).stdout
    vals = out.split(b"\n")[:-1] if out.endswith(b"\n") else out.split(b"\n")
    if len(vals) != n:
        sys.exit(f"{label}: {len(vals)} records read back, {n} wanted")
    if path:
        # The file's values are looked up in a child process, so this one never holds them.
        check = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "corpus.py"), "--contains", path],
                               input=out, capture_output=True)
        if check.returncode != 0:
            sys.exit(f"{label}: the records read back do not carry the payload: {check.stderr.decode()}")
    else:
        bad = [v for v in vals if not (len(v) == size and v.isalpha() and v.isupper())]
        if bad:
            sys.exit(f"{label}: {len(bad)} of {n} values read back are not {size} uppercase letters: {bad[0]!r}")
    return n


def reset_peak_rss():
    """Resets this process's peak RSS to its current RSS (Linux: "5" into /proc/self/clear_refs).
    A child's ru_maxrss from wait4() is at least its parent's peak RSS at the fork: exec records
    the old address space's high-water mark. Without this, a client run after this script had
    held the corpus would report the script's memory as its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def disk_bytes(strom, bootstrap, topic):
    """Bytes of the topic's log segments in the broker's log directories (DescribeLogDirs'
    replica sizes): what the client's batching and compression made of the payload."""
    out = subprocess.run([strom, "-b", bootstrap, "log-dirs", "describe", "--topic", topic, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return sum(r["size"] for b in json.loads(out) for d in b["log_dirs"] for r in d["replicas"]
               if r["topic"] == topic and not r["is_future"])


# --- What bench/s3_keyed.py, s4_txn.py and s5_latency.py share: the broker, the four clients
# built or found (failing with what to install when one cannot be), and runs measured by wait4.

CLIENTS = ("strom", "java", "librdkafka", "franz-go")
RDK = os.path.join(ROOT, "target", "rdkafka-peer", "release", "rdkafka-peer")
JAVA_DIR = os.path.join(ROOT, "target", "bench-java")


def broker_env():
    """Starts the local broker if needed (scripts/kafka up) and returns `scripts/kafka env`."""
    subprocess.run([f"{ROOT}/scripts/kafka", "up"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([f"{ROOT}/scripts/kafka", "env"], check=True, capture_output=True, text=True).stdout
    return {k: v.strip("'\"") for k, v in (l.split("=", 1) for l in out.splitlines() if "=" in l)}


def parse_clients(arg):
    """--clients: a comma-separated subset of CLIENTS, in their order."""
    want = [c for c in arg.split(",") if c]
    for c in want:
        if c not in CLIENTS:
            sys.exit(f"--clients {arg}: {c} is not one of {', '.join(CLIENTS)}")
    return [c for c in CLIENTS if c in want]


def build_clients(clients, libs):
    """Builds what the chosen clients need and returns their programs: strom (release
    build), the Java harness integration-tests/java/BenchPeer.java compiled once with javac
    (so compiling is not in Java's measured CPU), bench/rdkafka-peer (librdkafka from
    source) and bench/franz-peer. Exits with what to install when a tool is missing."""
    if not shutil.which("cargo"):
        sys.exit("Strom needs Rust's cargo (https://rustup.rs, stable 1.87 or newer)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    progs = {"strom": os.path.join(ROOT, "target", "release", "strom")}
    if "java" in clients:
        if not shutil.which("javac") or not shutil.which("java"):
            sys.exit("the Java client's runs need a JDK 17+ with javac (Debian: apt-get install openjdk-17-jdk-headless); "
                     "or leave java out of --clients")
        os.makedirs(JAVA_DIR, exist_ok=True)
        subprocess.run(["javac", "-nowarn", "-cp", f"{libs}/*", "-d", JAVA_DIR,
                        os.path.join(ROOT, "integration-tests", "java", "BenchPeer.java")], check=True)
        progs["java"] = JAVA_DIR
    if "librdkafka" in clients:
        missing = [t for t in ("cmake", "cc", "c++", "make") if not shutil.which(t)]
        if missing:
            sys.exit(f"bench/rdkafka-peer builds librdkafka from source and needs {', '.join(missing)} "
                     "(Debian: apt-get install cmake g++ make); or leave librdkafka out of --clients")
        subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path",
                        os.path.join(ROOT, "bench", "rdkafka-peer", "Cargo.toml")], cwd=ROOT, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "rdkafka-peer")))
        progs["librdkafka"] = RDK
    if "franz-go" in clients:
        if not shutil.which("go"):
            sys.exit("bench/franz-peer needs the Go toolchain (Go 1.26, https://go.dev/dl/ or the distribution's "
                     "golang package); or leave franz-go out of --clients")
        progs["franz-go"] = build_franz()
    return progs


def run_measured(cmd, timeout_s=900):
    """Runs one client process; returns (stdout, stderr, wall s, CPU s, peak RSS KiB) from
    wait4(), the same way for every client. Exits when it fails or outlives timeout_s."""
    import tempfile, time
    reset_peak_rss()
    start = time.monotonic()
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout_s:
                p.kill()
                os.wait4(p.pid, 0)
                sys.exit(f"{' '.join(cmd[:4])} took more than {timeout_s} s")
            time.sleep(0.01)
        wall = time.monotonic() - start
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(), fe.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed: {err[-3000:]}")
    return out, err, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def last_json(out, label):
    """The last line of a client's output, its JSON report."""
    lines = [l for l in out.strip().splitlines() if l.startswith("{")]
    if not lines:
        sys.exit(f"{label}: no JSON report in its output: {out[-500:]}")
    return json.loads(lines[-1])


def create_topic(strom, bootstrap, topic, partitions):
    subprocess.run([strom, "-b", bootstrap, "topics", "create", topic, "--partitions", str(partitions)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def delete_topic(strom, bootstrap, topic):
    subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def java_cmd(progs, libs, env, main_args):
    """The Java harness's command line (heap as S1's Java runs, the tools' log settings)."""
    return ["java", "-Xms512m", "-Xmx1g"] + env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split() + \
        ["-cp", f"{progs['java']}:{libs}/*", "BenchPeer"] + main_args


def props_for(client, knobs):
    """-X style settings for a client: librdkafka calls compression.type compression.codec."""
    if client == "librdkafka":
        return {("compression.codec" if k == "compression.type" else k): v for k, v in knobs.items()}
    return dict(knobs)
