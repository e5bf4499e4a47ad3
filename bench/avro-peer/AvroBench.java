// The Java peer of bench/avro_serde.py: Apache Avro's GenericDatumWriter / GenericDatumReader
// behind the Confluent framing (magic byte 0, 4-byte schema id), on the same 1000 records as
// the Strom and Python peers (bench/avro_schema.avsc, values from the record's index), each
// encoded and decoded N times round-robin on one thread after a warm-up.
//
//   java -cp CLASSPATH AvroBench.java SCHEMA_FILE SCHEMA_ID N
//
// Prints one JSON line: records/s and CPU ns per record (this thread's CPU) of each phase, and
// an FNV-1a digest of the 1000 framed encodings (equal across peers: the bytes are the same).

import java.io.ByteArrayOutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;

public class AvroBench {
    static final int POOL = 1000;

    static GenericRecord record(Schema s, long i) {
        GenericRecord r = new GenericData.Record(s);
        r.put("id", i * 7919);
        r.put("user", "user-" + (i % 10000));
        r.put("score", (i % 1000) / 8.0);
        r.put("count", (int) (i % 100000));
        r.put("active", i % 2 == 0);
        r.put("country", i % 3 == 0 ? null : "NO");
        Schema kind = s.getField("kind").schema();
        r.put("kind", new GenericData.EnumSymbol(kind, kind.getEnumSymbols().get((int) (i % 3))));
        r.put("tags", List.of("t" + (i % 5), "t" + (i % 7)));
        r.put("amounts", List.of(i, i * 2, i * 3));
        GenericRecord session = new GenericData.Record(s.getField("session").schema());
        session.put("sid", "s-" + (i % 777));
        session.put("start", 1_700_000_000_000L + i);
        r.put("session", session);
        return r;
    }

    public static void main(String[] args) throws Exception {
        Schema schema = new Schema.Parser().parse(Files.readString(Path.of(args[0])));
        int id = Integer.parseInt(args[1]);
        long n = Long.parseLong(args[2]);
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        List<GenericRecord> pool = new ArrayList<>();
        for (int i = 0; i < POOL; i++) pool.add(record(schema, i));
        GenericDatumWriter<GenericRecord> writer = new GenericDatumWriter<>(schema);
        GenericDatumReader<GenericRecord> reader = new GenericDatumReader<>(schema);

        // Encode: a fresh output per record, as a serializer hands out a byte[] per record.
        byte[][] encoded = new byte[POOL][];
        long sink = 0;
        for (int pass = 0; pass < 2; pass++) { // warm-up: the JIT compiles the hot paths
            for (long k = 0; k < n; k++) sink += encode(writer, id, pool.get((int) (k % POOL))).length;
        }
        long c0 = mx.getCurrentThreadCpuTime(), t0 = System.nanoTime();
        for (long k = 0; k < n; k++) sink += encode(writer, id, pool.get((int) (k % POOL))).length;
        long encCpu = mx.getCurrentThreadCpuTime() - c0, encWall = System.nanoTime() - t0;
        for (int i = 0; i < POOL; i++) encoded[i] = encode(writer, id, pool.get(i));

        // Decode: check the framing, read a new record each time (no reuse, as a deserializer).
        for (int pass = 0; pass < 2; pass++) {
            for (long k = 0; k < n; k++) sink += decode(reader, encoded[(int) (k % POOL)]).hashCode() & 1;
        }
        c0 = mx.getCurrentThreadCpuTime();
        t0 = System.nanoTime();
        for (long k = 0; k < n; k++) sink += decode(reader, encoded[(int) (k % POOL)]).hashCode() & 1;
        long decCpu = mx.getCurrentThreadCpuTime() - c0, decWall = System.nanoTime() - t0;

        long digest = 0xcbf29ce484222325L;
        for (byte[] e : encoded) for (byte b : e) { digest ^= (b & 0xff); digest *= 0x100000001b3L; }
        System.out.printf(
            "{\"peer\":\"java-avro-1.12.2\",\"records\":%d,\"encode_rps\":%.0f,\"encode_cpu_ns\":%.1f,"
                + "\"decode_rps\":%.0f,\"decode_cpu_ns\":%.1f,\"digest\":\"%016x\",\"sink\":%d}%n",
            n, n / (encWall / 1e9), encCpu / (double) n, n / (decWall / 1e9), decCpu / (double) n, digest, sink);
    }

    static byte[] encode(GenericDatumWriter<GenericRecord> w, int id, GenericRecord r) {
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream(128);
            out.write(0);
            out.write(id >>> 24);
            out.write(id >>> 16);
            out.write(id >>> 8);
            out.write(id);
            BinaryEncoder e = EncoderFactory.get().directBinaryEncoder(out, null);
            w.write(r, e);
            e.flush();
            return out.toByteArray();
        } catch (java.io.IOException x) {
            throw new RuntimeException(x);
        }
    }

    static GenericRecord decode(GenericDatumReader<GenericRecord> r, byte[] data) {
        try {
            if (data[0] != 0) throw new IllegalStateException("magic byte");
            BinaryDecoder d = DecoderFactory.get().binaryDecoder(data, 5, data.length - 5, null);
            return r.read(null, d);
        } catch (java.io.IOException x) {
            throw new RuntimeException(x);
        }
    }
}
