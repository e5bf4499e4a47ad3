//! # strom-fake: a Kafka cluster in your test process
//!
//! A fake cluster that starts in milliseconds inside `cargo test`, speaks the real Kafka
//! wire protocol on loopback (so Strom, Java's clients or any other client can talk to it),
//! keeps its data in memory, and can be told to fail in precise ways. It is a test double,
//! not a broker: nothing is durable, and it implements the APIs a producer (idempotent or
//! transactional), a consumer in a classic group (read_committed
//! too) and an admin client use (see [`SUPPORTED`]; DescribeConfigs with Kafka 4.4's topic
//! config defaults, DescribeTransactions and ListTransactions among them), with SASL PLAIN and SCRAM if asked
//! ([`FakeClusterBuilder::sasl_user`]), KIP-848 groups (regex subscriptions too) and KIP-890
//! transactions ([`FakeClusterBuilder::transaction_version`]); TLS is not implemented yet.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use strom_fake::{ApiKey, ErrorCode, Fault, FakeCluster};
//!
//! let cluster = FakeCluster::builder().brokers(3).topic("orders", 6, 3).start().await?;
//! let bootstrap = cluster.bootstrap_servers(); // "127.0.0.1:port,..."
//! // The next two produce requests for orders-0 fail; the producer must retry them.
//! cluster.inject(Fault::error(ApiKey::Produce, ErrorCode::NotLeaderOrFollower).on_partition("orders", 0).times(2));
//! # let _ = bootstrap;
//! # Ok(()) }
//! ```
//!
//! With [`FakeClusterBuilder::in_memory`] there are no sockets: [`FakeCluster::transport`]
//! opens in-memory streams, and a Strom client given it (`ClientConfig::with_transport`)
//! runs with the cluster in tokio's virtual time under a paused clock.
//!
//! Faults ([`Fault`]): an error code for the next N requests of an API (optionally only on
//! one broker, or only for one partition), a delay, a closed connection, a lost answer, a
//! throttled connection (KIP-219); brokers stopped and started again
//! ([`FakeCluster::stop_broker`]); leadership moved ([`FakeCluster::move_leader`],
//! [`FakeCluster::reassign`]); a coordinator moved ([`FakeCluster::move_coordinator`]). Every request is logged ([`FakeCluster::requests`]) so a
//! test can assert on what the client sent.
//!
//! Fidelity: behaviour follows Apache Kafka 4.x where it is implemented (version ranges,
//! error codes, idempotent sequence checks, the classic group protocol), and the scenario
//! tests run the same client code against it and against a real broker.

mod cancel;
mod consumer_group;
mod group;
mod log;
mod memory;
mod sasl;
mod server;
mod state;
mod txn;

/// Entry points for the fuzz targets (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    /// Decodes one request frame (without its size) and answers it once.
    pub fn request(data: &[u8]) {
        crate::server::fuzz_request(data);
    }

    /// SASL tokens as the fake reads them: the first byte picks the mechanism, the rest is
    /// split at the first NUL byte pair into the first and the second token.
    pub fn sasl(data: &[u8]) {
        let Some((&pick, rest)) = data.split_first() else {
            return;
        };
        let mechanism = crate::sasl::MECHANISMS[usize::from(pick) % crate::sasl::MECHANISMS.len()];
        let (first, second) = match rest.windows(2).position(|w| w == [0, 0]) {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest, &[][..]),
        };
        let users: std::collections::BTreeMap<String, String> = [("u".to_owned(), "p".to_owned())].into();
        let mut ex = crate::sasl::Exchange::Start;
        ex.handshake(mechanism);
        let _ = ex.step(first, &users);
        let _ = ex.step(second, &users);
    }
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use cancel::poll_at_most;
pub use kafka_protocol::messages::ApiKey;
pub use memory::FakeTransport;
pub use state::{FaultAction, FetchDetail, FetchPosition, ProducedBatch, RequestRecord};
pub use strom_protocol::ErrorCode;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use server::{lock, Shared};
use state::{BrokerInfo, Settings, State};

