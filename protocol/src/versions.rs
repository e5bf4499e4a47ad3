//! The API versions Strom implements, and negotiation against a broker's ApiVersions.

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// A range of versions Strom implements for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The API.
    pub api: ApiKey,
    /// Its name as in the protocol guide, e.g. `Produce`.
    pub name: &'static str,
    /// Lowest version Strom can speak.
    pub min: i16,
    /// Highest version Strom can speak.
    pub max: i16,
}

const fn r(api: ApiKey, name: &'static str, min: i16, max: i16) -> ApiRange {
    ApiRange { api, name, min, max }
}

/// Every API Strom sends, with the versions it implements.
///
/// Caps below `kafka-protocol`'s maximum are deliberate: Produce v13, OffsetCommit v10 and
/// OffsetFetch v10 address topics by id (KIP-516); Fetch v18 and ListOffsets v10 and Metadata
/// v13 change semantics the client does not handle yet; AddPartitionsToTxn v4+ is the
/// broker-to-broker verification form (KIP-890), clients send v3 at most. Raise a cap only with the code and a
/// broker test for the new version.
pub const SUPPORTED: &[ApiRange] = &[
    r(ApiKey::Produce, "Produce", 3, 12),
    r(ApiKey::Fetch, "Fetch", 4, 17),
    r(ApiKey::ListOffsets, "ListOffsets", 1, 9),
    r(ApiKey::Metadata, "Metadata", 4, 12),
    r(ApiKey::OffsetCommit, "OffsetCommit", 2, 9),
    r(ApiKey::OffsetFetch, "OffsetFetch", 1, 9),
    r(ApiKey::FindCoordinator, "FindCoordinator", 0, 6),
    r(ApiKey::JoinGroup, "JoinGroup", 0, 9),
    r(ApiKey::Heartbeat, "Heartbeat", 0, 4),
    r(ApiKey::LeaveGroup, "LeaveGroup", 0, 5),
    r(ApiKey::SyncGroup, "SyncGroup", 0, 5),
    r(ApiKey::DescribeGroups, "DescribeGroups", 0, 6),
    r(ApiKey::ListGroups, "ListGroups", 0, 5),
    r(ApiKey::SaslHandshake, "SaslHandshake", 0, 1),
    r(ApiKey::ApiVersions, "ApiVersions", 0, 4),
    r(ApiKey::CreateTopics, "CreateTopics", 2, 7),
    r(ApiKey::DeleteTopics, "DeleteTopics", 1, 6),
    r(ApiKey::DeleteRecords, "DeleteRecords", 0, 2),
    r(ApiKey::InitProducerId, "InitProducerId", 0, 5),
    r(ApiKey::AddPartitionsToTxn, "AddPartitionsToTxn", 0, 3),
    r(ApiKey::AddOffsetsToTxn, "AddOffsetsToTxn", 0, 4),
    r(ApiKey::EndTxn, "EndTxn", 0, 5),
    r(ApiKey::TxnOffsetCommit, "TxnOffsetCommit", 0, 5),
    r(ApiKey::WriteTxnMarkers, "WriteTxnMarkers", 1, 1),
    r(ApiKey::DescribeConfigs, "DescribeConfigs", 1, 4),
    r(ApiKey::AlterConfigs, "AlterConfigs", 0, 2),
    r(ApiKey::SaslAuthenticate, "SaslAuthenticate", 0, 2),
    r(ApiKey::CreatePartitions, "CreatePartitions", 0, 3),
    r(ApiKey::DeleteGroups, "DeleteGroups", 0, 2),
    r(ApiKey::IncrementalAlterConfigs, "IncrementalAlterConfigs", 0, 1),
    r(ApiKey::OffsetDelete, "OffsetDelete", 0, 0),
    r(
        ApiKey::DescribeUserScramCredentials,
        "DescribeUserScramCredentials",
        0,
        0,
    ),
    r(ApiKey::AlterUserScramCredentials, "AlterUserScramCredentials", 0, 0),
    r(ApiKey::DescribeCluster, "DescribeCluster", 0, 2),
    r(ApiKey::DescribeProducers, "DescribeProducers", 0, 0),
    r(ApiKey::DescribeTransactions, "DescribeTransactions", 0, 0),
    r(ApiKey::ListTransactions, "ListTransactions", 0, 2),
    r(ApiKey::ConsumerGroupHeartbeat, "ConsumerGroupHeartbeat", 0, 1),
    r(ApiKey::ConsumerGroupDescribe, "ConsumerGroupDescribe", 0, 1),
    r(ApiKey::ElectLeaders, "ElectLeaders", 0, 2),
    r(ApiKey::AlterPartitionReassignments, "AlterPartitionReassignments", 0, 1),
    r(ApiKey::ListPartitionReassignments, "ListPartitionReassignments", 0, 0),
    // v0 (no pattern types) is gone from kafka-protocol and from Kafka 4 brokers.
    r(ApiKey::CreateAcls, "CreateAcls", 1, 3),
    r(ApiKey::DescribeAcls, "DescribeAcls", 1, 3),
    r(ApiKey::DeleteAcls, "DeleteAcls", 1, 3),
    r(ApiKey::DescribeClientQuotas, "DescribeClientQuotas", 0, 1),
    r(ApiKey::AlterClientQuotas, "AlterClientQuotas", 0, 1),
    // v0's allow_downgrade became v1's upgrade_type (Kafka 3.3 and later have v1).
    r(ApiKey::UpdateFeatures, "UpdateFeatures", 1, 2),
    r(ApiKey::DescribeQuorum, "DescribeQuorum", 0, 2),
    // v0 of these was removed in Kafka 4.0 (KIP-896).
    r(ApiKey::DescribeLogDirs, "DescribeLogDirs", 1, 4),
    r(ApiKey::AlterReplicaLogDirs, "AlterReplicaLogDirs", 1, 2),
    r(ApiKey::CreateDelegationToken, "CreateDelegationToken", 1, 3),
    r(ApiKey::RenewDelegationToken, "RenewDelegationToken", 1, 2),
    r(ApiKey::ExpireDelegationToken, "ExpireDelegationToken", 1, 2),
    r(ApiKey::DescribeDelegationToken, "DescribeDelegationToken", 1, 3),
    // Share groups (KIP-932): v1 is the GA protocol (Kafka 4.1+; v0 was the preview).
    r(ApiKey::ShareGroupHeartbeat, "ShareGroupHeartbeat", 1, 1),
    r(ApiKey::ShareGroupDescribe, "ShareGroupDescribe", 1, 1),
    r(ApiKey::ShareFetch, "ShareFetch", 1, 2),
    r(ApiKey::ShareAcknowledge, "ShareAcknowledge", 1, 2),
    r(ApiKey::DescribeShareGroupOffsets, "DescribeShareGroupOffsets", 0, 0),
    r(ApiKey::AlterShareGroupOffsets, "AlterShareGroupOffsets", 0, 0),
    r(ApiKey::DeleteShareGroupOffsets, "DeleteShareGroupOffsets", 0, 0),
];

