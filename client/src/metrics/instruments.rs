//! What each role holds and records into, under the Java client's metric names: per node,
//! producer (and per topic), consumer, coordinator.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use super::cells::lock;
use super::cells::{Gauge, Meter, Since, Stat};
use super::registry::MetricRegistry;

/// What a producer records (groups `producer-metrics` and, per topic,
/// `producer-topic-metrics`).
pub(crate) struct ProducerInstruments {
    pub(super) registry: MetricRegistry,
    pub(crate) record_send: Meter,
    pub(crate) record_error: Meter,
    pub(crate) record_retry: Meter,
    pub(crate) request_latency: Stat,
    pub(crate) batch_size: Stat,
    pub(crate) records_per_request: Stat,
    pub(crate) compression_rate: Stat,
    pub(crate) record_queue_time: Stat,
    pub(crate) produce_throttle_time: Stat,
    pub(crate) buffer_available_bytes: Gauge,
    pub(crate) buffer_total_bytes: Gauge,
    pub(crate) bufferpool_wait_time_ns: Meter,
    pub(crate) waiting_threads: Gauge,
    pub(crate) waiting: std::sync::atomic::AtomicI64,
    pub(crate) txn_init_time_ns: Meter,
    pub(crate) txn_begin_time_ns: Meter,
    pub(crate) txn_send_offsets_time_ns: Meter,
    pub(crate) txn_commit_time_ns: Meter,
    pub(crate) txn_abort_time_ns: Meter,
}

/// What a producer records per topic (`producer-topic-metrics`, tag `topic`).
pub(crate) struct TopicInstruments {
    pub(crate) record_send: Meter,
    pub(crate) record_error: Meter,
    pub(crate) record_retry: Meter,
    pub(crate) byte: Meter,
    pub(crate) compression_rate: Stat,
}

impl std::fmt::Debug for ProducerInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerInstruments").finish_non_exhaustive()
    }
}

impl ProducerInstruments {
    pub(crate) fn new(registry: &MetricRegistry) -> Self {
        let g = "producer-metrics";
        let r = registry;
        ProducerInstruments {
            registry: r.clone(),
            record_send: r.meter(g, "record-send", &[]),
            record_error: r.meter(g, "record-error", &[]),
            record_retry: r.meter(g, "record-retry", &[]),
            request_latency: r.latency(g, "request-latency", &[]),
            batch_size: r.distribution(g, "batch-size", &[]),
            records_per_request: r.distribution(g, "records-per-request", &[]),
            compression_rate: r.ratio(g, "compression-rate", &[]),
            record_queue_time: r.latency(g, "record-queue-time", &[]),
            produce_throttle_time: r.latency(g, "produce-throttle-time", &[]),
            buffer_available_bytes: r.gauge(g, "buffer-available-bytes", &[]),
            buffer_total_bytes: r.gauge(g, "buffer-total-bytes", &[]),
            bufferpool_wait_time_ns: r.meter(g, "bufferpool-wait-time-ns", &[]),
            waiting_threads: r.gauge(g, "waiting-threads", &[]),
            waiting: std::sync::atomic::AtomicI64::new(0),
            txn_init_time_ns: r.meter(g, "txn-init-time-ns", &[]),
            txn_begin_time_ns: r.meter(g, "txn-begin-time-ns", &[]),
            txn_send_offsets_time_ns: r.meter(g, "txn-send-offsets-time-ns", &[]),
            txn_commit_time_ns: r.meter(g, "txn-commit-time-ns", &[]),
            txn_abort_time_ns: r.meter(g, "txn-abort-time-ns", &[]),
        }
    }

    /// The per-topic instruments of `topic` (the sender keeps them in a map by topic).
    pub(crate) fn topic(&self, topic: &str) -> TopicInstruments {
        let g = "producer-topic-metrics";
        let tags = [("topic", topic)];
        let r = &self.registry;
        TopicInstruments {
            record_send: r.meter(g, "record-send", &tags),
            record_error: r.meter(g, "record-error", &tags),
            record_retry: r.meter(g, "record-retry", &tags),
            byte: r.meter(g, "byte", &tags),
            compression_rate: r.ratio(g, "compression-rate", &tags),
        }
    }

    /// A send started waiting for `buffer.memory` (Java's `waiting-threads`).
    pub(crate) fn wait_started(&self) {
        let n = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.waiting_threads.set(n as f64);
    }

