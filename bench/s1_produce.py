#!/usr/bin/env python3
"""Scenario S1 (reference/performance-and-style.md §A6): produce N x 100-byte records,
acks=all, idempotent, lz4, linger 5 ms, batch 1 MiB, to a 1- and a 6-partition topic;
Strom, the Java client (ProducerPerformance from the broker's jars), librdkafka (through
the rdkafka crate, bench/rdkafka-peer, built here with --with-librdkafka) and franz-go
(bench/franz-peer, built here with --with-franz; needs Go) against the same local broker in
the same run, alternating, each repeated. CPU seconds and peak RSS come from wait4() on
each client process, the same way for every client.

Payloads (--payload, default both): every client reads the same file, Java through
ProducerPerformance --payload-file, the others through their own option.
  corpus    the headline: N distinct event-shaped values (bench/corpus.py), lz4 2.4x in 1 MiB batches
  constant  one constant value of random letters for every record, about 19x smaller on disk: what
            strom bench and rdkafka-peer sent before the corpus, kept for comparison (Java
            now sends it too, from a one-line file)
Every run reads 200 of its records back and fails unless each carries one of the payload
file's values, and reports how many bytes its topic takes on the broker's disk.

Every run prints where its records went (per-partition counts from the topic's offsets,
the same way for every client) and fails when a partition got less than a third of the
mean; with more than 100 partitions skew is expected (a sticky switch every batch.size
bytes reaches only some of them) and the count of partitions with data is reported instead.
Null-key partitioning is each client's default: Java's and Strom's uniform sticky
partitioner (KIP-794, a switch after batch.size bytes), librdkafka's consistent_random
with sticky.partitioning.linger.ms pinned to its default, 2 x linger.ms, and franz-go's
UniformBytesPartitioner (a switch every 64 KiB).

Usage: bench/s1_produce.py [--records N] [--reps R] [--partitions 1,6[,1000]]
       [--with-librdkafka] [--with-franz] [--payload corpus|constant|both]
       [--strom-extra LABEL=PATH]... (another strom binary beside, e.g. an earlier commit's)
       (the broker is started if needed)
"""
import argparse, json, os, re, statistics, subprocess, sys, time

import charts
import corpus
import peers
from spread import check as check_spread, partition_counts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KNOBS = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4",
         "linger.ms": "5", "batch.size": "1048576", "max.in.flight.requests.per.connection": "5"}


