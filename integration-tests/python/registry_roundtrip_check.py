"""Round trip through a Confluent-compatible Schema Registry with Confluent's own Python
serializers: register a schema, serialize a record (wire format: magic byte 0, 4-byte
big-endian schema id, payload), print the bytes as hex, and read them back with the matching
deserializer. Shows that the registry started by scripts/schema-registry serves what
Confluent's clients need, and gives reference bytes for Strom's serde tests.

usage: python registry_roundtrip_check.py [--url URL] [--topic T] [--format avro|protobuf|json|all]
Run it with the venv from `scripts/schema-registry python`. Prints one line per format:
    <format> subject=<s> id=<n> hex=<serialized bytes>
and exits non-zero on the first failure. Avro and JSON are read back through a new registry
client, so the writer schema really comes from GET /schemas/ids/{id}, not from the
serializer's cache.

Protobuf is read back without the registry: Confluent's Python client registers a Protobuf
schema as a base64 FileDescriptorProto and its deserializer fetches it with
GET /schemas/ids/{id}?format=serialized. Apicurio 3.3.3 stores that base64 text verbatim and
answers the ?format=serialized request with HTTP 500 ("Syntax error in User.proto:1:1:
unexpected label: ...", error_code 0); for a schema registered as .proto text it returns
the raw descriptor bytes as a JSON string instead of base64. Confluent's registry does
neither. Serializing and registering work.

In confluent-kafka 2.16 the default subject-name strategy first asks
GET /associations/resources/-/<topic> (newer Confluent API); Apicurio has no such resource
and answers 404, and on this machine such a 404 for an unknown path sometimes never reached
the client (2 hangs in ~60 runs). So the topic strategy is set explicitly (no associations
lookup) and requests have a timeout (the client retries a timed-out request)."""
import argparse
import os
import struct
import sys

try:
    from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
    from confluent_kafka.serialization import MessageField, SerializationContext
except ImportError:
    sys.exit("confluent-kafka is missing: run this with the python printed by `scripts/schema-registry python`")

AVRO_SCHEMA = """{
  "type": "record", "name": "User", "namespace": "strom.check",
  "fields": [
    {"name": "name", "type": "string"},
    {"name": "favorite_number", "type": ["null", "long"], "default": null}
  ]
}"""
RECORD = {"name": "Ada", "favorite_number": 42}

JSON_SCHEMA = """{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "User", "type": "object",
  "properties": {"name": {"type": "string"}, "favorite_number": {"type": "integer"}},
  "required": ["name"]
}"""


def check_frame(fmt, subject, data, client):
    """The first five bytes must be magic 0 and the id the registry has for the subject."""
    if len(data) < 5 or data[0] != 0:
        raise AssertionError(f"{fmt}: no Confluent framing (magic byte 0) in {data.hex()}")
    schema_id = struct.unpack(">I", data[1:5])[0]
    latest = client.get_latest_version(subject)
    if latest.schema_id != schema_id:
        raise AssertionError(f"{fmt}: frame names id {schema_id}, registry's latest for {subject} is {latest.schema_id}")
    print(f"{fmt} subject={subject} id={schema_id} hex={data.hex()}", flush=True)


def client_for(url):
    """A client with an empty schema cache."""
    return SchemaRegistryClient({"url": url, "timeout": 10})


# Subject <topic>-value without asking the registry for associations (see the docstring).
SERDE_CONF = {"subject.name.strategy": topic_subject_name_strategy}


def avro(url, topic):
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

    client = client_for(url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = AvroSerializer(client, AVRO_SCHEMA, conf=SERDE_CONF)(RECORD, ctx)
    check_frame("avro", f"{topic}-value", data, client)
    back = AvroDeserializer(client_for(url), conf=SERDE_CONF)(data, ctx)
    if back != RECORD:
        raise AssertionError(f"avro: read back {back!r}, wrote {RECORD!r}")


def protobuf_message_class():
    """A message class built at run time (no protoc, no generated module): package strom.check,
    message User { string name = 1; int64 favorite_number = 2; }."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="strom_check_user.proto", package="strom.check", syntax="proto3")
    msg = fdp.message_type.add(name="User")
    F = descriptor_pb2.FieldDescriptorProto
    msg.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    msg.field.add(name="favorite_number", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("strom.check.User"))


def protobuf(url, topic):
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    client = client_for(url)
    User = protobuf_message_class()
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = ProtobufSerializer(User, client, conf=SERDE_CONF)(User(**RECORD), ctx)
    check_frame("protobuf", f"{topic}-value", data, client)
    back = ProtobufDeserializer(User, conf=SERDE_CONF)(data, ctx)  # no registry client: see the module docstring
    if back.name != RECORD["name"] or back.favorite_number != RECORD["favorite_number"]:
        raise AssertionError(f"protobuf: read back {back!r}, wrote {RECORD!r}")


def json_schema(url, topic):
    from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer

    client = client_for(url)
    ctx = SerializationContext(topic, MessageField.VALUE)
    data = JSONSerializer(JSON_SCHEMA, client, conf=SERDE_CONF)(RECORD, ctx)
    check_frame("json", f"{topic}-value", data, client)
    back = JSONDeserializer(None, conf=SERDE_CONF, schema_registry_client=client_for(url))(data, ctx)
    if back != RECORD:
        raise AssertionError(f"json: read back {back!r}, wrote {RECORD!r}")


FORMATS = {"avro": avro, "protobuf": protobuf, "json": json_schema}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("STROM_SCHEMA_REGISTRY_URL", "http://127.0.0.1:28081/apis/ccompat/v7"))
    ap.add_argument("--topic", default="strom-registry-check", help="subjects are <topic>-<format>-value")
    ap.add_argument("--format", choices=[*FORMATS, "all"], default="all")
    args = ap.parse_args()
    for name in FORMATS if args.format == "all" else [args.format]:
        # One topic per format: the default subject strategy is <topic>-value, and one subject
        # cannot hold an Avro and a Protobuf schema at once under a compatibility check.
        FORMATS[name](args.url, f"{args.topic}-{name}")


if __name__ == "__main__":
    main()
