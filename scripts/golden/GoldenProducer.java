// Produces the "golden" record batches of protocol/tests/golden/ with the real Java
// KafkaProducer and writes, per case, the expectations the Rust test compares against.
// Run by scripts/golden/capture (which also copies the partition log segments); see
// protocol/tests/golden/README.md.
//
// usage: GoldenProducer <bootstrap> <out-dir> <run-id> <broker-version>
//
// One topic per case (1 partition, retention.ms=-1 and a huge segment.ms so the old CreateTime
// timestamps neither get the segment deleted by retention nor make the broker roll it), named golden-<case>-<run-id>. For every case it writes
// <out-dir>/<case>.expect and appends "<case> <topic>" to <out-dir>/topics.txt.
//
// Expectations file format (line based, '#' starts a comment line):
//   case <name> | kafka_clients <v> | kafka_broker <v> | capture_start_ms <ms> | capture_end_ms <ms>
//   batch                        starts a batch; the fields below belong to the last "batch"
//   base_offset <n> | last_offset_delta <n> | records_count <n> | compression <codec>
//   timestamp_type CreateTime|LogAppendTime | transactional <bool> | control <bool>
//   producer_id <n> | producer_epoch <n> | base_sequence <n> | max_timestamp <n>|any
//   record <offset> <timestamp> <key> <value> <header count> [<header key> <header value>]...
//   control commit|abort <coordinator epoch> <offset>   (the control record of a control batch)
// Bytes are written as "null" or "x:" followed by lowercase hex ("x:" alone = empty).
// Offsets and timestamps of records are the ones the broker returned (RecordMetadata); for
// LogAppendTime that is the broker's append time. "any" for max_timestamp (control batches:
// the coordinator's clock) means "between capture_start_ms and capture_end_ms".

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.utils.AppInfoParser;

public final class GoldenProducer {
    static final long DAY = 86_400_000L;
    /** 2001-09-09T01:46:40Z: in the past, so the broker's message.timestamp.after.max.ms never rejects it. */
    static final long BASE = 1_000_000_000_000L;
    /** 25 years (9131 days): a timestamp delta far beyond 2^31 ms (about 24.9 days). */
    static final long DECADES = 9131L * DAY;

    static String bootstrap;
    static Path outDir;
    static String runId;
    static String brokerVersion;
    static Admin admin;

    /** A record as sent. */
    static final class Sent {
        final long timestamp;
        final byte[] key;
        final byte[] value;
        final List<Header> headers;
        RecordMetadata meta;

        Sent(long timestamp, byte[] key, byte[] value, List<Header> headers) {
            this.timestamp = timestamp;
            this.key = key;
            this.value = value;
            this.headers = headers;
        }
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * The records of a case: keys (some null, one empty, one binary), values (one null, one
     * empty, one of several KB, the rest compressible text), headers (none, duplicate keys "h"
     * in order, a null and an empty header value, a non-ASCII key), timestamps BASE + i*3 days
     * except one 25 years after and one 25 years before BASE.
     */
    static List<Sent> records(int n, String tag) {
        List<Sent> out = new ArrayList<>();
        int nullValue = n > 7 ? 7 : n - 1;
        for (int i = 0; i < n; i++) {
            long ts = BASE + i * 3 * DAY;
            if (i == n - 3) {
                ts = BASE + DECADES;
            } else if (i == n - 2) {
                ts = BASE - DECADES;
            }
            byte[] key;
            if (i % 5 == 3) {
                key = null;
            } else if (i == 1) {
                key = new byte[0];
            } else if (i == 2) {
                key = new byte[] {0x00, (byte) 0xff, (byte) 0x80, 0x7f, 0x01};
            } else {
                key = utf8("key-" + i);
            }
            byte[] value;
            if (i == nullValue) {
                value = null;
            } else if (i == 5) {
                value = new byte[0];
            } else if (i == 9) {
                StringBuilder sb = new StringBuilder();
                for (int j = 0; sb.length() < 3000; j++) {
                    sb.append("large value ").append(tag).append(' ').append(j).append("; ");
                }
                value = utf8(sb.toString());
            } else {
                value = utf8("value-" + i + " of " + tag + ": the quick brown fox jumps over the lazy dog");
            }
            List<Header> headers = new ArrayList<>();
            switch (i % 4) {
                case 0:
                    break;
                case 1:
                    headers.add(new RecordHeader("h", utf8("first")));
                    headers.add(new RecordHeader("h", utf8("second")));
                    break;
                case 2:
                    headers.add(new RecordHeader("h", utf8("a")));
                    headers.add(new RecordHeader("n", null));
                    headers.add(new RecordHeader("h", utf8("b")));
                    headers.add(new RecordHeader("e", new byte[0]));
                    break;
                default:
                    headers.add(new RecordHeader("trace-id", utf8(String.format("%032x", i * 7919L))));
                    headers.add(new RecordHeader("ключ", utf8("значение")));
                    break;
            }
            out.add(new Sent(ts, key, value, headers));
        }
        return out;
    }

