#!/usr/bin/env python3
"""Scenario S6 (reference/performance-and-style.md §A6): an exactly-once pipeline copying
topic A (6 partitions, N x 100-byte records, unique values) to topic B, with and without a
kill -9 mid-run and a restart; Strom's connector (connector/examples/exactly_once_pipeline.rs,
release build, a transaction every 1 s) beside Java's org.apache.kafka.tools.TransactionalMessageCopier
from the broker's jars, a transaction of up to --java-transaction-size records (one poll) with the
consumed offsets committed in it (KIP-447 group metadata). After every run topic B is read with
read_committed and checked against A: same count and the same order-independent checksum (sum of
the values' hashes).

Layouts (--clients; the kill -9 + restart rows: --restart-clients):
  strom             1 process, checkpointed (FileCheckpointStore), --bounded
  strom-p3          3 processes, --subtask i --parallelism 3, each its own checkpoint directory, --bounded
  strom-elastic     1 process, --elastic: a consumer-group member committing outputs and offsets in
                    one transaction (KIP-447); no checkpoint directory
  strom-elastic-p3  3 members of one group
  java-group        1 copier subscribed to the topic (--group-mode)
  java-group3       3 copiers in one group (--group-mode)
  java-assign       one copier per partition (assign mode, as Kafka's system tests run it)

An elastic member does not end at the end of input. It prints its progress every 100 ms
(`progress: in=.. out=..`); once the members' summed out= reaches the records still to copy,
each gets SIGTERM (a last commit, then it leaves the group) and the run ends when the last one
exits. A rebalance rewinds a member to its last commit, so out= can count a record twice: after
the exits the group's committed offsets are compared with A's end offsets, and if they fall
short the members are started again for the rest (the count of such restarts is printed).

Client CPU seconds and peak RSS come from wait4() on each client process (summed over the
processes of a run: Java's copiers, Strom's run before and after the kill); broker CPU from
/proc/<pid>/stat before and after. Wall time counts from the first start to the last exit,
the restart gap included.

Latency (--latency-rate R, default 20000; 0 skips it): for each of --latency-clients, a fresh A
and B; B is read with read_committed by `strom consume` while a paced writer feeds `strom produce`
R records/s for --latency-seconds, each value starting with its sequence number and the wall-clock
time (ms) it was handed to the producer; latency = the time the line came out of the reader minus
that time (one machine, one clock). 2,000 warm-up records go first and are left out: the run
starts once they are all visible in B. The copier computes, when it gets its partitions, how many
records it will copy and exits after them, so it cannot follow a growing topic as it is: for its
latency run A is first filled with 2x the records to come, the group's offsets are set to 0 and
the records deleted (delete-records), so its count covers the live records and its first fetch
jumps to the end.

Usage: bench/s6_pipeline.py [--records N] [--reps R] [--partitions P] [--clients ...]
       [--restart-clients ...] [--latency-rate R --latency-seconds S]   (the broker is started if needed)
Binaries come from $CARGO_TARGET_DIR (default target/) and are built first.
"""
import argparse, json, os, random, re, signal, statistics, subprocess, sys, tempfile, threading, time

from spread import check as check_spread, partition_counts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCE_KNOBS = {"acks": "all", "enable.idempotence": "true", "linger.ms": "5", "batch.size": "1048576"}
MASK = (1 << 64) - 1


def kafka_env():
    subprocess.run([f"{ROOT}/scripts/kafka", "up"], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([f"{ROOT}/scripts/kafka", "env"], check=True, capture_output=True, text=True).stdout
    env = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    return {k: v.strip("'\"") for k, v in env.items()}


def broker_cpu(env):
    """Broker user+sys CPU seconds so far."""
    try:
        pid = open(os.path.join(env["STROM_KAFKA_STATE_DIR"], "kafka.pid")).read().strip()
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, KeyError, IndexError, ValueError):
        return float("nan")


