//! The shared [`Client`]: configuration, cluster metadata and one connection per broker.
//!
//! Metadata is an immutable snapshot behind an `Arc`, swapped on refresh, so readers never
//! hold a lock across an await. Connections are made lazily per node id; a closed one is
//! replaced on next use after an exponential backoff (`reconnect.backoff.ms` doubling up
//! to `reconnect.backoff.max.ms`, ±20 % jitter, as Java's `ClusterConnectionStates`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::metadata_request::MetadataRequestTopic;
use strom_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use strom_protocol::ErrorCode;
use tracing::{debug, info};

use crate::backoff::ExponentialBackoff;
use crate::config::{ClientConfig, ClientDnsLookup, MetadataRecoveryStrategy};
use crate::connection::{Connection, ConnectionConfig, ConnectionMetrics};
use crate::error::{Error, Kind, Result};
pub use crate::metadata::{BrokerInfo, ClusterMetadata, PartitionInfo, TopicInfo};

#[derive(Default)]
struct NodeSlot {
    /// Held while a connection is made, so one task connects and the others wait for it.
    connect: tokio::sync::Mutex<Backoff>,
    /// The current connection and the counters, behind a lock never held across an await:
    /// metrics and the fast path read it while a connect is under way.
    stats: Mutex<SlotStats>,
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
}

#[derive(Default)]
struct SlotStats {
    conn: Option<Connection>,
    /// Counters of this node's earlier, closed connections.
    retired: ConnectionMetrics,
    connects: u64,
    connect_failures: u64,
}

impl NodeSlot {
    fn new() -> Self {
        NodeSlot {
            connect: tokio::sync::Mutex::new(Backoff::default()),
            stats: Mutex::new(SlotStats::default()),
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, SlotStats> {
        // The critical sections only copy counters: a panic inside one leaves them usable.
        self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self) -> Option<Connection> {
        self.stats().conn.as_ref().filter(|c| !c.is_closed()).cloned()
    }
}

/// Per-broker counters since the client started (all connections to that broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetrics {
    /// Node id.
    pub node_id: i32,
    /// Connected now.
    pub connected: bool,
    /// Connections established (the first one included: reconnects = connects - 1).
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Requests, responses, bytes and failed requests, summed over connections.
    pub totals: ConnectionMetrics,
}

/// Coordinator connections live in slots keyed `COORDINATOR_SLOT - node_id` (Java's
/// `Integer.MAX_VALUE - node.id`).
const COORDINATOR_SLOT: i32 = i32::MAX;

struct Inner {
    config: ClientConfig,
    conn_config: ConnectionConfig,
    metadata: RwLock<(Arc<ClusterMetadata>, Instant)>,
    /// Bumped (under the write lock) each time `metadata` is replaced, so a hot path can
    /// keep what it derived from a snapshot until the snapshot changes.
    metadata_generation: AtomicU64,
    /// Keyed by node id, or [`COORDINATOR_SLOT`] minus node id for coordinator connections.
    nodes: Mutex<HashMap<i32, Arc<NodeSlot>>>,
    bootstrap: tokio::sync::Mutex<Option<Connection>>,
    registry: crate::metrics::MetricRegistry,
    created: Instant,
    /// Where the statistics documents go (`statistics.interval.ms` set).
    statistics: Option<tokio::sync::broadcast::Sender<Arc<str>>>,
}

/// The shared client handle: clone it freely; all clones share connections and metadata.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.config.bootstrap_servers)
            .finish_non_exhaustive()
    }
}

/// A duration to the nearest tenth of a second, for messages (`18.5s`, not
/// `18.503127861s`; a call that ended on its 1 s budget says `1s`).
fn round_tenths(d: Duration) -> Duration {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(ms.saturating_add(50) / 100 * 100)
}

