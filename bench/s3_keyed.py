#!/usr/bin/env python3
"""Scenario S3 (issue 25): keyed idempotent produce, read back. Each client sends N keyed
records (default 5,000,000; 10,000 distinct keys; 100-byte values of the payload corpus) to a
fresh 12-partition topic with acks=all, idempotence, lz4, linger.ms=5 (batch.size 1 MiB, 5 in
flight), then the topic is read back and checked for per-key order and completeness. Strom,
Java, librdkafka and franz-go run in the same run, alternating, on the same broker.

  strom       `strom bench produce --keys N` (cli/src/bench/produce.rs)
  java        integration-tests/java/BenchPeer.java keyed (KafkaProducer; ProducerPerformance
              sends no keys), compiled once with javac
  librdkafka  bench/rdkafka-peer ... --keys=N, partitioner=murmur2_random (Java's key hash;
              librdkafka's default, consistent_random, hashes with CRC32)
  franz-go    bench/franz-peer produce -keys N (kgo's default partitioner hashes keys with
              murmur2, as Java's)

What every client sends (cli/src/bench/mod.rs): record i's key is `key-NNNNNN` for the i-th
draw of one xorshift64 stream modulo the key count (the same keys in the same order for
every client), and its value is the corpus value i (in turn) with the first 8 bytes replaced
by the key's sequence number, big-endian from 0. The corpus values all begin with the same
8 bytes (`{"ts":17`), so a value keeps its size and the rest of its bytes.

The read-back: `strom bench consume --keys K --to-end` reads the whole topic and fails unless
every key is one of K, stays in one partition, and its sequence numbers come 0, 1, 2, ... with
no gap or repeat, and unless the topic holds exactly N records (it reads on to every
partition's end). The same reader checks every client's topic. The spread over the partitions
is printed and checked as in S1 (no partition under a third of the mean).

Records/s is each client's own clock (first send to the last acknowledgement); CPU seconds
and peak RSS come from wait4() on the client process (Java's includes JVM start-up and JIT);
CPU s/GiB divides by N x (10-byte key + 100-byte value).

Usage: bench/s3_keyed.py [--records 5000000] [--keys 10000] [--partitions 12] [--reps 1]
       [--clients strom,java,librdkafka,franz-go] [--json] [--charts DIR]
"""
import argparse, json, os, statistics, sys, time

import charts
import corpus
import peers
from spread import check as check_spread, partition_counts

ROOT = peers.ROOT
KNOBS = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4", "linger.ms": "5",
         "batch.size": "1048576", "max.in.flight.requests.per.connection": "5"}
KEY_BYTES = 10


def client_cmd(client, progs, env, topic, a, payload):
    knobs = peers.props_for(client, KNOBS)
    b = env["STROM_BOOTSTRAP_SERVERS"]
    if client == "strom":
        return [progs["strom"], "-b", b, "bench", "produce", topic, "--records", str(a.records), "--keys",
                str(a.keys), "--payload-file", payload, "--allow-skew"] + \
            sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])
    if client == "java":
        return peers.java_cmd(progs, env["STROM_KAFKA_LIBS"], env,
                              ["keyed", b, topic, str(a.records), str(a.keys), payload] +
                              [f"{k}={v}" for k, v in knobs.items()])
    if client == "librdkafka":
        return [progs["librdkafka"], b, topic, str(a.records), "100", f"--payload-file={payload}",
                f"--keys={a.keys}", "partitioner=murmur2_random"] + [f"{k}={v}" for k, v in knobs.items()]
    return [progs["franz-go"], "produce", "-b", b, "-topic", topic, "-records", str(a.records), "-keys", str(a.keys),
            "-payload-file", payload] + sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])


