"""The Python peer of bench/avro_serde.py: confluent-kafka's AvroSerializer and
AvroDeserializer (fastavro underneath) through the same schema registry, on the same 1000
records as the Strom and Java peers, each encoded and decoded N times round-robin after a
warm-up. Prints one JSON line like the other peers (CPU: this thread's, time.thread_time).

  python avro_python_peer.py REGISTRY_URL SCHEMA_FILE N
"""
import json
import sys
import time

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

POOL = 1000


def record(i):
    return {
        "id": i * 7919,
        "user": f"user-{i % 10000}",
        "score": (i % 1000) / 8.0,
        "count": i % 100000,
        "active": i % 2 == 0,
        "country": None if i % 3 == 0 else "NO",
        "kind": ["VIEW", "CLICK", "BUY"][i % 3],
        "tags": [f"t{i % 5}", f"t{i % 7}"],
        "amounts": [i, i * 2, i * 3],
        "session": {"sid": f"s-{i % 777}", "start": 1_700_000_000_000 + i},
    }


def measure(n, f):
    for k in range(min(n, 20000)):
        f(k % POOL)
    c0, t0 = time.thread_time(), time.monotonic()
    for k in range(n):
        f(k % POOL)
    cpu, wall = time.thread_time() - c0, time.monotonic() - t0
    return n / wall, cpu * 1e9 / n


def main():
    url, schema_file, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(schema_file, encoding="utf-8") as f:
        schema = f.read()
    # A timeout, so a response the registry never sends is retried rather than waited for.
    registry = SchemaRegistryClient({"url": url, "timeout": 10})
    ser = AvroSerializer(registry, schema, conf={"auto.register.schemas": True})
    de = AvroDeserializer(registry)
    ctx = SerializationContext("bench-avro", MessageField.VALUE)
    pool = [record(i) for i in range(POOL)]
    framed = [ser(r, ctx) for r in pool]
    digest = 0xCBF29CE484222325
    for e in framed:
        for b in e:
            digest = ((digest ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    enc_rps, enc_cpu = measure(n, lambda i: ser(pool[i], ctx))
    dec_rps, dec_cpu = measure(n, lambda i: de(framed[i], ctx))
    print(json.dumps({"peer": "python-confluent-kafka", "records": n, "encode_rps": round(enc_rps),
                      "encode_cpu_ns": round(enc_cpu, 1), "decode_rps": round(dec_rps),
                      "decode_cpu_ns": round(dec_cpu, 1), "digest": f"{digest:016x}"}))


if __name__ == "__main__":
    main()