class Proc:
    """A client process whose stdout lines are watched by a thread."""

    def __init__(self, cmd, on_line):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.on_line = on_line
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))
            self.on_line(self, line)

    def try_wait(self):
        """None while running, else (exit code or -signal, cpu seconds, peak RSS KiB)."""
        pid, status, ru = os.wait4(self.p.pid, os.WNOHANG)
        if pid == 0:
            return None
        self.p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        self.t.join(timeout=10)
        return self.p.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def run_phase(cmds, progress_of, kill_at=None, stop_at=None, timeout=1800):
    """Runs the processes of one phase; with kill_at, SIGKILLs all of them once the summed
    progress reaches it; with stop_at, SIGTERMs them (elastic members: a last commit, then
    exit) once it does. Returns (processes' (code, cpu, rss), lines per process, killed)."""
    state = {"progress": {}, "killed": False}
    lock = threading.Lock()
    procs = []
    at, sig = (kill_at, signal.SIGKILL) if kill_at is not None else (stop_at, signal.SIGTERM)

    def on_line(proc, line):
        n = progress_of(line)
        if n is None:
            return
        with lock:
            state["progress"][id(proc)] = n
            if at is not None and not state["killed"] and sum(state["progress"].values()) >= at:
                state["killed"] = True
                for q in procs:
                    try:
                        # os.kill, not Popen.kill: Popen polls (and may reap) first, and
                        # the rusage comes from our own wait4.
                        os.kill(q.p.pid, sig)
                    except OSError:
                        pass

    deadline = time.monotonic() + timeout
    with lock:  # no signal before every process is in the list
        for c in cmds:
            procs.append(Proc(c, on_line))
    results = []
    for q in procs:
        while (r := q.try_wait()) is None:
            if time.monotonic() > deadline:
                for x in procs:
                    try:
                        os.kill(x.p.pid, signal.SIGKILL)
                    except OSError:
                        pass
                sys.exit(f"{q.p.args[0]} did not finish within {timeout} s:\n" + "\n".join(q.lines[-10:]))
            time.sleep(0.05)
        results.append(r)
    return results, [q.lines for q in procs], state["killed"]


