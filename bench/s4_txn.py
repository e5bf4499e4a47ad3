#!/usr/bin/env python3
"""Scenario S4 (issue 25): transactional produce. Each client commits T transactions of M
records each (M = 100, 1,000 and 10,000 by default), one after another, to a fresh
6-partition topic (100-byte corpus values, acks=all, idempotent as transactions require, lz4,
linger.ms=5, batch.size 1 MiB); then the topic is read under read_committed and must hold
exactly T x M records. Strom, Java, librdkafka and franz-go run in the same run, alternating,
on the same broker.

  strom       `strom bench txn` (cli/src/bench/txn.rs): TransactionalProducer, begin, M sends,
              commit_transaction (which flushes)
  java        integration-tests/java/BenchPeer.java txn: KafkaProducer, beginTransaction, M
              sends, commitTransaction (ProducerPerformance commits by time,
              --transaction-duration-ms, not by a record count)
  librdkafka  bench/rdkafka-peer txn: the rdkafka crate's transactional BaseProducer
              (begin_transaction, M sends, commit_transaction, which flushes)
  franz-go    bench/franz-peer txn: kgo with TransactionalID: BeginTransaction, M Produce
              calls, Flush, EndTransaction(TryCommit)

A Strom transaction that fails without fencing the producer is aborted and sent again, as an
application does (`strom bench txn` counts these; the "sent again" column). The peers stop at
any failure. Records/s: all T x M records over the client's whole loop (its own clock, from the first
begin to the last commit returning). Commit latency: each transaction, from begin to the
commit call returning (so it includes sending the M records), in an HDR histogram; p50 and
p99 of the T transactions. CPU seconds and peak RSS come from wait4() on the client process
(Java's includes JVM start-up and JIT); CPU s/GiB divides by T x M x 100 B. Each client uses a
transactional.id of its own per run.

The read-back: `strom bench consume --records T*M --to-end -X isolation.level=read_committed`
reads every partition to its last stable offset and fails unless it got exactly T x M records.

Usage: bench/s4_txn.py [--per-transaction 100,1000,10000] [--transactions 100]
       [--records-per-size N (overrides --transactions: N / M transactions of each size)]
       [--partitions 6] [--reps 1] [--clients strom,java,librdkafka,franz-go] [--json] [--charts DIR]
"""
import argparse, json, os, statistics, sys, time

import charts
import corpus
import peers

ROOT = peers.ROOT
KNOBS = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4", "linger.ms": "5",
         "batch.size": "1048576", "max.in.flight.requests.per.connection": "5"}


def client_cmd(client, progs, env, topic, txns, per, payload, txn_id):
    knobs = peers.props_for(client, dict(KNOBS, **{"transactional.id": txn_id}))
    b = env["STROM_BOOTSTRAP_SERVERS"]
    if client == "strom":
        return [progs["strom"], "-b", b, "bench", "txn", topic, "--transactions", str(txns), "--per-transaction",
                str(per), "--payload-file", payload] + sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])
    if client == "java":
        return peers.java_cmd(progs, env["STROM_KAFKA_LIBS"], env, ["txn", b, topic, str(txns), str(per), payload] +
                              [f"{k}={v}" for k, v in knobs.items()])
    if client == "librdkafka":
        return [progs["librdkafka"], "txn", b, topic, str(txns), str(per), f"--payload-file={payload}"] + \
            [f"{k}={v}" for k, v in knobs.items()]
    return [progs["franz-go"], "txn", "-b", b, "-topic", topic, "-transactions", str(txns), "-per-transaction",
            str(per), "-payload-file", payload] + sum((["-X", f"{k}={v}"] for k, v in knobs.items()), [])


