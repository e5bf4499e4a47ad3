//! A share group member's heartbeat (KIP-932's ShareGroupHeartbeat): it joins with its
//! subscription, receives its assignment (computed by the broker), heartbeats at the
//! interval the coordinator asks for, rejoins when fenced, and leaves (epoch -1) on close.
//! Runs as a task; the consumer reads the assignment and any fatal error from [`Shared`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::messages::{ApiKey, GroupId, ShareGroupHeartbeatRequest, TopicName};
use strom_protocol::ErrorCode;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info};
use uuid::Uuid;

use crate::admin::s;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, Result};

/// What the heartbeat task tells the consumer.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Topic id -> partitions assigned to this member.
    pub(crate) assignment: BTreeMap<Uuid, Vec<i32>>,
    /// The member epoch (0 before joining).
    pub(crate) epoch: i32,
    /// An error the application must see (authorization, share groups disabled).
    pub(crate) error: Option<Error>,
}

pub(crate) struct Heartbeat {
    pub(crate) client: Client,
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) rack: Option<String>,
    pub(crate) subscription: watch::Receiver<BTreeSet<String>>,
    pub(crate) shared: Arc<Mutex<Shared>>,
    pub(crate) leave: oneshot::Receiver<oneshot::Sender<()>>,
    pub(crate) retry_backoff: Duration,
}