def group_committed(strom, bootstrap, group):
    """Sum of the group's committed offsets (A starts at offset 0 in every partition)."""
    out = subprocess.run([strom, "-b", bootstrap, "groups", "describe", group, "--json"], check=True,
                         capture_output=True, text=True).stdout
    offs = json.loads(out)["offsets"]
    return sum(o["committed"] or 0 for o in offs)


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def value_lines(n, seed=6):
    """N unique 100-byte values: a 10-digit id, 44 random letters, a repeated phrase."""
    rnd = random.Random(seed)
    pool = "".join(rnd.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") for _ in range(4096))
    phrase = ("the quick brown fox jumps over the lazy dog " * 2)[:44]
    for i in range(n):
        o = (i * 7919) % (len(pool) - 44)
        yield f"{i:010d}-{pool[o:o + 44]}{phrase}"


def read_b(strom, bootstrap, topic):
    """(count, checksum) of topic's values read with read_committed."""
    p = subprocess.Popen([strom, "-b", bootstrap, "consume", topic, "--isolation", "read_committed", "--until-end",
                          "--from", "earliest"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    count, total = 0, 0
    for line in p.stdout:
        count += 1
        total = (total + hash(line.rstrip("\n"))) & MASK
    if p.wait() != 0:
        sys.exit(f"strom consume {topic} failed")
    return count, total


CLIENTS = ["strom", "strom-p3", "strom-elastic", "strom-elastic-p3", "java-group", "java-group3", "java-assign"]


def procs_of(client):
    """How many processes a layout runs (java-assign: one per partition, set later)."""
    return 3 if client.endswith("3") else 1


def strom_progress(line):
    m = re.match(r"progress: in=(\d+)", line)
    return int(m.group(1)) if m else None


def strom_out(line):
    m = re.match(r"progress: in=\d+ out=(\d+)", line)
    return int(m.group(1)) if m else None


def java_progress(line):
    try:
        return int(json.loads(line).get("totalProcessed"))
    except (ValueError, TypeError, AttributeError):
        return None


def java_transactions(lines):
    """Committed transactions of one copier: the status lines whose totalProcessed grew (the
    copier prints a ProcessLoop line for every poll, empty ones included)."""
    n, last = 0, 0
    for l in lines:
        t = java_progress(l)
        if t is not None:
            n += t > last
            last = t
    return n


class Layouts:
    """The command lines of each layout, for one run (topic A -> topic B)."""

    def __init__(self, a, bootstrap, libs, tools_opts, pipeline):
        self.a, self.bootstrap, self.libs, self.tools_opts, self.pipeline = a, bootstrap, libs, tools_opts, pipeline

    def strom(self, topic_a, topic_b, ckpts, elastic, bounded=True):
        base = [self.pipeline, "--bootstrap", self.bootstrap, "--input", topic_a, "--output", topic_b,
                "--interval-ms", str(self.a.interval_ms), "--transform", "none",
                "--transactional-id-prefix", f"s6-{topic_b}", "--progress-ms", "100"]
        n = len(ckpts)
        if elastic:
            return [base + ["--elastic", "--group", f"s6-{topic_b}", "--member", f"m{i}"] for i in range(n)]
        return [base + ["--checkpoint-dir", ckpts[i], "--subtask", str(i), "--parallelism", str(n)]
                + (["--bounded"] if bounded else []) for i in range(n)]

    def java(self, topic_a, topic_b, mode, txn_size):
        copier = ["java", "-Xms256m", "-Xmx512m"] + self.tools_opts + ["-cp", f"{self.libs}/*",
                  "org.apache.kafka.tools.TransactionalMessageCopier", "--broker-list", self.bootstrap,
                  "--input-topic", topic_a, "--output-topic", topic_b, "--consumer-group", f"s6-{topic_b}",
                  "--transaction-size", str(txn_size), "--use-group-metadata"]
        if mode.startswith("group"):
            n = 3 if mode == "group3" else 1
            return [copier + ["--group-mode", "--input-partition", "0", "--transactional-id", f"s6-{topic_b}-{i}"]
                    for i in range(n)]
        return [copier + ["--input-partition", str(p), "--transactional-id", f"s6-{topic_b}-{p}"]
                for p in range(self.a.partitions)]

    def cmds(self, client, topic_a, topic_b, ckpts, bounded=True):
        if client.startswith("strom"):
            return self.strom(topic_a, topic_b, ckpts, "elastic" in client, bounded)
        return self.java(topic_a, topic_b, client.split("-")[1], self.a.java_transaction_size)


def latency_run(a, env, strom, lay, client):
    """One latency run: a paced writer into a fresh A, the layout copying A to a fresh B, a
    read_committed reader of B. Returns the result dict."""
    bootstrap = env["STROM_BOOTSTRAP_SERVERS"]
    stamp = f"{int(time.time())}-{client}"
    topic_a, topic_b = f"bench-s6-lat-a-{stamp}", f"bench-s6-lat-b-{stamp}"
    for t in (topic_a, topic_b):
        subprocess.run([strom, "-b", bootstrap, "topics", "create", t, "--partitions", str(a.partitions)],
                       check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    n_live = a.latency_rate * a.latency_seconds
    warm = 2000
    if client.startswith("java"):
        # The copier copies as many records as its partitions held when it got them, then
        # exits: fill A with 2x what is to come, commit offset 0 for the group, delete the
        # records. Its count then covers the live records; its first fetch resets to the end.
        group = f"s6-{topic_b}"
        fill = subprocess.Popen([strom, "-b", bootstrap, "produce", topic_a, "-X", "linger.ms=5"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        fill.stdin.write("x\n" * (2 * (n_live + warm)))
        fill.stdin.close()
        if fill.wait() != 0:
            sys.exit("filling A failed")
        for cmd in (["groups", "reset-offsets", group, "--topic", topic_a, "--to-earliest"],
                    ["topics", "delete-records", topic_a]):
            subprocess.run([strom, "-b", bootstrap] + cmd, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    ckpts = [tempfile.mkdtemp(prefix="s6-lat-ckpt-") for _ in range(procs_of(client))]
    if client.startswith("java"):
        cmds = lay.java(topic_a, topic_b, client.split("-")[1], a.latency_java_transaction_size)
    else:
        cmds = lay.strom(topic_a, topic_b, ckpts, "elastic" in client, bounded=False)

    seen = {}  # sequence -> latency ms (live records); warm-up records counted apart
    warm_seen, dups = [0], [0]
    reader = subprocess.Popen([strom, "-b", bootstrap, "consume", topic_b, "--isolation", "read_committed",
                               "--from", "earliest"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def read():
        for line in reader.stdout:
            now = time.time() * 1000
            if line[0] == "w":
                warm_seen[0] += 1
                continue
            seq, sent = int(line[1:10]), int(line[11:24])
            if seq in seen:
                dups[0] += 1
            else:
                seen[seq] = now - sent
    rt = threading.Thread(target=read, daemon=True)
    rt.start()
    procs = [Proc(c, lambda p, l: None) for c in cmds]
    prod = subprocess.Popen([strom, "-b", bootstrap, "produce", topic_a, "--compression", "lz4"]
                            + sum((["-X", f"{k}={v}"] for k, v in PRODUCE_KNOBS.items()), []),
                            stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pad = "y" * 100

    def value(kind, seq):
        v = f"{kind}{seq:09d}-{int(time.time() * 1000):013d}-"
        return v + pad[:100 - len(v)]

    prod.stdin.write("".join(value("w", i) + "\n" for i in range(warm)))
    prod.stdin.flush()
    deadline = time.monotonic() + 120
    while warm_seen[0] < warm:
        if time.monotonic() > deadline:
            sys.exit(f"latency {client}: warm-up records not in B after 120 s ({warm_seen[0]} of {warm}):\n"
                     + "\n".join(l for q in procs for l in q.lines[-5:]))
        time.sleep(0.1)
    # Paced: every 5 ms, the records due by then.
    start, written = time.monotonic(), 0
    while written < n_live:
        due = min(n_live, int((time.monotonic() - start) * a.latency_rate))
        if due > written:
            prod.stdin.write("".join(value("m", i) + "\n" for i in range(written, due)))
            prod.stdin.flush()
            written = due
        time.sleep(0.005)
    produce_s = time.monotonic() - start
    prod.stdin.close()
    if prod.wait() != 0:
        sys.exit("latency producer failed")
    deadline = time.monotonic() + 120
    while len(seen) < n_live and time.monotonic() < deadline:
        time.sleep(0.1)
    for q in procs:
        try:
            os.kill(q.p.pid, signal.SIGTERM)  # elastic: a last commit; the others just end
        except OSError:
            pass
    for q in procs:
        q.p.wait()
    txns = None
    if client.startswith("java"):
        txns = sum(java_transactions(q.lines) for q in procs)
    else:
        last = {}
        for q in procs:
            for l in q.lines:
                m = re.search(r"checkpoints=(\d+)", l)
                if m:
                    last[id(q)] = int(m.group(1))
        txns = sum(last.values())
    time.sleep(1)
    reader.terminate()
    reader.wait()
    rt.join(timeout=10)
    lat = list(seen.values())
    r = {"client": client, "latency": True, "rate": a.latency_rate, "seconds": a.latency_seconds,
         "produce_s": produce_s, "live": n_live, "visible": len(seen), "dups": dups[0],
         "p50_ms": quantile(lat, 0.5), "p99_ms": quantile(lat, 0.99), "max_ms": max(lat) if lat else float("nan"),
         "transactions": txns}
    for t in (topic_a, topic_b):
        subprocess.run([strom, "-b", bootstrap, "topics", "delete", t], stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)
    for c in ckpts:
        subprocess.run(["rm", "-rf", c])
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--java-transaction-size", type=int, default=20000,
                    help="records per transaction (at most; one poll) of each Java copier")
    ap.add_argument("--clients", default=",".join(CLIENTS), help=f"layouts to run, of {','.join(CLIENTS)}")
    ap.add_argument("--restart-clients", default="strom,java-group,java-assign",
                    help="layouts that also get a kill -9 + restart run (not the elastic ones)")
    ap.add_argument("--latency-rate", type=int, default=20000, help="records/s written to A in the latency runs; 0: none")
    ap.add_argument("--latency-seconds", type=int, default=20)
    ap.add_argument("--latency-clients", default="strom,strom-elastic,java-group")
    ap.add_argument("--latency-java-transaction-size", type=int, default=None,
                    help="the copier's --transaction-size in the latency runs (default: rate x interval)")
    ap.add_argument("--json", action="store_true", help="print raw results as JSON lines too")
    a = ap.parse_args()
    clients = [c for c in a.clients.split(",") if c]
    restart_clients = [c for c in a.restart_clients.split(",") if c in clients]
    latency_clients = [c for c in a.latency_clients.split(",") if c] if a.latency_rate > 0 else []
    for c in clients + restart_clients + latency_clients:
        if c not in CLIENTS:
            sys.exit(f"unknown layout {c}: expected one of {','.join(CLIENTS)}")
    if any("elastic" in c for c in restart_clients):
        sys.exit("--restart-clients: the elastic layouts have no kill -9 + restart run")
    if a.latency_java_transaction_size is None:
        a.latency_java_transaction_size = a.latency_rate * a.interval_ms // 1000

    env = kafka_env()
    bootstrap, libs = env["STROM_BOOTSTRAP_SERVERS"], env["STROM_KAFKA_LIBS"]
    tools_opts = env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-connector", "--example",
                    "exactly_once_pipeline"], cwd=ROOT, check=True)
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))  # join keeps an absolute one
    strom = f"{target}/release/strom"
    pipeline = f"{target}/release/examples/exactly_once_pipeline"
    lay = Layouts(a, bootstrap, libs, tools_opts, pipeline)

    stamp = int(time.time())
    topic_a = f"bench-s6-a-{stamp}"
    results = []
    if clients:
        subprocess.run([strom, "-b", bootstrap, "topics", "create", topic_a, "--partitions", str(a.partitions)],
                       check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        expected_count, expected_sum = 0, 0
        prod = subprocess.Popen([strom, "-b", bootstrap, "produce", topic_a, "--compression", "lz4"]
                                + sum((["-X", f"{k}={v}"] for k, v in PRODUCE_KNOBS.items()), []),
                                stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for v in value_lines(a.records):
            prod.stdin.write(v + "\n")
            expected_count += 1
            expected_sum = (expected_sum + hash(v)) & MASK
        prod.stdin.close()
        if prod.wait() != 0:
            sys.exit("producing topic A failed")
        # Where A's records are: every copy reads what one partition leader holds, so a skewed A
        # would measure a one-partition copy (as an earlier run of this bench did).
        check_spread("topic A", partition_counts(strom, bootstrap, topic_a))

    for rep in range(a.reps):
        for restart in (False, True):
            for client in (restart_clients if restart else clients):
                topic_b = f"bench-s6-b-{client}-{'restart' if restart else 'steady'}-{rep}-{stamp}"
                subprocess.run([strom, "-b", bootstrap, "topics", "create", topic_b, "--partitions",
                                str(a.partitions)], check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                ckpts = [tempfile.mkdtemp(prefix="s6-ckpt-") for _ in range(procs_of(client))]
                cmds = lay.cmds(client, topic_a, topic_b, ckpts)
                is_strom, elastic = client.startswith("strom"), "elastic" in client
                progress = strom_progress if is_strom else java_progress
                broker0 = broker_cpu(env)
                start = time.monotonic()
                phases = []
                if restart:
                    res, lines, killed = run_phase(cmds, progress, kill_at=a.records // 2)
                    if not killed:
                        sys.exit(f"{client}: finished before the kill at {a.records // 2} records")
                    phases.append((res, lines))
                if elastic:
                    # SIGTERM once the members' out= sums to what is left; again while the
                    # group's committed offsets fall short of A's end (a rebalance rewound one).
                    left, stops = a.records, 0
                    while True:
                        res, lines, stopped = run_phase(cmds, strom_out, stop_at=left)
                        phases.append((res, lines))
                        wall = time.monotonic() - start
                        committed = group_committed(strom, bootstrap, f"s6-{topic_b}")
                        left = a.records - committed
                        if left <= 0 or any(code != 0 for code, _, _ in res):
                            break
                        stops += 1
                        if stops > 5:
                            sys.exit(f"{client}: {left} records still not committed after {stops} restarts")
                else:
                    res, lines = run_phase(cmds, progress)[:2]
                    phases.append((res, lines))
                    wall = time.monotonic() - start
                broker = broker_cpu(env) - broker0
                for (code, _, _), ls in zip(res, lines):
                    if code != 0:
                        sys.exit(f"{client} failed ({code}):\n" + "\n".join(ls[-20:]))
                cpu = sum(c for r, _ in phases for _, c, _ in r)
                rss = max(sum(m for _, _, m in r) for r, _ in phases)
                count, checksum = read_b(strom, bootstrap, topic_b)
                # Where the sink (or the copier's producer) wrote: null keys, default partitioner.
                check_spread(f"{client} B (offsets: transaction markers included)", partition_counts(strom, bootstrap, topic_b))
                exact = count == expected_count and checksum == expected_sum
                ck = {}
                if is_strom:
                    # Per process: its done: line (the last phase; every phase for elastic, whose
                    # members are stopped and maybe started again), or its last progress line
                    # (a killed run).
                    txns, p50s, p99s = 0, [], []
                    for _, lss in phases:
                        for ls in lss:
                            done = [l for l in ls if l.startswith("done:")]
                            prog = [int(m) for l in ls for m in re.findall(r"^progress: .*checkpoints=(\d+)", l)]
                            if done:
                                txns += int(re.search(r"checkpoints=(\d+)", done[-1]).group(1))
                                d = {k: int(v) for k, v in re.findall(r"(checkpoint_ms_\w+)=(\d+)", done[-1])}
                                if d.get("checkpoint_ms_p50") is not None:
                                    p50s.append(d["checkpoint_ms_p50"])
                                    p99s.append(d["checkpoint_ms_p99"])
                            elif prog:
                                txns += prog[-1]
                    ck["transactions"] = txns
                    if p50s:
                        # Median of the processes' p50s, the worst of their p99s.
                        ck["checkpoint_ms_p50"] = statistics.median(p50s)
                        ck["checkpoint_ms_p99"] = max(p99s)
                    if elastic:
                        ck["elastic_restarts"] = stops
                else:
                    ck["transactions"] = sum(java_transactions(ls) for _, lss in phases for ls in lss)
                r = {"client": client, "restart": restart, "rep": rep, "records": a.records, "wall_seconds": wall,
                     "records_per_s": a.records / wall, "cpu_seconds": cpu,
                     "cpu_s_per_m": cpu / (a.records / 1e6), "broker_cpu_s_per_m": broker / (a.records / 1e6),
                     "max_rss_kib": rss, "out": count, "exact": exact, "processes": len(cmds), **ck}
                results.append(r)
                print(json.dumps(r) if a.json else
                      f"{client:16} {'restart' if restart else 'steady ':7} rep {rep}: {a.records / wall:,.0f} rec/s, "
                      f"cpu {cpu:.1f} s, out {count:,}, exactly once: {exact}"
                      + (f", restarts to finish: {stops}" if elastic else ""), flush=True)
                subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic_b], stderr=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                for c in ckpts:
                    subprocess.run(["rm", "-rf", c])
    if clients:
        subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic_a], stderr=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL)

    lat_results = []
    for client in latency_clients:
        r = latency_run(a, env, strom, lay, client)
        lat_results.append(r)
        print(json.dumps(r) if a.json else
              f"latency {client:16}: p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms, max {r['max_ms']:.0f} ms, "
              f"visible {r['visible']:,} of {r['live']:,}, duplicates {r['dups']}", flush=True)

    if clients:
        print(f"\nS6 pipeline: {a.records:,} x 100 B (unique values, lz4) in {a.partitions} partitions, A -> B exactly once; "
              f"Strom: a transaction every {a.interval_ms} ms (checkpointed: FileCheckpointStore, --bounded; elastic: "
              f"offsets in the transaction, SIGTERM once progress out= reaches A, polled every 100 ms), release build; "
              f"-p3 = 3 processes; Java TransactionalMessageCopier with up to {a.java_transaction_size} records per "
              f"transaction: java-group = 1 copier subscribed (--group-mode), java-group3 = 3 copiers in one group, "
              f"java-assign = {a.partitions} copiers, one per partition; median of {a.reps}; "
              f"Kafka {env.get('STROM_KAFKA_VERSION', '?')} on 127.0.0.1\n")
        print("| run | client | processes | records/s | client CPU s per 1M | broker CPU s per 1M | peak RSS MiB | "
              "transactions (all runs) | checkpoint p50 / p99 ms | B read_committed: count, checksum |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for restart in (False, True):
            for client in (restart_clients if restart else clients):
                rs = [r for r in results if r["client"] == client and r["restart"] == restart]
                med = lambda k: statistics.median(r[k] for r in rs)
                ck = (f"{med('checkpoint_ms_p50'):.0f} / {med('checkpoint_ms_p99'):.0f}"
                      if all("checkpoint_ms_p50" in r for r in rs) else "-")
                ok = "exact" if all(r["exact"] for r in rs) else "MISMATCH"
                print(f"| {'kill -9 + restart' if restart else 'steady'} | {client} | {rs[0]['processes']} | "
                      f"{med('records_per_s'):,.0f} | "
                      f"{med('cpu_s_per_m'):.1f} | {med('broker_cpu_s_per_m'):.1f} | {med('max_rss_kib') / 1024:.0f} | "
                      f"{med('transactions'):.0f} | {ck} | {ok} |")
        rate = lambda c: statistics.median(r["records_per_s"] for r in results if r["client"] == c and not r["restart"])
        for el, ck in (("strom-elastic", "strom"), ("strom-elastic-p3", "strom-p3")):
            if el in clients and ck in clients:
                print(f"\n{el} / {ck} records/s: {rate(el) / rate(ck):.2f}x (goal >= 0.8x)")
    if lat_results:
        print(f"\nA -> B visibility latency: {a.latency_rate:,} records/s written to A for {a.latency_seconds} s "
              f"(`strom produce`, linger.ms=5, acks=all), 2,000 warm-up records left out; B read by `strom consume "
              f"--isolation read_committed`; latency = read time - the time in the value (one clock). Strom: a "
              f"transaction every {a.interval_ms} ms, 1 process; copier: --transaction-size "
              f"{a.latency_java_transaction_size} (at most; it commits every poll)\n")
        print("| client | p50 ms | p99 ms | max ms | visible / written | duplicates | transactions | records per transaction |")
        print("|---|---|---|---|---|---|---|---|")
        for r in lat_results:
            print(f"| {r['client']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['max_ms']:.0f} | {r['visible']:,} / "
                  f"{r['live']:,} | {r['dups']} | {r['transactions']} | "
                  f"{(r['live'] + 2000) / max(1, r['transactions']):,.0f} |")
    if not all(r["exact"] for r in results) or any(r["visible"] != r["live"] or r["dups"] for r in lat_results):
        sys.exit("exactly-once verification failed")


if __name__ == "__main__":
    main()
