// The second-wave scenarios of issue 25, as strom bench runs them: S3's keyed records (the
// keys and the per-key stamp, used by produce -keys), S5's latency at a fixed rate, and S4's
// transactions. What every client sends is defined in cli/src/bench/mod.rs; this mirrors it.

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// keyStream draws S3's keys as every client does: the i-th draw of one xorshift64 stream
// modulo the key count, the key "key-NNNNNN"; the keys are slices of one buffer.
type keyStream struct {
	seed uint64
	keys [][]byte
	seq  []uint64
}

func newKeyStream(n int64) (*keyStream, error) {
	if n <= 0 || n > 1_000_000 {
		return nil, fmt.Errorf("-keys %d: want 1 to 1000000", n)
	}
	all := make([]byte, 0, n*10)
	for k := int64(0); k < n; k++ {
		all = fmt.Appendf(all, "key-%06d", k)
	}
	keys := make([][]byte, n)
	for k := range keys {
		keys[k] = all[k*10 : k*10+10 : k*10+10]
	}
	return &keyStream{seed: 0x9e37_79b9_7f4a_7c15, keys: keys, seq: make([]uint64, n)}, nil
}

func (s *keyStream) next() (int, []byte) {
	s.seed ^= s.seed << 13
	s.seed ^= s.seed >> 7
	s.seed ^= s.seed << 17
	k := int(s.seed % uint64(len(s.keys)))
	return k, s.keys[k]
}

// stamper makes a value with its first 8 bytes replaced by a big-endian stamp, cut from 1 MiB
// chunks (one allocation per chunk, as strom bench does).
type stamper struct{ chunk []byte }

func (s *stamper) stamp(stamp uint64, value []byte) []byte {
	n := max(len(value), 8)
	if cap(s.chunk)-len(s.chunk) < n {
		s.chunk = make([]byte, 0, max(1<<20, n))
	}
	start := len(s.chunk)
	s.chunk = binary.BigEndian.AppendUint64(s.chunk, stamp)
	if len(value) > 8 {
		s.chunk = append(s.chunk, value[8:]...)
	}
	return s.chunk[start:len(s.chunk):len(s.chunk)]
}

// newHist is a latency histogram in microseconds, 1 us to 1 hour, 3 significant digits.
func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(1, 3_600_000_000, 3) }

func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := max(d.Microseconds(), 1)
	if h.RecordValue(us) != nil {
		_ = h.RecordValue(h.HighestTrackableValue())
	}
}

// histFields are the percentiles strom bench prints, in milliseconds.
func histFields(h *hdrhistogram.Histogram, prefix string) [][2]any {
	ms := func(us int64) float64 { return round(float64(us)/1000, 3) }
	return [][2]any{
		{prefix + "p50_ms", ms(h.ValueAtQuantile(50))}, {prefix + "p90_ms", ms(h.ValueAtQuantile(90))},
		{prefix + "p99_ms", ms(h.ValueAtQuantile(99))}, {prefix + "p999_ms", ms(h.ValueAtQuantile(99.9))},
		{prefix + "max_ms", ms(h.Max())}, {prefix + "mean_ms", round(h.Mean()/1000, 3)},
	}
}

// counter tallies deliveries from kgo's promise goroutine.
type counter struct {
	acked, failed atomic.Int64
	first         atomic.Pointer[error]
}

func (c *counter) promise(_ *kgo.Record, err error) {
	if err != nil {
		c.failed.Add(1)
		c.first.CompareAndSwap(nil, &err)
		return
	}
	c.acked.Add(1)
}

