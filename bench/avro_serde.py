#!/usr/bin/env python3
"""Avro serde through a schema registry: Strom (strom-registry, generic values and serde
types), Apache Avro's Java GenericDatumWriter/Reader behind the same 5-byte Confluent framing,
and confluent-kafka's Python AvroSerializer/AvroDeserializer (fastavro), on the same 1000
records (bench/avro_schema.avsc: longs, strings, a double, an int, a boolean, a nullable
union, an enum, two arrays and a nested record; about 90 bytes each), each peer encoding and
decoding them N times round-robin on one thread after a warm-up, alternating peers, repeated.

Records/s are wall-clock of the measured loop; CPU ns per record is the measuring thread's
CPU time over the loop (getrusage RUSAGE_THREAD, ThreadMXBean, time.thread_time): per-core
throughput is 1e9 / that. The FNV-1a digest of the 1000 framed encodings must be equal for
every peer (the same schema id and the same bytes), or the run fails.

Strom's lines also say what its allocator costs: heap allocations per record of each phase
(counted after the timed loops) and the CPU ns of a malloc/free pair and of an Arc clone and
drop in the same process; a second table turns them into a share of the decode CPU.

Usage: bench/avro_serde.py [--records N] [--python-records N] [--reps R]
       (starts the registry with scripts/schema-registry if needed)
"""
import argparse, json, os, statistics, subprocess, sys, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = f"{ROOT}/bench/avro_schema.avsc"
SUBJECT = "bench-avro-value"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--python-records", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()

    sh([f"{ROOT}/scripts/schema-registry", "up"])
    env = dict(l.split("=", 1) for l in sh([f"{ROOT}/scripts/schema-registry", "env"]).splitlines() if "=" in l)
    url = env["STROM_SCHEMA_REGISTRY_URL"].strip("'\"")
    python = sh([f"{ROOT}/scripts/schema-registry", "python"]).strip()
    with open(SCHEMA, encoding="utf-8") as f:
        body = json.dumps({"schema": f.read()}).encode()
    req = urllib.request.Request(f"{url}/subjects/{SUBJECT}/versions", data=body, method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    schema_id = json.load(urllib.request.urlopen(req, timeout=30))["id"]

    sh(["cargo", "build", "--release", "-q", "-p", "strom-bench", "--bin", "avro_serde"], cwd=ROOT)
    cp_file = f"{ROOT}/target/avro-peer.classpath"
    sh(["mvn", "-q", "-f", f"{ROOT}/bench/avro-peer/pom.xml", "dependency:build-classpath",
        f"-Dmdep.outputFile={cp_file}"])
    with open(cp_file) as f:
        cp = f.read().strip()

    peers = {
        "strom": [f"{ROOT}/target/release/avro_serde", url, SCHEMA, str(a.records)],
        "java": ["java", "-cp", cp, f"{ROOT}/bench/avro-peer/AvroBench.java", SCHEMA, str(schema_id), str(a.records)],
        "python": [python, f"{ROOT}/bench/avro_python_peer.py", url, SCHEMA, str(a.python_records)],
    }
    results = {}
    for rep in range(a.reps):
        for name, cmd in peers.items():
            for line in sh(cmd).splitlines():
                r = json.loads(line)
                results.setdefault(r["peer"], []).append(r)
                print(f"rep {rep + 1} {r['peer']}: encode {r['encode_rps']:,.0f}/s {r['encode_cpu_ns']} ns, "
                      f"decode {r['decode_rps']:,.0f}/s {r['decode_cpu_ns']} ns", file=sys.stderr)
    digests = {p: rs[0]["digest"] for p, rs in results.items()}
    if len(set(digests.values())) != 1:
        sys.exit(f"the peers' encodings differ: {digests}")

    med = {p: {k: statistics.median(r[k] for r in rs) for k in
               ("encode_rps", "encode_cpu_ns", "decode_rps", "decode_cpu_ns")} for p, rs in results.items()}
    java = med["java-avro-1.12.2"]
    print(f"schema id {schema_id}, digest {next(iter(digests.values()))} (equal for every peer); "
          f"median of {a.reps} runs; N = {a.records:,} (Python {a.python_records:,})\n")
    print("| peer | encode records/s | encode CPU ns/record | decode records/s | decode CPU ns/record "
          "| encode per core vs Java | decode per core vs Java |")
    print("|---|---|---|---|---|---|---|")
    for p, m in med.items():
        print(f"| {p} | {m['encode_rps']:,.0f} | {m['encode_cpu_ns']:,.0f} | {m['decode_rps']:,.0f} | "
              f"{m['decode_cpu_ns']:,.0f} | {java['encode_cpu_ns'] / m['encode_cpu_ns']:.2f}x | "
              f"{java['decode_cpu_ns'] / m['decode_cpu_ns']:.2f}x |")

    alloc = {p: rs for p, rs in results.items() if "decode_allocs" in rs[0]}
    if alloc:
        free_ns = statistics.median(r["alloc_free_ns"] for rs in alloc.values() for r in rs)
        arc_ns = statistics.median(r["arc_clone_drop_ns"] for rs in alloc.values() for r in rs)
        print(f"\nAllocator cost (median malloc/free pair {free_ns:.1f} ns, Arc clone/drop {arc_ns:.1f} ns, "
              "measured in the Strom process):\n")
        print("| peer | encode allocations/record | decode allocations/record | decode CPU ns/record "
              "| malloc/free of them (est. ns) | share of decode CPU |")
        print("|---|---|---|---|---|---|")
        for p, rs in alloc.items():
            m = med[p]
            a = rs[0]["decode_allocs"] * free_ns
            print(f"| {p} | {rs[0]['encode_allocs']:.2f} | {rs[0]['decode_allocs']:.2f} | {m['decode_cpu_ns']:,.0f} "
                  f"| {a:,.0f} | {a / m['decode_cpu_ns']:.0%} |")


if __name__ == "__main__":
    main()
