#!/usr/bin/env python3
"""Scenario S5 (issue 25): end-to-end latency at a fixed rate. Each client produces at R
records/s (100-byte values of the payload corpus, acks=all, idempotent, lz4, linger.ms 0 and
5) to a fresh topic while its own consumer, in the same process, reads it; a record's
latency is the time its consumer got it minus the send time the producer stamped into it.
Strom, Java, librdkafka and franz-go run in the same run, alternating, on the same broker.

  strom       `strom bench latency` (cli/src/bench/latency.rs): the pacer on the main thread,
              the producer's sender and the consumer as tasks on one tokio worker
  java        integration-tests/java/BenchPeer.java latency: KafkaProducer on the main thread,
              KafkaConsumer on a thread of its own (compiled once with javac)
  librdkafka  bench/rdkafka-peer latency: BaseProducer paced on the main thread, BaseConsumer
              on a thread of its own
  franz-go    bench/franz-peer latency: one kgo client producing, a second one consuming
              (PollFetches) on a goroutine
  java e2e    the broker's org.apache.kafka.tools.EndToEndLatency: one record at a time, each
              sent and read back before the next (its own row; whole milliseconds)

The send time: the first 8 bytes of the value, a big-endian u64 of nanoseconds since the
run's origin on the process's monotonic clock (System.nanoTime for Java), replacing the
corpus value's first 8 bytes (`{"ts":17`, the same in every value), so a record keeps its
size and the rest of its bytes. Latencies go into an HDR histogram per client (1 us to 1 h,
3 significant digits: Rust `hdrhistogram`, Go `hdrhistogram-go`, Java `org.HdrHistogram`).

The pacers keep an absolute schedule: record i is due at origin + i/R; a client sleeps until
the next record is due, then sends every record that is due, so lateness never shifts the
records after it. Each reports how late it ever was (send lag max) and whether it held the
rate (`kept_up`: the measured records went out at >= 99% of R); a run that could not keep up
is printed and marked in the table. The first --warmup-seconds (1) are sent at the rate but
not measured. Every client's consumer must get every record (it fails otherwise), and the
topic's offsets must add up to what was sent.

CPU % is the client's own CPU over its run (producing and consuming) as it reports it, peak
RSS comes from wait4() on the client process; both count the whole process. The broker shares
the machine's two cores with the client.

Usage: bench/s5_latency.py [--rate R[,R...]] [--seconds S] [--linger 0,5] [--partitions 1]
       [--clients strom,java,librdkafka,franz-go] [--reps 1] [--e2e-records 2000 | --no-e2e]
       [--json] [--charts DIR]
Default sweep: 1,000, 10,000 and 100,000 records/s, 10 s each, linger 0 and 5.
"""
import argparse, json, os, re, shutil, statistics, sys, time

import charts
import corpus
import peers
from spread import partition_counts

ROOT = peers.ROOT
KNOBS = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4", "batch.size": "1048576",
         "max.in.flight.requests.per.connection": "5"}


def client_cmd(client, progs, env, topic, rate, a, linger, payload):
    knobs = peers.props_for(client, dict(KNOBS, **{"linger.ms": str(linger)}))
    b = env["STROM_BOOTSTRAP_SERVERS"]
    if client == "strom":
        return [progs["strom"], "-b", b, "bench", "latency", topic, "--rate", str(rate), "--seconds", str(a.seconds),
                "--warmup-seconds", str(a.warmup_seconds), "--payload-file", payload] + \
            sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])
    if client == "java":
        return peers.java_cmd(progs, env["STROM_KAFKA_LIBS"], env,
                              ["latency", b, topic, str(rate), str(a.seconds), str(a.warmup_seconds), payload] +
                              [f"{k}={v}" for k, v in knobs.items()])
    if client == "librdkafka":
        return [progs["librdkafka"], "latency", b, topic, str(rate), str(a.seconds), f"--payload-file={payload}",
                f"--warmup-seconds={a.warmup_seconds}"] + [f"{k}={v}" for k, v in knobs.items()]
    return [progs["franz-go"], "latency", "-b", b, "-topic", topic, "-rate", str(rate), "-seconds", str(a.seconds),
            "-warmup-seconds", str(a.warmup_seconds), "-payload-file", payload] + \
        sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])


