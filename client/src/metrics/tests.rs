use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use super::cells::{bucket_of, bucket_value, Histogram, RateWindow, StatState, BUCKETS};
use super::instruments::{ConsumerInstruments, CoordinatorInstruments};
use super::registry::MetricRegistry;

#[test]
fn buckets_cover_every_u64_within_an_eighth() {
    for v in [0u64, 1, 15, 16, 17, 100, 1000, 12_345, 1 << 40, u64::MAX / 3, u64::MAX] {
        let b = bucket_of(v);
        assert!(b < BUCKETS, "{v} -> {b}");
        let mid = bucket_value(b) as f64;
        assert!((mid - v as f64).abs() <= v as f64 / 8.0 + 1.0, "{v} -> {mid}");
    }
    let mut last = 0;
    for v in (0..100_000u64).step_by(7) {
        let b = bucket_of(v);
        assert!(b >= last, "buckets are monotonic");
        last = b;
    }
}

#[test]
fn quantiles_of_a_known_distribution() {
    let mut h = Histogram::default();
    assert_eq!(h.quantile(0.5), None);
    for v in 1..=1000u64 {
        h.record(v);
    }
    let p50 = h.quantile(0.5).unwrap() as f64;
    let p99 = h.quantile(0.99).unwrap() as f64;
    assert!((p50 - 500.0).abs() <= 500.0 / 8.0, "{p50}");
    assert!((p99 - 990.0).abs() <= 990.0 / 8.0, "{p99}");
}

#[test]
fn rates_and_averages_follow_the_sample_windows() {
    let t0 = Instant::now();
    let w = Duration::from_secs(30);
    let mut rate = RateWindow::new(t0);
    // 300 in the first 10 s: divided by at least one window, as Java does early on.
    assert_eq!(rate.rate(t0 + Duration::from_secs(10), 300, w, w * 2), 10.0);
    // 60 s later the early samples are out of the span.
    let r = rate.rate(t0 + Duration::from_secs(40), 1200, w, w * 2);
    assert!((r - 30.0).abs() < 1e-9, "{r}");
    let r = rate.rate(t0 + Duration::from_secs(100), 1200, w, w * 2);
    assert!(r < 15.0, "{r}");

    let mut s = StatState::new(t0);
    s.record(10, t0, w);
    s.record(30, t0 + Duration::from_secs(1), w);
    assert_eq!(s.windowed(t0 + Duration::from_secs(2), w * 2), (2, 40, 30));
    s.record(5, t0 + Duration::from_secs(35), w);
    assert_eq!(s.windowed(t0 + Duration::from_secs(36), w * 2), (3, 45, 30));
    // The first window has aged out; the all-time histogram keeps everything.
    assert_eq!(s.windowed(t0 + Duration::from_secs(61), w * 2), (1, 5, 5));
    assert_eq!(s.count, 3);
}

#[test]
fn records_lead_min_follows_the_partitions_up_too() {
    let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
    let mut c = ConsumerInstruments::new(&r);
    let t: Arc<str> = Arc::from("t");
    let min = |r: &MetricRegistry| {
        r.snapshot()
            .get("consumer-fetch-manager-metrics", "records-lead-min", &[])
            .unwrap()
    };
    assert!(min(&r).is_nan(), "no partition reported a lead yet");
    c.lead(&t, 0, 10);
    c.lead(&t, 1, 50);
    assert_eq!(min(&r), 10.0);
    c.lead(&t, 0, 70);
    assert_eq!(min(&r), 50.0, "the holder of the min went up");
    c.lead(&t, 1, 5);
    assert_eq!(min(&r), 5.0);
    c.keep_lags(|_, p| p == 0);
    assert_eq!(min(&r), 70.0, "an unassigned partition no longer counts");
    c.keep_lags(|_, _| false);
    assert!(min(&r).is_nan());
    c.preferred_read_replica(&t, 0, 2);
    c.preferred_read_replica(&t, 0, -1);
    let replica = r
        .snapshot()
        .get(
            "consumer-fetch-manager-metrics",
            "preferred-read-replica",
            &[("partition", "0")],
        )
        .unwrap();
    assert_eq!(replica, -1.0);
}

#[test]
fn records_lag_max_follows_the_partitions_down_too() {
    let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
    let mut c = ConsumerInstruments::new(&r);
    let t: Arc<str> = Arc::from("t");
    let max = |r: &MetricRegistry| {
        r.snapshot()
            .get("consumer-fetch-manager-metrics", "records-lag-max", &[])
            .unwrap()
    };
    c.lag(&t, 0, 10);
    c.lag(&t, 1, 5);
    assert_eq!(max(&r), 10.0);
    c.lag(&t, 0, 3);
    assert_eq!(max(&r), 5.0, "the holder of the max went down");
    c.lag(&t, 1, 0);
    assert_eq!(max(&r), 3.0);
    c.keep_lags(|_, p| p == 1);
    assert_eq!(max(&r), 0.0, "an unassigned partition no longer counts");
}

