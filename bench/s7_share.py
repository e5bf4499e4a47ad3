#!/usr/bin/env python3
"""Scenario S7: share-group consumption (KIP-932). N x 100-byte lz4 records written by Java's
ProducerPerformance (S2's producer knobs) to a topic of P partitions, read by a share group
of 1 and of 3 members, each run with a fresh group set to share.auto.offset.reset=earliest,
alternating, each repeated:

  strom   `strom bench share-consume --members M` (strom_client::share::ShareConsumer,
          implicit acknowledgement), M members in one process
  java    org.apache.kafka.tools.ShareConsumerPerformance --threads M as shipped

CPU seconds and peak RSS come from wait4() on each client process, the same way for both (the
JVM's start-up, JIT and GC count, as the Rust client's start-up does). Records/s is each
client's own clock (ShareConsumerPerformance: its start and end time; Strom: from before the
members join to the last record), so both include joining the group. A new member's first
assignments are empty until the share coordinator has initialized the partitions' state;
Java asks again after the heartbeat interval (5 s), Strom every 0.5 s, so the run is also
reported from the first record on (ShareConsumerPerformance's --show-detailed-stats: the end
of its first interval, which closes on the first record).

Usage: bench/s7_share.py [--records N] [--reps R] [--partitions P] [--members 1,3]
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCE = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4",
           "linger.ms": "5", "batch.size": "1048576", "max.in.flight.requests.per.connection": "5"}
TIMEOUT_S = 300


def run(cmd):
    """Runs cmd, bounded by TIMEOUT_S; returns (stdout, wall s, rusage of that child)."""
    start = time.monotonic()
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > TIMEOUT_S:
                p.kill()
                os.wait4(p.pid, 0)
                sys.exit(f"{' '.join(cmd[:6])} took more than {TIMEOUT_S} s")
            time.sleep(0.005)
        wall = time.monotonic() - start
        code = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(), fe.read().decode()
    if code != 0:
        sys.exit(f"{' '.join(cmd[:6])} failed: {err[-2000:]}")
    return out, wall, ru


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--members", default="1,3")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    subprocess.run([f"{ROOT}/scripts/kafka", "up"], check=True, stdout=subprocess.DEVNULL)
    env = dict(l.split("=", 1) for l in subprocess.run([f"{ROOT}/scripts/kafka", "env"], check=True,
               capture_output=True, text=True).stdout.splitlines() if "=" in l)
    env = {k: v.strip("'\"") for k, v in env.items()}
    bootstrap, libs = env["STROM_BOOTSTRAP_SERVERS"], env["STROM_KAFKA_LIBS"]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    strom = f"{ROOT}/target/release/strom"
    java = ["java", "-Xms512m", "-Xmx1g"] + env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split()

    topic = f"bench-s7-{a.partitions}p-{int(time.time())}"
    subprocess.run([strom, "-b", bootstrap, "topics", "create", topic, "--partitions", str(a.partitions)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    props = [f"bootstrap.servers={bootstrap}"] + [f"{k}={v}" for k, v in PRODUCE.items()]
    out, *_ = run(java + ["-cp", f"{libs}/*", "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                          "--num-records", str(a.records), "--record-size", str(a.record_size),
                          "--throughput", "-1", "--producer-props"] + props)
    print(f"# {topic}: {out.strip().splitlines()[-1]}", file=sys.stderr)

    groups = iter(range(10**9))

    def fresh_group():
        g = f"{topic}-g{next(groups)}"
        subprocess.run([strom, "-b", bootstrap, "configs", "alter", "--group", g, "--set",
                        "share.auto.offset.reset=earliest"], check=True, stdout=subprocess.DEVNULL)
        return g

    def strom_run(m):
        out, wall, ru = run([strom, "-b", bootstrap, "bench", "share-consume", topic, "--group", fresh_group(),
                             "--records", str(a.records), "--members", str(m)])
        got = json.loads(out.strip().splitlines()[-1])
        first = got["first_record_ms"] / 1000
        return got["records"], got["records_per_s"], got["records"] / (got["seconds"] - first), first, ru

    def java_run(m):
        out, wall, ru = run(java + ["-cp", f"{libs}/*", "org.apache.kafka.tools.ShareConsumerPerformance",
                                    "--bootstrap-server", bootstrap, "--topic", topic, "--group", fresh_group(),
                                    "--num-records", str(a.records), "--threads", str(m), "--timeout", "30000",
                                    "--show-detailed-stats", "--reporting-interval", "1000"])
        # start.time, end.time, data.consumed.in.MB, MB.sec, nMsg.sec, data.consumed.in.nMsg, fetch.time.ms
        lines = [l for l in out.strip().splitlines() if l[:1].isdigit()]
        f = [x.strip() for x in lines[-1].split(",")]
        ts = lambda t: time.mktime(time.strptime(t[:19], "%Y-%m-%d %H:%M:%S")) + int(t[20:]) / 1000
        start, end = ts(f[0]), ts(f[1])
        # Each member's first interval ends at its first record.
        firsts = {}
        for l in lines[:-1]:
            g = [x.strip() for x in l.split(",")]
            who = l.rsplit("for", 1)[-1]
            firsts.setdefault(who, ts(g[1]))
        first = min(firsts.values(), default=start) - start
        n = int(f[5])
        return n, float(f[4]), n / (end - start - first), first, ru

    members = [int(m) for m in a.members.split(",")]
    results = []
    # A discarded pass warms the broker (JIT, page cache, share coordinator).
    strom_run(1)
    for rep in range(a.reps):
        for m in members:
            for client, fn in (("strom", strom_run), ("java ShareConsumerPerformance", java_run)):
                n, rps, steady, first, ru = fn(m)
                if n < a.records:
                    sys.exit(f"{client} read {n} of {a.records} records")
                cpu = ru.ru_utime + ru.ru_stime
                r = {"client": client, "members": m, "rep": rep, "records_per_s": rps,
                     "records_per_s_after_first": steady, "first_record_s": first,
                     "cpu_seconds": cpu, "cpu_s_per_gib": cpu / (a.records * a.record_size / 2**30),
                     "max_rss_kib": ru.ru_maxrss}
                results.append(r)
                if a.json:
                    print(json.dumps(r), flush=True)
    subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)

    print(f"\nS7 share consume: {a.records:,} x {a.record_size} B lz4 records in {a.partitions} partitions, "
          f"written by ProducerPerformance; a fresh share group per run; median of {a.reps} alternating runs "
          f"[min-max]; Kafka {env.get('STROM_KAFKA_VERSION')} on 127.0.0.1\n")
    print("| members | client | records/s (whole run) | first record s | records/s after it | CPU s/GiB | "
          "peak RSS MiB | records/s vs Java (whole, after) | CPU/GiB vs Java |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in members:
        med = {}
        for client in ("strom", "java ShareConsumerPerformance"):
            rs = [r for r in results if r["client"] == client and r["members"] == m]
            med[client] = {k: statistics.median(r[k] for r in rs) for k in
                           ("records_per_s", "records_per_s_after_first", "first_record_s", "cpu_s_per_gib", "max_rss_kib")}
            med[client]["range"] = (min(r["records_per_s"] for r in rs), max(r["records_per_s"] for r in rs))
        j = med["java ShareConsumerPerformance"]
        for client, v in med.items():
            print(f"| {m} | {client} | {v['records_per_s']:,.0f} [{v['range'][0]:,.0f}-{v['range'][1]:,.0f}] | "
                  f"{v['first_record_s']:.1f} | {v['records_per_s_after_first']:,.0f} | "
                  f"{v['cpu_s_per_gib']:.1f} | {v['max_rss_kib'] / 1024:.0f} | "
                  f"{v['records_per_s'] / j['records_per_s']:.2f}x, "
                  f"{v['records_per_s_after_first'] / j['records_per_s_after_first']:.2f}x | "
                  f"{v['cpu_s_per_gib'] / j['cpu_s_per_gib']:.2f}x |")


if __name__ == "__main__":
    main()
