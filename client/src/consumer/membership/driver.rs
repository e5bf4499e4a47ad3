//! The membership task: the async driver of [`Membership`]. It only does I/O: finds the
//! coordinator (through `crate::lookup`) and connects, sends what the core asks and feeds
//! the answers back, gets metadata, relays hand-overs to the consumer as [`GroupEvent`]s
//! and their acknowledgements back, takes the consumer's [`GroupControl`]s, sleeps until the
//! core's next deadline, and publishes what the core notes (the commit identity and owned
//! partitions in [`GroupShared`], the coordinator metrics).
//!
//! One task per member, for either protocol. The classic member has a coordinator
//! connection of its own (JoinGroup is held by the broker until the whole group joined, up
//! to the rebalance timeout, and must not hold up commits or fetches); a KIP-848 member
//! uses the client's coordinator connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use strom_protocol::messages::ApiKey;
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info_span, Instrument};
use uuid::Uuid;

use super::classic::Classic;
use super::common::Protocol;
use super::io::{Action, CoordinatorInfo, HandOver, HandOverKind, Note, OpId, Request, Response, Settings};
use super::kip848::Kip848;
use super::machine::Membership;
use crate::client::Client;
use crate::connection::Connection;
use crate::consumer::assignor;
use crate::consumer::group::{GroupControl, GroupEvent, GroupHandle};
use crate::consumer::member::GroupShared;
use crate::consumer::state::Subscription;
use crate::error::{Error, Result};
use crate::metadata::ClusterMetadata;
use crate::metrics::CoordinatorInstruments;
use crate::role_config::{ConsumerConfig, GroupProtocol};

