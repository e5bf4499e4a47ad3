"""Confluent's own Python serializers (confluent-kafka[schemaregistry,avro,json]) as the
interop peer of strom-registry: they write the Confluent wire format, and read it back.

Every mode takes --format avro (the default), --format json (JSON Schema: SCHEMA_FILE is
a JSON Schema, records go through JSONSerializer / JSONDeserializer) or --format protobuf
(SCHEMA_FILE is a serialized FileDescriptorSet and --message NAME the message type; a class
is built from them at run time, records go through ProtobufSerializer / ProtobufDeserializer
and are printed with json_format, original field names). With --format protobuf,
--skip-known-types false makes the serializer register the well-known types it imports
(Confluent's skip.known.types, true by default).

  confluent_serde.py serialize REGISTRY_URL TOPIC SCHEMA_FILE < json-lines
      one hex line per JSON record: its value as Confluent's AvroSerializer frames it
  confluent_serde.py produce BOOTSTRAP REGISTRY_URL TOPIC SCHEMA_FILE < json-lines
      produces each JSON record as an Avro value (key: its "name" field as UTF-8)
  confluent_serde.py consume BOOTSTRAP REGISTRY_URL TOPIC COUNT
      reads COUNT records of partition 0 from the beginning and prints each value as a JSON
      line, decoded by Confluent's AvroDeserializer (the writer schema from the registry)

Exits non-zero with the exception's message on any failure.
"""

import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from confluent_kafka.serialization import MessageField, SerializationContext


FORMAT = "avro"
MESSAGE = None
# --skip-known-types false: the Protobuf serializer registers Google's well-known types it
# imports (google/protobuf/*.proto) as schemas of their own and references them.
SKIP_KNOWN_TYPES = True
PROTO_CLASS = None


def proto_class(descriptor_set_file):
    global PROTO_CLASS
    if PROTO_CLASS is None:
        with open(descriptor_set_file, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        pool = descriptor_pool.DescriptorPool()
        for fd in fds.file:
            pool.Add(fd)
        PROTO_CLASS = message_factory.GetMessageClass(pool.FindMessageTypeByName(MESSAGE))
    return PROTO_CLASS


def to_wire(record):
    """A JSON record as the serializer takes it."""
    if FORMAT == "protobuf":
        return json_format.ParseDict(record, PROTO_CLASS())
    return record


def to_json(value):
    if FORMAT == "protobuf":
        return json_format.MessageToDict(value, preserving_proto_field_name=True)
    return value


def registry_client(url):
    """The registry client. Its timeout matters: without one (Confluent's default) a response
    the registry never sends leaves the client waiting forever; Apicurio 3.3.3 here drops the
    answer to about one request in a few hundred (it logs the 404 to an association lookup,
    nothing arrives). With a timeout the client retries the request (max.retries)."""
    return SchemaRegistryClient({"url": url, "timeout": 10})


def serializer(url, schema_file):
    registry = registry_client(url)
    if FORMAT == "protobuf":
        cls = proto_class(schema_file)
        conf = {"use.deprecated.format": False, "auto.register.schemas": True, "skip.known.types": SKIP_KNOWN_TYPES}
        return ProtobufSerializer(cls, registry, conf)
    with open(schema_file, encoding="utf-8") as f:
        schema = f.read()
    if FORMAT == "json":
        return JSONSerializer(schema, registry, conf={"auto.register.schemas": True})
    return AvroSerializer(registry, schema, conf={"auto.register.schemas": True})


def deserializer(url, schema_file=None):
    registry = registry_client(url)
    if FORMAT == "protobuf":
        return ProtobufDeserializer(proto_class(schema_file), {"use.deprecated.format": False})
    if FORMAT == "json":
        return JSONDeserializer(None, schema_registry_client=registry)
    return AvroDeserializer(registry)


def serialize(url, topic, schema_file):
    ser = serializer(url, schema_file)
    ctx = SerializationContext(topic, MessageField.VALUE)
    for line in sys.stdin:
        if line.strip():
            print(ser(to_wire(json.loads(line)), ctx).hex(), flush=True)


def produce(bootstrap, url, topic, schema_file):
    ser = serializer(url, schema_file)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failed = []
    for line in sys.stdin:
        if not line.strip():
            continue
        record = json.loads(line)
        producer.produce(
            topic,
            key=str(record.get("name", record.get("id", ""))).encode("utf-8"),
            value=ser(to_wire(record), ctx),
            partition=0,
            on_delivery=lambda err, _msg: err and failed.append(err),
        )
        producer.poll(0)
    left = producer.flush(30)
    if left or failed:
        raise SystemExit(f"{left} records undelivered, errors: {failed}")


def consume(bootstrap, url, topic, count, schema_file=None):
    de = deserializer(url, schema_file)
    ctx = SerializationContext(topic, MessageField.VALUE)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "confluent-serde-interop",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = 0
    idle = 0
    while got < count:
        msg = consumer.poll(1.0)
        if msg is None:
            idle += 1
            if idle > 60:
                raise SystemExit(f"only {got} of {count} records within 60 s")
            continue
        if msg.error():
            raise SystemExit(str(msg.error()))
        print(json.dumps(to_json(de(msg.value(), ctx)), sort_keys=True), flush=True)
        got += 1
    consumer.close()


def main():
    global FORMAT, MESSAGE, SKIP_KNOWN_TYPES
    argv = sys.argv[1:]
    if "--skip-known-types" in argv:
        i = argv.index("--skip-known-types")
        SKIP_KNOWN_TYPES = argv[i + 1] == "true"
        del argv[i : i + 2]
    if "--format" in argv:
        i = argv.index("--format")
        FORMAT = argv[i + 1]
        del argv[i : i + 2]
    if "--message" in argv:
        i = argv.index("--message")
        MESSAGE = argv[i + 1]
        del argv[i : i + 2]
    mode, *args = argv
    if mode == "serialize":
        serialize(*args)
    elif mode == "produce":
        produce(*args)
    elif mode == "consume":
        consume(args[0], args[1], args[2], int(args[3]), *args[4:])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
