"""What bench/s1_produce.py and bench/s2_consume.py share about their peers and payloads:
building bench/franz-peer, the payload files every client reads, and the checks that a run's
records are what the payload says (values read back, bytes on the broker's disk).
"""
import json, os, shutil, subprocess, sys

import corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRANZ = os.path.join(ROOT, "target", "franz-peer", "franz-peer")

# What each payload kind is, for the printed settings.
PAYLOADS = {
    "corpus": "the realistic corpus (bench/corpus.py): distinct event-shaped values",
    "constant": "one constant value of random uppercase letters for every record",
    "random": "fresh random uppercase letters per record (ProducerPerformance --record-size; S2 only)",
}


def build_franz():
    """Builds bench/franz-peer with `go build` (a cached build is quick) and returns its path."""
    go = shutil.which("go")
    if not go:
        sys.exit("--with-franz needs the Go toolchain (Go 1.26, https://go.dev/dl/) to build bench/franz-peer, "
                 "and `go` is not on PATH")
    os.makedirs(os.path.dirname(FRANZ), exist_ok=True)
    subprocess.run([go, "build", "-buildvcs=false", "-o", FRANZ, "."], cwd=os.path.join(ROOT, "bench", "franz-peer"),
                   check=True)
    return FRANZ


def payload_kinds(arg, allowed):
    """--payload's value as a list of kinds: both = corpus and constant, or a comma-separated list."""
    kinds = ["corpus", "constant"] if arg == "both" else [k for k in arg.split(",") if k]
    for k in kinds:
        if k not in allowed:
            sys.exit(f"--payload {arg}: {k} is not one of {', '.join(allowed)} (or both)")
    return kinds


def payload_file(kind, size, values, seed):
    """The file a payload kind is read from (None for "random", which has none)."""
    if kind == "corpus":
        return corpus.ensure(values, size, seed)
    if kind == "constant":
        return corpus.ensure_constant(size)
    return None


def describe_files(kinds, size, values, seed):
    """One line per payload kind: what it is, its file, and the file's lz4 ratio. Exits when the
    corpus does not pass bench/corpus.py's check."""
    lines = []
    for kind in kinds:
        path = payload_file(kind, size, values, seed)
        if kind == "corpus":
            vals = corpus.read(path)
            found, ratio = corpus.problems(vals, values, size, corpus.MIN_RATIO, corpus.MAX_RATIO)
            if found:
                sys.exit(f"{path}: " + "; ".join(found))
            lines.append(f"payload corpus: {PAYLOADS[kind]}; {path}, {len(vals):,} values x {size} B, seed {seed}, "
                         f"lz4 {ratio:.2f}x in 1 MiB batches")
        elif kind == "constant":
            lines.append(f"payload constant: {PAYLOADS[kind]}; {path} (one line), sent by every client")
        else:
            lines.append(f"payload random: {PAYLOADS[kind]}")
    return lines


def allowed_values(kind, path, size):
    """What a record's value may be: the set of the file's values, or a predicate for random."""
    if path:
        return set(corpus.read(path))
    return lambda v: len(v) == size and v.isalpha() and v.isupper()


def check_values(strom, bootstrap, label, topic, allowed, n=200):
    """Reads the first n records of the topic back and exits unless every value is one the
    payload allows (the file's values): each client really sent the payload. Returns n."""
    out = subprocess.run([strom, "-b", bootstrap, "consume", topic, "--count", str(n)], check=True,
                         capture_output=True, timeout=120).stdout
    vals = out.split(b"\n")[:-1] if out.endswith(b"\n") else out.split(b"\n")
    ok = (lambda v: v in allowed) if isinstance(allowed, set) else allowed
    bad = [v for v in vals if not ok(v)]
    if len(vals) != n or bad:
        sys.exit(f"{label}: of {len(vals)} records read back ({n} wanted), {len(bad)} do not carry the payload's "
                 f"values (first: {bad[0][:120] if bad else None!r})")
    return n


def disk_bytes(strom, bootstrap, topic):
    """Bytes of the topic's log segments in the broker's log directories (DescribeLogDirs'
    replica sizes): what the client's batching and compression made of the payload."""
    out = subprocess.run([strom, "-b", bootstrap, "log-dirs", "describe", "--topic", topic, "--json"], check=True,
                         capture_output=True, text=True).stdout
    return sum(r["size"] for b in json.loads(out) for d in b["log_dirs"] for r in d["replicas"]
               if r["topic"] == topic and not r["is_future"])