def run(cmd, env=None):
    """Runs cmd; returns (stdout, wall seconds, cpu seconds, peak RSS KiB) of that child."""
    peers.reset_peak_rss()
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed: {err.decode()[-2000:]}")
    return out.decode(), wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--partitions", default="1,6", help="comma-separated partition counts (default 1,6)")
    ap.add_argument("--json", action="store_true", help="print raw results as JSON lines too")
    ap.add_argument("--with-librdkafka", action="store_true",
                    help="also build bench/rdkafka-peer (librdkafka from source: needs cmake, a C compiler)")
    ap.add_argument("--with-franz", action="store_true",
                    help="also build and run bench/franz-peer (franz-go; needs the go tool)")
    ap.add_argument("--payload", default="both",
                    help="corpus (the realistic corpus, the headline), constant (one value), or both (default)")
    ap.add_argument("--corpus-values", type=int, default=corpus.DEFAULT_VALUES,
                    help="distinct values in the corpus")
    ap.add_argument("--corpus-seed", type=int, default=corpus.DEFAULT_SEED)
    ap.add_argument("--allow-skew", action="store_true",
                    help="report the spread but do not fail on it (smoke runs: a few MB in 1 MiB sticky batches "
                         "reach only some partitions)")
    ap.add_argument("--strom-extra", action="append", default=[], metavar="LABEL=PATH",
                    help="also run another strom binary (e.g. a build of an earlier commit), labelled")
    ap.add_argument("--charts", default=charts.CHART_DIR,
                    help="where the SVG charts of the table go (records/s and CPU s/GiB by client; '' for none)")
    a = ap.parse_args()
    kinds = peers.payload_kinds(a.payload, ("corpus", "constant"))
    files = {k: peers.payload_file(k, a.record_size, a.corpus_values, a.corpus_seed) for k in kinds}
    payload_lines = peers.describe_files(kinds, a.record_size, a.corpus_values, a.corpus_seed)
    for line in payload_lines:
        print(line, flush=True)

    subprocess.run([f"{ROOT}/scripts/kafka", "up"], check=True, stdout=subprocess.DEVNULL)
    env = dict(l.split("=", 1) for l in subprocess.run([f"{ROOT}/scripts/kafka", "env"], check=True,
               capture_output=True, text=True).stdout.splitlines() if "=" in l)
    env = {k: v.strip("'\"") for k, v in env.items()}
    bootstrap, libs = env["STROM_BOOTSTRAP_SERVERS"], env["STROM_KAFKA_LIBS"]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    strom = f"{ROOT}/target/release/strom"
    clients = ["strom", "java"]
    binaries = {"strom": strom}
    for extra in a.strom_extra:
        label, path = extra.split("=", 1)
        clients.insert(1, f"strom {label}")
        binaries[f"strom {label}"] = path
    rdk = f"{ROOT}/target/rdkafka-peer/release/rdkafka-peer"
    if a.with_librdkafka:
        subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path", f"{ROOT}/bench/rdkafka-peer/Cargo.toml"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=f"{ROOT}/target/rdkafka-peer"))
        clients.append("librdkafka")
    if a.with_franz:
        franz = peers.build_franz()
        clients.append("franz-go")
    tools_opts = env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split()

    partition_counts_list = [int(p) for p in a.partitions.split(",") if p]
    values_in = {k: peers.count_values(files[k]) for k in kinds}
    results = []
    for kind in kinds:
        payload = files[kind]
        for partitions in partition_counts_list:
            for rep in range(a.reps):
                for client in clients:
                    r = produce_run(a, client, kind, payload, partitions, rep, binaries, strom, rdk,
                                    franz if a.with_franz else None, bootstrap, libs, tools_opts, values_in[kind])
                    results.append(r)
                    if a.json:
                        print(json.dumps(r), flush=True)

    print(f"\nS1 produce: {a.records:,} x {a.record_size} B, " + ", ".join(f"{k}={v}" for k, v in KNOBS.items())
          + f"; median of {a.reps} alternating runs; Kafka {env.get('STROM_KAFKA_VERSION')} on 127.0.0.1")
    for line in payload_lines:
        print(line)
    print("\n| payload | partitions | client | records/s | MiB/s | CPU s/GiB | peak RSS MiB | records/s vs Java | "
          "records/s vs librdkafka | records/s vs franz-go | on disk MiB (ratio) | partitions with data | "
          "min / max partition vs mean |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    chart_rows = {}  # (payload, partitions) -> {client: medians}
    for kind in kinds:
        for partitions in partition_counts_list:
            med = {}
            chart_rows[(kind, partitions)] = med
            for client in clients:
                rs = [r for r in results
                      if r["client"] == client and r["partitions"] == partitions and r["payload"] == kind]
                med[client] = {k: statistics.median(r[k] for r in rs) for k in
                               ("records_per_s", "mib_per_s", "cpu_s_per_gib", "max_rss_kib", "partitions_with_data",
                                "min_vs_mean", "max_vs_mean", "disk_bytes")}

            def vs(peer, m):
                return f"{m['records_per_s'] / med[peer]['records_per_s']:.2f}x" if peer in med else "-"

            for client in clients:
                m = med[client]
                disk = m["disk_bytes"]
                print(f"| {kind} | {partitions} | {client} | {m['records_per_s']:,.0f} | {m['mib_per_s']:.1f} | "
                      f"{m['cpu_s_per_gib']:.2f} | {m['max_rss_kib'] / 1024:.0f} | {vs('java', m)} | "
                      f"{vs('librdkafka', m)} | {vs('franz-go', m)} | {disk / 2**20:.1f} "
                      f"({a.records * a.record_size / disk:.1f}x) | {m['partitions_with_data']:.0f} | "
                      f"{m['min_vs_mean']:.2f} / {m['max_vs_mean']:.2f} |")
    if a.charts:
        write_charts(a, kinds, partition_counts_list, clients, chart_rows)


def write_charts(a, kinds, partition_counts_list, clients, rows):
    """records/s and CPU s/GiB by client, a group per payload and partition count."""
    groups = [(k, p) for k in kinds for p in partition_counts_list]
    note = (f"S1, {time.strftime('%Y-%m-%d')}: {a.records:,} x {a.record_size} B, acks=all, idempotent, lz4, linger 5, "
            f"batch 1 MiB; median of {a.reps}")
    for key, title, unit, name in (("records_per_s", "S1 produce: records/s by client", "records/s",
                                    "s1-records-per-s.svg"),
                                   ("cpu_s_per_gib", "S1 produce: CPU seconds per GiB by client", "CPU s/GiB",
                                    "s1-cpu-per-gib.svg")):
        path = charts.grouped_bars(os.path.join(a.charts, name), title, [f"{k} {p}p" for k, p in groups], clients,
                                   [[rows[g][c][key] for c in clients] for g in groups], unit, note=note)
        print(f"chart: {os.path.relpath(path, ROOT)}")


def produce_run(a, client, kind, payload, partitions, rep, binaries, strom, rdk, franz, bootstrap, libs, tools_opts,
                values_in):
    """One client's run on a fresh topic: its records counted, spread, read back and weighed."""
    topic = f"bench-s1-{kind}-{partitions}p-{client.replace(' ', '-')}-{rep}-{int(time.time())}"
    subprocess.run([strom, "-b", bootstrap, "topics", "create", topic, "--partitions", str(partitions)],
                   check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    if client in binaries:
        # The constant is strom bench's own value (the same bytes as the one-line file, and what
        # a --strom-extra build from before --payload-file can send).
        source = ["--payload-file", payload] if kind != "constant" else ["--record-size", str(a.record_size)]
        cmd = [binaries[client], "-b", bootstrap, "bench", "produce", topic, "--records", str(a.records)] + source + \
            sum((["-X", f"{k}={v}"] for k, v in KNOBS.items()), [])
        # The same spread rule for every client is checked below (check_spread).
        if partitions > 100 or a.allow_skew:
            cmd.append("--allow-skew")
        out, wall, cpu, rss = run(cmd)
        got = json.loads(out.strip().splitlines()[-1])
        rps, settings = got["records_per_s"], got["settings"]
    elif client == "librdkafka":
        rdk_knobs = dict(KNOBS)
        rdk_knobs["compression.codec"] = rdk_knobs.pop("compression.type")
        # Its null-key stickiness is time-based; pinned to its default, 2 x linger.ms.
        rdk_knobs["sticky.partitioning.linger.ms"] = str(2 * int(KNOBS["linger.ms"]))
        out, wall, cpu, rss = run([rdk, bootstrap, topic, str(a.records), str(a.record_size),
                                   f"--payload-file={payload}"] + [f"{k}={v}" for k, v in rdk_knobs.items()])
        got = json.loads(out.strip().splitlines()[-1])
        rps, settings = got["records_per_s"], got.get("settings")
    elif client == "franz-go":
        out, wall, cpu, rss = run([franz, "produce", "-b", bootstrap, "-topic", topic, "-records", str(a.records),
                                   "-payload-file", payload] + sum((["-X", f"{k}={v}"] for k, v in KNOBS.items()), []))
        got = json.loads(out.strip().splitlines()[-1])
        rps, settings = got["records_per_s"], got["settings"]
    else:
        props = [f"bootstrap.servers={bootstrap}"] + [f"{k}={v}" for k, v in KNOBS.items()]
        cmd = ["java", "-Xms512m", "-Xmx1g"] + tools_opts + ["-cp", f"{libs}/*",
               "org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records",
               str(a.records), "--payload-file", payload, "--throughput", "-1", "--producer-props"] + props
        out, wall, cpu, rss = run(cmd)
        # ProducerPerformance says how many values it read from the file: all of them.
        read = re.search(r"Number of (?:messages|records) read: (\d+)", out)
        want = values_in
        if not read or int(read.group(1)) != want:
            sys.exit(f"java read {read.group(1) if read else 'no'} values from {payload}, not {want}")
        m = re.search(r"records sent, ([0-9.]+) records/sec", out.strip().splitlines()[-1])
        rps, settings = float(m.group(1)), dict(KNOBS, payload_file=payload, payload_values=want)
    label = f"{client} {kind} {partitions}p rep {rep}"
    print(f"  {label}: {rps:,.0f} records/s; settings {json.dumps(settings, sort_keys=True)}", flush=True)
    counts = partition_counts(strom, bootstrap, topic)
    if sum(counts) != a.records:
        sys.exit(f"{label}: the topic holds {sum(counts):,} records, not {a.records:,}")
    used = check_spread(label, counts, allow_skew=partitions > 100 or a.allow_skew)
    peers.check_values(strom, bootstrap, label, topic, kind, payload, a.record_size)
    disk = peers.disk_bytes(strom, bootstrap, topic)
    subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic], stderr=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL)
    return {"client": client, "payload": kind, "payload_file": payload, "partitions": partitions, "rep": rep,
            "records_per_s": rps, "partitions_with_data": used, "min_vs_mean": min(counts) * partitions / a.records,
            "max_vs_mean": max(counts) * partitions / a.records, "mib_per_s": rps * a.record_size / 2**20,
            "cpu_seconds": cpu, "wall_seconds": wall, "cpu_s_per_gib": cpu / (a.records * a.record_size / 2**30),
            "max_rss_kib": rss, "disk_bytes": disk, "settings": settings}


if __name__ == "__main__":
    main()
