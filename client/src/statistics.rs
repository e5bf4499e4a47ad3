//! librdkafka's `statistics.interval.ms`: every interval, one JSON document of the client's
//! statistics, handed to a callback ([`ClientConfig::with_statistics_callback`], like
//! rdkafka's `ClientContext::stats`) and to every [`StatisticsReceiver`]
//! ([`Client::statistics`]).
//!
//! The document follows librdkafka's layout (`STATISTICS.md` there) for the fields Strom has
//! a value for, and adds `metrics`, every metric of the client's registry under its Java
//! name. `docs/statistics.md` lists each field and where its value comes from. Fields
//! librdkafka has and Strom cannot fill are left out, never filled with zeros.
//!
//! The document is built from the same counters as [`crate::metrics`] (the registry's
//! snapshot and the cached metadata): nothing extra is recorded on the hot paths.
//!
//! [`ClientConfig::with_statistics_callback`]: crate::ClientConfig::with_statistics_callback
//! [`Client::statistics`]: crate::Client::statistics

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

use crate::metadata::ClusterMetadata;
use crate::metrics::MetricsSnapshot;

/// Receives the statistics documents of one client, newest last. Made by
/// [`Client::statistics`](crate::Client::statistics).
#[derive(Debug)]
pub struct StatisticsReceiver {
    rx: broadcast::Receiver<Arc<str>>,
}

impl StatisticsReceiver {
    pub(crate) fn new(rx: broadcast::Receiver<Arc<str>>) -> Self {
        StatisticsReceiver { rx }
    }

