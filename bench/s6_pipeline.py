#!/usr/bin/env python3
"""Scenario S6 (reference/performance-and-style.md §A6): an exactly-once pipeline copying
topic A (6 partitions, N x 100-byte records, unique values) to topic B, with and without a
kill -9 mid-run and a restart; Strom's connector (connector/examples/exactly_once_pipeline.rs,
release build, checkpoint every 1 s, one process for all partitions) beside Java's
org.apache.kafka.tools.TransactionalMessageCopier from the broker's jars, a transaction every
--java-transaction-size records with the consumed offsets committed in it (KIP-447 group
metadata), in two layouts: java-group, one copier subscribed to the topic (--group-mode); and
java-assign, one copier per partition (assign mode, as Kafka's system tests run it). After every run topic B is read with read_committed and checked against A: same
count and the same order-independent checksum (sum of the values' hashes).

Client CPU seconds and peak RSS come from wait4() on each client process (summed over the
processes of a run: Java's copiers, Strom's run before and after the kill); broker CPU from
/proc/<pid>/stat before and after. Wall time counts from the first start to the last exit,
the restart gap included.

Usage: bench/s6_pipeline.py [--records N] [--reps R] [--partitions P]   (the broker is started if needed)
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


def run_phase(cmds, progress_of, kill_at=None, timeout=1800):
    """Runs the processes of one phase; with kill_at, SIGKILLs all of them once the summed
    progress reaches it. Returns (processes' (code, cpu, rss), lines, killed)."""
    state = {"progress": {}, "killed": False}
    lock = threading.Lock()
    procs = []

    def on_line(proc, line):
        n = progress_of(line)
        if n is None:
            return
        with lock:
            state["progress"][id(proc)] = n
            if kill_at is not None and not state["killed"] and sum(state["progress"].values()) >= kill_at:
                state["killed"] = True
                for q in procs:
                    try:
                        # os.kill, not Popen.kill: Popen polls (and may reap) first, and
                        # the rusage comes from our own wait4.
                        os.kill(q.p.pid, signal.SIGKILL)
                    except OSError:
                        pass

    deadline = time.monotonic() + timeout
    for c in cmds:
        procs.append(Proc(c, on_line))
    results = []
    for q in procs:
        while (r := q.try_wait()) is None:
            if time.monotonic() > deadline:
                os.kill(q.p.pid, signal.SIGKILL)
                sys.exit(f"{q.p.args[0]} did not finish within {timeout} s")
            time.sleep(0.05)
        results.append(r)
    lines = [l for q in procs for l in q.lines]
    return results, lines, state["killed"]


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--java-transaction-size", type=int, default=20000,
                    help="records per transaction of each Java copier")
    ap.add_argument("--java-modes", default="group,assign",
                    help="group: one copier subscribed to the topic; assign: one copier per partition")
    ap.add_argument("--json", action="store_true", help="print raw results as JSON lines too")
    a = ap.parse_args()
    clients = ["strom"] + [f"java-{m}" for m in a.java_modes.split(",") if m]

    env = kafka_env()
    bootstrap, libs = env["STROM_BOOTSTRAP_SERVERS"], env["STROM_KAFKA_LIBS"]
    tools_opts = env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-connector", "--example",
                    "exactly_once_pipeline"], cwd=ROOT, check=True)
    strom = f"{ROOT}/target/release/strom"
    pipeline = f"{ROOT}/target/release/examples/exactly_once_pipeline"

    stamp = int(time.time())
    topic_a = f"bench-s6-a-{stamp}"
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

    def strom_cmds(topic_b, ckpt):
        return [[pipeline, "--bootstrap", bootstrap, "--input", topic_a, "--output", topic_b, "--checkpoint-dir",
                 ckpt, "--interval-ms", str(a.interval_ms), "--bounded", "--transform", "none",
                 "--transactional-id-prefix", f"s6-{topic_b}", "--progress-ms", "100"]]

    def java_cmds(topic_b, mode):
        copier = ["java", "-Xms256m", "-Xmx512m"] + tools_opts + ["-cp", f"{libs}/*",
                  "org.apache.kafka.tools.TransactionalMessageCopier", "--broker-list", bootstrap,
                  "--input-topic", topic_a, "--output-topic", topic_b, "--consumer-group", f"s6-{topic_b}",
                  "--transaction-size", str(a.java_transaction_size), "--use-group-metadata"]
        if mode == "group":
            return [copier + ["--group-mode", "--input-partition", "0", "--transactional-id", f"s6-{topic_b}"]]
        return [copier + ["--input-partition", str(p), "--transactional-id", f"s6-{topic_b}-{p}"]
                for p in range(a.partitions)]

    def strom_progress(line):
        m = re.match(r"progress: in=(\d+)", line)
        return int(m.group(1)) if m else None

    def java_progress(line):
        try:
            return int(json.loads(line).get("totalProcessed"))
        except (ValueError, TypeError, AttributeError):
            return None

    results = []
    for rep in range(a.reps):
        for restart in (False, True):
            for client in clients:
                topic_b = f"bench-s6-b-{client}-{'restart' if restart else 'steady'}-{rep}-{stamp}"
                subprocess.run([strom, "-b", bootstrap, "topics", "create", topic_b, "--partitions",
                                str(a.partitions)], check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                ckpt = tempfile.mkdtemp(prefix="s6-ckpt-")
                cmds = strom_cmds(topic_b, ckpt) if client == "strom" else java_cmds(topic_b, client.split("-")[1])
                progress = strom_progress if client == "strom" else java_progress
                broker0 = broker_cpu(env)
                start = time.monotonic()
                phases = []
                if restart:
                    res, lines, killed = run_phase(cmds, progress, kill_at=a.records // 2)
                    if not killed:
                        sys.exit(f"{client}: finished before the kill at {a.records // 2} records")
                    phases.append((res, lines))
                res, lines = run_phase(cmds, progress)[:2]
                phases.append((res, lines))
                wall = time.monotonic() - start
                broker = broker_cpu(env) - broker0
                for code, _, _ in res:
                    if code != 0:
                        sys.exit(f"{client} failed ({code}):\n" + "\n".join(lines[-20:]))
                cpu = sum(c for r, _ in phases for _, c, _ in r)
                rss = max(sum(m for _, _, m in r) for r, _ in phases)
                count, checksum = read_b(strom, bootstrap, topic_b)
                # Where the sink (or the copier's producer) wrote: null keys, default partitioner.
                check_spread(f"{client} B (offsets: transaction markers included)", partition_counts(strom, bootstrap, topic_b))
                exact = count == expected_count and checksum == expected_sum
                ck = {}
                all_lines = [l for _, ls in phases for l in ls]
                if client == "strom":
                    done = [l for l in lines if l.startswith("done:")]
                    if done:
                        ck = {k: int(v) for k, v in re.findall(r"(checkpoint_ms_\w+)=(\d+)", done[-1])}
                        # Checkpoints of the killed run (its last progress line) and of the last run.
                        killed_run = [int(m) for l in phases[0][1] if len(phases) > 1
                                      for m in re.findall(r"progress: .*checkpoints=(\d+)", l)]
                        ck["transactions"] = (int(re.search(r"checkpoints=(\d+)", done[-1]).group(1))
                                              + (killed_run[-1] if killed_run else 0))
                else:
                    ck["transactions"] = sum(1 for l in all_lines if '"stage":"ProcessLoop"' in l)
                r = {"client": client, "restart": restart, "rep": rep, "records": a.records, "wall_seconds": wall,
                     "records_per_s": a.records / wall, "cpu_seconds": cpu,
                     "cpu_s_per_m": cpu / (a.records / 1e6), "broker_cpu_s_per_m": broker / (a.records / 1e6),
                     "max_rss_kib": rss, "out": count, "exact": exact, **ck}
                results.append(r)
                print(json.dumps(r) if a.json else
                      f"{client:11} {'restart' if restart else 'steady ':7} rep {rep}: {a.records / wall:,.0f} rec/s, "
                      f"cpu {cpu:.1f} s, out {count:,}, exactly once: {exact}", flush=True)
                subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic_b], stderr=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL)
                subprocess.run(["rm", "-rf", ckpt])
    subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic_a], stderr=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)

    print(f"\nS6 pipeline: {a.records:,} x 100 B (unique values, lz4) in {a.partitions} partitions, A -> B exactly once; "
          f"Strom checkpoints every {a.interval_ms} ms (1 process, release build); Java TransactionalMessageCopier "
          f"with {a.java_transaction_size} records per transaction: java-group = 1 copier subscribed (--group-mode), "
          f"java-assign = {a.partitions} copiers, one per partition; median of {a.reps}; "
          f"Kafka {env.get('STROM_KAFKA_VERSION', '?')} on 127.0.0.1\n")
    print("| run | client | records/s | client CPU s per 1M | broker CPU s per 1M | peak RSS MiB | transactions (all runs) | "
          "checkpoint p50 / p99 ms | B read_committed: count, checksum |")
    print("|---|---|---|---|---|---|---|---|---|")
    for restart in (False, True):
        for client in clients:
            rs = [r for r in results if r["client"] == client and r["restart"] == restart]
            med = lambda k: statistics.median(r[k] for r in rs)
            ck = (f"{med('checkpoint_ms_p50'):.0f} / {med('checkpoint_ms_p99'):.0f}"
                  if client == "strom" and all("checkpoint_ms_p50" in r for r in rs) else "-")
            ok = "exact" if all(r["exact"] for r in rs) else "MISMATCH"
            print(f"| {'kill -9 + restart' if restart else 'steady'} | {client} | {med('records_per_s'):,.0f} | "
                  f"{med('cpu_s_per_m'):.1f} | {med('broker_cpu_s_per_m'):.1f} | {med('max_rss_kib') / 1024:.0f} | "
                  f"{med('transactions'):.0f} | {ck} | {ok} |")
    if not all(r["exact"] for r in results):
        sys.exit("exactly-once verification failed")


if __name__ == "__main__":
    main()
