#!/usr/bin/env python3
"""Scenario S2 (reference/performance-and-style.md §A6): consume N x 100-byte lz4 records written
by the Java producer (ProducerPerformance from the broker's jars, S1's producer knobs), from a
1- and a 6-partition topic, from offset 0, every client reading the same on-disk bytes in the
same run, alternating, each repeated:

  strom        `strom bench consume` (strom_client::Consumer, assign mode), check.crcs on and off
  java-assign  KafkaConsumer in assign mode (a small harness compiled here from the broker's
               jars), check.crcs on and off
  java-perf    org.apache.kafka.tools.ConsumerPerformance as shipped: it subscribes through a
               group and forces check.crcs=false; its fetch.* figures (join time excluded) are used
  librdkafka   rdkafka crate BaseConsumer (bench/rdkafka-peer, --with-librdkafka), assign mode,
               check.crcs on and off (librdkafka's default is off); once with librdkafka's own
               prefetch defaults and once tuned (queued.min.messages, fetch.queue.backoff.ms)
  franz-go     kgo (bench/franz-peer, --with-franz; needs Go), assign mode: PollRecords(500)
               with CRC checks on and off, and the idiomatic PollFetches loop (everything
               buffered at once) with them on

Payloads (--payload, default both; the topic of each is written by ProducerPerformance):
  corpus    the headline: the realistic corpus (bench/corpus.py) through --payload-file
  constant  one constant value for every record (a one-line --payload-file), for comparison
  random    ProducerPerformance --record-size: fresh random letters per record, which lz4
            cannot shrink (what every S2 table before the corpus measured)
Each topic's values are read back (200 records) against the payload before the runs.

CPU seconds and peak RSS come from wait4() on each client process, the same way for every
client (so the JVM's start-up, JIT and GC count, as the Rust and C clients' do). Broker CPU
seconds come from /proc/<broker pid>/stat around each run. Records/s is each client's own
clock from the first poll (ConsumerPerformance: its fetch time).

Usage: bench/s2_consume.py [--records N] [--reps R] [--with-librdkafka] [--with-franz]
       [--payload corpus|constant|random|both|KIND,KIND]   (starts the broker if needed)
"""
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time

import charts
import corpus
import peers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCE = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4",
           "linger.ms": "5", "batch.size": "1048576", "max.in.flight.requests.per.connection": "5"}
# Consumer knobs pinned for every client (Java names; librdkafka's below).
FETCH = {"fetch.min.bytes": "1", "fetch.max.bytes": "52428800", "max.partition.fetch.bytes": "1048576",
         "fetch.max.wait.ms": "500", "max.poll.records": "500", "isolation.level": "read_uncommitted",
         "auto.offset.reset": "earliest"}
RDK_FETCH = {"fetch.min.bytes": "1", "fetch.max.bytes": "52428800", "max.partition.fetch.bytes": "1048576",
             "fetch.wait.max.ms": "500", "isolation.level": "read_uncommitted"}
# librdkafka's prefetch knobs: its defaults (100000 messages, 65536 KiB, 1000 ms back-off when
# the queue is full), and a setting that keeps its fetcher busy.
RDK_TUNED = {"queued.min.messages": "1000000", "fetch.queue.backoff.ms": "10"}
TIMEOUT_S = 300  # every client run is bounded

