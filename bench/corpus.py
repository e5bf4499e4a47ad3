#!/usr/bin/env python3
"""The payload corpus every client of the broker benchmarks sends (bench/s1_produce.py,
bench/s2_consume.py): N distinct values of exactly SIZE bytes, shaped like the events real
producers send (JSON with a timestamp, an event type, ids, a path, a little free text), one
per line. Seeded: the same arguments write the same bytes (Python 3 stdlib only).

The file is what Java's ProducerPerformance reads with --payload-file (values split on
"\\n", one picked at random per record), and what `strom bench produce --payload-file`,
bench/rdkafka-peer (--payload-file=F) and bench/franz-peer (-payload-file F) send in turn.
Values are ASCII without "\\n" or "\\r", so a value is the same bytes in every client.

How well it compresses is part of the workload: lz4 shrinks the whole file 2x to 3x when it
is cut into Kafka-sized batches (batch.size 1 MiB, lz4 frames of independent 64 KiB blocks
at the fast level, as Kafka's lz4 batches are; measured with the `lz4` command-line tool).
On the broker's disk, record framing included, a corpus topic is 2.0-2.5x smaller than its
values, one constant value about 19x, and Java's default payload (fresh random letters per
record, which lz4 cannot shrink) about 0.94x.

Usage:
  bench/corpus.py [--values N] [--size 100] [--seed 1] [--out FILE]   write (default: under target/bench-corpus/)
  bench/corpus.py --check [FILE]    check a corpus: count, size, distinct, one line each, ratio in
                                    [--min-ratio, --max-ratio]; exits 1 on any failure
  bench/corpus.py --constant [--size 100] [--out FILE]   the one-value file of the constant payload
  bench/corpus.py --contains FILE < VALUES   exits 1 unless every line of stdin is one of FILE's values
"""
import argparse, hashlib, os, random, shutil, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "target", "bench-corpus")
DEFAULT_VALUES = 100_000
DEFAULT_SEED = 1
BATCH_BYTES = 1 << 20  # S1's batch.size
MIN_RATIO, MAX_RATIO = 2.0, 3.0
MIN_TEXT = 12  # bytes of free text each value keeps

EVENTS = [("page_view", 30), ("click", 20), ("add_to_cart", 8), ("search", 10), ("login", 5), ("logout", 3),
          ("checkout", 4), ("payment_ok", 3), ("payment_failed", 1), ("signup", 2), ("scroll", 10),
          ("video_play", 4)]
PATHS = ["/", "/home", "/cart", "/checkout", "/search", "/account", "/orders", "/help", "/login",
         "/p/shoes", "/p/jackets", "/p/lamps", "/p/books", "/p/phones", "/p/coffee", "/c/sale", "/c/new",
         "/c/kids", "/c/garden", "/blog/2026/spring", "/settings/privacy", "/api/v2/items"]
COUNTRIES = ["DE", "NL", "US", "FR", "GB", "SE", "PL", "ES", "IT", "BR", "IN", "JP"]
DEVICES = ["ios", "android", "web", "web", "web", "tv"]
WORDS = ("the a to of and in for on with is it was item order user page cart price size color blue red "
         "green black white small large medium returned shipped delayed fast slow ok error retry timeout "
         "payment card failed declined approved coupon code applied free shipping over week today new old "
         "good great bad again please help thanks search results empty found more less than store near "
         "open closed").split()


def constant(size):
    """The constant value `strom bench produce` and the peers sent before the corpus: random
    uppercase letters from one xorshift seed (cli/src/bench/mod.rs), the same bytes every time."""
    seed, mask, out = 0x2545_F491_4F6C_DD1D, (1 << 64) - 1, bytearray()
    for _ in range(size):
        seed ^= (seed << 13) & mask
        seed ^= seed >> 7
        seed ^= (seed << 17) & mask
        out.append(ord("A") + seed % 26)
    return bytes(out)