def keyed_run(a, client, progs, env, payload, rep):
    strom, b = progs["strom"], env["STROM_BOOTSTRAP_SERVERS"]
    topic = f"bench-s3-{client}-{rep}-{int(time.time() * 1000)}"
    peers.create_topic(strom, b, topic, a.partitions)
    label = f"{client} rep {rep}"
    try:
        out, err, wall, cpu, rss = peers.run_measured(client_cmd(client, progs, env, topic, a, payload))
        got = peers.last_json(out, client)
        rps = got["records_per_s"]
        counts = partition_counts(strom, b, topic)
        if sum(counts) != a.records:
            sys.exit(f"{label}: the topic holds {sum(counts):,} records, not {a.records:,}")
        check_spread(label, counts)
        # Every record read back: per-key order, one partition per key, exactly N records.
        check, _, _, _, _ = peers.run_measured([strom, "-b", b, "bench", "consume", topic, "--records", str(a.records),
                                                "--keys", str(a.keys), "--to-end", "--timeout-ms", "20000"])
        verified = peers.last_json(check, f"{label} read-back")
        disk = peers.disk_bytes(strom, b, topic)
    finally:
        peers.delete_topic(strom, b, topic)
    gib = a.records * (100 + KEY_BYTES) / 2**30
    r = {"client": client, "rep": rep, "records": a.records, "keys": a.keys, "partitions": a.partitions,
         "records_per_s": rps, "mib_per_s": rps * (100 + KEY_BYTES) / 2**20, "cpu_seconds": cpu,
         "cpu_s_per_gib": cpu / gib, "wall_seconds": wall, "max_rss_kib": rss, "disk_bytes": disk,
         "keys_seen": verified.get("keys_seen"), "verified": "per-key order and count, read back",
         "partition_records": counts, "settings": got.get("settings")}
    print(f"  {label}: {rps:,.0f} records/s, {r['cpu_s_per_gib']:.2f} CPU s/GiB, {rss / 1024:.0f} MiB; read back: "
          f"{verified['records']:,} records, {verified.get('keys_seen')} keys in order; settings "
          f"{json.dumps(r['settings'], sort_keys=True)}", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=5_000_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--clients", default=",".join(peers.CLIENTS))
    ap.add_argument("--json", action="store_true", help="print one JSON object per run")
    ap.add_argument("--charts", default=charts.CHART_DIR, help="where the SVG charts go ('' for none)")
    ap.add_argument("--corpus-values", type=int, default=corpus.DEFAULT_VALUES)
    ap.add_argument("--corpus-seed", type=int, default=corpus.DEFAULT_SEED)
    a = ap.parse_args()
    clients = peers.parse_clients(a.clients)
    payload = peers.payload_file("corpus", 100, a.corpus_values, a.corpus_seed)
    payload_lines = peers.describe_files(["corpus"], 100, a.corpus_values, a.corpus_seed)
    for line in payload_lines:
        print(line, flush=True)
    env = peers.broker_env()
    progs = peers.build_clients(clients, env["STROM_KAFKA_LIBS"])
    results = []
    for rep in range(a.reps):
        for client in clients:
            r = keyed_run(a, client, progs, env, payload, rep)
            results.append(r)
            if a.json:
                print(json.dumps(r), flush=True)

    date = time.strftime("%Y-%m-%d")
    print(f"\nS3 keyed produce: {a.records:,} records, {a.keys:,} keys (10 B), 100 B corpus values, {a.partitions} "
          f"partitions, " + ", ".join(f"{k}={v}" for k, v in KNOBS.items())
          + f"; median of {a.reps}; Kafka {env.get('STROM_KAFKA_VERSION')} on 127.0.0.1; {date}")
    print("\n| client | records/s | MiB/s | CPU s/GiB | peak RSS MiB | records/s vs strom | on disk MiB | "
          "min / max partition vs mean | read back |")
    print("|---|---|---|---|---|---|---|---|---|")
    med = {}
    for client in clients:
        rs = [r for r in results if r["client"] == client]
        med[client] = {k: statistics.median(r[k] for r in rs) for k in
                       ("records_per_s", "mib_per_s", "cpu_s_per_gib", "max_rss_kib", "disk_bytes")}
        mean = a.records / a.partitions
        med[client]["spread"] = (min(min(r["partition_records"]) for r in rs) / mean,
                                 max(max(r["partition_records"]) for r in rs) / mean)
    for client in clients:
        m = med[client]
        vs = f"{m['records_per_s'] / med['strom']['records_per_s']:.2f}x" if "strom" in med else "-"
        print(f"| {client} | {m['records_per_s']:,.0f} | {m['mib_per_s']:.1f} | {m['cpu_s_per_gib']:.2f} | "
              f"{m['max_rss_kib'] / 1024:.0f} | {vs} | {m['disk_bytes'] / 2**20:.1f} | "
              f"{m['spread'][0]:.2f} / {m['spread'][1]:.2f} | {a.records:,} in per-key order |")
    if a.charts:
        note = f"S3, {date}: {a.records:,} keyed records, {a.keys:,} keys, {a.partitions} partitions, acks=all, lz4, linger 5"
        for key, title, unit, name in (("records_per_s", "S3 keyed produce: records/s by client", "records/s",
                                        "s3-records-per-s.svg"),
                                       ("cpu_s_per_gib", "S3 keyed produce: CPU seconds per GiB by client",
                                        "CPU s/GiB", "s3-cpu-per-gib.svg")):
            path = charts.grouped_bars(os.path.join(a.charts, name), title, [f"{a.partitions} partitions"], clients,
                                       [[med[c][key] for c in clients]], unit, note=note)
            print(f"chart: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