JAVA_ASSIGN = r"""
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/** S2's Java peer in assign mode: java S2Assign BOOTSTRAP TOPIC RECORDS [key=value ...]. */
public class S2Assign {
    public static void main(String[] a) {
        Properties p = new Properties();
        p.put("bootstrap.servers", a[0]);
        p.put("key.deserializer", ByteArrayDeserializer.class.getName());
        p.put("value.deserializer", ByteArrayDeserializer.class.getName());
        p.put("enable.auto.commit", "false");
        for (int i = 3; i < a.length; i++) {
            int eq = a[i].indexOf('=');
            p.put(a[i].substring(0, eq), a[i].substring(eq + 1));
        }
        long want = Long.parseLong(a[2]);
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<TopicPartition> parts = new ArrayList<>();
            c.partitionsFor(a[1]).forEach(i -> parts.add(new TopicPartition(a[1], i.partition())));
            c.assign(parts);
            c.seekToBeginning(parts);
            long[] last = new long[parts.size()];
            Arrays.fill(last, -1);
            long n = 0, bytes = 0, first = -1;
            long start = System.nanoTime(), lastRecord = start;
            while (n < want) {
                ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                long now = System.nanoTime();
                if (rs.isEmpty()) {
                    if (now - lastRecord > 30_000_000_000L) throw new RuntimeException("only " + n + " records");
                    continue;
                }
                if (first < 0) first = now;
                lastRecord = now;
                for (ConsumerRecord<byte[], byte[]> r : rs) {
                    if (r.offset() <= last[r.partition()]) throw new RuntimeException("offsets went back");
                    last[r.partition()] = r.offset();
                    if (r.key() != null) bytes += r.key().length;
                    if (r.value() != null) bytes += r.value().length;
                    n++;
                }
            }
            double secs = (System.nanoTime() - start) / 1e9;
            StringBuilder s = new StringBuilder();
            for (String k : new TreeSet<>(p.stringPropertyNames()))
                if (!k.contains("deserializer") && !k.equals("bootstrap.servers"))
                    s.append(",\"").append(k).append("\":\"").append(p.getProperty(k)).append('"');
            System.out.printf(Locale.ROOT, "{\"client\":\"java-assign\",\"records\":%d,\"bytes\":%d,\"seconds\":%.3f,"
                + "\"records_per_s\":%.0f,\"first_record_ms\":%.1f,\"settings\":{\"mode\":\"assign\",\"partitions\":%d%s}}%n",
                n, bytes, secs, n / secs, (first - start) / 1e6, parts.size(), s);
        }
    }
}
"""


def run(cmd, broker_pid=None):
    """Runs cmd, bounded by TIMEOUT_S; returns (stdout, wall s, rusage of that child, broker cpu s)."""
    b0 = broker_cpu(broker_pid)
    peers.reset_peak_rss()
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
                p.returncode = -9
                sys.exit(f"{' '.join(cmd[:6])} took more than {TIMEOUT_S} s")
            time.sleep(0.005)
        wall = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(), fe.read().decode()
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} failed: {err[-2000:]}")
    return out, wall, ru, broker_cpu(broker_pid) - b0