// latency is S5: records at a fixed rate while a consumer client in the same process reads
// the topic; latency = the time the consumer got a record minus the send time in its first
// 8 bytes (ns since the run's origin, Go's monotonic clock). The sender keeps an absolute
// schedule (record i is due at origin + i/rate; time.Sleep until the next is due, then every
// record that is due), so being late never shifts the records after it.
func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	bootstrap := fs.String("b", "127.0.0.1:9092", "bootstrap servers, host:port[,host:port]")
	topic := fs.String("topic", "", "topic (must exist; a fresh one, read from its start)")
	rate := fs.Int64("rate", 0, "records per second")
	seconds := fs.Int64("seconds", 10, "seconds measured, after the warm-up")
	warmupSeconds := fs.Int64("warmup-seconds", 1, "seconds sent at the rate first and not measured")
	recordSize := fs.Int("record-size", 100, "size of the constant value (without -payload-file)")
	payloadFile := fs.String("payload-file", "", "values, one per line, sent in turn, each with the send time in bytes 0..8")
	timeoutMs := fs.Int("timeout-ms", 30_000, "give up when the consumer got nothing for this long")
	var xs props
	fs.Var(&xs, "X", "a producer setting by its Java name (repeatable), as for produce")
	_ = fs.Parse(args)
	if *topic == "" || *rate <= 0 || *seconds <= 0 || *warmupSeconds < 0 || fs.NArg() > 0 {
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
	for k, v := range map[string]any{"fetch.min.bytes": 1, "fetch.max.wait.ms": 500, "isolation.level": "read_uncommitted",
		"consumer": "a second kgo client, same process, PollFetches", "warmup_seconds": *warmupSeconds,
		"stamp": "value bytes 0..8: send time, ns, big-endian, monotonic clock",
		"pacer": "absolute schedule, time.Sleep"} {
		settings[k] = v
	}
	if *payloadFile != "" {
		settings["payload_file"], settings["payload_values"] = *payloadFile, len(values)
	} else {
		settings["record_size"] = *recordSize
	}
	prod, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer prod.Close()
	ctx := context.Background()
	parts, err := partitions(ctx, prod, *topic)
	if err != nil {
		return err
	}
	start := make(map[int32]kgo.Offset, len(parts))
	for _, p := range parts {
		start[p] = kgo.NewOffset().AtStart()
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*bootstrap, ",")...), kgo.FetchMinBytes(1),
		kgo.FetchMaxWait(500*time.Millisecond), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: start}))
	if err != nil {
		return err
	}
	defer cons.Close()

	warmup := *warmupSeconds * *rate
	total := warmup + *seconds**rate
	origin := time.Now()
	var measuredFrom atomic.Uint64
	measuredFrom.Store(math.MaxUint64)
	type result struct {
		hist     *hdrhistogram.Histogram
		received int64
		done     time.Time
		err      error
	}
	got := make(chan result, 1)
	go func() {
		h := newHist()
		var received int64
		idle := time.Duration(*timeoutMs) * time.Millisecond
		for received < total {
			pctx, cancel := context.WithTimeout(ctx, idle)
			fetches := cons.PollFetches(pctx)
			cancel()
			at := time.Since(origin)
			var bad error
			for _, fe := range fetches.Errors() {
				if errors.Is(fe.Err, context.DeadlineExceeded) {
					got <- result{h, received, time.Now(), nil}
					return
				}
				bad = fmt.Errorf("fetch %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
			fetches.EachRecord(func(r *kgo.Record) {
				if len(r.Value) < 8 {
					bad = fmt.Errorf("partition %d offset %d: no send time", r.Partition, r.Offset)
					return
				}
				sent := binary.BigEndian.Uint64(r.Value)
				received++
				if sent >= measuredFrom.Load() {
					record(h, at-time.Duration(sent))
				}
			})
			if bad != nil {
				got <- result{h, received, time.Now(), bad}
				return
			}
		}
		got <- result{h, received, time.Now(), nil}
	}()

	cpu0, _ := usageNow()
	var c counter
	var st stamper
	var lagMax time.Duration
	var measuredStart, lastSend time.Time
	period := float64(time.Second) / float64(*rate)
	n := int64(len(values))
	for i := int64(0); i < total; i++ {
		due := origin.Add(time.Duration(float64(i) * period))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		now := time.Now()
		if i >= warmup {
			lagMax = max(lagMax, now.Sub(due))
		}
		sentNs := uint64(now.Sub(origin))
		if i == warmup {
			measuredStart = now
			measuredFrom.Store(sentNs)
		}
		prod.Produce(ctx, &kgo.Record{Value: st.stamp(sentNs, values[i%n])}, c.promise)
		lastSend = now
	}
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	r := <-got
	cpu1, rss := usageNow()
	if r.err != nil {
		return r.err
	}
	wall := r.done.Sub(origin).Seconds()
	achieved := 0.0
	if s := lastSend.Sub(measuredStart).Seconds(); s > 0 {
		achieved = float64(total-warmup-1) / s
	}
	keptUp := achieved >= 0.99*float64(*rate)
	fields := [][2]any{
		{"client", "franz-go"}, {"rate", *rate}, {"seconds", *seconds}, {"records", total},
		{"measured", r.hist.TotalCount()}, {"received", r.received}, {"failed", c.failed.Load()},
		{"achieved_rate", math.Round(achieved)}, {"kept_up", keptUp},
		{"send_lag_max_ms", round(lagMax.Seconds()*1000, 3)},
	}
	fields = append(fields, histFields(r.hist, "")...)
	fields = append(fields, [][2]any{{"cpu_seconds", round(cpu1-cpu0, 2)},
		{"cpu_percent", round(100*(cpu1-cpu0)/wall, 1)}, {"max_rss_kib", rss}, {"settings", settings}}...)
	if err := emit(fields); err != nil {
		return err
	}
	if e := c.first.Load(); e != nil {
		return fmt.Errorf("%d of %d records failed (first: %w)", c.failed.Load(), total, *e)
	}
	if r.received != total {
		return fmt.Errorf("the consumer got %d of %d records (none for %d ms)", r.received, total, *timeoutMs)
	}
	if !keptUp {
		fmt.Fprintf(os.Stderr, "franz-peer: could not keep up: %.0f records/s of %d (up to %.1f ms late)\n",
			achieved, *rate, lagMax.Seconds()*1000)
	}
	return nil
}

// txn is S4: transactions of a fixed number of records, one after another; each one's
// commit latency runs from BeginTransaction to EndTransaction(TryCommit) returning (kgo wants
// the records flushed before EndTransaction, so Flush is inside it).
func txn(args []string) error {
	fs := flag.NewFlagSet("txn", flag.ExitOnError)
	bootstrap := fs.String("b", "127.0.0.1:9092", "bootstrap servers, host:port[,host:port]")
	topic := fs.String("topic", "", "topic (must exist)")
	transactions := fs.Int64("transactions", 100, "transactions to commit")
	perTxn := fs.Int64("per-transaction", 1000, "records in each transaction")
	recordSize := fs.Int("record-size", 100, "size of the constant value (without -payload-file)")
	payloadFile := fs.String("payload-file", "", "values, one per line, sent in turn")
	var xs props
	fs.Var(&xs, "X", "a producer setting by its Java name (repeatable), as for produce, and transactional.id, "+
		"transaction.timeout.ms")
	_ = fs.Parse(args)
	if *topic == "" || *transactions <= 0 || *perTxn <= 0 || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	values, err := payloads(*payloadFile, *recordSize)
	if err != nil {
		return err
	}
	hasID := false
	for _, kv := range xs {
		hasID = hasID || kv[0] == "transactional.id"
	}
	if !hasID {
		xs = append(xs, [2]string{"transactional.id", fmt.Sprintf("franz-bench-txn-%d", os.Getpid())})
	}
	opts, settings, err := producerOptions(*bootstrap, *topic, xs)
	if err != nil {
		return err
	}
	if _, ok := settings["transaction.timeout.ms"]; !ok {
		settings["transaction.timeout.ms"] = 40_000 // kgo's default
	}
	settings["per_transaction"] = *perTxn
	if *payloadFile != "" {
		settings["payload_file"], settings["payload_values"] = *payloadFile, len(values)
	} else {
		settings["record_size"] = *recordSize
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := partitions(ctx, cl, *topic); err != nil {
		return err
	}
	h := newHist()
	var c counter
	var bytes int64
	n := int64(len(values))
	var i int64
	cpu0, _ := usageNow()
	started := time.Now()
	for t := int64(0); t < *transactions; t++ {
		begun := time.Now()
		if err := cl.BeginTransaction(); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		for j := int64(0); j < *perTxn; j++ {
			v := values[i%n]
			i++
			bytes += int64(len(v))
			cl.Produce(ctx, &kgo.Record{Value: v}, c.promise)
		}
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if e := c.first.Load(); e != nil {
			return fmt.Errorf("a record of transaction %d failed: %w", t, *e)
		}
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		record(h, time.Since(begun))
	}
	secs := time.Since(started).Seconds()
	cpu1, rss := usageNow()
	records := *transactions * *perTxn
	fields := [][2]any{
		{"client", "franz-go"}, {"records", records}, {"transactions", *transactions}, {"per_transaction", *perTxn},
		{"bytes", bytes}, {"seconds", round(secs, 3)}, {"records_per_s", math.Round(float64(records) / secs)},
		{"mib_per_s", round(float64(bytes)/secs/(1<<20), 2)},
	}
	fields = append(fields, histFields(h, "commit_")...)
	fields = append(fields, [][2]any{{"cpu_seconds", round(cpu1-cpu0, 2)}, {"max_rss_kib", rss},
		{"acknowledged", c.acked.Load()}, {"settings", settings}}...)
	return emit(fields)
}