/// Starts the membership task of `group_id` for the consumer's configured protocol.
pub(crate) fn spawn(
    client: Client,
    config: &ConsumerConfig,
    group_id: String,
    sub: Subscription,
) -> Result<GroupHandle> {
    let cfg = Settings {
        group_id,
        instance_id: config.group_instance_id.clone(),
        session_timeout: config.session_timeout,
        rebalance_timeout: config.max_poll_interval,
        heartbeat_interval: config.heartbeat_interval,
        retry_backoff: config.client.retry_backoff,
        metadata_max_age: config.client.metadata_max_age,
        rack: config.client_rack.clone(),
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(GroupShared::new(cfg.instance_id.clone()));
    let now = clock();
    let task =
        match config.group_protocol {
            GroupProtocol::Classic => {
                let mut assignors = Vec::new();
                for name in &config.assignment_strategies {
                    assignors.push(assignor::assignor_by_name(name).ok_or_else(|| {
                        Error::config(format!("partition.assignment.strategy: unknown assignor {name}"))
                    })?);
                }
                // A root span: the member task outlives the call that started it (see connection.rs).
                let span = info_span!(parent: None, "group", group = %cfg.group_id, protocol = "classic");
                // JoinGroup is held until every member joined, up to the rebalance timeout.
                let dedicated = Some(cfg.rebalance_timeout + Duration::from_secs(5));
                let core = span.in_scope(|| Membership::new(cfg, sub, Classic::new(assignors), now));
                let driver = Driver::new(core, client, dedicated, shared.clone(), events_tx, control_rx);
                tokio::spawn(driver.run().instrument(span))
            }
            GroupProtocol::Consumer => {
                let span = info_span!(parent: None, "group", group = %cfg.group_id, protocol = "consumer");
                // KIP-848: the member id is the client's (a UUID, as Kafka 4 requires).
                let member = Kip848::new(Uuid::new_v4().simple().to_string(), cfg.heartbeat_interval);
                let core = span.in_scope(|| Membership::new(cfg, sub, member, now));
                let driver = Driver::new(core, client, None, shared.clone(), events_tx, control_rx);
                tokio::spawn(driver.run().instrument(span))
            }
        };
    Ok(GroupHandle::new(events_rx, control_tx, shared, task))
}

/// Now, as the core counts time (tokio's clock: virtual under a paused runtime).
fn clock() -> std::time::Instant {
    Instant::now().into_std()
}

type OpFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// How an operation the core asked for ended.
enum Outcome {
    Coordinator(OpId, Result<(i32, Connection)>),
    Answer {
        id: OpId,
        sent: Instant,
        heartbeat: bool,
        response: Result<Response>,
    },
    Metadata(OpId, Result<Arc<ClusterMetadata>>),
}

/// What woke the driver.
enum Woke {
    Op(Outcome),
    Ack(std::result::Result<(), oneshot::error::RecvError>),
    Control(Option<GroupControl>),
    Timer,
    Polled,
}

struct Driver<P> {
    core: Membership<P>,
    client: Client,
    /// Classic: a connection of the member's own, with this request timeout.
    dedicated: Option<Duration>,
    /// Rebalances and heartbeats (`consumer-coordinator-metrics`).
    instruments: CoordinatorInstruments,
    shared: Arc<GroupShared>,
    events: mpsc::UnboundedSender<GroupEvent>,
    control: mpsc::UnboundedReceiver<GroupControl>,
    control_open: bool,
    conn: Option<Connection>,
    /// The operation in flight (one at a time, as the core asks).
    op: Option<OpFuture>,
    /// The acknowledgement of the hand-over the consumer has.
    ack: Option<oneshot::Receiver<()>>,
    /// Whom to tell once the member has left.
    reply: Option<oneshot::Sender<()>>,
}

impl<P: Protocol + Send + 'static> Driver<P> {
    fn new(
        core: Membership<P>,
        client: Client,
        dedicated: Option<Duration>,
        shared: Arc<GroupShared>,
        events: mpsc::UnboundedSender<GroupEvent>,
        control: mpsc::UnboundedReceiver<GroupControl>,
    ) -> Self {
        Driver {
            instruments: CoordinatorInstruments::new(client.metric_registry()),
            core,
            client,
            dedicated,
            shared,
            events,
            control,
            control_open: true,
            conn: None,
            op: None,
            ack: None,
            reply: None,
        }
    }

    async fn run(mut self) {
        loop {
            let last = self.last_poll();
            self.core.polled(last);
            let action = self.core.poll_action(clock());
            self.publish_notes();
            match action {
                Action::FindCoordinator(id) => self.find_coordinator(id),
                Action::Send(id, request) => self.send(id, request),
                Action::Metadata(id, want) => {
                    if want.cached {
                        self.core.handle_metadata(clock(), id, Ok(self.client.metadata()));
                    } else {
                        let client = self.client.clone();
                        self.op = Some(Box::pin(async move {
                            let names: Option<Vec<&str>> =
                                want.topics.as_ref().map(|t| t.iter().map(String::as_str).collect());
                            Outcome::Metadata(id, client.refresh_metadata(names.as_deref()).await)
                        }));
                    }
                }
                Action::HandOver(h) => self.hand_over(h),
                Action::Fail(e) => {
                    let _ = self.events.send(GroupEvent::Fatal(e));
                }
                Action::Wait(until) => self.wait(until).await,
                Action::Done => break,
            }
        }
        self.publish_notes();
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(());
        }
    }

    fn last_poll(&self) -> std::time::Instant {
        self.shared.last_poll().into_std()
    }

    fn find_coordinator(&mut self, id: OpId) {
        let (client, group, dedicated) = (self.client.clone(), self.core_group(), self.dedicated);
        self.op = Some(Box::pin(async move {
            let found = async {
                let node =
                    crate::lookup::find_coordinator(&client, &group, crate::lookup::CoordinatorType::Group).await?;
                let conn = match dedicated {
                    Some(timeout) => client.dedicated_connection(node, timeout).await?,
                    None => client.coordinator_connection(node).await?,
                };
                Ok((node, conn))
            }
            .await;
            Outcome::Coordinator(id, found)
        }));
    }

    fn core_group(&self) -> String {
        self.core.group_id().to_owned()
    }

    fn send(&mut self, id: OpId, request: Request) {
        let Some(conn) = self.conn.clone() else {
            let e = Error::kafka(ErrorCode::CoordinatorNotAvailable);
            self.core.handle_response(clock(), id, Err(e));
            return;
        };
        let heartbeat = request.is_heartbeat();
        if heartbeat {
            self.instruments.heartbeat_sent();
        }
        self.op = Some(Box::pin(async move {
            let sent = Instant::now();
            let response = match request {
                Request::JoinGroup(r) => conn.send(&r).await.map(Response::JoinGroup),
                Request::SyncGroup(r) => conn.send(&r).await.map(Response::SyncGroup),
                Request::Heartbeat(r) => conn.send(&r).await.map(Response::Heartbeat),
                Request::LeaveGroup(r) => conn.send(&r).await.map(Response::LeaveGroup),
                Request::ConsumerGroupHeartbeat(r) => conn.send(&r).await.map(Response::ConsumerGroupHeartbeat),
            };
            Outcome::Answer {
                id,
                sent,
                heartbeat,
                response,
            }
        }));
    }

    fn hand_over(&mut self, h: HandOver) {
        let (tx, rx) = oneshot::channel();
        let event = match h.kind {
            HandOverKind::Revoke => GroupEvent::Revoke(h.partitions, tx),
            HandOverKind::Assign => GroupEvent::Assign(h.partitions, tx),
            HandOverKind::Lost => GroupEvent::Lost(h.partitions, tx),
        };
        if self.events.send(event).is_err() {
            // The consumer is gone.
            self.core.leave(clock());
        } else {
            self.ack = Some(rx);
        }
    }

    /// Waits for whatever comes first: the operation's outcome, the consumer's
    /// acknowledgement or control, the core's deadline, or (when the core waits for one)
    /// the application's next poll; feeds it to the core.
    async fn wait(&mut self, until: Option<std::time::Instant>) {
        let shared = self.shared.clone();
        let polled = shared.polled.notified();
        tokio::pin!(polled);
        let watch_polls = self.core.waiting_for_poll();
        if watch_polls {
            // Armed before looking, so a poll after the look still wakes the driver.
            polled.as_mut().enable();
            let last = self.last_poll();
            self.core.polled(last);
            if !self.core.waiting_for_poll() {
                return;
            }
        }
        let woke = tokio::select! {
            out = maybe(self.op.as_mut()) => Woke::Op(out),
            r = maybe(self.ack.as_mut()) => Woke::Ack(r),
            c = self.control.recv(), if self.control_open => Woke::Control(c),
            _ = sleep(until) => Woke::Timer,
            _ = &mut polled, if watch_polls => Woke::Polled,
        };
        let now = clock();
        // The application's latest poll first: whatever comes next may look at the poll
        // deadline (a timer set for it fires even when the application polled since).
        let last = self.last_poll();
        self.core.polled(last);
        match woke {
            Woke::Op(out) => {
                self.op = None;
                self.outcome(now, out);
            }
            Woke::Ack(r) => {
                self.ack = None;
                match r {
                    Ok(()) => self.core.handed_over(now),
                    // The consumer is gone without answering.
                    Err(_) => self.core.leave(now),
                }
            }
            Woke::Control(c) => match c {
                Some(GroupControl::Subscribe(sub)) => self.core.subscribe(now, sub),
                Some(GroupControl::Leave(reply)) => {
                    self.reply = Some(reply);
                    self.core.leave(now);
                }
                None => {
                    // The consumer was dropped: leave anyway (GroupHandle's Drop).
                    self.control_open = false;
                    self.core.leave(now);
                }
            },
            Woke::Timer => self.core.handle_timeout(now),
            Woke::Polled => {}
        }
    }

    fn outcome(&mut self, now: std::time::Instant, out: Outcome) {
        match out {
            Outcome::Coordinator(id, Ok((node, conn))) => {
                let versions = conn.versions();
                let info = CoordinatorInfo {
                    node,
                    addr: conn.addr().to_owned(),
                    leave_group_version: versions.version(ApiKey::LeaveGroup).unwrap_or(0),
                    consumer_group_heartbeat: versions.broker_range(ApiKey::ConsumerGroupHeartbeat).is_some(),
                };
                if let Some(old) = self.conn.replace(conn) {
                    if self.dedicated.is_some() {
                        old.close("replaced by a new coordinator connection");
                    }
                }
                self.core.coordinator_found(now, id, info);
            }
            Outcome::Coordinator(id, Err(e)) => self.core.coordinator_failed(now, id, &e),
            Outcome::Answer {
                id,
                sent,
                heartbeat,
                response,
            } => {
                if heartbeat && response.is_ok() {
                    self.instruments.heartbeat_answered(sent.elapsed());
                }
                self.core.handle_response(now, id, response);
            }
            Outcome::Metadata(id, r) => self.core.handle_metadata(now, id, r),
        }
    }

    /// Publishes what the core noted since the last call.
    fn publish_notes(&mut self) {
        let now = Instant::now();
        while let Some(note) = self.core.poll_note() {
            match note {
                Note::RebalanceStarted => self.instruments.rebalance_started(now),
                Note::RebalanceFailed => self.instruments.rebalance_failed(),
                Note::RebalanceSucceeded => self.instruments.rebalance_succeeded(now),
                Note::Identity(generation, member_id) => self.shared.set_identity(generation, &member_id),
                Note::Owned(owned) => self.shared.set_owned(&owned),
                Note::CoordinatorLost(why) => {
                    if let Some(c) = self.conn.take() {
                        // The classic member's connection is its own: closed. The client's
                        // coordinator connection is only let go of.
                        if self.dedicated.is_some() {
                            c.close(&why);
                        }
                    }
                }
            }
        }
    }
}

/// `f`'s output, or never when there is no `f`.
async fn maybe<F: Future + Unpin>(f: Option<&mut F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

async fn sleep(until: Option<std::time::Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