def broker_cpu(pid):
    """CPU seconds (user + system) the broker process used so far."""
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, TypeError, ValueError, IndexError):
        return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--partitions", default="1,6", help="comma-separated partition counts")
    ap.add_argument("--json", action="store_true", help="print raw results as JSON lines too")
    ap.add_argument("--strom-extra", action="append", default=[], metavar="LABEL=PATH",
                    help="also run another strom binary (e.g. a build of a proposed client change), labelled")
    ap.add_argument("--with-librdkafka", action="store_true",
                    help="also build bench/rdkafka-peer (librdkafka from source: needs cmake, a C compiler)")
    ap.add_argument("--with-franz", action="store_true",
                    help="also build and run bench/franz-peer (franz-go; needs the go tool)")
    ap.add_argument("--payload", default="both",
                    help="what the topics hold: corpus (the headline), constant, random (Java's --record-size), "
                         "both (= corpus,constant, the default) or a comma-separated list")
    ap.add_argument("--corpus-values", type=int, default=corpus.DEFAULT_VALUES,
                    help="distinct values in the corpus")
    ap.add_argument("--corpus-seed", type=int, default=corpus.DEFAULT_SEED)
    ap.add_argument("--charts", default=charts.CHART_DIR,
                    help="where the SVG charts of the table go (records/s and CPU s/GiB by client; '' for none)")
    a = ap.parse_args()
    kinds = peers.payload_kinds(a.payload, ("corpus", "constant", "random"))
    files = {k: peers.payload_file(k, a.record_size, a.corpus_values, a.corpus_seed) for k in kinds}
    payload_lines = peers.describe_files(kinds, a.record_size, a.corpus_values, a.corpus_seed)
    for line in payload_lines:
        print(line, flush=True)

    subprocess.run([f"{ROOT}/scripts/kafka", "up"], check=True, stdout=subprocess.DEVNULL)
    env = dict(l.split("=", 1) for l in subprocess.run([f"{ROOT}/scripts/kafka", "env"], check=True,
               capture_output=True, text=True).stdout.splitlines() if "=" in l)
    env = {k: v.strip("'\"") for k, v in env.items()}
    bootstrap, libs = env["STROM_BOOTSTRAP_SERVERS"], env["STROM_KAFKA_LIBS"]
    try:
        broker_pid = int(open(os.path.join(env["STROM_KAFKA_STATE_DIR"], "kafka.pid")).read().strip())
    except (OSError, KeyError, ValueError):
        broker_pid = None
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    strom = f"{ROOT}/target/release/strom"
    rdk = f"{ROOT}/target/rdkafka-peer/release/rdkafka-peer"
    if a.with_librdkafka:
        subprocess.run(["cargo", "build", "--release", "-q", "--manifest-path", f"{ROOT}/bench/rdkafka-peer/Cargo.toml"],
                       cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=f"{ROOT}/target/rdkafka-peer"))
    franz = peers.build_franz() if a.with_franz else None
    tools_opts = env.get("STROM_KAFKA_TOOLS_JAVA_OPTS", "").split()
    jdir = tempfile.mkdtemp(prefix="strom-s2-java-")
    with open(f"{jdir}/S2Assign.java", "w") as f:
        f.write(JAVA_ASSIGN)
    subprocess.run(["javac", "-nowarn", "-cp", f"{libs}/*", "-d", jdir, f"{jdir}/S2Assign.java"], check=True)
    java = ["java", "-Xms512m", "-Xmx1g"] + tools_opts
    jcp = f"{jdir}:{libs}/*"

    # (label, crc label, command builder); each builder takes the topic.
    def strom_cmd(crc, binary=strom):
        return lambda t: [binary, "-b", bootstrap, "bench", "consume", t, "--records", str(a.records)] + \
            sum((["-X", f"{k}={v}"] for k, v in dict(FETCH, **{"check.crcs": crc}).items()), [])

    def java_assign_cmd(crc):
        return lambda t: java + ["-cp", jcp, "S2Assign", bootstrap, t, str(a.records), "receive.buffer.bytes=-1"] + \
            [f"{k}={v}" for k, v in dict(FETCH, **{"check.crcs": crc}).items()]

    def java_perf_cmd(t):
        props = {k: v for k, v in FETCH.items() if k not in ("max.partition.fetch.bytes", "auto.offset.reset")}
        return java + ["-cp", f"{libs}/*", "org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server",
                       bootstrap, "--topic", t, "--num-records", str(a.records), "--timeout", "30000",
                       "--fetch-size", FETCH["max.partition.fetch.bytes"], "--socket-buffer-size", "-1"] + \
            sum((["--command-property", f"{k}={v}"] for k, v in props.items()), [])

    def rdk_cmd(crc, tuned):
        knobs = dict(RDK_FETCH, **{"check.crcs": crc}, **(RDK_TUNED if tuned else {}))
        return lambda t: [rdk, "consume", bootstrap, t, str(a.records)] + [f"{k}={v}" for k, v in knobs.items()]

    def franz_cmd(crc, poll):
        knobs = dict(FETCH, **{"check.crcs": crc})
        if poll == "fetches":
            knobs.pop("max.poll.records")
        return lambda t: [franz, "consume", "-b", bootstrap, "-topic", t, "-records", str(a.records), "-poll", poll] + \
            sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])

    clients = [("strom", "on", strom_cmd("true")), ("strom", "off", strom_cmd("false")),
               ("java-assign", "on", java_assign_cmd("true")), ("java-assign", "off", java_assign_cmd("false")),
               ("java-perf (group)", "off (forced)", java_perf_cmd)]
    for extra in a.strom_extra:
        label, path = extra.split("=", 1)
        clients[2:2] = [(f"strom {label}", "on", strom_cmd("true", path)),
                        (f"strom {label}", "off", strom_cmd("false", path))]
    if a.with_librdkafka:
        clients += [("librdkafka", "on", rdk_cmd("true", False)), ("librdkafka", "off (default)", rdk_cmd("false", False)),
                    ("librdkafka tuned", "on", rdk_cmd("true", True)),
                    ("librdkafka tuned", "off (default)", rdk_cmd("false", True))]
    if a.with_franz:
        clients += [("franz-go", "on (default)", franz_cmd("true", "records")),
                    ("franz-go", "off", franz_cmd("false", "records")),
                    ("franz-go PollFetches", "on (default)", franz_cmd("true", "fetches"))]

    results = []
    partition_counts = [int(p) for p in a.partitions.split(",")]
    topics = []
    for kind in kinds:
        for partitions in partition_counts:
            topic = f"bench-s2-{kind}-{partitions}p-{int(time.time())}"
            subprocess.run([strom, "-b", bootstrap, "topics", "create", topic, "--partitions", str(partitions)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            props = [f"bootstrap.servers={bootstrap}"] + [f"{k}={v}" for k, v in PRODUCE.items()]
            source = ["--payload-file", files[kind]] if files[kind] else ["--record-size", str(a.record_size)]
            out, *_ = run(java + ["-cp", f"{libs}/*", "org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                                  "--num-records", str(a.records)] + source +
                          ["--throughput", "-1", "--producer-props"] + props)
            print(f"# {topic}: {out.strip().splitlines()[-1]}", file=sys.stderr)
            read = re.search(r"Number of (?:messages|records) read: (\d+)", out)
            if files[kind] and (not read or int(read.group(1)) != peers.count_values(files[kind])):
                sys.exit(f"ProducerPerformance read {read.group(1) if read else 'no'} values from {files[kind]}")
            offsets = subprocess.run([strom, "-b", bootstrap, "offsets", topic], check=True, capture_output=True,
                                     text=True).stdout
            total = sum(int(l.split()[2]) for l in offsets.splitlines()[1:])
            if total != a.records:
                sys.exit(f"{topic} holds {total} records, expected {a.records}")
            peers.check_values(strom, bootstrap, topic, topic, kind, files[kind], a.record_size)
            disk = peers.disk_bytes(strom, bootstrap, topic)
            topics.append(f"{kind}, {partitions} partitions: {topic}, {disk / 2**20:.1f} MiB on disk "
                          f"({a.records * a.record_size / disk:.1f}x)")
            print(f"  {topics[-1]}", flush=True)
            # A discarded pass warms the broker (JIT, page cache) before the measured runs.
            run(strom_cmd("true")(topic))
            for rep in range(a.reps):
                for client, crc, cmd in clients:
                    r = consume_run(a, client, crc, cmd, topic, kind, partitions, rep, broker_pid)
                    results.append(r)
                    if a.json:
                        print(json.dumps(r), flush=True)
            subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

    print(f"\nS2 consume: {a.records:,} x {a.record_size} B lz4 records written by ProducerPerformance ("
          + ", ".join(f"{k}={v}" for k, v in PRODUCE.items()) + "); consumers: "
          + ", ".join(f"{k}={v}" for k, v in FETCH.items())
          + ", socket receive buffer: the OS default for every client"
          + f" (librdkafka: fetch.wait.max.ms=500; tuned: " + ", ".join(f"{k}={v}" for k, v in RDK_TUNED.items())
          + f"); median of {a.reps} alternating runs [min-max]; Kafka {env.get('STROM_KAFKA_VERSION')} on 127.0.0.1")
    for line in payload_lines + topics:
        print(line)
    print("\n| payload | partitions | client | check.crcs | records/s | MiB/s | CPU s/GiB | peak RSS MiB | "
          "broker CPU s | first record ms | records/s vs best peer | CPU/GiB vs librdkafka |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    chart_rows = {}  # (payload, partitions) -> {(client, crc): medians}
    for kind in kinds:
        for partitions in partition_counts:
            med = {}
            chart_rows[(kind, partitions)] = med
            for client, crc, _ in clients:
                rs = [r for r in results if r["client"] == client and r["crc"] == crc and
                      r["partitions"] == partitions and r["payload"] == kind]
                med[(client, crc)] = {k: statistics.median(r[k] for r in rs) for k in
                                      ("records_per_s", "mib_per_s", "cpu_s_per_gib", "max_rss_kib",
                                       "broker_cpu_seconds")}
                med[(client, crc)]["range"] = (min(r["records_per_s"] for r in rs),
                                               max(r["records_per_s"] for r in rs))
                firsts = [r["first_record_ms"] for r in rs if r["first_record_ms"] is not None]
                med[(client, crc)]["first"] = statistics.median(firsts) if firsts else None
            best_peer = max(m["records_per_s"] for (c, _), m in med.items() if not c.startswith("strom"))
            rdk_cpu = {crc.split()[0]: m["cpu_s_per_gib"] for (c, crc), m in med.items() if c == "librdkafka"}
            for client, crc, _ in clients:
                m = med[(client, crc)]
                lo, hi = m["range"]
                ref = rdk_cpu.get(crc.split()[0])
                cpu_ratio = f"{m['cpu_s_per_gib'] / ref:.2f}x" if ref else "-"
                first = f"{m['first']:.0f}" if m["first"] is not None else "-"
                print(f"| {kind} | {partitions} | {client} | {crc} | {m['records_per_s']:,.0f} "
                      f"[{lo / 1e6:.2f}-{hi / 1e6:.2f} M] | {m['mib_per_s']:.1f} | {m['cpu_s_per_gib']:.2f} | "
                      f"{m['max_rss_kib'] / 1024:.0f} | {m['broker_cpu_seconds']:.1f} | {first} | "
                      f"{m['records_per_s'] / best_peer:.2f}x | {cpu_ratio} |")
    if a.charts:
        groups = [(k, p) for k in kinds for p in partition_counts]
        series = [(c, crc) for c, crc, _ in clients]
        note = (f"S2, {time.strftime('%Y-%m-%d')}: {a.records:,} x {a.record_size} B lz4 written by ProducerPerformance; "
                f"median of {a.reps}")
        for key, title, unit, name in (("records_per_s", "S2 consume: records/s by client", "records/s",
                                        "s2-records-per-s.svg"),
                                       ("cpu_s_per_gib", "S2 consume: CPU seconds per GiB by client", "CPU s/GiB",
                                        "s2-cpu-per-gib.svg")):
            path = charts.grouped_bars(os.path.join(a.charts, name), title, [f"{k} {p}p" for k, p in groups],
                                       [f"{c} crc {crc.split()[0]}" for c, crc in series],
                                       [[chart_rows[g][s][key] for s in series] for g in groups], unit, note=note)
            print(f"chart: {os.path.relpath(path, ROOT)}")


def consume_run(a, client, crc, cmd, topic, kind, partitions, rep, broker_pid):
    """One client's pass over the topic: every record read once, offsets rising (each client
    checks), the count checked here."""
    out, wall, ru, bcpu = run(cmd(topic), broker_pid)
    if client.startswith("java-perf"):
        f = [x.strip() for x in out.strip().splitlines()[-1].split(",")]
        n, secs = int(f[4]), float(f[7]) / 1000
        got = {"records": n, "records_per_s": n / secs, "first_record_ms": None, "join_ms": float(f[6])}
    else:
        got = json.loads(out.strip().splitlines()[-1])
    if got["records"] < a.records:
        sys.exit(f"{client} read {got['records']} of {a.records} records")
    cpu = ru.ru_utime + ru.ru_stime
    rps = got["records_per_s"]
    settings = got.get("settings")
    print(f"  {client} (check.crcs {crc}) {kind} {partitions}p rep {rep}: {rps:,.0f} records/s; settings "
          f"{json.dumps(settings, sort_keys=True) if settings else 'as in the header'}", flush=True)
    return {"client": client, "crc": crc, "payload": kind, "partitions": partitions, "rep": rep,
            "records_per_s": rps, "mib_per_s": rps * a.record_size / 2**20, "cpu_seconds": cpu,
            "wall_seconds": wall, "cpu_s_per_gib": cpu / (a.records * a.record_size / 2**30),
            "max_rss_kib": ru.ru_maxrss, "broker_cpu_seconds": bcpu, "first_record_ms": got.get("first_record_ms"),
            "settings": settings}


if __name__ == "__main__":
    main()
