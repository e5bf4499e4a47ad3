//! Cluster features and the metadata quorum against the broker: what is finalized and
//! supported, validate-only updates accepted and refused by the controller (nothing
//! changes), and the quorum's leader and replicas.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_client::{Admin, ClientConfig, ErrorCode, ErrorKind, FeatureUpgradeType};
use strom_integration_tests::{broker, init_test_logging};

#[tokio::test]
async fn features_and_the_quorum() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let f = admin.describe_features().await.unwrap();
    let (_, mv) = f.finalized["metadata.version"];
    assert!(mv >= 7, "{f:?}");
    let (lo, hi) = f.supported["metadata.version"];
    assert!(lo <= mv && mv <= hi, "{f:?}");
    assert!(f.finalized_epoch.is_some());
    let tv = f.finalized.get("transaction.version").map_or(0, |(_, hi)| *hi);

    // Validate only: the current level is accepted, a level beyond support refused; the
    // finalized levels stay.
    let ok = admin
        .update_features(&[("transaction.version", tv, FeatureUpgradeType::Upgrade)], true)
        .await;
    match ok {
        Ok(r) => assert!(r["transaction.version"].is_ok(), "{r:?}"),
        Err(e) => panic!("{e}"),
    }
    let e = admin
        .update_features(&[("transaction.version", 99, FeatureUpgradeType::Upgrade)], true)
        .await
        .map(|r| r["transaction.version"].as_ref().err().map(ToString::to_string))
        .unwrap_or_else(|e| Some(e.to_string()))
        .expect("level 99 is refused");
    assert!(e.contains("INVALID_UPDATE_VERSION"), "{e}");
    let refused = admin
        .update_features(&[("metadata.version", 7, FeatureUpgradeType::SafeDowngrade)], true)
        .await;
    let refused = match refused {
        Ok(r) => r["metadata.version"].clone().unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(refused.kafka_code(), Some(ErrorCode::InvalidUpdateVersion), "{refused}");
    assert_eq!(admin.describe_features().await.unwrap().finalized, f.finalized);
    let bad = admin
        .update_features(&[("transaction.version", -1, FeatureUpgradeType::Upgrade)], true)
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidConfig);

    let q = admin.describe_metadata_quorum().await.unwrap();
    assert_eq!(q.leader_id, 1, "{q:?}");
    assert!(q.leader_epoch >= 1 && q.high_watermark > 0, "{q:?}");
    assert_eq!(q.voters.len(), 1, "{q:?}");
    assert_eq!(q.voters[0].replica_id, 1);
    assert!(q.voters[0].log_end_offset <= q.high_watermark + 1000);
}