    /// A send stopped waiting for `buffer.memory` after `waited`.
    pub(crate) fn wait_ended(&self, waited: Duration) {
        let n = self.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
        self.waiting_threads.set(n.max(0) as f64);
        self.bufferpool_wait_time_ns
            .add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// What a consumer records (`consumer-fetch-manager-metrics`, per topic and per
/// partition too).
pub(crate) struct ConsumerInstruments {
    pub(super) registry: MetricRegistry,
    pub(crate) records_consumed: Meter,
    pub(crate) bytes_consumed: Meter,
    pub(crate) fetch: Meter,
    pub(crate) fetch_latency: Stat,
    pub(crate) fetch_size: Stat,
    pub(crate) records_per_request: Stat,
    pub(crate) fetch_throttle_time: Stat,
    pub(crate) records_lag_max: Gauge,
    pub(super) records_lead_min: Gauge,
    /// `consumer-metrics`: the time from one poll's start to the next (Java records 0 for
    /// the first), and the share of poll-to-poll time spent inside poll.
    pub(super) time_between_poll: Stat,
    pub(super) poll_idle_ratio: Stat,
    /// `consumer-metrics` `last-poll-seconds-ago`.
    pub(super) last_poll: Since,
    /// When the running (or last) poll started, and the time since the one before.
    pub(super) poll_start: Option<Instant>,
    pub(super) since_last_poll: Duration,
    pub(super) topics: std::collections::HashMap<Arc<str>, (Meter, Meter)>,
    pub(super) lags: std::collections::HashMap<(Arc<str>, i32), (Gauge, i64)>,
    /// The largest of `lags`.
    pub(super) lag_max: i64,
    pub(super) leads: std::collections::HashMap<(Arc<str>, i32), (Gauge, i64)>,
    /// The smallest of `leads` (None: no partition reported one).
    pub(super) lead_min: Option<i64>,
    pub(super) replicas: std::collections::HashMap<(Arc<str>, i32), (Gauge, i32)>,
}

impl ConsumerInstruments {
    pub(crate) fn new(registry: &MetricRegistry) -> Self {
        let g = "consumer-fetch-manager-metrics";
        let r = registry;
        ConsumerInstruments {
            registry: r.clone(),
            records_consumed: r.meter(g, "records-consumed", &[]),
            bytes_consumed: r.meter(g, "bytes-consumed", &[]),
            fetch: r.meter(g, "fetch", &[]),
            fetch_latency: r.latency(g, "fetch-latency", &[]),
            fetch_size: r.distribution(g, "fetch-size", &[]),
            records_per_request: r.distribution(g, "records-per-request", &[]),
            fetch_throttle_time: r.latency(g, "fetch-throttle-time", &[]),
            records_lag_max: r.gauge(g, "records-lag-max", &[]),
            records_lead_min: {
                // NaN until a partition reports its lead.
                let min = r.gauge(g, "records-lead-min", &[]);
                min.set(f64::NAN);
                min
            },
            time_between_poll: r.latency("consumer-metrics", "time-between-poll", &[]),
            poll_idle_ratio: r.ratio("consumer-metrics", "poll-idle-ratio", &[]),
            last_poll: r.since("consumer-metrics", "last-poll-seconds-ago", &[]),
            poll_start: None,
            since_last_poll: Duration::ZERO,
            topics: std::collections::HashMap::new(),
            lags: std::collections::HashMap::new(),
            lag_max: 0,
            leads: std::collections::HashMap::new(),
            lead_min: None,
            replicas: std::collections::HashMap::new(),
        }
    }

    pub(super) fn topic(&mut self, topic: &Arc<str>) -> &(Meter, Meter) {
        if !self.topics.contains_key(topic) {
            let g = "consumer-fetch-manager-metrics";
            let tags = [("topic", &**topic)];
            let m = (
                self.registry.meter(g, "records-consumed", &tags),
                self.registry.meter(g, "bytes-consumed", &tags),
            );
            self.topics.insert(topic.clone(), m);
        }
        &self.topics[topic]
    }

    /// A poll began (Java's `recordPollStart`).
    pub(crate) fn poll_started(&mut self, now: Instant) {
        self.since_last_poll = self
            .poll_start
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.time_between_poll.record_duration(self.since_last_poll);
        self.poll_start = Some(now);
        self.last_poll.mark_at(now);
    }

    /// The poll that began last ended (Java's `recordPollEnd`): poll-idle-ratio is its time
    /// inside poll over that plus the time since the poll before it.
    pub(crate) fn poll_ended(&mut self, now: Instant) {
        let Some(start) = self.poll_start else { return };
        let inside = now.saturating_duration_since(start).as_secs_f64();
        let total = inside + self.since_last_poll.as_secs_f64();
        if total > 0.0 {
            self.poll_idle_ratio.record_ratio(inside / total);
        }
    }

    /// `n` records of `topic` handed to the application.
    pub(crate) fn consumed(&mut self, topic: &Arc<str>, n: u64) {
        self.records_consumed.add(n);
        self.topic(topic).0.add(n);
    }

    /// `n` record bytes of `topic` fetched.
    pub(crate) fn fetched_bytes(&mut self, topic: &Arc<str>, n: u64) {
        self.bytes_consumed.add(n);
        self.topic(topic).1.add(n);
    }

    /// The lag of a partition as the last fetch saw it (`records-lag`, tags topic and
    /// partition), and `records-lag-max` over the partitions.
    pub(crate) fn lag(&mut self, topic: &Arc<str>, partition: i32, lag: i64) {
        let key = (topic.clone(), partition);
        if !self.lags.contains_key(&key) {
            let p = partition.to_string();
            let tags = [("topic", &**topic), ("partition", p.as_str())];
            let g = self
                .registry
                .gauge("consumer-fetch-manager-metrics", "records-lag", &tags);
            self.lags.insert(key.clone(), (g, 0));
        }
        let mut previous = 0;
        if let Some((g, last)) = self.lags.get_mut(&key) {
            g.set(lag as f64);
            previous = std::mem::replace(last, lag);
        }
        // Called per partition run of every poll: the max is rescanned only when the
        // partition that may have held it went down.
        if lag >= self.lag_max {
            self.lag_max = lag;
        } else if previous >= self.lag_max {
            self.lag_max = self.lags.values().map(|(_, l)| *l).max().unwrap_or(0);
        } else {
            return;
        }
        self.records_lag_max.set(self.lag_max as f64);
    }

    /// The lead of a partition (its position minus the log start offset, as the last fetch
    /// saw them: `records-lead`, tags topic and partition), and `records-lead-min` over the
    /// partitions. A small lead means retention is about to delete what the consumer has
    /// not read yet.
    pub(crate) fn lead(&mut self, topic: &Arc<str>, partition: i32, lead: i64) {
        let key = (topic.clone(), partition);
        if !self.leads.contains_key(&key) {
            let p = partition.to_string();
            let tags = [("topic", &**topic), ("partition", p.as_str())];
            let g = self
                .registry
                .gauge("consumer-fetch-manager-metrics", "records-lead", &tags);
            self.leads.insert(key.clone(), (g, lead));
        }
        let mut previous = lead;
        if let Some((g, last)) = self.leads.get_mut(&key) {
            g.set(lead as f64);
            previous = std::mem::replace(last, lead);
        }
        // As for the lag's max: a rescan only when the holder of the min went up.
        match self.lead_min {
            Some(min) if lead > min && previous == min => {
                self.lead_min = self.leads.values().map(|(_, l)| *l).min();
            }
            Some(min) if lead >= min => return,
            _ => self.lead_min = Some(lead),
        }
        self.records_lead_min.set(self.lead_min.map_or(f64::NAN, |m| m as f64));
    }

    /// The replica a partition is fetched from when it is not the leader (KIP-392), or -1
    /// (`preferred-read-replica`, tags topic and partition).
    pub(crate) fn preferred_read_replica(&mut self, topic: &Arc<str>, partition: i32, replica: i32) {
        let key = (topic.clone(), partition);
        if let Some((g, last)) = self.replicas.get_mut(&key) {
            if *last != replica {
                *last = replica;
                g.set(f64::from(replica));
            }
            return;
        }
        let p = partition.to_string();
        let tags = [("topic", &**topic), ("partition", p.as_str())];
        let g = self
            .registry
            .gauge("consumer-fetch-manager-metrics", "preferred-read-replica", &tags);
        g.set(f64::from(replica));
        self.replicas.insert(key, (g, replica));
    }

    /// Partitions that left the assignment no longer count in records-lag-max and
    /// records-lead-min.
    pub(crate) fn keep_lags(&mut self, keep: impl Fn(&str, i32) -> bool) {
        self.lags.retain(|(t, p), _| keep(t, *p));
        self.lag_max = self.lags.values().map(|(_, l)| *l).max().unwrap_or(0);
        self.records_lag_max.set(self.lag_max as f64);
        self.leads.retain(|(t, p), _| keep(t, *p));
        self.lead_min = self.leads.values().map(|(_, l)| *l).min();
        self.records_lead_min.set(self.lead_min.map_or(f64::NAN, |m| m as f64));
    }
}

/// What a consumer in a group records (`consumer-coordinator-metrics`). The consumer
/// records commits and the assignment size; its membership task (classic or KIP-848)
/// records rebalances and heartbeats into the same cells (the registry hands out one cell
/// per name).
pub(crate) struct CoordinatorInstruments {
    pub(crate) commit: Meter,
    pub(crate) commit_latency: Stat,
    pub(crate) assigned_partitions: Gauge,
    /// Successful rebalances: `rebalance-total`, `rebalance-rate-per-hour`.
    pub(super) rebalance: Meter,
    /// From the start of a rebalance (failed attempts included) to its success:
    /// `rebalance-latency-avg/max/total`.
    pub(super) rebalance_latency: Stat,
    /// `failed-rebalance-total`, `failed-rebalance-rate-per-hour`.
    pub(super) failed_rebalance: Meter,
    pub(super) last_rebalance: Since,
    /// `heartbeat-total`, `heartbeat-rate`, and `heartbeat-response-time-max` (with avg and
    /// percentiles).
    pub(super) heartbeat: Meter,
    pub(super) heartbeat_response_time: Stat,
    /// When the last heartbeat was sent (`last-heartbeat-seconds-ago`).
    pub(super) last_heartbeat: Since,
    /// When the rebalance under way started.
    pub(super) rebalance_started: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for CoordinatorInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorInstruments").finish_non_exhaustive()
    }
}

impl CoordinatorInstruments {
    pub(crate) fn new(r: &MetricRegistry) -> Self {
        let g = "consumer-coordinator-metrics";
        CoordinatorInstruments {
            commit: r.meter(g, "commit", &[]),
            commit_latency: r.latency(g, "commit-latency", &[]),
            assigned_partitions: r.gauge(g, "assigned-partitions", &[]),
            rebalance: r.meter_per_hour(g, "rebalance", &[]),
            rebalance_latency: r.latency_with_total(g, "rebalance-latency", &[]),
            failed_rebalance: r.meter_per_hour(g, "failed-rebalance", &[]),
            last_rebalance: r.since(g, "last-rebalance-seconds-ago", &[]),
            heartbeat: r.meter(g, "heartbeat", &[]),
            heartbeat_response_time: r.latency(g, "heartbeat-response-time", &[]),
            last_heartbeat: r.since(g, "last-heartbeat-seconds-ago", &[]),
            rebalance_started: Mutex::new(None),
        }
    }

    /// A rebalance began (a join, or a new target assignment), unless one is under way:
    /// its failed attempts count toward the latency of the one that succeeds (Java).
    pub(crate) fn rebalance_started(&self, now: Instant) {
        lock(&self.rebalance_started).get_or_insert(now);
    }

    /// The rebalance under way ended with an assignment.
    pub(crate) fn rebalance_succeeded(&self, now: Instant) {
        let started = lock(&self.rebalance_started).take().unwrap_or(now);
        self.rebalance.add(1);
        self.rebalance_latency
            .record_duration(now.saturating_duration_since(started));
        self.last_rebalance.mark_at(now);
    }

    /// An attempt to rebalance failed (the rebalance goes on, and its latency with it).
    pub(crate) fn rebalance_failed(&self) {
        self.failed_rebalance.add(1);
    }

    /// A heartbeat is being sent.
    pub(crate) fn heartbeat_sent(&self) {
        self.last_heartbeat.mark();
    }

    /// A heartbeat's response came, `took` after it was sent.
    pub(crate) fn heartbeat_answered(&self, took: Duration) {
        self.heartbeat.add(1);
        self.heartbeat_response_time.record_duration(took);
    }
}