/// The APIs the fake answers, with the versions (min, max) it advertises.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 4, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::CreatePartitions, 0, 3),
    // Transactions: transaction.version 1 (KIP-98) and 2 (KIP-890, EndTxn and
    // TxnOffsetCommit v5; see FakeClusterBuilder::transaction_version).
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::EndTxn, 0, 5),
    // KIP-848 consumer groups (server-side assignment).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    // KIP-664.
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
];

/// A scripted fault: what happens to the next requests of one API.
#[derive(Debug, Clone)]
pub struct Fault(state::Fault);

impl Fault {
    fn new(api: ApiKey, action: FaultAction) -> Self {
        Fault(state::Fault {
            api,
            node: None,
            partition: None,
            remaining: 1,
            action,
        })
    }

    /// The next request of `api` is answered with `code` (per partition for Produce, Fetch,
    /// ListOffsets and OffsetCommit: a failed produce appends nothing).
    pub fn error(api: ApiKey, code: ErrorCode) -> Self {
        Fault::new(api, FaultAction::Error(code))
    }

    /// The next request of `api` is held for `delay` before it is handled.
    pub fn delay(api: ApiKey, delay: Duration) -> Self {
        Fault::new(api, FaultAction::Delay(delay))
    }

    /// The connection of the next request of `api` is closed instead of answered.
    pub fn close_connection(api: ApiKey) -> Self {
        Fault::new(api, FaultAction::CloseConnection)
    }

    /// The next request of `api` is handled (a produce is written) but its answer is lost:
    /// the connection closes instead.
    pub fn drop_response(api: ApiKey) -> Self {
        Fault::new(api, FaultAction::DropResponse)
    }

    /// The next request of `api` is throttled for `time`, as a broker over a client quota
    /// throttles: the response carries `throttle_time_ms` and the broker then reads nothing
    /// more from that connection until the time is over (KIP-219; at versions before it,
    /// the response itself is held).
    pub fn throttle(api: ApiKey, time: Duration) -> Self {
        Fault::new(api, FaultAction::Throttle(time))
    }

    /// For the next `n` matching requests instead of one.
    pub fn times(mut self, n: u32) -> Self {
        self.0.remaining = n.max(1);
        self
    }

    /// Only requests that broker `node` receives.
    pub fn on_node(mut self, node: i32) -> Self {
        self.0.node = Some(node);
        self
    }

    /// Only requests naming this partition (and, for partition-level errors, only it). An
    /// incremental Fetch (KIP-227) covers the partitions of its session without naming them:
    /// it matches too.
    pub fn on_partition(mut self, topic: &str, partition: i32) -> Self {
        self.0.partition = Some((topic.to_owned(), partition));
        self
    }
}

/// How to start a [`FakeCluster`].
#[derive(Debug, Clone)]
pub struct FakeClusterBuilder {
    brokers: usize,
    port_base: Option<u16>,
    topics: Vec<(String, i32, i16)>,
    settings: Settings,
    racks: Vec<Option<String>>,
    users: Option<std::collections::BTreeMap<String, String>>,
    in_memory: bool,
}

impl FakeClusterBuilder {
    /// No sockets: the brokers are reached only through [`FakeCluster::transport`], over
    /// in-memory streams, at the addresses `broker-<id>.strom-fake:9092` (what
    /// [`FakeCluster::bootstrap_servers`] and the metadata name). Under tokio's paused clock
    /// (`#[tokio::test(start_paused = true)]`) the cluster and a Strom client given the
    /// transport run in virtual time: a 30 s session timeout or a delayed response takes no
    /// wall-clock time. [`port_base`](Self::port_base) does not apply.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }

    /// The number of brokers (1 by default), ids 1..=n.
    pub fn brokers(mut self, n: usize) -> Self {
        self.brokers = n.max(1);
        self
    }

    /// Listen on `port_base + 1`.. (one port per broker) instead of free ports.
    pub fn port_base(mut self, port: u16) -> Self {
        self.port_base = Some(port);
        self
    }

    /// A topic that exists from the start.
    pub fn topic(mut self, name: &str, partitions: i32, replication: i16) -> Self {
        self.topics.push((name.to_owned(), partitions, replication));
        self
    }

