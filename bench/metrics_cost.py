#!/usr/bin/env python3
"""What metrics recording costs: S1 (produce) and S2 (consume) with two `strom` binaries in
the same run, alternating: BASE, HEAD's tree with bench/metrics-off.patch applied (every
recording call -- counters, gauges, histograms, the `metrics` facade -- returns at once, so
nothing else differs), and HEAD, which records every producer, consumer and node metric.
Records/s and CPU seconds per GiB (from wait4() on each process) are the medians of the
reps; the issue's bound is a cost of at most 3%.

Usage: bench/metrics_cost.py [--base /path/to/strom] [--records N] [--reps R]
       (HEAD is target/release/strom, built here; without --base, BASE is built here from a
       worktree of HEAD with the patch, into target/metrics-off; the broker is started if
       needed)
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S1 = {"acks": "all", "enable.idempotence": "true", "compression.type": "lz4", "linger.ms": "5",
      "batch.size": "1048576", "max.in.flight.requests.per.connection": "5"}


def timed(cmd):
    """(stdout, cpu seconds) of cmd, from wait4()."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed: {err.decode()[-2000:]}")
    return out.decode(), ru.ru_utime + ru.ru_stime


def build_base():
    """HEAD with bench/metrics-off.patch, built into target/metrics-off; its strom binary."""
    src = f"{ROOT}/target/metrics-off-src"
    subprocess.run(["git", "worktree", "remove", "--force", src], cwd=ROOT, capture_output=True)
    subprocess.run(["git", "worktree", "add", "--detach", "--force", src, "HEAD"], cwd=ROOT, check=True,
                   capture_output=True)
    subprocess.run(["git", "apply", f"{ROOT}/bench/metrics-off.patch"], cwd=src, check=True)
    target = f"{ROOT}/target/metrics-off"
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=src, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": target})
    subprocess.run(["git", "worktree", "remove", "--force", src], cwd=ROOT, capture_output=True)
    return f"{target}/release/strom"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", help="a strom binary that records no metrics (default: built here)")
    ap.add_argument("--records", type=int, default=2_000_000)
    ap.add_argument("--record-size", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=6)
    a = ap.parse_args()
    env = dict(line.split("=", 1) for line in subprocess.run(
        [f"{ROOT}/scripts/kafka", "env"], capture_output=True, text=True, check=True).stdout.split()
        if "=" in line)
    bootstrap = env["STROM_BOOTSTRAP_SERVERS"].strip("'\"")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "strom-cli"], cwd=ROOT, check=True)
    if a.base is None:
        a.base = build_base()
    binaries = {"base": a.base, "metrics": f"{ROOT}/target/release/strom"}
    gib = a.records * a.record_size / (1 << 30)
    rows = {(s, b): [] for s in ("S1 produce", "S2 consume") for b in binaries}
    for rep in range(a.reps):
        for name, strom in (binaries.items() if rep % 2 == 0 else reversed(list(binaries.items()))):
            topic = f"bench-metrics-{name}-{rep}-{int(time.time())}"
            subprocess.run([strom, "-b", bootstrap, "topics", "create", topic, "--partitions",
                            str(a.partitions)], check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            cmd = [strom, "-b", bootstrap, "bench", "produce", topic, "--records", str(a.records),
                   "--record-size", str(a.record_size)] + sum((["-X", f"{k}={v}"] for k, v in S1.items()), [])
            out, cpu = timed(cmd)
            rows[("S1 produce", name)].append((json.loads(out.strip().splitlines()[-1])["records_per_s"], cpu / gib))
            cmd = [strom, "-b", bootstrap, "bench", "consume", topic, "--records", str(a.records)]
            out, cpu = timed(cmd)
            rows[("S2 consume", name)].append((json.loads(out.strip().splitlines()[-1])["records_per_s"], cpu / gib))
            subprocess.run([strom, "-b", bootstrap, "topics", "delete", topic], stderr=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL)
            print(f"rep {rep} {name}: S1 {rows[('S1 produce', name)][-1][0]:,.0f} rec/s, "
                  f"S2 {rows[('S2 consume', name)][-1][0]:,.0f} rec/s", file=sys.stderr, flush=True)
    print(f"Metrics cost: {a.records:,} x {a.record_size} B, {a.partitions} partitions, S1 knobs "
          f"{', '.join(f'{k}={v}' for k, v in S1.items())}; median of {a.reps} alternating runs")
    print()
    print("| scenario | build | records/s | CPU s/GiB | records/s vs base | CPU/GiB vs base |")
    print("|---|---|---|---|---|---|")
    for scenario in ("S1 produce", "S2 consume"):
        med = {b: (statistics.median(r for r, _ in rows[(scenario, b)]),
                   statistics.median(c for _, c in rows[(scenario, b)])) for b in binaries}
        for b in binaries:
            rps, cpu = med[b]
            print(f"| {scenario} | {b} | {rps:,.0f} | {cpu:.2f} | {rps / med['base'][0]:.3f}x | "
                  f"{cpu / med['base'][1]:.3f}x |")


if __name__ == "__main__":
    main()
