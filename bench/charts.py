#!/usr/bin/env python3
"""Charts of the broker benchmarks as SVG files, with the Python 3 standard library only
(no matplotlib): grouped bars (records/s or CPU s/GiB by client, one group per partition
count or transaction size) and lines (latency percentiles by rate, a log scale on either axis).
bench/s1_produce.py, s2_consume.py, s3_keyed.py, s4_txn.py and s5_latency.py write theirs into
bench/charts/ (or --charts DIR), and BENCHMARKS.md shows them above the tables.

Every client has one colour in every chart (strom, java, librdkafka, franz-go); a series
name that starts with a client's name takes its colour. Each chart carries its own title and
a note line (what was run, when), so a picture still says what it shows once copied away.

Usage: bench/charts.py --self-test   writes one chart of each kind into a temporary directory,
                                     checks they are well-formed SVG with the expected shapes,
                                     and exits 1 otherwise.
"""
import math
import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART_DIR = os.path.join(ROOT, "bench", "charts")

CLIENT_COLOURS = [("strom", "#c0392b"), ("java", "#2471a3"), ("librdkafka", "#d68910"), ("franz-go", "#1e8449")]
OTHER_COLOURS = ["#7d3c98", "#5d6d7e", "#b03a2e", "#148f77", "#a04000", "#2e4053"]
DASHES = ["", "6,3", "2,3", "8,3,2,3"]
W, H = 760, 420
LEFT, RIGHT, TOP, BOTTOM = 78, 180, 48, 70
FONT = "font-family=\"DejaVu Sans, Arial, sans-serif\""


def colour(name, i=0):
    """The colour of a series: its client's, else one of the others in turn."""
    for client, c in CLIENT_COLOURS:
        if name == client or name.startswith(client + " ") or name.startswith(client + "-"):
            return c
    return OTHER_COLOURS[i % len(OTHER_COLOURS)]