#[test]
fn time_between_polls_and_the_idle_ratio_as_java_records_them() {
    let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
    let mut c = ConsumerInstruments::new(&r);
    let t0 = Instant::now();
    // Poll 1: 100 ms inside; the application then works 300 ms; poll 2: 100 ms inside.
    c.poll_started(t0);
    c.poll_ended(t0 + Duration::from_millis(100));
    c.poll_started(t0 + Duration::from_millis(400));
    c.poll_ended(t0 + Duration::from_millis(500));
    let s = r.snapshot();
    let get = |n: &str| s.get("consumer-metrics", n, &[]).unwrap();
    // Java records 0 for the first poll: (0 + 400) / 2 ms.
    assert_eq!(get("time-between-poll-max"), 400.0);
    assert_eq!(get("time-between-poll-avg"), 200.0);
    // Poll 1: 100 / (100 + 0) = 1; poll 2: 100 / (100 + 400) = 0.2.
    assert!(
        (get("poll-idle-ratio-avg") - 0.6).abs() < 0.01,
        "{}",
        get("poll-idle-ratio-avg")
    );
}

#[test]
fn rebalances_and_heartbeats_as_java_names_them() {
    let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
    let c = CoordinatorInstruments::new(&r);
    let get = |n: &str| r.snapshot().get("consumer-coordinator-metrics", n, &[]).unwrap();
    // Nothing happened yet: Java's -1 for "seconds ago", NaN averages, zero totals.
    assert_eq!(get("last-rebalance-seconds-ago"), -1.0);
    assert_eq!(get("last-heartbeat-seconds-ago"), -1.0);
    assert!(get("rebalance-latency-avg").is_nan());
    assert_eq!(get("rebalance-latency-total"), 0.0);
    // One rebalance: a failed attempt, a second start (ignored: one is under way),
    // success 250 ms after the first start.
    let t0 = Instant::now();
    c.rebalance_started(t0);
    c.rebalance_failed();
    c.rebalance_started(t0 + Duration::from_millis(100));
    c.rebalance_succeeded(t0 + Duration::from_millis(250));
    // A second one of 50 ms.
    c.rebalance_started(t0 + Duration::from_millis(300));
    c.rebalance_succeeded(t0 + Duration::from_millis(350));
    assert_eq!(get("rebalance-total"), 2.0);
    assert_eq!(get("failed-rebalance-total"), 1.0);
    assert_eq!(get("rebalance-latency-max"), 250.0);
    assert_eq!(get("rebalance-latency-avg"), 150.0);
    assert_eq!(get("rebalance-latency-total"), 300.0);
    // Two in (at most) the first 30 s window: 2 / 30 s = 240 per hour.
    assert!(
        (get("rebalance-rate-per-hour") - 240.0).abs() < 1.0,
        "{}",
        get("rebalance-rate-per-hour")
    );
    assert!((get("failed-rebalance-rate-per-hour") - 120.0).abs() < 1.0);
    assert_eq!(get("last-rebalance-seconds-ago"), 0.0);
    c.heartbeat_sent();
    c.heartbeat_answered(Duration::from_millis(7));
    assert_eq!(get("heartbeat-total"), 1.0);
    assert_eq!(get("heartbeat-response-time-max"), 7.0);
    assert_eq!(get("last-heartbeat-seconds-ago"), 0.0);
    // Whole seconds, computed when read.
    if let Some(earlier) = Instant::now().checked_sub(Duration::from_millis(3_500)) {
        c.last_heartbeat.mark_at(earlier);
        assert_eq!(get("last-heartbeat-seconds-ago"), 3.0);
        let text = r.prometheus();
        assert!(
            text.contains("# TYPE kafka_consumer_last_heartbeat_seconds_ago gauge\nkafka_consumer_last_heartbeat_seconds_ago{client_id=\"c\"} 3\n"),
            "{text}"
        );
    }
    let text = r.prometheus();
    assert!(
        text.contains("kafka_consumer_rebalance_total{client_id=\"c\"} 2\n"),
        "{text}"
    );
    assert!(
        text.contains("kafka_consumer_failed_rebalance_total{client_id=\"c\"} 1\n"),
        "{text}"
    );
}

#[test]
fn snapshot_and_prometheus_name_what_was_recorded() {
    let r = MetricRegistry::new("c1", Duration::from_secs(30), 2);
    r.meter("producer-topic-metrics", "record-send", &[("topic", "t")])
        .add(5);
    r.meter("producer-topic-metrics", "record-send", &[("topic", "t")])
        .add(2);
    r.gauge("producer-metrics", "buffer-available-bytes", &[]).set(1024.0);
    r.latency("node-metrics", "request-latency", &[("node-id", "1")])
        .record_duration(Duration::from_millis(4));
    let s = r.snapshot();
    assert_eq!(
        s.get("producer-topic-metrics", "record-send-total", &[("topic", "t")])
            .unwrap(),
        7.0
    );
    assert_eq!(
        s.get("producer-metrics", "buffer-available-bytes", &[]).unwrap(),
        1024.0
    );
    let avg = s
        .get("node-metrics", "request-latency-avg", &[("node-id", "1")])
        .unwrap();
    assert!((avg - 4.0).abs() < 1e-9, "{avg}");
    let e = s.get("producer-metrics", "record-sned-total", &[]).unwrap_err();
    assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("record-sned-total"), "{e}");
    let text = r.prometheus();
    assert!(
        text.contains("# TYPE kafka_producer_record_send_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("kafka_producer_record_send_total{client_id=\"c1\",topic=\"t\"} 7\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE kafka_node_request_latency_seconds summary\n"),
        "{text}"
    );
    assert!(text.contains("kafka_node_request_latency_seconds_count{client_id=\"c1\",node_id=\"1\"} 1\n"));
}