def _value(rng, ts, size):
    """One event of exactly `size` bytes, or None when `size` is too small for one: the
    timestamp, the event type and a user id, then optional fields in random order while at
    least MIN_TEXT bytes stay free, then a message of words filling the rest."""
    ev = rng.choices([e for e, _ in EVENTS], weights=[w for _, w in EVENTS])[0]
    head = f'{{"ts":{ts},"ev":"{ev}","uid":{rng.randrange(1, 250_000)}'
    optional = [f',"sid":"{rng.getrandbits(32):08x}"', f',"dev":"{rng.choice(DEVICES)}"',
                f',"geo":"{rng.choice(COUNTRIES)}"', f',"path":"{rng.choice(PATHS)}"',
                f',"qty":{rng.randrange(1, 6)}', f',"amt":{rng.randrange(1, 500)}.{rng.randrange(100):02d}']
    rng.shuffle(optional)
    tail = ',"msg":"'
    for field in optional:
        if len(head) + len(field) + len(tail) + 2 + MIN_TEXT <= size:
            head += field
    room = size - len(head) - len(tail) - 2  # the closing quote and brace
    if room < 1:
        return None
    text = ""
    while len(text) < room:
        text += (" " if text else "") + rng.choice(WORDS)
    return (head + tail + text[:room].rstrip().ljust(room, ".") + '"}').encode("ascii")


def generate(values, size, seed):
    """`values` distinct events of exactly `size` bytes, in time order (about 0-40 ms apart,
    as a busy topic's events are)."""
    rng = random.Random(seed)
    ts = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms
    out, seen = [], set()
    while len(out) < values:
        ts += rng.randrange(0, 40)
        v = _value(rng, ts, size)
        if v is None:
            sys.exit(f"a value of {size} bytes cannot hold an event; use --size 64 or more")
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def default_path(values, size, seed):
    return os.path.join(CACHE, f"corpus-{values}x{size}B-seed{seed}.txt")


def write(path, vals):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(b"\n".join(vals) + b"\n")
    os.replace(tmp, path)
    return path


def ensure(values=DEFAULT_VALUES, size=100, seed=DEFAULT_SEED):
    """The corpus file for these arguments, written once into target/bench-corpus/."""
    path = default_path(values, size, seed)
    if not os.path.exists(path):
        write(path, generate(values, size, seed))
    return path


def ensure_constant(size=100):
    """The one-line file of the constant payload (Java sends it through --payload-file)."""
    path = os.path.join(CACHE, f"constant-{size}B.txt")
    if not os.path.exists(path):
        write(path, [constant(size)])
    return path


def read(path):
    """The values of a payload file as Java's ProducerPerformance splits it: on "\\n", trailing
    empty values dropped."""
    vals = open(path, "rb").read().split(b"\n")
    while vals and not vals[-1]:
        vals.pop()
    return vals


def read_stdin():
    data = sys.stdin.buffer.read().split(b"\n")
    while data and not data[-1]:
        data.pop()
    return data


def lz4_ratio(vals, batch_bytes=BATCH_BYTES):
    """Uncompressed / compressed bytes of the values cut into batches of batch_bytes, each
    compressed as one lz4 frame of independent 64 KiB blocks at the fast level (Kafka's lz4
    batch format), with the lz4 tool."""
    lz4 = shutil.which("lz4")
    if not lz4:
        sys.exit("the lz4 command-line tool is needed to measure the ratio (apt-get install lz4)")
    raw = packed = 0
    batch, size = [], 0
    with tempfile.TemporaryDirectory() as d:
        def flush():
            nonlocal raw, packed, batch, size
            if not batch:
                return
            data = b"".join(batch)
            src = os.path.join(d, "batch")
            with open(src, "wb") as f:
                f.write(data)
            out = subprocess.run([lz4, "-1", "-B4", "-BI", "-c", "-q", src], check=True, capture_output=True).stdout
            raw, packed = raw + len(data), packed + len(out)
            batch, size = [], 0

        for v in vals:
            if size + len(v) > batch_bytes:
                flush()
            batch.append(v)
            size += len(v)
        flush()
    return raw / packed