def tint(hex_colour, k):
    """The k-th lighter shade of a colour (k = 0 is the colour itself)."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    f = min(0.2 * k, 0.7)
    return "#" + "".join(f"{round(c + (255 - c) * f):02x}" for c in (r, g, b))


def series_colours(names):
    """One colour per series: its client's, in lighter shades for a client's second, third, ...
    series (S2's check.crcs on and off, say)."""
    seen, out = {}, []
    for i, name in enumerate(names):
        c = colour(name, i)
        out.append(tint(c, seen.get(c, 0)))
        seen[c] = seen.get(c, 0) + 1
    return out


def nice_ticks(lo, hi, n=5):
    """About n round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(ticks[-1] + step)
    return ticks


def log_ticks(lo, hi):
    """Powers of ten covering [lo, hi] (lo > 0), with 2 and 5 between when there are few."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if b == a:
        b += 1
    ticks = [10.0 ** e for e in range(a, b + 1)]
    if len(ticks) <= 3:
        ticks = sorted(t * m for t in ticks for m in (1, 2, 5) if t * m <= 10.0 ** b)
    return ticks


def fmt_number(v):
    """A tick label: 1.5M, 20k, 0.5, 120."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:g}M"
    if a >= 1e4:
        return f"{v / 1e3:g}k"
    if a >= 1 or a == 0:
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:g}"
    return f"{v:g}"


class Svg:
    """A small SVG document: shapes appended as text, written at the end."""

    def __init__(self, title, note=None):
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">',
                      f"<title>{escape(title)}</title>",
                      f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>']
        self.text(W / 2, 24, title, size=15, anchor="middle", weight="bold")
        if note:
            self.text(W / 2, H - 10, note, size=10, anchor="middle", fill="#555")

    def text(self, x, y, s, size=11, anchor="start", fill="#222", weight="normal", rotate=None):
        rot = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
                          f'font-weight="{weight}" {FONT}{rot}>{escape(str(s))}</text>')

    def line(self, x1, y1, x2, y2, stroke="#ccc", width=1, dash=""):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                          f'stroke-width="{width}"{d}/>')

    def rect(self, x, y, w, h, fill, label=None):
        tip = f"<title>{escape(label)}</title>" if label else ""
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                          f'fill="{fill}">{tip}</rect>')

    def polyline(self, points, stroke, dash="", label=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        tip = f"<title>{escape(label)}</title>" if label else ""
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="2"{d}>{tip}</polyline>')
        for x, y in points:
            self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{stroke}"/>')

    def legend(self, entries):
        """entries: (name, colour, dash or None for a box)."""
        x, y = W - RIGHT + 14, TOP + 6
        for name, c, dash in entries:
            if dash is None:
                self.rect(x, y - 9, 12, 12, c)
            else:
                self.line(x - 2, y - 3, x + 16, y - 3, stroke=c, width=2, dash=dash)
            self.text(x + 22, y + 1, name, size=11)
            y += 18

    def write(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(self.parts + ["</svg>"]) + "\n")
        return path


def _y_axis(svg, ticks, to_y, label, log=False):
    for t in ticks:
        y = to_y(t)
        svg.line(LEFT, y, W - RIGHT, y, stroke="#e5e5e5")
        svg.text(LEFT - 6, y + 4, fmt_number(t), size=10, anchor="end")
    svg.line(LEFT, TOP, LEFT, H - BOTTOM, stroke="#888")
    svg.text(18, (TOP + H - BOTTOM) / 2, label + (" (log scale)" if log else ""), size=11, anchor="middle",
             rotate=-90)


def grouped_bars(path, title, groups, series, values, ylabel, note=None):
    """Bars of each series side by side within each group. values[g][s] is a number or None
    (no bar: that client did not run there). Returns the path written."""
    svg = Svg(title, note)
    top = max([v for row in values for v in row if v is not None] + [0])
    ticks = nice_ticks(0, top or 1)
    ymax = ticks[-1]
    plot_h = H - BOTTOM - TOP

    def to_y(v):
        return H - BOTTOM - plot_h * v / ymax

    _y_axis(svg, ticks, to_y, ylabel)
    plot_w = W - RIGHT - LEFT
    gw = plot_w / max(len(groups), 1)
    bw = gw * 0.8 / max(len(series), 1)
    fills = series_colours(series)
    for g, name in enumerate(groups):
        gx = LEFT + g * gw + gw * 0.1
        for s, sname in enumerate(series):
            v = values[g][s] if s < len(values[g]) else None
            if v is None:
                continue
            y = to_y(v)
            svg.rect(gx + s * bw, y, bw * 0.92, H - BOTTOM - y, fills[s], f"{sname}, {name}: {v:,.4g}")
            if len(series) * len(groups) <= 24:
                svg.text(gx + s * bw + bw * 0.46, y - 3, fmt_number(float(f"{v:.3g}")), size=8, anchor="middle",
                         fill="#444")
        svg.text(LEFT + g * gw + gw / 2, H - BOTTOM + 16, name, size=11, anchor="middle")
    svg.line(LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, stroke="#888")
    svg.legend([(s, fills[i], None) for i, s in enumerate(series)])
    return svg.write(path)


def lines(path, title, series, ylabel, xlabel, log_x=False, log_y=False, note=None):
    """Lines through (x, y) points. series: dicts with name, points [(x, y)], and optional
    colour and dash (default: the client's colour, solid). Returns the path written."""
    svg = Svg(title, note)
    xs = [x for s in series for x, _ in s["points"]]
    ys = [y for s in series for _, y in s["points"] if y is not None]
    if log_y:
        ys = [y for y in ys if y > 0]
    xlo, xhi = (min(xs), max(xs)) if xs else (1, 10)
    ylo, yhi = (min(ys), max(ys)) if ys else (1, 10)
    xt = log_ticks(xlo, xhi) if log_x else nice_ticks(xlo, xhi)
    yt = log_ticks(ylo, yhi) if log_y else nice_ticks(0, yhi)
    plot_w, plot_h = W - RIGHT - LEFT, H - BOTTOM - TOP

    def scale(v, ticks, log):
        lo, hi = ticks[0], ticks[-1]
        if log:
            return (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        return (v - lo) / (hi - lo) if hi > lo else 0.5

    def to_x(v):
        return LEFT + plot_w * scale(v, xt, log_x)

    def to_y(v):
        return H - BOTTOM - plot_h * scale(v, yt, log_y)

    _y_axis(svg, yt, to_y, ylabel, log_y)
    for t in xt:
        x = to_x(t)
        svg.line(x, TOP, x, H - BOTTOM, stroke="#f0f0f0")
        svg.text(x, H - BOTTOM + 16, fmt_number(t), size=10, anchor="middle")
    svg.line(LEFT, H - BOTTOM, W - RIGHT, H - BOTTOM, stroke="#888")
    svg.text(LEFT + plot_w / 2, H - BOTTOM + 36, xlabel + (" (log scale)" if log_x else ""), size=11, anchor="middle")
    entries = []
    for i, s in enumerate(series):
        c = s.get("colour") or colour(s["name"], i)
        dash = s.get("dash", "")
        pts = [(to_x(x), to_y(y)) for x, y in s["points"] if y is not None and (y > 0 or not log_y)]
        if pts:
            svg.polyline(pts, c, dash, s["name"])
        entries.append((s["name"], c, dash))
    svg.legend(entries)
    return svg.write(path)


def self_test():
    """Writes one chart of each kind and checks them: exits 1 on a problem."""
    problems = []
    with tempfile.TemporaryDirectory() as d:
        bars = grouped_bars(os.path.join(d, "bars.svg"), "records/s by client <&> test",
                            ["1 partition", "6 partitions"], ["strom", "java", "librdkafka", "franz-go"],
                            [[3.2e6, 0.9e6, 1.5e6, None], [3.1e6, 0.95e6, 1.4e6, 2.9e6]], "records/s",
                            note="self-test")
        line = lines(os.path.join(d, "lines.svg"), "latency by rate",
                     [{"name": "strom p99", "points": [(1000, 1.2), (10000, 2.5), (100000, 9.0)]},
                      {"name": "java p99", "points": [(1000, 3.0), (10000, None), (100000, 40.0)], "dash": "6,3"}],
                     "ms", "records/s", log_x=True, log_y=True, note="self-test")
        for path, shape, want in ((bars, "rect", 1 + 7 + 4), (line, "polyline", 2)):
            try:
                root = ET.parse(path).getroot()
            except ET.ParseError as e:
                problems.append(f"{path}: not well-formed XML: {e}")
                continue
            ns = "{http://www.w3.org/2000/svg}"
            if root.tag != ns + "svg":
                problems.append(f"{path}: root element is {root.tag}, not svg")
            got = len(root.findall(f".//{ns}{shape}"))
            if got != want:
                problems.append(f"{path}: {got} {shape} elements, expected {want}")
            if not root.findall(f".//{ns}title"):
                problems.append(f"{path}: no title")
        texts = [t.text for t in ET.parse(bars).getroot().iter("{http://www.w3.org/2000/svg}text")]
        if "records/s by client <&> test" not in texts:
            problems.append("the title was not escaped and read back")
    if nice_ticks(0, 3.2e6)[-1] < 3.2e6 or log_ticks(0.7, 130)[0] > 0.7 or log_ticks(0.7, 130)[-1] < 130:
        problems.append("ticks do not cover the range")
    if colour("strom (before)") != colour("strom") or colour("franz-go PollFetches") != colour("franz-go"):
        problems.append("a client's variants do not share its colour")
    if len(set(series_colours(["strom on", "strom off", "java on"]))) != 3:
        problems.append("a client's variants are not told apart by shade")
    for p in problems:
        print(f"charts self-test: {p}", file=sys.stderr)
    print("charts self-test: " + ("failed" if problems else "ok (a bar chart and a line chart, well-formed SVG)"))
    return 1 if problems else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    print(__doc__)
    sys.exit(2)