/// Strom's range for `api`, if it sends that API at all.
pub fn supported(api: ApiKey) -> Option<&'static ApiRange> {
    SUPPORTED.iter().find(|r| r.api == api)
}

/// The protocol name of an API (`"unknown"` for one Strom does not send).
pub fn api_name(api: ApiKey) -> &'static str {
    supported(api).map_or("unknown", |r| r.name)
}

/// Why no version of an API can be used with a broker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The broker does not offer the API at all.
    #[error("the broker does not support {name} (Strom implements versions {ours_min}..={ours_max})")]
    NotOfferedByBroker {
        /// API name.
        name: &'static str,
        /// Strom's lowest version.
        ours_min: i16,
        /// Strom's highest version.
        ours_max: i16,
    },
    /// The ranges do not overlap.
    #[error("no common version of {name}: Strom implements {ours_min}..={ours_max}, the broker supports {broker_min}..={broker_max}")]
    NoCommonVersion {
        /// API name.
        name: &'static str,
        /// Strom's lowest version.
        ours_min: i16,
        /// Strom's highest version.
        ours_max: i16,
        /// Broker's lowest version.
        broker_min: i16,
        /// Broker's highest version.
        broker_max: i16,
    },
    /// Strom does not implement the API.
    #[error("Strom does not implement API key {0}")]
    NotImplemented(i16),
}

/// A finalized cluster feature (KIP-584), e.g. `transaction.version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalizedFeature {
    /// Feature name.
    pub name: String,
    /// Finalized max level.
    pub max_level: i16,
    /// Finalized min level.
    pub min_level: i16,
}

/// The broker's finalized features, as ApiVersions v3+ reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinalizedFeatures {
    /// Epoch of the feature set (-1 when unknown).
    pub epoch: i64,
    /// Every finalized feature.
    pub features: Vec<FinalizedFeature>,
}

impl FinalizedFeatures {
    /// The finalized max level of `name`, 0 when absent.
    pub fn level(&self, name: &str) -> i16 {
        self.features.iter().find(|f| f.name == name).map_or(0, |f| f.max_level)
    }

