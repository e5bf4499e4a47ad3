//! Admin for cluster features and the KRaft quorum (Java's `Admin.describeFeatures`,
//! `updateFeatures`, `describeMetadataQuorum`).

use std::collections::BTreeMap;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use strom_protocol::messages::update_features_request::FeatureUpdateKey;
use strom_protocol::messages::{ApiVersionsRequest, DescribeQuorumRequest, TopicName, UpdateFeaturesRequest};

use crate::admin::Admin;
use crate::error::check;
use crate::error::{Error, Result};

/// The cluster's features (Java's `FeatureMetadata`): what is finalized (in use) and what
/// the answering broker supports, as (min, max) levels by feature name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeatureMetadata {
    /// The epoch of the finalized features, when the broker reports one.
    pub finalized_epoch: Option<i64>,
    /// Finalized features: name to (min level, max level). The max is the level in use.
    pub finalized: BTreeMap<String, (i16, i16)>,
    /// Features the broker supports: name to (min level, max level).
    pub supported: BTreeMap<String, (i16, i16)>,
}

/// How [`Admin::update_features`] may move a feature's level (Java's
/// `FeatureUpdate.UpgradeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureUpgradeType {
    /// Raise the level.
    Upgrade,
    /// Lower it when no metadata would be lost.
    SafeDowngrade,
    /// Lower it even when metadata would be lost.
    UnsafeDowngrade,
}

/// One replica of the metadata quorum (Java's `QuorumInfo.ReplicaState`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumReplica {
    /// Node id.
    pub replica_id: i32,
    /// The end of its copy of the metadata log.
    pub log_end_offset: i64,
    /// When the leader last got a fetch from it (ms since the epoch), when known.
    pub last_fetch_timestamp: Option<i64>,
    /// When it was last caught up with the leader (ms since the epoch), when known.
    pub last_caught_up_timestamp: Option<i64>,
}

/// The KRaft metadata quorum (Java's `QuorumInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuorumInfo {
    /// The leader (the active controller).
    pub leader_id: i32,
    /// Its epoch.
    pub leader_epoch: i32,
    /// The metadata log's high watermark.
    pub high_watermark: i64,
    /// The voters (controllers).
    pub voters: Vec<QuorumReplica>,
    /// The observers (brokers that only follow).
    pub observers: Vec<QuorumReplica>,
}

fn replica(r: &strom_protocol::messages::describe_quorum_response::ReplicaState) -> QuorumReplica {
    QuorumReplica {
        replica_id: r.replica_id.0,
        log_end_offset: r.log_end_offset,
        last_fetch_timestamp: (r.last_fetch_timestamp >= 0).then_some(r.last_fetch_timestamp),
        last_caught_up_timestamp: (r.last_caught_up_timestamp >= 0).then_some(r.last_caught_up_timestamp),
    }
}

impl Admin {
    /// The finalized and supported features (an ApiVersions request, as Java's
    /// `describeFeatures` sends, so the answer is current rather than the connection's).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_features(&self) -> Result<FeatureMetadata> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let client = self.client();
        let resp = client
            .with_retries("ApiVersions", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, None, || "ApiVersions".to_owned())?;
                Ok(resp)
            })
            .await?;
        Ok(FeatureMetadata {
            finalized_epoch: (resp.finalized_features_epoch >= 0).then_some(resp.finalized_features_epoch),
            finalized: resp
                .finalized_features
                .iter()
                .map(|f| (f.name.to_string(), (f.min_version_level, f.max_version_level)))
                .collect(),
            supported: resp
                .supported_features
                .iter()
                .map(|f| (f.name.to_string(), (f.min_version, f.max_version)))
                .collect(),
        })
    }

    /// Moves features to new levels (Java's `updateFeatures`): `(name, level, how)`; level
    /// 0 disables a feature (a downgrade). With `validate_only` the controller checks the
    /// updates and changes nothing. Returns each feature's outcome; the call fails as a
    /// whole only when the request does.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn update_features(
        &self,
        updates: &[(&str, i16, FeatureUpgradeType)],
        validate_only: bool,
    ) -> Result<BTreeMap<String, Result<()>>> {
        if updates.is_empty() {
            return Ok(BTreeMap::new());
        }
        if let Some((name, level, _)) = updates.iter().find(|(_, l, _)| *l < 0) {
            return Err(Error::config(format!("feature {name}: level {level} is below 0")));
        }
        let timeout_ms = i32::try_from(self.client().config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        let req = UpdateFeaturesRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_validate_only(validate_only)
            .with_feature_updates(
                updates
                    .iter()
                    .map(|(name, level, how)| {
                        FeatureUpdateKey::default()
                            .with_feature(StrBytes::from_string((*name).to_owned()))
                            .with_max_version_level(*level)
                            .with_upgrade_type(match how {
                                FeatureUpgradeType::Upgrade => 1,
                                FeatureUpgradeType::SafeDowngrade => 2,
                                FeatureUpgradeType::UnsafeDowngrade => 3,
                            })
                    })
                    .collect(),
            );
        let client = self.client();
        let resp = client
            .with_retries("UpdateFeatures", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, resp.error_message.as_ref(), || {
                    "UpdateFeatures".to_owned()
                })?;
                Ok(resp)
            })
            .await?;
        let mut out: BTreeMap<String, Result<()>> = resp
            .results
            .iter()
            .map(|r| {
                let name = r.feature.to_string();
                let result = check(r.error_code, r.error_message.as_ref(), || format!("feature {name}"));
                (name, result)
            })
            .collect();
        // v2 answers per feature only on failure (KIP-1022): no entry is a success, as the
        // request-level error was none.
        for (name, _, _) in updates {
            out.entry((*name).to_owned()).or_insert(Ok(()));
        }
        Ok(out)
    }

    /// The KRaft metadata quorum: leader, epoch, high watermark, and how far each voter and
    /// observer has replicated (Java's `describeMetadataQuorum`; DescribeQuorum, which a
    /// broker forwards to the controller).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_metadata_quorum(&self) -> Result<QuorumInfo> {
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let client = self.client();
        let resp = client
            .with_retries("DescribeQuorum", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, resp.error_message.as_ref(), || {
                    "DescribeQuorum".to_owned()
                })?;
                Ok(resp)
            })
            .await?;
        let p = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .next()
            .ok_or_else(|| Error::protocol("DescribeQuorum: the answer holds no partition"))?;
        check(p.error_code, p.error_message.as_ref(), || {
            "DescribeQuorum of __cluster_metadata".to_owned()
        })?;
        Ok(QuorumInfo {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: p.current_voters.iter().map(replica).collect(),
            observers: p.observers.iter().map(replica).collect(),
        })
    }
}