def problems(vals, values, size, min_ratio, max_ratio):
    """What is wrong with a corpus (an empty list when nothing is), and its lz4 ratio."""
    found = []
    if len(vals) != values:
        found.append(f"{len(vals):,} values, not {values:,}")
    wrong = [i for i, v in enumerate(vals) if len(v) != size]
    if wrong:
        found.append(f"{len(wrong):,} values are not {size} bytes (first: line {wrong[0] + 1}, "
                     f"{len(vals[wrong[0]])} bytes)")
    bad = [i for i, v in enumerate(vals) if not (v.isascii() and v.decode("ascii").isprintable())]
    if bad:
        found.append(f"{len(bad):,} values hold bytes that are not printable ASCII (first: line {bad[0] + 1})")
    dups = len(vals) - len(set(vals))
    if dups:
        found.append(f"{dups:,} values are repeats")
    ratio = lz4_ratio(vals) if vals else float("nan")
    if not min_ratio <= ratio <= max_ratio:
        found.append(f"lz4 ratio {ratio:.2f}x, outside [{min_ratio}, {max_ratio}]")
    return found, ratio


def self_test(vals, values, size, min_ratio, max_ratio):
    """The checker must reject a corpus with a repeat, a wrong size, or one constant value:
    a check that cannot fail would prove nothing."""
    sample = vals[:5000]
    cases = {
        "a repeated value": sample[:-1] + [sample[0]],
        "a value one byte short": sample[:-1] + [sample[-1][:-1]],
        "one constant value": [constant(size)] * len(sample),
    }
    for name, case in cases.items():
        found, _ = problems(case, len(sample), size, min_ratio, max_ratio)
        if not found:
            sys.exit(f"self-test: the check accepted a corpus with {name}")
    return list(cases)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--values", type=int, default=DEFAULT_VALUES, help="distinct values to write")
    ap.add_argument("--size", type=int, default=100, help="bytes per value")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", help="where to write (default: target/bench-corpus/...)")
    ap.add_argument("--constant", action="store_true", help="write the one-value file of the constant payload")
    ap.add_argument("--check", nargs="?", const="", metavar="FILE",
                    help="check a corpus (default: the one these arguments write, written first if missing)")
    ap.add_argument("--contains", metavar="FILE",
                    help="read values from stdin, one per line; exit 1 unless each is one of FILE's values")
    ap.add_argument("--min-ratio", type=float, default=MIN_RATIO)
    ap.add_argument("--max-ratio", type=float, default=MAX_RATIO)
    a = ap.parse_args()

    if a.contains:
        allowed = set(read(a.contains))
        got = read_stdin()
        bad = [v for v in got if v not in allowed]
        if bad:
            sys.exit(f"{len(bad)} of {len(got)} values are not in {a.contains} (first: {bad[0][:120]!r})")
        print(f"ok: all {len(got)} values are in {a.contains}")
        return
    if a.constant:
        path = write(a.out, [constant(a.size)]) if a.out else ensure_constant(a.size)
        print(path)
        return
    if a.check is not None:
        path = a.check or ensure(a.values, a.size, a.seed)
        vals = read(path)
        found, ratio = problems(vals, a.values, a.size, a.min_ratio, a.max_ratio)
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:16]
        if not a.check:
            again = hashlib.sha256(b"\n".join(generate(a.values, a.size, a.seed)) + b"\n").hexdigest()[:16]
            if again != digest:
                found.append(f"seed {a.seed} generates {again}, the file is {digest}")
        print(f"{path}: {len(vals):,} values, sha256 {digest}, lz4 ratio {ratio:.2f}x "
              f"(batches of {BATCH_BYTES} B, lz4 -1, 64 KiB independent blocks)")
        if found:
            sys.exit("corpus check failed: " + "; ".join(found))
        rejected = self_test(vals, a.values, a.size, a.min_ratio, a.max_ratio)
        print(f"ok: {a.values:,} distinct printable ASCII values of {a.size} B, one per line, ratio within "
              f"[{a.min_ratio}, {a.max_ratio}]; the check rejects " + ", ".join(rejected))
        return
    path = write(a.out, generate(a.values, a.size, a.seed)) if a.out else ensure(a.values, a.size, a.seed)
    print(f"{path}: lz4 ratio {lz4_ratio(read(path)):.2f}x")


if __name__ == "__main__":
    main()
