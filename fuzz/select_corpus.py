#!/usr/bin/env python3
"""Picks at most CAP inputs covering the most edges, so the committed corpus stays small.

    select_corpus.py FUZZ_BINARY CAP DEST SOURCE_DIR...

libFuzzer's own merge keeps every input that adds a feature (hit-count buckets included),
hundreds per target. This asks it for each input's edges (`-set_cover_merge=1
-use_counters=0 -merge_control_file`), then greedily takes the input adding the most
uncovered edges (the smaller on a tie) until CAP inputs or no gain. DEST is replaced by the
selection; it may also be a source. Inputs that crash, or allocate more than 256 MiB, are
never selected (the replay test runs on small CI machines).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    binary, cap, dest, sources = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    with tempfile.TemporaryDirectory() as tmp:
        control = os.path.join(tmp, "control")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run(
            [binary, "-set_cover_merge=1", "-use_counters=0", "-malloc_limit_mb=256",
             "-rss_limit_mb=2048", "-timeout=10", f"-merge_control_file={control}",
             f"-artifact_prefix={tmp}/", out, *sources],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        with open(control) as f:
            lines = f.read().splitlines()
        n = int(lines[0])
        files = lines[2:2 + n]
        features = {}
        for line in lines[2 + n:]:
            if line.startswith("FT "):
                parts = line.split()
                features[int(parts[1])] = set(map(int, parts[2:]))
        data = {i: open(files[i], "rb").read() for i in features}
        failed = [f for f in os.listdir(tmp) if f not in ("control", "out")]

    total = set().union(*features.values()) if features else set()
    covered, chosen = set(), []
    while len(chosen) < cap:
        best = max(features, key=lambda i: (len(features[i] - covered), -len(data[i])),
                   default=None)
        if best is None or not features[best] - covered:
            break
        covered |= features.pop(best)
        chosen.append(best)

    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for i in chosen:
        base = os.path.basename(files[i])
        name = base if base.startswith("seed-") else hashlib.sha1(data[i]).hexdigest()
        with open(os.path.join(dest, name), "wb") as f:
            f.write(data[i])
    print(f"{os.path.basename(binary)}: kept {len(chosen)} of {n} inputs, "
          f"{len(covered)} of {len(total)} edges")
    if failed:
        print(f"  {len(failed)} inputs crashed or allocated too much, left out (reproduce "
              f"with `{binary} <file>`): {', '.join(sorted(failed)[:5])}", file=sys.stderr)


if __name__ == "__main__":
    main()
