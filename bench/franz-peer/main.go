// Command franz-peer is the franz-go peer of Strom's broker benchmarks: a fixed load through
// franz-go's kgo client, reported as one JSON object with the same fields as
// `strom bench produce|consume` (bench/s1_produce.py and bench/s2_consume.py read both).
//
//	franz-peer produce -b HOST:PORT -topic T -records N [-record-size 100 | -payload-file F] [-X key=value]...
//	franz-peer consume -b HOST:PORT -topic T -records N [-poll records|fetches] [-X key=value]...
//	franz-peer produce ... -keys N                  (S3: keyed records with a per-key sequence number)
//	franz-peer latency -b HOST:PORT -topic T -rate R -seconds S [-payload-file F] [-X key=value]...  (S5)
//	franz-peer txn -b HOST:PORT -topic T -transactions T -per-transaction M [-payload-file F] [-X ...]  (S4)
//
// Settings are given by their Java names (-X linger.ms=5), mapped onto kgo's options; a key
// this peer cannot map is refused rather than ignored. What is not given keeps franz-go's
// default, and every resolved value is printed in "settings". franz-go's defaults that
// differ from the Java client's and Strom's (v1.22.3, pkg/kgo/config.go defaultCfg):
//
//   - The produce buffer is counted in records, MaxBufferedRecords 50,000, with no byte
//     limit (Java and Strom: buffer.memory, 32 MiB). Produce blocks while 50,000 records
//     are unacknowledged.
//   - In-flight produce requests are fixed at 5 per broker with idempotence
//     (MaxProduceRequestsInflightPerBroker refuses any value then); 1 without it.
//   - The null-key partitioner is UniformBytesPartitioner(64 KiB, adaptive, keys): a switch
//     every 64 KiB of records, where Java's and Strom's (KIP-794) switch every batch.size
//     bytes (1 MiB in S1).
//   - linger 10 ms, batches up to 1,000,012 bytes, compression snappy (the benchmarks pin
//     linger.ms, batch.size and compression.type), fetch max wait 5 s (pinned to 500 ms).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "produce":
		err = produce(os.Args[2:])
	case "consume":
		err = consume(os.Args[2:])
	case "latency":
		err = latency(os.Args[2:])
	case "txn":
		err = txn(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "franz-peer:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: franz-peer produce|consume|latency|txn -b HOST:PORT -topic T [options] (-h for each)")
	os.Exit(2)
}

// props collects repeated -X key=value flags, in order.
type props []([2]string)

func (p *props) String() string { return fmt.Sprint(*p) }

func (p *props) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("%q: want key=value", s)
	}
	*p = append(*p, [2]string{k, v})
	return nil
}

// usageNow is this process's CPU seconds (user + system) so far and its peak RSS in KiB.
// The peak is VmHWM, as strom bench reports it: getrusage's ru_maxrss also counts the peak of
// the process that started this one (exec keeps the old address space's high-water mark).
func usageNow() (float64, int64) {
	var ru syscall.Rusage
	cpu := math.NaN()
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
		cpu = tv(ru.Utime) + tv(ru.Stime)
	}
	var rss int64
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				rss, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			}
		}
	}
	return cpu, rss
}

