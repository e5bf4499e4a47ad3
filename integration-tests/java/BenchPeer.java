// The Java client's side of the second-wave broker benchmarks (issue 25), for what the
// broker's own tools cannot do: S3's keyed records with a per-key sequence number
// (ProducerPerformance sends no keys), S5's latency at a fixed rate with a consumer in the
// same process, and S4's transactions of a fixed number of records (ProducerPerformance
// commits by time, --transaction-duration-ms). Each mode prints one JSON line with the
// fields of `strom bench` (cli/src/bench/), and mirrors what Strom's bench sends:
//
//   keys     key-NNNNNN, the index the i-th draw of one xorshift64 stream modulo the key count
//   stamp    the value's first 8 bytes replaced by a big-endian long (S3: the key's sequence
//            number; S5: the send time, ns since the run's origin on System.nanoTime)
//   values   the payload file's values in turn, split on "\n" as ProducerPerformance splits them
//
// Run as a single-file source program (JDK 11+) with the broker's jars on the class path, or
// compiled once with javac (the bench scripts do that, so compiling is not in the measured CPU):
//
//   java -cp "$STROM_KAFKA_LIBS/*" BenchPeer.java keyed   BOOTSTRAP TOPIC RECORDS KEYS PAYLOAD_FILE [key=value ...]
//   java -cp "$STROM_KAFKA_LIBS/*" BenchPeer.java latency BOOTSTRAP TOPIC RATE SECONDS WARMUP_SECONDS PAYLOAD_FILE [key=value ...]
//   java -cp "$STROM_KAFKA_LIBS/*" BenchPeer.java txn     BOOTSTRAP TOPIC TRANSACTIONS PER_TRANSACTION PAYLOAD_FILE [key=value ...]
//
// key=value pairs are producer properties. HdrHistogram (org.HdrHistogram) is among the
// broker's jars.

import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Properties;
import java.util.TreeSet;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