impl Client {
    /// Connects to the cluster: tries the bootstrap servers in order, with backoff, until
    /// one answers Metadata or `default.api.timeout.ms` runs out.
    ///
    /// Cancellation-safe: dropping the future leaves nothing behind.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        // TLS material and SASL settings are read and checked once, here.
        let conn_config = config.connection_config()?;
        if config.statistics_callback.is_some() && config.statistics_interval.is_none() {
            return Err(Error::config(
                "a statistics callback is set but statistics.interval.ms is 0 (off): set the interval, \
                 or remove the callback",
            ));
        }
        let statistics = config
            .statistics_interval
            .map(|_| tokio::sync::broadcast::channel(crate::statistics::KEPT).0);
        let registry = crate::metrics::MetricRegistry::new(
            &config.client_id,
            config.metrics_sample_window,
            config.metrics_num_samples,
        );
        let client = Client {
            inner: Arc::new(Inner {
                registry,
                config,
                conn_config,
                metadata: RwLock::new((Arc::new(ClusterMetadata::default()), Instant::now())),
                metadata_generation: AtomicU64::new(0),
                nodes: Mutex::new(HashMap::new()),
                bootstrap: tokio::sync::Mutex::new(None),
                created: Instant::now(),
                statistics,
            }),
        };
        client.refresh_metadata(Some(&[])).await?;
        if let (Some(interval), Some(tx)) = (client.inner.config.statistics_interval, &client.inner.statistics) {
            crate::statistics::spawn(
                Arc::downgrade(&client.inner),
                interval,
                |inner: &Inner| {
                    let md = match inner.metadata.read() {
                        Ok(g) => g.0.clone(),
                        Err(poisoned) => poisoned.into_inner().0.clone(),
                    };
                    crate::statistics::render(
                        &inner.config.client_id,
                        &crate::statistics::Clock::now(inner.created),
                        &md,
                        &inner.registry.snapshot(),
                    )
                },
                tx.clone(),
                client.inner.config.statistics_callback.clone(),
            );
        }
        Ok(client)
    }

    /// The statistics documents of this client, one every `statistics.interval.ms`
    /// (librdkafka's JSON layout; see [`crate::statistics`]). An error of kind
    /// [`crate::ErrorKind::InvalidConfig`] when that interval is 0 (off).
    pub fn statistics(&self) -> Result<crate::statistics::StatisticsReceiver> {
        self.inner
            .statistics
            .as_ref()
            .map(|tx| crate::statistics::StatisticsReceiver::new(tx.subscribe()))
            .ok_or_else(|| Error::config("statistics.interval.ms is 0 (off): set it to receive statistics"))
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        match self.inner.metadata.read() {
            Ok(g) => g.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// Changes whenever the metadata snapshot is replaced (a refresh, or a topic
    /// invalidated). Reading it is one atomic load; the producer keeps each topic's partition
    /// count until it changes instead of looking the topic up for every record.
    pub(crate) fn metadata_generation(&self) -> u64 {
        self.inner.metadata_generation.load(Ordering::Acquire)
    }

    pub(crate) fn metadata_age(&self) -> Duration {
        match self.inner.metadata.read() {
            Ok(g) => g.1.elapsed(),
            Err(poisoned) => poisoned.into_inner().1.elapsed(),
        }
    }

    /// A connection to any broker: a known live one, else a bootstrap server (trying them
    /// until `default.api.timeout.ms`).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; a connection being opened is
    /// kept for the next call or closed.
    pub async fn any_broker(&self) -> Result<Connection> {
        self.any_broker_until(Instant::now() + self.inner.config.default_api_timeout)
            .await
    }

    /// [`Client::any_broker`], trying bootstrap servers until `deadline`.
    async fn any_broker_until(&self, deadline: Instant) -> Result<Connection> {
        let md = self.metadata();
        for &id in md.brokers.keys() {
            if let Some(c) = self.live_connection(id) {
                return Ok(c);
            }
        }
        let mut last = None;
        for &id in md.brokers.keys() {
            match self.broker(id).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    debug!(node = id, error = %e, "broker unreachable, trying another");
                    last = Some(e);
                }
            }
        }
        if md.brokers.is_empty()
            || self.inner.config.metadata_recovery_strategy == MetadataRecoveryStrategy::Rebootstrap
        {
            if !md.brokers.is_empty() {
                // KIP-899: none of the cluster's brokers answers; the bootstrap servers may
                // now point at where it went.
                info!("no known broker is reachable: rebootstrapping (metadata.recovery.strategy=rebootstrap)");
            }
            return self.bootstrap_connection(deadline).await;
        }
        let ids: Vec<String> = md.brokers.keys().map(ToString::to_string).collect();
        Err(last
            .unwrap_or_else(|| {
                Error::new(crate::error::Kind::Closed {
                    addr: "any broker".into(),
                    reason: Some("no broker to try".into()),
                })
            })
            .with_context(format!(
                "none of the cluster's brokers ({}) is reachable, and metadata.recovery.strategy=none does not try \
                 the bootstrap servers again",
                ids.join(", ")
            )))
    }

    fn live_connection(&self, node_id: i32) -> Option<Connection> {
        let slot = self.inner.nodes.lock().ok()?.get(&node_id)?.clone();
        slot.live()
    }

    async fn bootstrap_connection(&self, deadline: Instant) -> Result<Connection> {
        let mut guard = self.inner.bootstrap.lock().await;
        if let Some(c) = guard.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let cfg = &self.inner.config;
        let started = Instant::now();
        // Per bootstrap address: attempts made and the last error, for an error that says
        // what was tried.
        let servers = match cfg.client_dns_lookup {
            ClientDnsLookup::UseAllDnsIps => cfg.bootstrap_servers.clone(),
            // A custom transport's addresses are its own names, not DNS names.
            ClientDnsLookup::ResolveCanonicalBootstrapServersOnly if cfg.transport.is_some() => {
                cfg.bootstrap_servers.clone()
            }
            ClientDnsLookup::ResolveCanonicalBootstrapServersOnly => {
                // Bounded like the rest of the call; the names as given when DNS is that slow.
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::timeout(
                    left,
                    crate::transport::canonical_bootstrap_servers(&cfg.bootstrap_servers),
                )
                .await
                .unwrap_or_else(|_| cfg.bootstrap_servers.clone())
            }
        };
        let mut tried: Vec<(&str, u32, Option<Error>)> = servers.iter().map(|a| (a.as_str(), 0, None)).collect();
        let mut round = 0u32;
        loop {
            round += 1;
            for (addr, attempts, last) in &mut tried {
                // Each attempt is bounded by what is left of the budget, so the whole call
                // ends at default.api.timeout.ms, not one connect timeout after it.
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                *attempts += 1;
                match tokio::time::timeout(left, Connection::connect(addr, self.inner.conn_config.clone())).await {
                    Ok(Ok(c)) => {
                        self.connected(&c, -1);
                        *guard = Some(c.clone());
                        return Ok(c);
                    }
                    Ok(Err(e)) => {
                        debug!(%addr, error = %e, "bootstrap server unreachable");
                        self.connect_failed(&e, -1);
                        if e.is_fatal() {
                            return Err(e);
                        }
                        *last = Some(e);
                    }
                    Err(_) => {
                        debug!(%addr, "bootstrap connection attempt cut at default.api.timeout.ms");
                        // An attempt the deadline cut says nothing new: the failure before it
                        // (a refused certificate, a wrong security.protocol) stays the one
                        // reported.
                        if last.is_none() {
                            *last = Some(Error::timeout(format!("connecting to {addr}"), left));
                        }
                    }
                }
            }
            // Java fails at once when no bootstrap address resolves ("No resolvable bootstrap
            // urls given in bootstrap.servers", ClientUtils): waiting cannot fix a typo.
            if round == 1 && tried.iter().all(|(_, _, e)| e.as_ref().is_some_and(Error::is_dns)) {
                let detail = tried
                    .iter()
                    .filter_map(|(_, _, e)| e.as_ref().map(ToString::to_string))
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Error::new(Kind::NoResolvableBootstrap { detail }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let summary = tried
                    .iter()
                    .map(|(addr, attempts, last)| {
                        let last = last
                            .as_ref()
                            .map_or_else(|| "not tried".to_owned(), ToString::to_string);
                        format!("{addr}: {attempts} attempt(s), last: {last}")
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(Error::timeout(
                    format!(
                        "connecting to the bootstrap servers (default.api.timeout.ms {:?}, {round} round(s)): {summary}",
                        cfg.default_api_timeout
                    ),
                    round_tenths(started.elapsed()),
                ));
            }
            // The last round runs at the deadline rather than giving up a backoff early.
            let backoff = ExponentialBackoff::reconnects(cfg).delay(round);
            tokio::time::sleep(backoff.min(left)).await;
        }
    }

    /// The connection to broker `node_id`, connecting (after backoff) if needed.
    ///
    /// Cancellation-safe: a dropped call leaves the slot consistent.
    pub async fn broker(&self, node_id: i32) -> Result<Connection> {
        self.slot_connection(node_id, node_id).await
    }

    /// The connection to broker `node_id` when one is open, without waiting; else a
    /// connection made by a task of its own. For a caller that holds the future among
    /// others a task polls (the producer's flights): connecting holds the broker's slot
    /// lock across awaits, and a future the task stops polling while it awaits the same
    /// broker elsewhere (a transaction's coordinator) would keep that lock forever.
    pub(crate) async fn broker_detached(&self, node_id: i32) -> Result<Connection> {
        let slot = self
            .inner
            .nodes
            .lock()
            .map_err(|_| Error::internal("client state poisoned"))?
            .get(&node_id)
            .cloned();
        if let Some(c) = slot.and_then(|s| s.live()) {
            return Ok(c);
        }
        let client = self.clone();
        tokio::spawn(async move { client.broker(node_id).await })
            .await
            .map_err(|e| Error::internal(format!("connecting to broker {node_id}: {e}")))?
    }

    /// A second connection to broker `node_id`, for group coordination (commits, offset
    /// fetches, heartbeats): the broker answers one request per connection at a time, so on
    /// the data connection a commit would wait behind a Fetch held for `fetch.max.wait.ms`.
    /// Java gives the coordinator its own socket for the same reason.
    pub(crate) async fn coordinator_connection(&self, node_id: i32) -> Result<Connection> {
        self.slot_connection(COORDINATOR_SLOT - node_id, node_id).await
    }

    async fn slot_connection(&self, key: i32, node_id: i32) -> Result<Connection> {
        let slot = {
            let mut nodes = self
                .inner
                .nodes
                .lock()
                .map_err(|_| Error::internal("client state poisoned"))?;
            nodes.entry(key).or_insert_with(|| Arc::new(NodeSlot::new())).clone()
        };
        if let Some(c) = slot.live() {
            return Ok(c);
        }
        let mut backoff = slot.connect.lock().await;
        {
            // Another task may have connected while this one waited for the lock.
            let mut stats = slot.stats();
            if let Some(c) = stats.conn.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
            if let Some(old) = stats.conn.take() {
                let m = old.metrics();
                let r = &mut stats.retired;
                r.requests += m.requests;
                r.responses += m.responses;
                r.bytes_out += m.bytes_out;
                r.bytes_in += m.bytes_in;
                r.errors += m.errors;
            }
        }
        let info = self.broker_info(node_id).await?;
        if let Some(at) = backoff.next_attempt {
            tokio::time::sleep_until(at).await;
        }
        let addr = info.addr();
        match Connection::connect(&addr, self.inner.conn_config.clone()).await {
            Ok(c) => {
                if backoff.failures > 0 {
                    info!(node = node_id, %addr, "reconnected");
                }
                backoff.failures = 0;
                backoff.next_attempt = None;
                self.connected(&c, node_id);
                let mut stats = slot.stats();
                stats.connects += 1;
                stats.conn = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let cfg = &self.inner.config;
                backoff.failures = backoff.failures.saturating_add(1);
                let wait = ExponentialBackoff::reconnects(cfg).delay(backoff.failures);
                backoff.next_attempt = Some(Instant::now() + wait);
                slot.stats().connect_failures += 1;
                self.connect_failed(&e, node_id);
                Err(e.with_context(format!("broker {node_id}")))
            }
        }
    }

    /// Where broker `node_id` listens: from the cached metadata, else from a refresh (a
    /// broker that came back, or joined, after the last one: a coordinator lookup can name
    /// it before the cache knows it; Java takes the coordinator's address from the lookup's
    /// answer). The error names the node when the cluster does not know it either.
    async fn broker_info(&self, node_id: i32) -> Result<BrokerInfo> {
        if let Some(info) = self.metadata().brokers.get(&node_id) {
            return Ok(info.clone());
        }
        // Boxed: a refresh connects to a broker, which can come back here (never for a
        // broker the metadata names, so never twice).
        let md = Box::pin(self.refresh_metadata(Some(&[]))).await?;
        md.brokers
            .get(&node_id)
            .cloned()
            .ok_or_else(|| Error::unknown_node(node_id))
    }

    /// A new connection to broker `node_id` that no one else uses, with its own request
    /// timeout: for requests the broker may hold for long (JoinGroup waits for the whole
    /// group), which would otherwise block every request behind them on the shared
    /// connection (Java gives the group coordinator its own socket for the same reason).
    pub(crate) async fn dedicated_connection(&self, node_id: i32, request_timeout: Duration) -> Result<Connection> {
        let info = self.broker_info(node_id).await?;
        let mut cfg = self.inner.conn_config.clone();
        cfg.request_timeout = cfg.request_timeout.max(request_timeout);
        let c = Connection::connect(&info.addr(), cfg).await.map_err(|e| {
            self.connect_failed(&e, node_id);
            e.with_context(format!("broker {node_id}"))
        })?;
        self.connected(&c, node_id);
        Ok(c)
    }

    /// A new connection to `node_id` (-1: bootstrap) counts in its `node-metrics`, and as a
    /// successful authentication under SASL.
    fn connected(&self, c: &Connection, node_id: i32) {
        let m = self.inner.registry.node(node_id);
        let sasl = self
            .inner
            .conn_config
            .security
            .as_deref()
            .is_some_and(crate::security::Security::has_sasl);
        if sasl {
            m.successful_authentication.add(1);
        }
        c.attach_metrics(m);
    }

    /// A connection attempt to `node_id` failed: counted as a failed authentication when
    /// the broker refused the credentials.
    fn connect_failed(&self, e: &Error, node_id: i32) {
        if e.kind() == crate::ErrorKind::Authentication {
            self.inner.registry.node(node_id).failed_authentication.add(1);
        }
    }

    /// Fetches metadata and merges it into the cache. `None`: all topics; `Some(&[])`: brokers
    /// only; otherwise those topics (unknown ones are removed from the cache).
    ///
    /// Retries retriable failures on another broker until `default.api.timeout.ms`.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the client keeps the
    /// metadata it had (or the newer one, if the answer arrived).
    pub async fn refresh_metadata(&self, topics: Option<&[&str]>) -> Result<Arc<ClusterMetadata>> {
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string((*t).to_owned()))))
                    })
                    .collect()
            }));
        // One budget for the whole call: a bootstrap that takes all of it is not retried.
        let deadline = Instant::now() + self.inner.config.default_api_timeout;
        let resp = self
            .with_retries("Metadata", || async {
                self.any_broker_until(deadline).await?.send(&req).await
            })
            .await?;
        Ok(self.merge_metadata(resp, topics.is_none()))
    }

    fn merge_metadata(&self, resp: MetadataResponse, all_topics: bool) -> Arc<ClusterMetadata> {
        let mut guard = match self.inner.metadata.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut md = (*guard.0).clone();
        md.cluster_id = resp.cluster_id.map(|s| s.to_string());
        md.controller_id = resp.controller_id.0;
        md.brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        if all_topics {
            md.topics.clear();
            md.topic_errors.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let code = ErrorCode::from(t.error_code);
            if code != ErrorCode::None {
                md.topics.remove(&name);
                md.topic_errors.insert(name, code);
                continue;
            }
            md.topic_errors.remove(&name);
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                    isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|n| n.0).collect(),
                    error: ErrorCode::from(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            md.topics.insert(
                name.clone(),
                TopicInfo {
                    name,
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                },
            );
        }
        let md = Arc::new(md);
        *guard = (md.clone(), Instant::now());
        self.inner.metadata_generation.fetch_add(1, Ordering::AcqRel);
        md
    }

    /// Metadata of `topic`, from the cache when fresh (`metadata.max.age.ms`), else fetched.
    /// A topic the broker did not describe is the error it gave (TOPIC_AUTHORIZATION_FAILED
    /// for one the principal may not see), else UNKNOWN_TOPIC_OR_PARTITION, naming it.
    ///
    /// Cancellation-safe: dropping the call loses only its answer.
    pub async fn topic(&self, topic: &str) -> Result<TopicInfo> {
        if self.metadata_age() < self.inner.config.metadata_max_age {
            if let Some(t) = self.metadata().topic(topic) {
                return Ok(t.clone());
            }
        }
        let md = self.refresh_metadata(Some(&[topic])).await?;
        md.topic(topic).cloned().ok_or_else(|| {
            let code = md
                .topic_errors
                .get(topic)
                .copied()
                .unwrap_or(ErrorCode::UnknownTopicOrPartition);
            Error::kafka(code).with_context(format!("topic {topic}"))
        })
    }

    /// `topic`'s metadata, fetched fresh, and fetched again after a retriable topic error
    /// (LEADER_NOT_AVAILABLE while the topic is created or its leader moves) until `budget`
    /// (`budget_name` in the error) passes. A topic the cluster does not know fails at once
    /// with UNKNOWN_TOPIC_OR_PARTITION naming it, as does any other error (an invalid name,
    /// no authorization). Used where Java waits for a topic: the admin client's lookups and
    /// the producer's `waitOnMetadata` (which, unlike this, also waits for an unknown one).
    pub(crate) async fn topic_settled(&self, topic: &str, budget: Duration, budget_name: &str) -> Result<TopicInfo> {
        let what = format!("metadata of topic {topic}");
        self.with_retries_within(&what, budget, budget_name, || async {
            let md = self.refresh_metadata(Some(&[topic])).await?;
            if let Some(info) = md.topic(topic) {
                return Ok(Ok(info.clone()));
            }
            let code = md
                .topic_errors
                .get(topic)
                .copied()
                .unwrap_or(ErrorCode::UnknownTopicOrPartition);
            let e = Error::kafka(code).with_context(format!("topic {topic}"));
            // Not retried: an unknown topic is the answer (Ok(Err) leaves the loop).
            if code == ErrorCode::UnknownTopicOrPartition {
                Ok(Err(e))
            } else {
                Err(e)
            }
        })
        .await?
    }

    /// The leader of a partition and a connection to it.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; a connection being opened is
    /// kept for the next call or closed.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<(i32, Connection)> {
        let t = self.topic(topic).await?;
        let p = t.partitions.iter().find(|p| p.partition == partition).ok_or_else(|| {
            Error::kafka(ErrorCode::UnknownTopicOrPartition)
                .with_context(format!("topic {topic} partition {partition}"))
                .with_partition(topic, partition)
        })?;
        if p.leader < 0 {
            return Err(Error::kafka(ErrorCode::LeaderNotAvailable)
                .with_context(format!("topic {topic} partition {partition}"))
                .with_partition(topic, partition));
        }
        Ok((p.leader, self.broker(p.leader).await?))
    }

    /// Forgets cached metadata of `topic` (after NOT_LEADER_OR_FOLLOWER and the like), so the
    /// next lookup fetches it.
    pub fn invalidate_topic(&self, topic: &str) {
        let mut guard = match self.inner.metadata.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if guard.0.topics.contains_key(topic) {
            let mut md = (*guard.0).clone();
            md.topics.remove(topic);
            guard.0 = Arc::new(md);
            self.inner.metadata_generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The registry every role on this client records its metrics into, under the Java
    /// client's names (see [`crate::metrics`]).
    pub fn metric_registry(&self) -> &crate::metrics::MetricRegistry {
        &self.inner.registry
    }

    /// Counters per broker this client has talked to (bootstrap connections excluded).
    pub fn metrics(&self) -> Vec<BrokerMetrics> {
        let Ok(nodes) = self.inner.nodes.lock() else {
            return Vec::new();
        };
        let mut out: Vec<BrokerMetrics> = nodes
            .iter()
            .map(|(&key, slot)| {
                let node_id = if key > COORDINATOR_SLOT / 2 {
                    COORDINATOR_SLOT - key
                } else {
                    key
                };
                let slot = slot.stats();
                let live = slot.conn.as_ref().map(Connection::metrics).unwrap_or_default();
                let r = &slot.retired;
                BrokerMetrics {
                    node_id,
                    connected: slot.conn.as_ref().is_some_and(|c| !c.is_closed()),
                    connects: slot.connects,
                    connect_failures: slot.connect_failures,
                    totals: ConnectionMetrics {
                        requests: r.requests + live.requests,
                        responses: r.responses + live.responses,
                        bytes_out: r.bytes_out + live.bytes_out,
                        bytes_in: r.bytes_in + live.bytes_in,
                        errors: r.errors + live.errors,
                        inflight: live.inflight,
                    },
                }
            })
            .collect();
        out.sort_by_key(|m| m.node_id);
        // One row per broker: its data and coordinator connections summed.
        out.dedup_by(|b, a| {
            if a.node_id != b.node_id {
                return false;
            }
            a.connected |= b.connected;
            a.connects += b.connects;
            a.connect_failures += b.connect_failures;
            a.totals.requests += b.totals.requests;
            a.totals.responses += b.totals.responses;
            a.totals.bytes_out += b.totals.bytes_out;
            a.totals.bytes_in += b.totals.bytes_in;
            a.totals.errors += b.totals.errors;
            a.totals.inflight += b.totals.inflight;
            true
        });
        out
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or
    /// `default.api.timeout.ms` passes; sleeps `retry.backoff.ms` between tries.
    ///
    /// Cancellation: dropping the call drops the attempt in progress (its request may still
    /// reach the broker) and makes no further attempt.
    pub async fn with_retries<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let budget = self.inner.config.default_api_timeout;
        self.with_retries_within(what, budget, "default.api.timeout.ms", op)
            .await
    }

    /// [`Client::with_retries`] within another budget (`budget_name` names its setting in
    /// the error, e.g. the producer's `max.block.ms`).
    pub(crate) async fn with_retries_within<T, F, Fut>(
        &self,
        what: &str,
        budget: Duration,
        budget_name: &str,
        mut op: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let cfg = &self.inner.config;
        let started = Instant::now();
        let deadline = started + budget;
        let mut attempts = 0u32;
        // The last failure that was not a timeout: when the budget runs out in the middle of
        // an attempt, that timeout says less than what kept failing before it.
        let mut telling: Option<Error> = None;
        loop {
            attempts += 1;
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // One draw of the jitter: the wait checked against the deadline is the wait slept.
            let wait = ExponentialBackoff::retries(cfg).delay(attempts);
            // When the next wait would cross the deadline, one last attempt a backoff before
            // it: the budget is used up, as Java's callers wait their whole max.block.ms or
            // default.api.timeout.ms (giving up as soon as the next backoff crossed it ended
            // some waits at half their budget).
            let margin = cfg.retry_backoff.max(Duration::from_millis(10));
            let left = deadline.saturating_duration_since(Instant::now());
            // (Only once: after it less than two margins are left, and it gives up.)
            let wait = if wait < left || left <= 2 * margin {
                wait
            } else {
                left - margin
            };
            if e.is_retriable() && wait < left {
                debug!(what, error = %e, ?wait, "retrying");
                if !e.is_timeout() {
                    telling = Some(e);
                }
                tokio::time::sleep(wait).await;
                continue;
            }
            if attempts == 1 {
                return Err(e);
            }
            let e = match telling {
                Some(prev) if e.is_timeout() && std::error::Error::source(&e).is_none() => e.with_cause(prev),
                _ => e,
            };
            return Err(e.with_context(format!(
                "{what}: gave up after {attempts} attempts in {:?} ({budget_name} {budget:?})",
                round_tenths(started.elapsed()),
            )));
        }
    }
}