// partitions asks the broker for the topic's partition ids (not timed: Strom's bench looks
// the topic up before its clock starts too).
func partitions(ctx context.Context, cl *kgo.Client, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(resp.Topics) != 1 {
		return nil, fmt.Errorf("metadata: %d topics in the response", len(resp.Topics))
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	ids := make([]int32, len(resp.Topics[0].Partitions))
	for _, p := range resp.Topics[0].Partitions {
		if p.Partition < 0 || int(p.Partition) >= len(ids) {
			return nil, fmt.Errorf("topic %s: partition %d out of 0..%d", topic, p.Partition, len(ids)-1)
		}
		ids[p.Partition] = p.Partition
	}
	return ids, nil
}

// payloads is what the records carry: the values of a payload file (split on '\n' as Java's
// ProducerPerformance --payload-file does, trailing empty values dropped), all slices of one
// buffer read once, or else one constant value of random uppercase letters, the same bytes
// as `strom bench produce` and bench/rdkafka-peer send without a file.
func payloads(file string, size int) ([][]byte, error) {
	if file == "" {
		seed := uint64(0x2545_f491_4f6c_dd1d)
		v := make([]byte, size)
		for i := range v {
			seed ^= seed << 13
			seed ^= seed >> 7
			seed ^= seed << 17
			v[i] = 'A' + byte(seed%26)
		}
		return [][]byte{v}, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	values := bytes.Split(data, []byte{'\n'})
	for len(values) > 0 && len(values[len(values)-1]) == 0 {
		values = values[:len(values)-1]
	}
	if len(values) == 0 {
		return nil, fmt.Errorf("%s holds no values", file)
	}
	return values, nil
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// emit prints the report as one JSON line, fields in the order `strom bench` prints them.
func emit(fields [][2]any) error {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f[0])
		v, err := json.Marshal(f[1])
		if err != nil {
			return err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	_, err := fmt.Println(b.String())
	return err
}

func produce(args []string) error {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	bootstrap := fs.String("b", "127.0.0.1:9092", "bootstrap servers, host:port[,host:port]")
	topic := fs.String("topic", "", "topic (must exist)")
	records := fs.Int64("records", 1_000_000, "records to send")
	recordSize := fs.Int("record-size", 100, "size of the constant value (without -payload-file)")
	payloadFile := fs.String("payload-file", "", "values, one per line, sent in turn (as strom bench produce --payload-file)")
	keys := fs.Int64("keys", 0, "keyed records (S3): keys key-NNNNNN drawn as strom bench produce --keys draws them, the "+
		"key's sequence number in value bytes 0..8")
	var xs props
	fs.Var(&xs, "X", "a producer setting by its Java name (repeatable): acks, enable.idempotence, compression.type, "+
		"linger.ms, batch.size, max.in.flight.requests.per.connection, buffer.memory, max.buffered.records")
	_ = fs.Parse(args)
	if *topic == "" || *records <= 0 || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	values, err := payloads(*payloadFile, *recordSize)
	if err != nil {
		return err
	}

	opts, settings, err := producerOptions(*bootstrap, *topic, xs)
	if err != nil {
		return err
	}
	var keyed *keyStream
	if *keys > 0 {
		if keyed, err = newKeyStream(*keys); err != nil {
			return err
		}
		settings["keys"] = *keys
		settings["key"] = "key-NNNNNN"
		settings["partitioner"] = "UniformBytesPartitioner: murmur2 of the key (KafkaHasher) for keyed records"
		settings["sequence"] = "value bytes 0..8, big-endian u64 per key"
	}
	if *payloadFile != "" {
		settings["payload_file"] = *payloadFile
		settings["payload_values"] = len(values)
	} else {
		settings["record_size"] = *recordSize
	}

	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	parts, err := partitions(ctx, cl, *topic)
	if err != nil {
		return err
	}
	perPartition := make([]atomic.Int64, len(parts))
	var acked, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	// Promises run on kgo's promise goroutine; atomics keep the tally right whatever the
	// threading. Every delivery is counted, as strom bench produce counts them.
	promise := func(r *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		acked.Add(1)
		if r.Partition >= 0 && int(r.Partition) < len(perPartition) {
			perPartition[r.Partition].Add(1)
		}
	}

	cpu0, _ := usageNow()
	started := time.Now()
	var sent int64
	var stamper stamper
	n := int64(len(values))
	for i := int64(0); i < *records; i++ {
		// A Record per produce is kgo's API (it keeps the record until the promise); the value
		// is a slice of the payload buffer, not a copy.
		v := values[i%n]
		rec := &kgo.Record{Value: v}
		if keyed != nil {
			k, key := keyed.next()
			rec.Key = key
			rec.Value = stamper.stamp(keyed.seq[k], v)
			keyed.seq[k]++
			sent += int64(len(key))
		}
		sent += int64(len(rec.Value))
		cl.Produce(ctx, rec, promise)
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	secs := time.Since(started).Seconds()
	cpu1, rss := usageNow()
	counts := make([]int64, len(perPartition))
	for i := range perPartition {
		counts[i] = perPartition[i].Load()
	}
	err = emit([][2]any{
		{"client", "franz-go"}, {"records", *records}, {"bytes", sent}, {"seconds", round(secs, 3)},
		{"records_per_s", math.Round(float64(*records) / secs)},
		{"mib_per_s", round(float64(sent)/secs/(1<<20), 2)}, {"cpu_seconds", round(cpu1-cpu0, 2)},
		{"max_rss_kib", rss}, {"acknowledged", acked.Load()}, {"failed", failed.Load()},
		{"partition_records", counts}, {"settings", settings},
	})
	if err != nil {
		return err
	}
	if e := firstErr.Load(); e != nil {
		return fmt.Errorf("%d of %d records failed (first: %w); %d acknowledged", failed.Load(), *records, *e, acked.Load())
	}
	if acked.Load() != *records {
		return fmt.Errorf("%d of %d records acknowledged", acked.Load(), *records)
	}
	return nil
}

// producerOptions maps -X settings (Java names) onto kgo's producer options; the map holds
// every resolved value, franz-go's defaults included, to be printed.
func producerOptions(bootstrap, topic string, xs props) ([]kgo.Opt, map[string]any, error) {
	// franz-go's defaults, overridden by -X below; every value here is printed.
	settings := map[string]any{
		"acks": "all", "enable.idempotence": true, "compression.type": "snappy", "linger.ms": 10,
		"batch.size": 1_000_012, "max.in.flight.requests.per.connection": 5, "buffer.memory": "unlimited",
		"max.buffered.records": 50_000, "partitioner": "UniformBytesPartitioner(65536 bytes, adaptive, keys)",
		"franz-go": "v1.22.3",
	}
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.DefaultProduceTopic(topic)}
	idempotent, inflight := true, 5
	for _, kv := range xs {
		k, v := kv[0], kv[1]
		n, nerr := strconv.Atoi(v)
		needInt := func() error {
			if nerr != nil || n < 0 {
				return fmt.Errorf("%s=%s: want a non-negative integer", k, v)
			}
			return nil
		}
		switch k {
		case "acks":
			switch v {
			case "all", "-1":
				opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
				v = "all"
			case "1":
				opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
			case "0":
				opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
			default:
				return nil, nil, fmt.Errorf("acks=%s: want all, 1 or 0", v)
			}
			settings[k] = v
		case "enable.idempotence":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, nil, fmt.Errorf("%s=%s: want true or false", k, v)
			}
			idempotent = b
			settings[k] = b
		case "compression.type":
			codec, ok := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
				"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}[v]
			if !ok {
				return nil, nil, fmt.Errorf("compression.type=%s: want none, gzip, snappy, lz4 or zstd", v)
			}
			opts = append(opts, kgo.ProducerBatchCompression(codec))
			settings[k] = v
		case "linger.ms":
			if err := needInt(); err != nil {
				return nil, nil, err
			}
			opts = append(opts, kgo.ProducerLinger(time.Duration(n)*time.Millisecond))
			settings[k] = n
		case "batch.size":
			if err := needInt(); err != nil {
				return nil, nil, err
			}
			opts = append(opts, kgo.ProducerBatchMaxBytes(int32(n)))
			settings[k] = n
		case "max.in.flight.requests.per.connection":
			if err := needInt(); err != nil {
				return nil, nil, err
			}
			inflight = n
		case "buffer.memory":
			if err := needInt(); err != nil {
				return nil, nil, err
			}
			opts = append(opts, kgo.MaxBufferedBytes(n))
			settings[k] = n
		case "max.buffered.records":
			if err := needInt(); err != nil {
				return nil, nil, err
			}
			opts = append(opts, kgo.MaxBufferedRecords(n))
			settings[k] = n
		case "transactional.id":
			opts = append(opts, kgo.TransactionalID(v))
			settings[k] = v
		case "transaction.timeout.ms":
			if err := needInt(); err != nil {
				return nil, nil, err
			}
			opts = append(opts, kgo.TransactionTimeout(time.Duration(n)*time.Millisecond))
			settings[k] = n
		default:
			return nil, nil, fmt.Errorf("-X %s: not a setting this peer maps onto kgo", k)
		}
	}
	if idempotent {
		// kgo allows exactly 5 in flight per broker with idempotence and refuses the option.
		if inflight != 5 {
			return nil, nil, fmt.Errorf("max.in.flight.requests.per.connection=%d: franz-go fixes it at 5 with idempotence", inflight)
		}
	} else {
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(inflight))
	}
	settings["max.in.flight.requests.per.connection"] = inflight
	return opts, settings, nil
}

// fetchTally counts Fetch responses and their bytes on the wire (kgo's read hook; key 1 is
// Fetch).
type fetchTally struct{ fetches, bytes atomic.Int64 }

func (f *fetchTally) OnBrokerRead(_ kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, err error) {
	if key == 1 && err == nil {
		f.fetches.Add(1)
		f.bytes.Add(int64(n))
	}
}

func consume(args []string) error {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	bootstrap := fs.String("b", "127.0.0.1:9092", "bootstrap servers, host:port[,host:port]")
	topic := fs.String("topic", "", "topic (must hold at least -records records)")
	records := fs.Int64("records", 1_000_000, "records to read, from the earliest offset of every partition")
	poll := fs.String("poll", "records", "records: PollRecords(max.poll.records), as Java's poll; fetches: PollFetches, "+
		"everything buffered at once (kgo's idiomatic loop)")
	timeoutMs := fs.Int("timeout-ms", 30_000, "give up when no record arrived for this long")
	var xs props
	fs.Var(&xs, "X", "a consumer setting by its Java name (repeatable): fetch.min.bytes, fetch.max.bytes, "+
		"max.partition.fetch.bytes, fetch.max.wait.ms, max.poll.records, isolation.level, check.crcs, auto.offset.reset")
	_ = fs.Parse(args)
	if *topic == "" || *records <= 0 || fs.NArg() > 0 || (*poll != "records" && *poll != "fetches") {
		fs.Usage()
		os.Exit(2)
	}
	settings := map[string]any{
		"mode": "assign", "auto.offset.reset": "earliest", "check.crcs": true, "fetch.min.bytes": 1,
		"fetch.max.bytes": 50 << 20, "max.partition.fetch.bytes": 1 << 20, "fetch.max.wait.ms": 5000,
		"isolation.level": "read_uncommitted", "franz-go": "v1.22.3",
	}
	tally := &fetchTally{}
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...), kgo.WithHooks(tally)}
	maxPoll := 500
	for _, kv := range xs {
		k, v := kv[0], kv[1]
		n, nerr := strconv.Atoi(v)
		if nerr != nil && k != "isolation.level" && k != "check.crcs" && k != "auto.offset.reset" {
			return fmt.Errorf("%s=%s: want an integer", k, v)
		}
		switch k {
		case "fetch.min.bytes":
			opts = append(opts, kgo.FetchMinBytes(int32(n)))
		case "fetch.max.bytes":
			opts = append(opts, kgo.FetchMaxBytes(int32(n)))
		case "max.partition.fetch.bytes":
			opts = append(opts, kgo.FetchMaxPartitionBytes(int32(n)))
		case "fetch.max.wait.ms":
			opts = append(opts, kgo.FetchMaxWait(time.Duration(n)*time.Millisecond))
		case "max.poll.records":
			if n <= 0 {
				return fmt.Errorf("max.poll.records=%d: want at least 1", n)
			}
			maxPoll = n
		case "isolation.level":
			switch v {
			case "read_uncommitted":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
			case "read_committed":
				opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			default:
				return fmt.Errorf("isolation.level=%s: want read_uncommitted or read_committed", v)
			}
			settings[k] = v
			continue
		case "check.crcs":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s=%s: want true or false", k, v)
			}
			if !b {
				opts = append(opts, kgo.DisableFetchCRCValidation())
			}
			settings[k] = b
			continue
		case "auto.offset.reset":
			// Every partition is read from its start; nothing else is offered.
			if v != "earliest" {
				return fmt.Errorf("auto.offset.reset=%s: this peer reads from the earliest offsets only", v)
			}
			continue
		default:
			return fmt.Errorf("-X %s: not a setting this peer maps onto kgo", k)
		}
		settings[k] = n
	}
	if *poll == "records" {
		settings["poll"] = fmt.Sprintf("PollRecords(%d)", maxPoll)
		settings["max.poll.records"] = maxPoll
	} else {
		settings["poll"] = "PollFetches"
		settings["max.poll.records"] = "all buffered"
	}

	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	bg := context.Background()
	parts, err := partitions(bg, cl, *topic)
	if err != nil {
		return err
	}
	settings["partitions"] = len(parts)
	start := make(map[int32]kgo.Offset, len(parts))
	for _, p := range parts {
		start[p] = kgo.NewOffset().AtStart()
	}
	// Offsets must rise within each partition (nothing read twice).
	last := make([]int64, len(parts))
	for i := range last {
		last[i] = -1
	}
	idle := time.Duration(*timeoutMs) * time.Millisecond
	cpu0, _ := usageNow()
	// The clock starts as the partitions are assigned: kgo looks up the start offsets and
	// fetches from then on, as Strom's consumer does from its first poll.
	started := time.Now()
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{*topic: start})
	var n, nbytes int64
	var first time.Time
	var bad error
	for n < *records {
		ctx, cancel := context.WithTimeout(bg, idle)
		var fetches kgo.Fetches
		if *poll == "records" {
			fetches = cl.PollRecords(ctx, maxPoll)
		} else {
			fetches = cl.PollFetches(ctx)
		}
		cancel()
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.DeadlineExceeded) {
				return fmt.Errorf("only %d of %d records arrived (none in %d ms)", n, *records, *timeoutMs)
			}
			return fmt.Errorf("fetch %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		if first.IsZero() && !fetches.Empty() {
			first = time.Now()
		}
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Partition < 0 || int(p.Partition) >= len(last) {
				bad = fmt.Errorf("record from unexpected partition %d", p.Partition)
				return
			}
			for _, r := range p.Records {
				if r.Offset <= last[p.Partition] {
					bad = fmt.Errorf("partition %d went back from offset %d to %d", p.Partition, last[p.Partition], r.Offset)
					return
				}
				last[p.Partition] = r.Offset
				nbytes += int64(len(r.Key) + len(r.Value))
			}
			n += int64(len(p.Records))
		})
		if bad != nil {
			return bad
		}
	}
	secs := time.Since(started).Seconds()
	cpu1, rss := usageNow()
	firstMs := 0.0
	if !first.IsZero() {
		firstMs = first.Sub(started).Seconds() * 1000
	}
	return emit([][2]any{
		{"client", "franz-go"}, {"records", n}, {"bytes", nbytes}, {"seconds", round(secs, 3)},
		{"records_per_s", math.Round(float64(n) / secs)}, {"mib_per_s", round(float64(nbytes)/secs/(1<<20), 2)},
		{"cpu_seconds", round(cpu1-cpu0, 2)}, {"max_rss_kib", rss}, {"first_record_ms", round(firstMs, 1)},
		{"fetches", tally.fetches.Load()}, {"fetched_bytes", tally.bytes.Load()}, {"settings", settings},
	})
}