def latency_run(a, client, progs, env, rate, linger, payload, rep):
    strom, b = progs["strom"], env["STROM_BOOTSTRAP_SERVERS"]
    topic = f"bench-s5-{client}-{rate}-l{linger}-{rep}-{int(time.time() * 1000)}"
    peers.create_topic(strom, b, topic, a.partitions)
    try:
        out, err, wall, cpu, rss = peers.run_measured(client_cmd(client, progs, env, topic, rate, a, linger, payload),
                                                      timeout_s=a.seconds + a.warmup_seconds + 180)
        got = peers.last_json(out, client)
        total = rate * (a.seconds + a.warmup_seconds)
        if got["received"] != total or got["records"] != total:
            sys.exit(f"{client} at {rate}/s: its consumer got {got['received']} of {total} records")
        held = sum(partition_counts(strom, b, topic))
        if held != total:
            sys.exit(f"{client} at {rate}/s: the topic holds {held} records, not {total}")
    finally:
        peers.delete_topic(strom, b, topic)
    r = {"client": client, "rate": rate, "linger_ms": linger, "rep": rep, "partitions": a.partitions,
         "seconds": a.seconds, "p50_ms": got["p50_ms"], "p90_ms": got["p90_ms"], "p99_ms": got["p99_ms"],
         "p999_ms": got["p999_ms"], "max_ms": got["max_ms"], "mean_ms": got["mean_ms"], "measured": got["measured"],
         "achieved_rate": got["achieved_rate"], "kept_up": got["kept_up"], "send_lag_max_ms": got["send_lag_max_ms"],
         "cpu_percent": got["cpu_percent"], "client_cpu_seconds": got["cpu_seconds"], "wait4_cpu_seconds": cpu,
         "wall_seconds": wall, "max_rss_kib": rss, "settings": got.get("settings")}
    flag = "" if got["kept_up"] else f"  COULD NOT KEEP UP ({got['achieved_rate']:,.0f}/s)"
    print(f"  {client} {rate:,}/s linger {linger} rep {rep}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f}, "
          f"p99.9 {r['p999_ms']:.2f}, max {r['max_ms']:.2f}; CPU {r['cpu_percent']:.0f}%, RSS "
          f"{rss / 1024:.0f} MiB{flag}; settings {json.dumps(r['settings'], sort_keys=True)}", flush=True)
    return r