    /// Whether Metadata creates unknown topics (`auto.create.topics.enable`, true).
    pub fn auto_create_topics(mut self, on: bool) -> Self {
        self.settings.auto_create_topics = on;
        self
    }

    /// Partitions of an auto-created topic, or of one created with -1 (`num.partitions`, 1).
    pub fn default_partitions(mut self, n: i32) -> Self {
        self.settings.default_partitions = n.max(1);
        self
    }

    /// The rack of each broker, in id order (`broker.rack`).
    pub fn racks(mut self, racks: &[&str]) -> Self {
        self.racks = racks.iter().map(|r| Some((*r).to_owned())).collect();
        self
    }

    /// `replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector`
    /// (KIP-392): a leader answers a consumer that names a rack (`client.rack`, Fetch v11+)
    /// with no records and the id of a live replica in that rack, when the leader is in
    /// another. Replicas serve fetches of consumers at v11+ whatever the selector (every
    /// replica of the fake is in sync: a lagging follower is [`Fault::error`] with
    /// `OFFSET_OUT_OF_RANGE` on its node). Off by default, as in Kafka.
    pub fn rack_aware_replica_selector(mut self) -> Self {
        self.settings.rack_aware_replica_selector = true;
        self
    }

    /// Advertises and answers `api` only up to `version`, as an older broker would (a
    /// request above it closes the connection, as Kafka does for a version it does not
    /// know); below the lowest version the fake supports, the API is not advertised at all.
    pub fn max_version(mut self, api: ApiKey, version: i16) -> Self {
        self.settings.max_versions.push((api, version));
        self
    }

    /// Requires SASL (the listeners become SASL_PLAINTEXT: PLAIN, SCRAM-SHA-256 and
    /// SCRAM-SHA-512) and adds this user; repeat for more users.
    pub fn sasl_user(mut self, user: &str, password: &str) -> Self {
        self.users
            .get_or_insert_with(Default::default)
            .insert(user.to_owned(), password.to_owned());
        self
    }

    /// The finalized `transaction.version` feature: 1 (the default, the classic protocol of
    /// KIP-98) or 2 (KIP-890: a transactional Produce v12 adds its partition itself, a
    /// TxnOffsetCommit v5 its group, and every EndTxn v5 bumps the producer epoch and
    /// answers the new one, which the markers carry). Below 2, EndTxn and TxnOffsetCommit
    /// are answered up to v3.
    pub fn transaction_version(mut self, version: i16) -> Self {
        self.settings.transaction_version = version.clamp(0, 2);
        self
    }

    /// KIP-848 groups: the heartbeat interval the coordinator gives members
    /// (`group.consumer.heartbeat.interval.ms`, 5 s) and their session timeout
    /// (`group.consumer.session.timeout.ms`, 45 s).
    pub fn consumer_group_timing(mut self, heartbeat_interval: Duration, session_timeout: Duration) -> Self {
        self.settings.group_heartbeat_interval = heartbeat_interval;
        self.settings.group_session_timeout = session_timeout;
        self
    }

    /// Binds every broker (unless [`in_memory`](Self::in_memory)) and starts serving.
    pub async fn start(self) -> std::io::Result<FakeCluster> {
        let mut listeners = Vec::new();
        let mut infos = Vec::new();
        for i in 0..self.brokers {
            let id = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let rack = self.racks.get(i).cloned().flatten();
            if self.in_memory {
                infos.push(BrokerInfo {
                    id,
                    host: memory::host(id),
                    port: memory::MEMORY_PORT,
                    up: true,
                    rack,
                });
                listeners.push(None);
                continue;
            }
            let port = self
                .port_base
                .map_or(0, |b| b.saturating_add(u16::try_from(i + 1).unwrap_or(u16::MAX)));
            let l = TcpListener::bind((self.settings.host.as_str(), port)).await?;
            infos.push(BrokerInfo {
                id,
                host: self.settings.host.clone(),
                port: l.local_addr()?.port(),
                up: true,
                rack,
            });
            listeners.push(Some(l));
        }
        let mut state = State::new(self.settings, infos.clone());
        for (name, p, r) in &self.topics {
            state
                .create_topic(name, *p, *r, false)
                .map_err(|(_, msg)| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))?;
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Notify::new(),
            max_frame: 100 << 20,
            users: self.users,
        });
        let network = self.in_memory.then(|| Arc::new(memory::Network::new(shared.clone())));
        let mut brokers = Vec::new();
        for (l, info) in listeners.into_iter().zip(infos) {
            let (stop, rx) = watch::channel(false);
            match (l, &network) {
                (Some(l), _) => drop(tokio::spawn(server::serve(l, info.id, shared.clone(), rx))),
                (None, Some(net)) => net.up(info.id, rx),
                (None, None) => {}
            }
            brokers.push(BrokerHandle {
                id: info.id,
                address: format!("{}:{}", info.host, info.port),
                port: info.port,
                stop: Some(stop),
            });
        }
        Ok(FakeCluster {
            shared,
            brokers,
            network,
        })
    }
}