import org.HdrHistogram.Histogram;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class BenchPeer {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) usage();
        switch (args[0]) {
            case "keyed": keyed(args); break;
            case "latency": latency(args); break;
            case "txn": txn(args); break;
            default: usage();
        }
    }

    static void usage() {
        System.err.println("usage: BenchPeer keyed|latency|txn BOOTSTRAP TOPIC ... (see the file's head)");
        System.exit(2);
    }

    /** The payload file's values: split on "\n", trailing empty values dropped (String.split). */
    static byte[][] values(String file) throws Exception {
        String[] parts = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8).split("\n");
        if (parts.length == 0) throw new IllegalArgumentException(file + " holds no values");
        byte[][] out = new byte[parts.length][];
        for (int i = 0; i < parts.length; i++) out[i] = parts[i].getBytes(StandardCharsets.UTF_8);
        return out;
    }

    /** The value with its first 8 bytes replaced by the stamp. */
    static byte[] stamp(long stamp, byte[] value) {
        byte[] v = new byte[Math.max(8, value.length)];
        ByteBuffer.wrap(v).putLong(stamp);
        if (value.length > 8) System.arraycopy(value, 8, v, 8, value.length - 8);
        return v;
    }

    static Properties producerProps(String bootstrap, String[] args, int from) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        for (int i = from; i < args.length; i++) {
            int eq = args[i].indexOf('=');
            if (eq < 0) throw new IllegalArgumentException(args[i] + ": want key=value");
            p.put(args[i].substring(0, eq), args[i].substring(eq + 1));
        }
        p.put("key.serializer", ByteArraySerializer.class.getName());
        p.put("value.serializer", ByteArraySerializer.class.getName());
        return p;
    }

    /** The settings as JSON members (no braces), serializers and bootstrap left out. */
    static String settings(Properties p) {
        StringBuilder s = new StringBuilder();
        for (String k : new TreeSet<>(p.stringPropertyNames())) {
            if (k.contains("serializer") || k.equals("bootstrap.servers")) continue;
            if (s.length() > 0) s.append(',');
            s.append('"').append(k).append("\":\"").append(p.getProperty(k)).append('"');
        }
        return s.toString();
    }

    static double cpuSeconds() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
            .getProcessCpuTime() / 1e9;
    }

    static long peakRssKib() {
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
            }
        } catch (Exception e) {
            // not Linux: no figure
        }
        return 0;
    }

    static String percentiles(Histogram h, String prefix) {
        return String.format(Locale.ROOT, "\"%sp50_ms\":%.3f,\"%sp90_ms\":%.3f,\"%sp99_ms\":%.3f,\"%sp999_ms\":%.3f,"
            + "\"%smax_ms\":%.3f,\"%smean_ms\":%.3f",
            prefix, h.getValueAtPercentile(50) / 1000.0, prefix, h.getValueAtPercentile(90) / 1000.0,
            prefix, h.getValueAtPercentile(99) / 1000.0, prefix, h.getValueAtPercentile(99.9) / 1000.0,
            prefix, h.getMaxValue() / 1000.0, prefix, h.getMean() / 1000.0);
    }

    static void record(Histogram h, long nanos) {
        h.recordValue(Math.min(Math.max(nanos / 1000, 1), h.getHighestTrackableValue()));
    }

    /** S3: keyed records, each key's sequence number in the value's first 8 bytes. */
    static void keyed(String[] a) throws Exception {
        String bootstrap = a[1], topic = a[2];
        long records = Long.parseLong(a[3]);
        int keys = Integer.parseInt(a[4]);
        byte[][] values = values(a[5]);
        Properties p = producerProps(bootstrap, a, 6);
        byte[][] keyBytes = new byte[keys][];
        for (int k = 0; k < keys; k++) keyBytes[k] = String.format(Locale.ROOT, "key-%06d", k).getBytes(StandardCharsets.US_ASCII);
        long[] seq = new long[keys];
        AtomicLong acked = new AtomicLong(), failed = new AtomicLong();
        AtomicReference<Exception> first = new AtomicReference<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            int partitions = producer.partitionsFor(topic).size();
            AtomicLongArray perPartition = new AtomicLongArray(partitions);
            long seed = 0x9e3779b97f4a7c15L, bytes = 0;
            double cpu0 = cpuSeconds();
            long start = System.nanoTime();
            for (long i = 0; i < records; i++) {
                seed ^= seed << 13;
                seed ^= seed >>> 7;
                seed ^= seed << 17;
                int k = (int) Long.remainderUnsigned(seed, keys);
                byte[] v = stamp(seq[k]++, values[(int) (i % values.length)]);
                bytes += v.length + keyBytes[k].length;
                producer.send(new ProducerRecord<>(topic, keyBytes[k], v), (md, e) -> {
                    if (e != null) {
                        failed.incrementAndGet();
                        first.compareAndSet(null, e);
                    } else {
                        acked.incrementAndGet();
                        perPartition.incrementAndGet(md.partition());
                    }
                });
            }
            producer.flush();
            double secs = (System.nanoTime() - start) / 1e9;
            double cpu = cpuSeconds() - cpu0;
            StringBuilder counts = new StringBuilder();
            for (int i = 0; i < partitions; i++) counts.append(i == 0 ? "" : ",").append(perPartition.get(i));
            System.out.printf(Locale.ROOT, "{\"client\":\"java\",\"records\":%d,\"bytes\":%d,\"seconds\":%.3f,"
                + "\"records_per_s\":%.0f,\"mib_per_s\":%.2f,\"cpu_seconds\":%.2f,\"max_rss_kib\":%d,\"acknowledged\":%d,"
                + "\"failed\":%d,\"partition_records\":[%s],\"settings\":{%s,\"keys\":%d,\"key\":\"key-NNNNNN\","
                + "\"partitioner\":\"murmur2 of the key\",\"payload_file\":\"%s\",\"payload_values\":%d}}%n",
                records, bytes, secs, records / secs, bytes / secs / (1 << 20), cpu, peakRssKib(), acked.get(),
                failed.get(), counts, settings(p), keys, a[5], values.length);
        }
        if (first.get() != null) throw first.get();
    }

    /**
     * S5: records at a fixed rate while a consumer thread of this process reads the topic (every
     * partition assigned, from the beginning). The sender keeps an absolute schedule: record i is
     * due at origin + i / rate; it parks until the next record is due, then sends every record
     * that is due, so being late never shifts the records after it.
     */
    static void latency(String[] a) throws Exception {
        String bootstrap = a[1], topic = a[2];
        long rate = Long.parseLong(a[3]), seconds = Long.parseLong(a[4]), warmupSeconds = Long.parseLong(a[5]);
        byte[][] values = values(a[6]);
        Properties p = producerProps(bootstrap, a, 7);
        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("key.deserializer", ByteArrayDeserializer.class.getName());
        c.put("value.deserializer", ByteArrayDeserializer.class.getName());
        c.put("enable.auto.commit", "false");
        c.put("fetch.min.bytes", "1");
        c.put("fetch.max.wait.ms", "500");
        long warmup = warmupSeconds * rate, total = warmup + seconds * rate;
        AtomicLong measuredFrom = new AtomicLong(Long.MAX_VALUE);
        Histogram h = new Histogram(1, 3_600_000_000L, 3);
        long[] received = new long[1];
        long[] done = new long[1];
        AtomicReference<Throwable> readerError = new AtomicReference<>();
        CountDownLatch ready = new CountDownLatch(1);
        long origin = System.nanoTime();
        Thread reader = new Thread(() -> {
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
                List<TopicPartition> tps = new ArrayList<>();
                for (PartitionInfo pi : consumer.partitionsFor(topic)) tps.add(new TopicPartition(topic, pi.partition()));
                consumer.assign(tps);
                consumer.seekToBeginning(tps);
                for (TopicPartition tp : tps) consumer.position(tp);
                ready.countDown();
                long last = System.nanoTime();
                while (received[0] < total && System.nanoTime() - last < 30_000_000_000L) {
                    ConsumerRecords<byte[], byte[]> rs = consumer.poll(Duration.ofMillis(100));
                    if (rs.isEmpty()) continue;
                    long at = System.nanoTime() - origin;
                    last = System.nanoTime();
                    for (ConsumerRecord<byte[], byte[]> r : rs) {
                        long sent = ByteBuffer.wrap(r.value()).getLong();
                        received[0]++;
                        if (sent >= measuredFrom.get()) record(h, at - sent);
                    }
                }
                done[0] = System.nanoTime();
            } catch (Throwable t) {
                readerError.set(t);
                ready.countDown();
            }
        }, "consumer");
        reader.start();
        ready.await();
        AtomicLong failed = new AtomicLong();
        AtomicReference<Exception> first = new AtomicReference<>();
        long lagMax = 0, measuredStart = origin, lastSend = origin;
        double cpu0 = cpuSeconds();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.partitionsFor(topic);
            double period = 1e9 / rate;
            // The schedule starts once the producer has the topic's metadata.
            long base = System.nanoTime();
            for (long i = 0; i < total; i++) {
                long due = base + (long) (i * period);
                long now;
                while ((now = System.nanoTime()) < due) LockSupport.parkNanos(due - now);
                if (i >= warmup) lagMax = Math.max(lagMax, now - due);
                long sent = now - origin;
                if (i == warmup) {
                    measuredStart = now;
                    measuredFrom.set(sent);
                }
                producer.send(new ProducerRecord<>(topic, stamp(sent, values[(int) (i % values.length)])), (md, e) -> {
                    if (e != null) {
                        failed.incrementAndGet();
                        first.compareAndSet(null, e);
                    }
                });
                lastSend = now;
            }
            producer.flush();
        }
        reader.join();
        if (readerError.get() != null) throw new RuntimeException(readerError.get());
        double cpu = cpuSeconds() - cpu0;
        double wall = (done[0] - origin) / 1e9;
        double sendSecs = (lastSend - measuredStart) / 1e9;
        double achieved = sendSecs > 0 ? (total - warmup - 1) / sendSecs : 0;
        boolean keptUp = achieved >= 0.99 * rate;
        System.out.printf(Locale.ROOT, "{\"client\":\"java\",\"rate\":%d,\"seconds\":%d,\"records\":%d,\"measured\":%d,"
            + "\"received\":%d,\"failed\":%d,\"achieved_rate\":%.0f,\"kept_up\":%b,\"send_lag_max_ms\":%.3f,%s,"
            + "\"cpu_seconds\":%.2f,\"cpu_percent\":%.1f,\"max_rss_kib\":%d,\"settings\":{%s,\"fetch.min.bytes\":1,"
            + "\"fetch.max.wait.ms\":500,\"consumer\":\"KafkaConsumer on its own thread, assign\",\"stamp\":\"value bytes 0..8: "
            + "send time, ns, big-endian, System.nanoTime\",\"pacer\":\"absolute schedule, parkNanos\",\"warmup_seconds\":%d,"
            + "\"payload_file\":\"%s\",\"payload_values\":%d}}%n",
            rate, seconds, total, h.getTotalCount(), received[0], failed.get(), achieved, keptUp, lagMax / 1e6,
            percentiles(h, ""), cpu, 100 * cpu / wall, peakRssKib(), settings(p), warmupSeconds, a[6], values.length);
        if (first.get() != null) throw first.get();
        if (received[0] != total) {
            System.err.printf("BenchPeer: the consumer got %d of %d records%n", received[0], total);
            System.exit(1);
        }
        if (!keptUp) System.err.printf(Locale.ROOT, "BenchPeer: could not keep up: %.0f records/s of %d%n", achieved, rate);
    }

    /** S4: transactions of a fixed number of records; commit latency = begin to commitTransaction returning. */
    static void txn(String[] a) throws Exception {
        String bootstrap = a[1], topic = a[2];
        long transactions = Long.parseLong(a[3]), per = Long.parseLong(a[4]);
        byte[][] values = values(a[5]);
        Properties p = producerProps(bootstrap, a, 6);
        p.putIfAbsent("transactional.id", "java-bench-txn-" + ProcessHandle.current().pid());
        Histogram h = new Histogram(1, 3_600_000_000L, 3);
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            producer.initTransactions();
            producer.partitionsFor(topic);
            long bytes = 0, i = 0;
            double cpu0 = cpuSeconds();
            long start = System.nanoTime();
            for (long t = 0; t < transactions; t++) {
                long begun = System.nanoTime();
                producer.beginTransaction();
                for (long j = 0; j < per; j++) {
                    byte[] v = values[(int) (i++ % values.length)];
                    bytes += v.length;
                    // A record's failure fails commitTransaction, which is checked.
                    producer.send(new ProducerRecord<>(topic, v));
                }
                producer.commitTransaction();
                record(h, System.nanoTime() - begun);
            }
            double secs = (System.nanoTime() - start) / 1e9;
            double cpu = cpuSeconds() - cpu0;
            long records = transactions * per;
            System.out.printf(Locale.ROOT, "{\"client\":\"java\",\"records\":%d,\"transactions\":%d,\"per_transaction\":%d,"
                + "\"bytes\":%d,\"seconds\":%.3f,\"records_per_s\":%.0f,\"mib_per_s\":%.2f,%s,\"cpu_seconds\":%.2f,"
                + "\"max_rss_kib\":%d,\"settings\":{%s,\"per_transaction\":%d,\"payload_file\":\"%s\",\"payload_values\":%d}}%n",
                records, transactions, per, bytes, secs, records / secs, bytes / secs / (1 << 20),
                percentiles(h, "commit_"), cpu, peakRssKib(), settings(p), per, a[5], values.length);
        }
    }
}
