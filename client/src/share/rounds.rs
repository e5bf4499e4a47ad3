//! The requests a share consumer keeps while they are in flight: a round of share fetches
//! and a round of acknowledgements, each sent by a task of its own so that a dropped call
//! leaves them to the next one.

use std::collections::{BTreeMap, BTreeSet};

use strom_protocol::messages::{ApiKey, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use strom_protocol::ErrorCode;
use tracing::debug;

use super::acks::{AckBatch, Tip};

use crate::client::Client;
use crate::consumer::TopicPartition;
use crate::error::{Error, Result};

/// Share fetches sent and not yet answered: per broker, the partitions asked for and the
/// acknowledgements the request carries (to report their outcome), and the task sending
/// them (answers in the same order).
pub(super) struct FetchRound {
    pub(super) sent: Vec<(i32, BTreeSet<Tip>, NodeAcks)>,
    pub(super) task: tokio::task::JoinHandle<Vec<Result<strom_protocol::messages::ShareFetchResponse>>>,
}

/// The acknowledgements one request carries, by partition.
pub(super) type NodeAcks = Vec<(Tip, Vec<AckBatch>)>;

/// Each broker's answer to its ShareAcknowledge.
pub(super) type AckAnswers = Vec<(i32, Result<ShareAcknowledgeResponse>)>;

/// One round of ShareAcknowledge requests: per broker, the acknowledgements it carries; and
/// the partitions that failed before sending.
pub(super) struct AckRound {
    pub(super) last: bool,
    pub(super) nodes: Vec<(i32, NodeAcks)>,
    pub(super) results: BTreeMap<TopicPartition, Result<()>>,
}

/// Sends each request of a round (concurrently, each bounded by `request.timeout.ms`) and
/// returns every broker's answer, its top-level error code checked.
pub(super) async fn send_acknowledgements(
    client: Client,
    requests: Vec<(i32, ShareAcknowledgeRequest, bool)>,
) -> AckAnswers {
    let timeout = client.config().request_timeout;
    let sends = requests.into_iter().map(|(node, req, renew)| {
        let client = client.clone();
        async move {
            let sent = async {
                let conn = client.broker(node).await?;
                if renew {
                    need_v2(&conn, ApiKey::ShareAcknowledge, node, "AcknowledgeType::Renew")?;
                }
                conn.send(&req).await
            };
            let resp = match tokio::time::timeout(timeout, sent).await {
                Ok(r) => r,
                Err(_) => Err(Error::timeout(format!("ShareAcknowledge to broker {node}"), timeout)),
            };
            let resp = resp.and_then(|r| {
                super::membership::check_code(r.error_code, || format!("ShareAcknowledge to broker {node}")).map(|()| r)
            });
            debug!(
                node,
                epoch = req.share_session_epoch,
                ok = resp.is_ok(),
                "ShareAcknowledge answered"
            );
            (node, resp)
        }
    });
    futures_util::future::join_all(sends).await
}

/// An UnsupportedVersion error naming `what` unless `node` speaks v2 of `api`.
pub(super) fn need_v2(conn: &crate::connection::Connection, api: ApiKey, node: i32, what: &str) -> Result<()> {
    let v = conn.versions().version(api).unwrap_or(1);
    if v < 2 {
        return Err(Error::kafka(ErrorCode::UnsupportedVersion).with_context(format!(
            "{what} needs {api:?} v2 (Kafka 4.2 or later); broker {node} speaks v{v}"
        )));
    }
    Ok(())
}