    /// The next document (JSON text). A receiver that fell behind skips to the oldest
    /// document still kept (the last 16); `None` once the client is gone.
    ///
    /// Cancellation-safe: dropping the call loses nothing; the next `recv` gets the next
    /// document.
    pub async fn recv(&mut self) -> Option<Arc<str>> {
        loop {
            match self.rx.recv().await {
                Ok(doc) => return Some(doc),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

pub use crate::config::StatisticsCallback;

/// How many documents a slow receiver may fall behind before it skips.
pub(crate) const KEPT: usize = 16;

/// What a document is built from, besides the registry and the metadata.
pub(crate) struct Clock {
    pub(crate) created: Instant,
    pub(crate) now: Instant,
    pub(crate) unix: Duration,
}

impl Clock {
    pub(crate) fn now(created: Instant) -> Self {
        Clock {
            created,
            now: Instant::now(),
            unix: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }
}

/// Emits a document every `interval` while the client lives (it holds only a weak
/// reference: the last handle's drop ends it).
pub(crate) fn spawn<T: Send + Sync + 'static>(
    owner: Weak<T>,
    interval: Duration,
    render: impl Fn(&T) -> String + Send + 'static,
    tx: broadcast::Sender<Arc<str>>,
    callback: Option<StatisticsCallback>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(owner) = owner.upgrade() else { return };
            let doc: Arc<str> = Arc::from(render(&owner));
            drop(owner);
            if let Some(cb) = &callback {
                cb(&doc);
            }
            // No receiver is not an error: the callback may be the only reader.
            let _ = tx.send(doc);
        }
    });
}

/// The document (see `docs/statistics.md`).
pub(crate) fn render(client_id: &str, clock: &Clock, md: &ClusterMetadata, m: &MetricsSnapshot) -> String {
    let get = |group: &str, name: &str, tags: &[(&str, &str)]| m.get(group, name, tags).ok();
    let int = |v: f64| if v.is_finite() { v.round() as i64 } else { 0 };
    let micros = |ms: Option<f64>| ms.filter(|v| v.is_finite()).map(|v| (v * 1000.0).round() as i64);
    let has = |group: &str| m.metrics.iter().any(|x| x.group == group);
    let mut roles = Vec::new();
    if has("producer-metrics") {
        roles.push("producer");
    }
    if has("consumer-fetch-manager-metrics") {
        roles.push("consumer");
    }
    let kind = if roles.is_empty() {
        "client".to_owned()
    } else {
        roles.join(",")
    };

    let mut doc = Map::new();
    doc.insert("name".into(), json!(format!("{client_id}#{kind}")));
    doc.insert("client_id".into(), json!(client_id));
    doc.insert("type".into(), json!(kind));
    doc.insert(
        "ts".into(),
        json!(duration_micros(clock.now.duration_since(clock.created))),
    );
    doc.insert("time".into(), json!(clock.unix.as_secs()));
    doc.insert(
        "age".into(),
        json!(duration_micros(clock.now.duration_since(clock.created))),
    );
    doc.insert("tx".into(), json!(int(m.sum("node-metrics", "request-total"))));
    doc.insert(
        "tx_bytes".into(),
        json!(int(m.sum("node-metrics", "outgoing-byte-total"))),
    );
    doc.insert("rx".into(), json!(int(m.sum("node-metrics", "response-total"))));
    doc.insert(
        "rx_bytes".into(),
        json!(int(m.sum("node-metrics", "incoming-byte-total"))),
    );
    if let Some(v) = get("producer-metrics", "record-send-total", &[]) {
        doc.insert("txmsgs".into(), json!(int(v)));
        doc.insert(
            "txmsg_bytes".into(),
            json!(int(m.sum("producer-topic-metrics", "byte-total"))),
        );
    }
    if let Some(v) = get("consumer-fetch-manager-metrics", "records-consumed-total", &[]) {
        doc.insert("rxmsgs".into(), json!(int(v)));
        if let Some(b) = get("consumer-fetch-manager-metrics", "bytes-consumed-total", &[]) {
            doc.insert("rxmsg_bytes".into(), json!(int(b)));
        }
    }

    // Brokers, keyed "host:port/id" as librdkafka keys them.
    let mut brokers = Map::new();
    for b in md.brokers.values() {
        let node = format!("node-{}", b.node_id);
        let tags = [("node-id", node.as_str())];
        let nodename = format!("{}:{}", b.host, b.port);
        let name = format!("{nodename}/{}", b.node_id);
        let connected = get("node-metrics", "connection-count", &tags).is_some_and(|c| c > 0.0);
        let mut e = Map::new();
        e.insert("name".into(), json!(name));
        e.insert("nodeid".into(), json!(b.node_id));
        e.insert("nodename".into(), json!(nodename));
        e.insert("source".into(), json!("learned"));
        e.insert("state".into(), json!(if connected { "UP" } else { "DOWN" }));
        for (field, metric) in [
            ("tx", "request-total"),
            ("txbytes", "outgoing-byte-total"),
            ("rx", "response-total"),
            ("rxbytes", "incoming-byte-total"),
            ("connects", "connection-creation-total"),
            ("disconnects", "connection-close-total"),
        ] {
            e.insert(field.into(), json!(get("node-metrics", metric, &tags).map_or(0, int)));
        }
        let mut rtt = Map::new();
        for (field, metric) in [
            ("avg", "request-latency-avg"),
            ("max", "request-latency-max"),
            ("p50", "request-latency-p50"),
            ("p99", "request-latency-p99"),
            ("p99_99", "request-latency-p999"),
        ] {
            if let Some(us) = micros(get("node-metrics", metric, &tags)) {
                rtt.insert(field.into(), json!(us));
            }
        }
        e.insert("rtt".into(), Value::Object(rtt));
        brokers.insert(name, Value::Object(e));
    }
    doc.insert("brokers".into(), Value::Object(brokers));

    // Topics the producer wrote or the consumer read, with their partitions' leaders and
    // the consumer's lag.
    let mut names: Vec<&str> = m
        .metrics
        .iter()
        .filter(|x| x.group == "producer-topic-metrics" || x.group == "consumer-fetch-manager-metrics")
        .filter_map(|x| x.tags.iter().find(|(k, _)| *k == "topic").map(|(_, v)| v.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut topics = Map::new();
    for name in names {
        let mut parts: BTreeMap<i32, Map<String, Value>> = BTreeMap::new();
        if let Some(t) = md.topic(name) {
            for p in &t.partitions {
                let e = parts.entry(p.partition).or_default();
                e.insert("partition".into(), json!(p.partition));
                e.insert("leader".into(), json!(p.leader));
            }
        }
        for x in m.metrics.iter().filter(|x| {
            x.group == "consumer-fetch-manager-metrics" && x.tags.iter().any(|(k, v)| *k == "topic" && v == name)
        }) {
            let Some(p) = x
                .tags
                .iter()
                .find(|(k, _)| *k == "partition")
                .and_then(|(_, v)| v.parse::<i32>().ok())
            else {
                continue;
            };
            let field = match x.name.as_str() {
                "records-lag" => "consumer_lag",
                "records-lead" => "consumer_lead",
                "preferred-read-replica" => "preferred_replica",
                _ => continue,
            };
            let e = parts.entry(p).or_default();
            e.insert("partition".into(), json!(p));
            e.insert(field.into(), json!(int(x.value)));
        }
        let mut t = Map::new();
        t.insert("topic".into(), json!(name));
        let topic_tags = [("topic", name)];
        if let Some(v) = get("producer-topic-metrics", "record-send-total", &topic_tags) {
            t.insert("txmsgs".into(), json!(int(v)));
        }
        if let Some(v) = get("producer-topic-metrics", "byte-total", &topic_tags) {
            t.insert("txbytes".into(), json!(int(v)));
        }
        if let Some(v) = get("consumer-fetch-manager-metrics", "records-consumed-total", &topic_tags) {
            t.insert("rxmsgs".into(), json!(int(v)));
        }
        let parts: Map<String, Value> = parts
            .into_iter()
            .map(|(p, e)| (p.to_string(), Value::Object(e)))
            .collect();
        t.insert("partitions".into(), Value::Object(parts));
        topics.insert(name.to_owned(), Value::Object(t));
    }
    doc.insert("topics".into(), Value::Object(topics));

    if has("consumer-coordinator-metrics") {
        let g = "consumer-coordinator-metrics";
        let mut cgrp = Map::new();
        if let Some(v) = get(g, "rebalance-total", &[]) {
            cgrp.insert("rebalance_cnt".into(), json!(int(v)));
        }
        if let Some(s) = get(g, "last-rebalance-seconds-ago", &[]).filter(|s| *s >= 0.0) {
            cgrp.insert("rebalance_age".into(), json!(int(s * 1000.0)));
        }
        if let Some(v) = get(g, "assigned-partitions", &[]) {
            cgrp.insert("assignment_size".into(), json!(int(v)));
        }
        doc.insert("cgrp".into(), Value::Object(cgrp));
    }

    // Everything, under the Java names.
    let metrics: Vec<Value> = m
        .metrics
        .iter()
        .map(|x| {
            let tags: Map<String, Value> = x.tags.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
            json!({
                "group": x.group,
                "name": x.name,
                "tags": tags,
                "value": if x.value.is_finite() { json!(x.value) } else { Value::Null },
            })
        })
        .collect();
    doc.insert("metrics".into(), Value::Array(metrics));
    Value::Object(doc).to_string()
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::client::{BrokerInfo, PartitionInfo, TopicInfo};
    use crate::metrics::MetricRegistry;

    #[test]
    fn the_document_carries_librdkafkas_fields_from_the_registry() {
        let r = MetricRegistry::new("app", Duration::from_secs(30), 2);
        let node = r.node(1);
        node.request.add(7);
        node.response.add(6);
        node.outgoing_byte.add(700);
        node.request_latency.record_duration(Duration::from_millis(4));
        let p = crate::metrics::ProducerInstruments::new(&r);
        p.record_send.add(10);
        let t = p.topic("orders");
        t.record_send.add(10);
        t.byte.add(1000);
        let mut md = ClusterMetadata::default();
        md.brokers.insert(
            1,
            BrokerInfo {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
                rack: None,
            },
        );
        md.topics.insert(
            "orders".into(),
            TopicInfo {
                name: "orders".into(),
                topic_id: uuid::Uuid::nil(),
                is_internal: false,
                partitions: vec![PartitionInfo {
                    partition: 0,
                    leader: 1,
                    leader_epoch: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    offline_replicas: Vec::new(),
                    error: strom_protocol::ErrorCode::None,
                }],
            },
        );
        let created = Instant::now();
        let clock = Clock {
            created,
            now: created + Duration::from_millis(1500),
            unix: Duration::from_secs(1_700_000_000),
        };
        let doc: Value = serde_json::from_str(&render("app", &clock, &md, &r.snapshot())).unwrap();
        assert_eq!(doc["client_id"], "app");
        assert_eq!(doc["type"], "producer");
        assert_eq!(doc["age"], 1_500_000);
        assert_eq!(doc["time"], 1_700_000_000);
        assert_eq!(doc["tx"], 7);
        assert_eq!(doc["rx"], 6);
        assert_eq!(doc["txmsgs"], 10);
        assert_eq!(doc["txmsg_bytes"], 1000);
        let b = &doc["brokers"]["127.0.0.1:9092/1"];
        assert_eq!(b["nodeid"], 1);
        assert_eq!(b["txbytes"], 700);
        assert_eq!(b["state"], "DOWN");
        assert_eq!(b["rtt"]["avg"], 4000, "{b}");
        assert_eq!(doc["topics"]["orders"]["txmsgs"], 10);
        assert_eq!(doc["topics"]["orders"]["partitions"]["0"]["leader"], 1);
        assert!(doc.get("cgrp").is_none(), "no group, no cgrp");
        assert!(doc.get("rxmsgs").is_none(), "no consumer, no rxmsgs");
        assert!(doc["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "record-send-total" && x["group"] == "producer-metrics" && x["value"] == 10.0));
    }
}