def e2e_run(a, progs, env):
    """The broker's EndToEndLatency: one record at a time (send, then poll until it is back)."""
    strom, b, libs = progs["strom"], env["STROM_BOOTSTRAP_SERVERS"], env["STROM_KAFKA_LIBS"]
    topic = f"bench-s5-e2e-{int(time.time() * 1000)}"
    peers.create_topic(strom, b, topic, 1)
    try:
        cmd = ["java", "-Xms512m", "-Xmx1g"] + env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split() + \
            ["-cp", f"{libs}/*", "org.apache.kafka.tools.EndToEndLatency", "--bootstrap-server", b, "--topic", topic,
             "--num-records", str(a.e2e_records), "--producer-acks", "all", "--record-size", "100"]
        out, err, wall, cpu, rss = peers.run_measured(cmd, timeout_s=600)
    finally:
        peers.delete_topic(strom, b, topic)
    text = out + err
    avg = re.search(r"Avg latency: ([0-9.]+) ms", text)
    pct = re.search(r"Percentiles: 50th = (\d+), 99th = (\d+), 99.9th = (\d+)", text)
    if not avg or not pct:
        sys.exit(f"EndToEndLatency printed no latencies: {text[-1000:]}")
    r = {"client": "java EndToEndLatency", "rate": round(a.e2e_records / wall), "linger_ms": "default",
         "one_at_a_time": True, "records": a.e2e_records, "p50_ms": float(pct.group(1)),
         "p99_ms": float(pct.group(2)), "p999_ms": float(pct.group(3)), "mean_ms": float(avg.group(1)),
         "wait4_cpu_seconds": cpu, "wall_seconds": wall, "max_rss_kib": rss,
         "cpu_percent": 100 * cpu / wall, "settings": {"producer-acks": "all", "record-size": 100, "partitions": 1,
                                                       "percentiles": "whole ms (its own output)"}}
    print(f"  java EndToEndLatency, {a.e2e_records} records one at a time: p50 {r['p50_ms']:.0f} ms, p99 "
          f"{r['p99_ms']:.0f}, p99.9 {r['p999_ms']:.0f}, mean {r['mean_ms']:.2f}; {wall:.1f} s", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", default="1000,10000,100000", help="records/s, comma-separated (default the sweep)")
    ap.add_argument("--seconds", type=int, default=10, help="seconds measured per run (after the warm-up)")
    ap.add_argument("--warmup-seconds", type=int, default=1)
    ap.add_argument("--linger", default="0,5", help="linger.ms values, comma-separated")
    ap.add_argument("--partitions", type=int, default=1)
    ap.add_argument("--clients", default=",".join(peers.CLIENTS))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--e2e-records", type=int, default=2000, help="records of the EndToEndLatency row")
    ap.add_argument("--no-e2e", action="store_true", help="leave out the EndToEndLatency row")
    ap.add_argument("--json", action="store_true", help="print one JSON object per run")
    ap.add_argument("--charts", default=charts.CHART_DIR, help="where the SVG charts go ('' for none)")
    ap.add_argument("--corpus-values", type=int, default=corpus.DEFAULT_VALUES)
    ap.add_argument("--corpus-seed", type=int, default=corpus.DEFAULT_SEED)
    a = ap.parse_args()
    rates = [int(r) for r in a.rate.split(",") if r]
    lingers = [int(l) for l in a.linger.split(",") if l]
    clients = peers.parse_clients(a.clients)
    payload = peers.payload_file("corpus", 100, a.corpus_values, a.corpus_seed)
    payload_lines = peers.describe_files(["corpus"], 100, a.corpus_values, a.corpus_seed)
    for line in payload_lines:
        print(line, flush=True)
    env = peers.broker_env()
    progs = peers.build_clients(clients, env["STROM_KAFKA_LIBS"])
    if not a.no_e2e and not shutil.which("java"):
        sys.exit("the EndToEndLatency row needs Java 17+ (Debian: apt-get install openjdk-17-jdk-headless); or --no-e2e")
    results = []
    for linger in lingers:
        for rate in rates:
            for rep in range(a.reps):
                for client in clients:
                    r = latency_run(a, client, progs, env, rate, linger, payload, rep)
                    results.append(r)
                    if a.json:
                        print(json.dumps(r), flush=True)
    if not a.no_e2e:
        r = e2e_run(a, progs, env)
        results.append(r)
        if a.json:
            print(json.dumps(r), flush=True)

    date = time.strftime("%Y-%m-%d")
    header = (f"S5 latency: {a.seconds} s measured per run after {a.warmup_seconds} s of warm-up, 100 B corpus values, "
              + ", ".join(f"{k}={v}" for k, v in KNOBS.items())
              + f", {a.partitions} partition(s); median of {a.reps}; Kafka {env.get('STROM_KAFKA_VERSION')} on "
              f"127.0.0.1; {date}")
    print("\n" + header)
    print("\n| linger.ms | rate/s | client | p50 ms | p99 ms | p99.9 ms | max ms | held the rate | CPU % | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    med = {}
    for linger in lingers:
        for rate in rates:
            for client in clients:
                rs = [r for r in results if r["client"] == client and r["rate"] == rate and r["linger_ms"] == linger]
                m = {k: statistics.median(r[k] for r in rs) for k in
                     ("p50_ms", "p99_ms", "p999_ms", "max_ms", "cpu_percent", "max_rss_kib", "achieved_rate")}
                m["kept_up"] = all(r["kept_up"] for r in rs)
                med[(linger, rate, client)] = m
                held = "yes" if m["kept_up"] else f"no ({m['achieved_rate']:,.0f}/s)"
                print(f"| {linger} | {rate:,} | {client} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['p999_ms']:.2f} | "
                      f"{m['max_ms']:.2f} | {held} | {m['cpu_percent']:.0f} | {m['max_rss_kib'] / 1024:.0f} |")
    for r in results:
        if r.get("one_at_a_time"):
            print(f"| default | {r['rate']:,} (one at a time) | java EndToEndLatency | {r['p50_ms']:.0f} | "
                  f"{r['p99_ms']:.0f} | {r['p999_ms']:.0f} | - | - | {r['cpu_percent']:.0f} (JVM start included) | "
                  f"{r['max_rss_kib'] / 1024:.0f} |")
    if a.charts:
        note = f"S5, {date}: {a.seconds} s per run, acks=all, idempotent, lz4, {a.partitions} partition(s)"
        dashes = {"p50_ms": "2,3", "p99_ms": "", "p999_ms": "6,3"}
        for linger in lingers:
            series = [{"name": f"{client} {p.replace('_ms', '').replace('p999', 'p99.9')}",
                       "colour": charts.colour(client), "dash": dashes[p],
                       "points": [(rate, med[(linger, rate, client)][p]) for rate in rates]}
                      for client in clients for p in ("p50_ms", "p99_ms", "p999_ms")]
            path = charts.lines(os.path.join(a.charts, f"s5-latency-linger{linger}.svg"),
                                f"S5 end-to-end latency by rate, linger.ms={linger}", series, "latency ms",
                                "records/s", log_x=True, log_y=True, note=note)
            print(f"chart: {os.path.relpath(path, ROOT)}")
        groups = [f"{rate:,}/s l{linger}" for linger in lingers for rate in rates]
        path = charts.grouped_bars(os.path.join(a.charts, "s5-cpu.svg"), "S5 client CPU % by rate (producer + consumer)",
                                   groups, clients, [[med[(l, r, c)]["cpu_percent"] for c in clients]
                                                     for l in lingers for r in rates], "CPU %", note=note)
        print(f"chart: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