/// How often a subscribed member without partitions heartbeats, and for how long, before
/// keeping to the coordinator's interval (a topic that does not exist yet, say).
const EAGER_INTERVAL: Duration = Duration::from_millis(500);
const EAGER_FOR: Duration = Duration::from_secs(15);

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Heartbeat {
    pub(crate) async fn run(mut self) {
        let mut coordinator: Option<Connection> = None;
        let mut epoch = 0i32;
        let mut send_topics = true;
        // Since when the member is subscribed without partitions: the coordinator assigns a
        // partition once the share coordinator has initialized its state, which the first
        // answers do not wait for; asking again sooner than the heartbeat interval (5 s by
        // default) for a while gets the first records to the application seconds earlier.
        let mut waiting_since: Option<Instant> = None;
        loop {
            let wait = match self.beat(&mut coordinator, &mut epoch, &mut send_topics).await {
                Ok(Some(interval)) => {
                    let subscribed = !self.subscription.borrow().is_empty();
                    let unassigned = lock(&self.shared).assignment.values().all(Vec::is_empty);
                    if subscribed && unassigned {
                        let since = *waiting_since.get_or_insert_with(Instant::now);
                        if since.elapsed() < EAGER_FOR {
                            interval.min(EAGER_INTERVAL)
                        } else {
                            interval
                        }
                    } else {
                        waiting_since = None;
                        interval
                    }
                }
                Ok(None) => Duration::ZERO,
                Err(()) => self.retry_backoff,
            };
            tokio::select! {
                reply = &mut self.leave => {
                    if epoch > 0 {
                        self.leave_group(coordinator.as_ref(), epoch).await;
                    }
                    if let Ok(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
                changed = self.subscription.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    send_topics = true;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One heartbeat: `Ok(Some(interval))` after a good answer, `Ok(None)` to beat again at
    /// once (rejoin), `Err(())` to retry after the backoff.
    async fn beat(
        &mut self,
        coordinator: &mut Option<Connection>,
        epoch: &mut i32,
        send_topics: &mut bool,
    ) -> std::result::Result<Option<Duration>, ()> {
        if coordinator.as_ref().is_none_or(Connection::is_closed) {
            let node =
                crate::lookup::find_coordinator(&self.client, &self.group_id, crate::lookup::CoordinatorType::Group)
                    .await
                    .map_err(|e| debug!(error = %e, "share group coordinator lookup failed"))?;
            let conn = self
                .client
                .coordinator_connection(node)
                .await
                .map_err(|e| debug!(error = %e, "share group coordinator unreachable"))?;
            if conn.versions().broker_range(ApiKey::ShareGroupHeartbeat).is_none() {
                self.fail(Error::kafka(ErrorCode::UnsupportedVersion).with_context(format!(
                    "broker {} has no ShareGroupHeartbeat API: share groups need Kafka 4.1 or later",
                    conn.addr()
                )));
                return Err(());
            }
            *coordinator = Some(conn);
        }
        let Some(conn) = coordinator.as_ref() else {
            return Err(());
        };
        let topics: Option<Vec<TopicName>> =
            (*send_topics || *epoch == 0).then(|| self.subscription.borrow().iter().map(|t| TopicName(s(t))).collect());
        let req = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group_id)))
            .with_member_id(s(&self.member_id))
            .with_member_epoch(*epoch)
            .with_rack_id(self.rack.as_deref().map(s))
            .with_subscribed_topic_names(topics);
        let resp = match conn.send(&req).await {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "share group heartbeat failed");
                *coordinator = None;
                return Err(());
            }
        };
        let code = ErrorCode::from(resp.error_code);
        debug!(
            code = code.name(),
            epoch = resp.member_epoch,
            assigned =
                resp.assignment
                    .as_ref()
                    .map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum::<usize>()),
            interval_ms = resp.heartbeat_interval_ms,
            "share group heartbeat"
        );
        match code {
            ErrorCode::None => {
                *send_topics = false;
                if *epoch == 0 {
                    info!(group = %self.group_id, member = %self.member_id, epoch = resp.member_epoch, "joined share group");
                }
                *epoch = resp.member_epoch;
                let mut shared = lock(&self.shared);
                shared.epoch = resp.member_epoch;
                shared.error = None;
                if let Some(a) = resp.assignment {
                    shared.assignment = a
                        .topic_partitions
                        .into_iter()
                        .map(|t| (t.topic_id, t.partitions))
                        .collect();
                }
                Ok(Some(Duration::from_millis(
                    u64::try_from(resp.heartbeat_interval_ms.max(100)).unwrap_or(100),
                )))
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress => {
                *coordinator = None;
                Err(())
            }
            ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch => {
                info!(group = %self.group_id, code = code.name(), "share group member fenced; rejoining");
                *epoch = 0;
                *send_topics = true;
                let mut shared = lock(&self.shared);
                shared.epoch = 0;
                shared.assignment.clear();
                Ok(None)
            }
            _ => {
                let msg = resp
                    .error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let hint = if matches!(code, ErrorCode::UnsupportedVersion | ErrorCode::InvalidRequest) {
                    " (are share groups enabled? the share.version feature must be 1 or more: `strom features describe`)"
                } else {
                    ""
                };
                self.fail(Error::kafka(code).with_context(format!(
                    "ShareGroupHeartbeat for share group {}{msg}{hint}",
                    self.group_id
                )));
                Err(())
            }
        }
    }

    fn fail(&self, e: Error) {
        lock(&self.shared).error = Some(e);
    }

    async fn leave_group(&self, coordinator: Option<&Connection>, epoch: i32) {
        let Some(conn) = coordinator else { return };
        let req = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group_id)))
            .with_member_id(s(&self.member_id))
            .with_member_epoch(-1);
        match tokio::time::timeout(self.client.config().request_timeout, conn.send(&req)).await {
            Ok(Ok(_)) => info!(group = %self.group_id, epoch, "left share group"),
            Ok(Err(e)) => debug!(error = %e, "leaving the share group failed"),
            Err(_) => debug!("leaving the share group timed out"),
        }
    }
}

/// Checks the answer of a request in a share session, naming what it was about.
pub(crate) fn check_code(code: i16, what: impl FnOnce() -> String) -> Result<()> {
    match ErrorCode::from(code) {
        ErrorCode::None => Ok(()),
        c => Err(Error::kafka(c).with_context(what())),
    }
}