    static Properties producerProps(String compression) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, compression);
        // Everything waits for flush(): one batch per case.
        p.put(ProducerConfig.LINGER_MS_CONFIG, "60000");
        p.put(ProducerConfig.BATCH_SIZE_CONFIG, String.valueOf(1 << 20));
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "300000");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        // Idempotence is on by default since 3.0; the plain cases must have producer id -1.
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "false");
        p.put(ProducerConfig.CLIENT_ID_CONFIG, "golden-producer");
        return p;
    }

    static String topicFor(String caseName) {
        return "golden-" + caseName + "-" + runId;
    }

    static TopicPartition createTopic(String caseName, Map<String, String> extra) throws Exception {
        String topic = topicFor(caseName);
        Map<String, String> configs = new HashMap<>(extra);
        configs.put("retention.ms", "-1");
        configs.put("retention.bytes", "-1");
        // The broker rolls a segment when its first batch's max timestamp is older than
        // segment.ms (7 days by default): with 2001..2026 timestamps the transaction marker would
        // land in a second segment. 1000 years keeps each case in one segment.
        configs.put("segment.ms", String.valueOf(1000L * 366 * DAY));
        admin.createTopics(Collections.singleton(new NewTopic(topic, 1, (short) 1).configs(configs)))
            .all().get();
        return new TopicPartition(topic, 0);
    }

    static List<Future<RecordMetadata>> sendAll(KafkaProducer<byte[], byte[]> producer, TopicPartition tp,
                                                List<Sent> recs) {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (Sent r : recs) {
            futures.add(producer.send(new ProducerRecord<>(tp.topic(), 0, r.timestamp, r.key, r.value, r.headers)));
        }
        return futures;
    }

    static void collect(List<Future<RecordMetadata>> futures, List<Sent> recs) throws Exception {
        for (int i = 0; i < recs.size(); i++) {
            recs.get(i).meta = futures.get(i).get();
        }
    }

    static ProducerState onlyProducer(TopicPartition tp) throws Exception {
        List<ProducerState> ps = admin.describeProducers(Collections.singleton(tp)).partitionResult(tp).get()
            .activeProducers();
        if (ps.size() != 1) {
            throw new IllegalStateException("expected one producer on " + tp + ", got " + ps);
        }
        return ps.get(0);
    }

    static long endOffset(TopicPartition tp) throws Exception {
        return admin.listOffsets(Collections.singletonMap(tp, OffsetSpec.latest())).partitionResult(tp).get().offset();
    }

    /** Waits until the partition's high watermark reaches {@code expected}. */
    static void awaitEndOffset(TopicPartition tp, long expected) throws Exception {
        long deadline = System.currentTimeMillis() + 60_000;
        long end;
        while ((end = endOffset(tp)) != expected) {
            if (end > expected || System.currentTimeMillis() > deadline) {
                throw new IllegalStateException(tp + ": end offset " + end + ", expected " + expected);
            }
            Thread.sleep(100);
        }
    }

    static String hex(byte[] b) {
        if (b == null) {
            return "null";
        }
        StringBuilder sb = new StringBuilder("x:");
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.toString();
    }

    /** Accumulates one expectations file. */
    static final class Expect {
        final List<String> lines = new ArrayList<>();
        final String caseName;

        Expect(String caseName, long start) {
            this.caseName = caseName;
            lines.add("# Written by scripts/golden/GoldenProducer.java; compared by protocol/tests/golden.rs.");
            lines.add("case " + caseName);
            lines.add("kafka_clients " + AppInfoParser.getVersion());
            lines.add("kafka_broker " + brokerVersion);
            lines.add("capture_start_ms " + start);
        }

        void batch(long baseOffset, int count, String compression, String tsType, boolean transactional,
                   boolean control, long producerId, int epoch, int baseSequence, String maxTimestamp) {
            lines.add("batch");
            lines.add("base_offset " + baseOffset);
            lines.add("last_offset_delta " + (count - 1));
            lines.add("records_count " + count);
            lines.add("compression " + compression);
            lines.add("timestamp_type " + tsType);
            lines.add("transactional " + transactional);
            lines.add("control " + control);
            lines.add("producer_id " + producerId);
            lines.add("producer_epoch " + epoch);
            lines.add("base_sequence " + baseSequence);
            lines.add("max_timestamp " + maxTimestamp);
        }

        void records(List<Sent> recs) {
            for (Sent r : recs) {
                StringBuilder sb = new StringBuilder("record ");
                sb.append(r.meta.offset()).append(' ').append(r.meta.timestamp()).append(' ')
                    .append(hex(r.key)).append(' ').append(hex(r.value)).append(' ').append(r.headers.size());
                for (Header h : r.headers) {
                    sb.append(' ').append(hex(utf8(h.key()))).append(' ').append(hex(h.value()));
                }
                lines.add(sb.toString());
            }
        }

        void write() throws IOException {
            lines.add("capture_end_ms " + System.currentTimeMillis());
            Files.write(outDir.resolve(caseName + ".expect"), lines, StandardCharsets.UTF_8);
            Files.write(outDir.resolve("topics.txt"),
                Collections.singletonList(caseName + " " + topicFor(caseName)), StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND);
            System.out.println("captured " + caseName + " -> " + topicFor(caseName));
        }
    }

    static long maxTimestamp(List<Sent> recs) {
        long max = Long.MIN_VALUE;
        for (Sent r : recs) {
            max = Math.max(max, r.timestamp);
        }
        return max;
    }

    /** none/gzip/snappy/lz4/zstd, idempotent, log-append-time: one batch of 20 records. */
    static void plainCase(String caseName, String compression, boolean idempotent, boolean logAppendTime)
        throws Exception {
        long start = System.currentTimeMillis();
        Map<String, String> topicConfigs = new HashMap<>();
        if (logAppendTime) {
            topicConfigs.put("message.timestamp.type", "LogAppendTime");
        }
        TopicPartition tp = createTopic(caseName, topicConfigs);
        Properties props = producerProps(compression);
        if (idempotent) {
            props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        }
        List<Sent> recs = records(20, caseName);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            List<Future<RecordMetadata>> futures = sendAll(producer, tp, recs);
            producer.flush();
            collect(futures, recs);
        }
        awaitEndOffset(tp, recs.size());
        long producerId = -1;
        int epoch = -1;
        int baseSequence = -1;
        if (idempotent) {
            ProducerState ps = onlyProducer(tp);
            producerId = ps.producerId();
            epoch = ps.producerEpoch();
            baseSequence = ps.lastSequence() - (recs.size() - 1);
        }
        Expect e = new Expect(caseName, start);
        String maxTs = logAppendTime ? String.valueOf(recs.get(0).meta.timestamp()) : String.valueOf(maxTimestamp(recs));
        e.batch(0, recs.size(), compression, logAppendTime ? "LogAppendTime" : "CreateTime", false, false,
            producerId, epoch, baseSequence, maxTs);
        e.records(recs);
        e.write();
    }

    /** A transactional data batch (6 records, lz4) followed by a COMMIT or ABORT marker. */
    static void transactionalCase(String caseName, boolean commit) throws Exception {
        long start = System.currentTimeMillis();
        TopicPartition tp = createTopic(caseName, Collections.emptyMap());
        Properties props = producerProps("lz4");
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, "golden-" + caseName + "-" + runId);
        List<Sent> recs = records(6, caseName);
        ProducerState during;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            List<Future<RecordMetadata>> futures = sendAll(producer, tp, recs);
            producer.flush();
            collect(futures, recs);
            during = onlyProducer(tp);
            if (commit) {
                producer.commitTransaction();
            } else {
                producer.abortTransaction();
            }
        }
        // The coordinator writes the marker after EndTxn returns: wait for it.
        awaitEndOffset(tp, recs.size() + 1);
        ProducerState after = onlyProducer(tp);
        long deadline = System.currentTimeMillis() + 60_000;
        while (after.currentTransactionStartOffset().isPresent()) {
            if (System.currentTimeMillis() > deadline) {
                throw new IllegalStateException("transaction still open: " + after);
            }
            Thread.sleep(100);
            after = onlyProducer(tp);
        }
        if (after.producerId() != during.producerId()) {
            throw new IllegalStateException("producer id changed: " + during + " -> " + after);
        }
        if (!after.coordinatorEpoch().isPresent()) {
            throw new IllegalStateException("no coordinator epoch after the marker: " + after);
        }
        System.out.println(caseName + ": producer state during the transaction " + during + ", after " + after);
        Expect e = new Expect(caseName, start);
        e.batch(0, recs.size(), "lz4", "CreateTime", true, false, during.producerId(), during.producerEpoch(),
            during.lastSequence() - (recs.size() - 1), String.valueOf(maxTimestamp(recs)));
        e.records(recs);
        e.batch(recs.size(), 1, "none", "CreateTime", true, true, after.producerId(), after.producerEpoch(), -1,
            "any");
        e.lines.add("control " + (commit ? "commit" : "abort") + " " + after.coordinatorEpoch().getAsInt() + " "
            + recs.size());
        e.write();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: GoldenProducer <bootstrap> <out-dir> <run-id> <broker-version>");
            System.exit(2);
        }
        bootstrap = args[0];
        outDir = Paths.get(args[1]);
        runId = args[2];
        brokerVersion = args[3];
        Files.createDirectories(outDir);
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin a = Admin.create(ap)) {
            admin = a;
            for (String codec : new String[] {"none", "gzip", "snappy", "lz4", "zstd"}) {
                plainCase(codec, codec, false, false);
            }
            plainCase("idempotent", "none", true, false);
            transactionalCase("transactional-commit", true);
            transactionalCase("transactional-abort", false);
            plainCase("log-append-time", "none", false, true);
        }
    }
}