struct BrokerHandle {
    id: i32,
    /// `host:port` as clients reach it.
    address: String,
    port: u16,
    /// `None` while the broker is stopped.
    stop: Option<watch::Sender<bool>>,
}

/// A running fake cluster; dropping it stops every broker.
pub struct FakeCluster {
    shared: Arc<Shared>,
    brokers: Vec<BrokerHandle>,
    /// `Some` for an [`in_memory`](FakeClusterBuilder::in_memory) cluster.
    network: Option<Arc<memory::Network>>,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster")
            .field("bootstrap", &self.bootstrap_servers())
            .finish_non_exhaustive()
    }
}

impl FakeCluster {
    /// A builder: one broker, free ports, no topics, auto-creation on.
    pub fn builder() -> FakeClusterBuilder {
        FakeClusterBuilder {
            brokers: 1,
            port_base: None,
            topics: Vec::new(),
            settings: Settings {
                auto_create_topics: true,
                default_partitions: 1,
                default_replication: 1,
                cluster_id: "strom-fake-cluster".into(),
                host: "127.0.0.1".into(),
                group_heartbeat_interval: Duration::from_secs(5),
                group_session_timeout: Duration::from_secs(45),
                max_versions: Vec::new(),
                rack_aware_replica_selector: false,
                transaction_version: 1,
            },
            racks: Vec::new(),
            users: None,
            in_memory: false,
        }
    }

    /// `host:port` of every broker, comma-separated (`bootstrap.servers`): loopback
    /// addresses, or the in-memory names of an [`in_memory`](FakeClusterBuilder::in_memory)
    /// cluster.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers
            .iter()
            .map(|b| b.address.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The in-memory connector of a cluster built with
    /// [`in_memory`](FakeClusterBuilder::in_memory) (`None` for one on sockets). With the
    /// `client` feature it is a `strom_client::Transport`:
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use strom_client::{ClientConfig, ProducerConfig};
    /// use strom_fake::FakeCluster;
    ///
    /// let cluster = FakeCluster::builder().in_memory().topic("t", 3, 1).start().await?;
    /// let transport = Arc::new(cluster.transport().expect("in memory"));
    /// let client = ClientConfig::new(cluster.bootstrap_servers()).with_transport(transport);
    /// let producer = strom_client::Producer::new(ProducerConfig::from_client(client)).await?;
    /// # let _ = producer; Ok(()) }
    /// ```
    pub fn transport(&self) -> Option<FakeTransport> {
        self.network.clone().map(|network| FakeTransport { network })
    }

    /// The broker ids.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers.iter().map(|b| b.id).collect()
    }

