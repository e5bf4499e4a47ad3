"""Parses Prometheus text exposition (stdin) with prometheus_client's own parser and prints
one JSON object per sample: {"family", "type", "name", "labels", "value"}. Used by the
metrics tests so the exposition is checked by a real parser, not by string matching."""
import json
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_client is missing: install python3-prometheus-client (Debian) or pip install prometheus_client")

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        value = None if math.isnan(s.value) else s.value
        print(json.dumps({"family": family.name, "type": family.type, "name": s.name,
                          "labels": s.labels, "value": value}))