    /// `transaction.version`: 2 means KIP-890 transactions (TV2), 0 or 1 the classic flow.
    pub fn transaction_version(&self) -> i16 {
        self.level("transaction.version")
    }

    /// `group.version`: 1 or more enables the KIP-848 consumer group protocol.
    pub fn group_version(&self) -> i16 {
        self.level("group.version")
    }
}

/// Versions chosen for one broker connection.
#[derive(Debug, Clone)]
pub struct NegotiatedVersions {
    /// Broker ranges by API key (index = key).
    broker: Vec<Option<(i16, i16)>>,
    features: FinalizedFeatures,
}

impl NegotiatedVersions {
    /// Reads the broker's ranges and finalized features from its ApiVersions response.
    ///
    /// The response's error code is the caller's concern (an UNSUPPORTED_VERSION answer
    /// carries the broker's own ApiVersions range for a retry at a lower version).
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let mut broker = Vec::new();
        for k in &response.api_keys {
            let Ok(idx) = usize::try_from(k.api_key) else {
                continue;
            };
            // Keys are small (< 100 today); ignore absurd ones rather than allocate.
            if idx > 4096 {
                continue;
            }
            if broker.len() <= idx {
                broker.resize(idx + 1, None);
            }
            broker[idx] = Some((k.min_version, k.max_version));
        }
        let features = FinalizedFeatures {
            epoch: response.finalized_features_epoch,
            features: response
                .finalized_features
                .iter()
                .map(|f| FinalizedFeature {
                    name: f.name.to_string(),
                    max_level: f.max_version_level,
                    min_level: f.min_version_level,
                })
                .collect(),
        };
        NegotiatedVersions { broker, features }
    }

    /// The broker's range for `api`.
    pub fn broker_range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.broker.get(api as i16 as usize).copied().flatten()
    }

    /// The highest version both sides support.
    pub fn version(&self, api: ApiKey) -> Result<i16, VersionError> {
        let ours = supported(api).ok_or(VersionError::NotImplemented(api as i16))?;
        let (broker_min, broker_max) = self.broker_range(api).ok_or(VersionError::NotOfferedByBroker {
            name: ours.name,
            ours_min: ours.min,
            ours_max: ours.max,
        })?;
        let hi = ours.max.min(broker_max);
        let lo = ours.min.max(broker_min);
        if hi < lo {
            return Err(VersionError::NoCommonVersion {
                name: ours.name,
                ours_min: ours.min,
                ours_max: ours.max,
                broker_min,
                broker_max,
            });
        }
        Ok(hi)
    }

    /// The broker's finalized features.
    pub fn features(&self) -> &FinalizedFeatures {
        &self.features
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn our_ranges_lie_within_kafka_protocol() {
        for r in SUPPORTED {
            let crate_range = r.api.valid_versions();
            assert!(r.min <= r.max, "{}", r.name);
            assert!(
                r.min >= crate_range.min && r.max <= crate_range.max,
                "{}: {crate_range}",
                r.name
            );
            assert_eq!(format!("{:?}", r.api), r.name);
        }
    }

    fn response(ranges: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        let mut resp = ApiVersionsResponse::default();
        resp.api_keys = ranges
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k as i16)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        resp.finalized_features_epoch = 7;
        resp.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str("transaction.version"))
            .with_max_version_level(2)
            .with_min_version_level(2)];
        resp
    }

    #[test]
    fn picks_highest_common_version() {
        let n = NegotiatedVersions::from_response(&response(&[
            (ApiKey::Produce, 3, 13),
            (ApiKey::Fetch, 4, 10),
            (ApiKey::Metadata, 13, 14),
        ]));
        assert_eq!(n.version(ApiKey::Produce), Ok(12));
        assert_eq!(n.version(ApiKey::Fetch), Ok(10));
        assert_eq!(
            n.version(ApiKey::Metadata),
            Err(VersionError::NoCommonVersion {
                name: "Metadata",
                ours_min: 4,
                ours_max: 12,
                broker_min: 13,
                broker_max: 14
            })
        );
        let err = n.version(ApiKey::EndTxn).unwrap_err();
        assert!(err.to_string().contains("does not support EndTxn"), "{err}");
        assert_eq!(n.features().transaction_version(), 2);
        assert_eq!(n.features().group_version(), 0);
        assert_eq!(n.features().epoch, 7);
        assert_eq!(
            n.version(ApiKey::Vote),
            Err(VersionError::NotImplemented(ApiKey::Vote as i16))
        );
    }
}