    /// Adds a scripted fault.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared).faults.push(fault.0);
    }

    /// Removes every fault not used up yet.
    pub fn clear_faults(&self) {
        lock(&self.shared).faults.clear();
    }

    /// Every request received so far (the latest 100,000), in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared).requests.clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        lock(&self.shared).requests.clear();
    }

    /// Creates a topic (as CreateTopics would).
    pub fn create_topic(&self, name: &str, partitions: i32, replication: i16) -> Result<(), String> {
        lock(&self.shared)
            .create_topic(name, partitions, replication, false)
            .map(|_| ())
            .map_err(|(_, m)| m)
    }

    /// The next offset of a partition (its high watermark), `None` for an unknown one.
    pub fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        lock(&self.shared).end_offset(topic, partition)
    }

    /// Hands the stored bytes of the batch holding `offset` to `edit`, which may change them
    /// in place. Their CRC is not computed again: a flipped record byte makes a batch that
    /// fails a consumer's CRC check, as a disk or network fault would. False if the
    /// partition has no such batch.
    pub fn edit_batch(&self, topic: &str, partition: i32, offset: i64, edit: impl FnOnce(&mut [u8])) -> bool {
        lock(&self.shared).edit_batch(topic, partition, offset, edit)
    }

    /// Makes `node` the leader of a partition (a new leader epoch); `false` if there is no
    /// such partition.
    pub fn move_leader(&self, topic: &str, partition: i32, node: i32) -> bool {
        let moved = lock(&self.shared).move_leader(topic, partition, node);
        self.shared.changed.notify_waiters();
        moved
    }

    /// Gives a partition a new replica set led by its first replica that is up (the first
    /// replica when none is: the partition is offline until it starts; a new leader epoch),
    /// as `kafka-reassign-partitions` would once done: a broker that is no longer a replica
    /// answers fetches of it with NOT_LEADER_OR_FOLLOWER, one that still is but was the
    /// leader fences a consumer's old epoch with FENCED_LEADER_EPOCH. False if there is no
    /// such partition, the list is empty or names an unknown broker.
    pub fn reassign(&self, topic: &str, partition: i32, replicas: &[i32]) -> bool {
        let done = lock(&self.shared).reassign(topic, partition, replicas);
        self.shared.changed.notify_waiters();
        done
    }

    /// Makes `node` the coordinator of the group or transactional id `key`, as a move of
    /// its `__consumer_offsets` or `__transaction_state` partition would: the state moves
    /// with it (members, offsets, the open transaction) and the old coordinator answers
    /// NOT_COORDINATOR. Lasts while `node` is up; false if there is no such broker.
    pub fn move_coordinator(&self, key: &str, node: i32) -> bool {
        let mut st = lock(&self.shared);
        if !st.brokers.iter().any(|b| b.id == node) {
            return false;
        }
        st.moved_coordinators.insert(key.to_owned(), node);
        drop(st);
        self.shared.changed.notify_waiters();
        true
    }

    /// Stops a broker: its connections close, it leaves the metadata, and each partition it
    /// led moves to another live replica (or is offline with replication factor 1).
    pub fn stop_broker(&mut self, node: i32) {
        if let Some(b) = self.brokers.iter_mut().find(|b| b.id == node) {
            if let Some(stop) = b.stop.take() {
                let _ = stop.send(true);
            }
        }
        if let Some(net) = &self.network {
            net.down(node);
        }
        {
            let mut st = lock(&self.shared);
            if let Some(b) = st.brokers.iter_mut().find(|b| b.id == node) {
                b.up = false;
            }
            st.fail_over(node);
        }
        self.shared.changed.notify_waiters();
    }

    /// Starts a stopped broker again on its port (its partitions' leadership stays where
    /// it moved; use [`move_leader`](Self::move_leader) to move it back).
    pub async fn start_broker(&mut self, node: i32) -> std::io::Result<()> {
        let Some(b) = self.brokers.iter_mut().find(|b| b.id == node) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no broker {node}"),
            ));
        };
        if b.stop.is_some() {
            return Ok(());
        }
        let (stop, rx) = watch::channel(false);
        match &self.network {
            Some(net) => net.up(node, rx),
            None => {
                let l = TcpListener::bind(("127.0.0.1", b.port)).await?;
                tokio::spawn(server::serve(l, node, self.shared.clone(), rx));
            }
        }
        b.stop = Some(stop);
        let mut st = lock(&self.shared);
        if let Some(b) = st.brokers.iter_mut().find(|b| b.id == node) {
            b.up = true;
        }
        Ok(())
    }

    /// Stops every broker.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for b in &mut self.brokers {
            if let Some(stop) = b.stop.take() {
                let _ = stop.send(true);
            }
        }
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}
