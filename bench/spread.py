"""Where a benchmark's records went: per-partition record counts of a topic, read the same
way for every client (end minus start offset from `strom offsets`), and the rule every
bench applies to what it wrote: no partition below a third of the mean, unless the
scenario asks for skew (e.g. 1000 partitions with 1 MiB sticky batches, where only a few
hundred partitions can get data). A hot partition is a production incident, so a bench
that piles data on one partition fails instead of reporting a number.
"""
import subprocess
import sys


def partition_counts(strom, bootstrap, topic):
    """Records per partition (latest - earliest offset), in partition order."""
    out = subprocess.run([strom, "-b", bootstrap, "offsets", topic], check=True, capture_output=True,
                         text=True).stdout
    counts = {}
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) == 3 and f[0].isdigit():
            counts[int(f[0])] = int(f[2]) - int(f[1])
    return [counts[p] for p in sorted(counts)]


def describe(counts):
    """One line: how many partitions got data and how far the extremes are from the mean."""
    total = sum(counts)
    used = sum(1 for c in counts if c > 0)
    if not counts or total == 0:
        return "no records"
    mean = total / len(counts)
    head = counts if len(counts) <= 12 else counts[:6] + ["..."]
    return (f"{used}/{len(counts)} partitions with data, min {min(counts) / mean:.2f}x / max "
            f"{max(counts) / mean:.2f}x the mean; per partition {head}")


def check(label, counts, allow_skew=False):
    """Prints the spread; exits when a partition got less than a third of the mean (unless
    the scenario asks for skew). Returns the number of partitions with data."""
    print(f"  {label}: {describe(counts)}", flush=True)
    if len(counts) > 1 and not allow_skew:
        mean = sum(counts) / len(counts)
        low = [p for p, c in enumerate(counts) if c < mean / 3]
        if low:
            sys.exit(f"{label}: partitions {low} got less than a third of the mean ({mean:,.0f}): {counts}")
    return sum(1 for c in counts if c > 0)