def txn_run(a, client, progs, env, per, txns, payload, rep):
    strom, b = progs["strom"], env["STROM_BOOTSTRAP_SERVERS"]
    stamp = int(time.time() * 1000)
    topic = f"bench-s4-{client}-{per}-{rep}-{stamp}"
    peers.create_topic(strom, b, topic, a.partitions)
    label = f"{client} {per}/txn rep {rep}"
    records = txns * per
    try:
        out, err, wall, cpu, rss = peers.run_measured(client_cmd(client, progs, env, topic, txns, per, payload,
                                                                 f"bench-s4-{client}-{stamp}"))
        got = peers.last_json(out, client)
        if got["records"] != records:
            sys.exit(f"{label}: reported {got['records']} records, not {records}")
        check, _, _, _, _ = peers.run_measured([strom, "-b", b, "bench", "consume", topic, "--records", str(records),
                                                "--to-end", "--timeout-ms", "20000",
                                                "-X", "isolation.level=read_committed"])
        verified = peers.last_json(check, f"{label} read-back")
    finally:
        peers.delete_topic(strom, b, topic)
    gib = records * 100 / 2**30
    r = {"client": client, "per_transaction": per, "transactions": txns, "rep": rep, "records": records,
         "records_per_s": got["records_per_s"], "commit_p50_ms": got["commit_p50_ms"],
         "commit_p99_ms": got["commit_p99_ms"], "commit_max_ms": got["commit_max_ms"], "cpu_seconds": cpu,
         "cpu_s_per_gib": cpu / gib, "wall_seconds": wall, "max_rss_kib": rss,
         "read_committed": verified["records"], "retried_transactions": got.get("retried_transactions", 0),
         "settings": got.get("settings")}
    print(f"  {label}: {r['records_per_s']:,.0f} records/s, commit p50 {r['commit_p50_ms']:.1f} ms, p99 "
          f"{r['commit_p99_ms']:.1f} ms; read_committed {verified['records']:,}; transactions aborted and sent again: "
          f"{r['retried_transactions']}; settings "
          f"{json.dumps(r['settings'], sort_keys=True)}", flush=True)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-transaction", default="100,1000,10000", help="records per transaction, comma-separated")
    ap.add_argument("--transactions", type=int, default=100, help="transactions of each size")
    ap.add_argument("--records-per-size", type=int, default=None,
                    help="records of each size instead (transactions = this / records per transaction)")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--clients", default=",".join(peers.CLIENTS))
    ap.add_argument("--json", action="store_true", help="print one JSON object per run")
    ap.add_argument("--charts", default=charts.CHART_DIR, help="where the SVG charts go ('' for none)")
    ap.add_argument("--corpus-values", type=int, default=corpus.DEFAULT_VALUES)
    ap.add_argument("--corpus-seed", type=int, default=corpus.DEFAULT_SEED)
    a = ap.parse_args()
    sizes = [int(s) for s in a.per_transaction.split(",") if s]
    txns_of = {m: max(1, a.records_per_size // m) if a.records_per_size else a.transactions for m in sizes}
    clients = peers.parse_clients(a.clients)
    payload = peers.payload_file("corpus", 100, a.corpus_values, a.corpus_seed)
    for line in peers.describe_files(["corpus"], 100, a.corpus_values, a.corpus_seed):
        print(line, flush=True)
    env = peers.broker_env()
    progs = peers.build_clients(clients, env["STROM_KAFKA_LIBS"])
    results = []
    for per in sizes:
        for rep in range(a.reps):
            for client in clients:
                r = txn_run(a, client, progs, env, per, txns_of[per], payload, rep)
                results.append(r)
                if a.json:
                    print(json.dumps(r), flush=True)

    date = time.strftime("%Y-%m-%d")
    print(f"\nS4 transactions: " + ", ".join(f"{txns_of[m]} x {m:,}" for m in sizes)
          + f" records, 100 B corpus values, {a.partitions} partitions, " + ", ".join(f"{k}={v}" for k, v in KNOBS.items())
          + f"; median of {a.reps}; Kafka {env.get('STROM_KAFKA_VERSION')} on 127.0.0.1; {date}")
    print("\n| records/txn | transactions | client | records/s | commit p50 ms | commit p99 ms | CPU s/GiB | "
          "peak RSS MiB | records/s vs java | read_committed | sent again |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    med = {}
    for per in sizes:
        for client in clients:
            rs = [r for r in results if r["client"] == client and r["per_transaction"] == per]
            med[(per, client)] = {k: statistics.median(r[k] for r in rs) for k in
                                  ("records_per_s", "commit_p50_ms", "commit_p99_ms", "cpu_s_per_gib", "max_rss_kib")}
            med[(per, client)]["retried"] = sum(r["retried_transactions"] for r in rs)
        for client in clients:
            m = med[(per, client)]
            vs = f"{m['records_per_s'] / med[(per, 'java')]['records_per_s']:.2f}x" if "java" in clients else "-"
            print(f"| {per:,} | {txns_of[per]} | {client} | {m['records_per_s']:,.0f} | {m['commit_p50_ms']:.1f} | "
                  f"{m['commit_p99_ms']:.1f} | {m['cpu_s_per_gib']:.2f} | {m['max_rss_kib'] / 1024:.0f} | {vs} | "
                  f"{txns_of[per] * per:,} | {m['retried']} |")
    if a.charts:
        note = f"S4, {date}: transactions of 100 B corpus records, {a.partitions} partitions, acks=all, lz4, linger 5"
        groups = [f"{per:,}/txn" for per in sizes]
        for key, title, unit, name in (
                ("records_per_s", "S4 transactional produce: records/s by client", "records/s", "s4-records-per-s.svg"),
                ("cpu_s_per_gib", "S4 transactional produce: CPU seconds per GiB", "CPU s/GiB", "s4-cpu-per-gib.svg"),
                ("commit_p99_ms", "S4 commit latency p99 (begin to commit returned)", "ms", "s4-commit-p99.svg")):
            path = charts.grouped_bars(os.path.join(a.charts, name), title, groups, clients,
                                       [[med[(per, c)][key] for c in clients] for per in sizes], unit, note=note)
            print(f"chart: {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
