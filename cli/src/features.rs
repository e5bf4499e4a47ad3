//! `strom features describe|upgrade|downgrade` (kafka-features.sh) and `strom quorum`
//! (kafka-metadata-quorum.sh describe --status --replication).

use clap::Subcommand;
use strom_client::{Admin, ClientConfig, FeatureUpgradeType};

use crate::out::outln;
use crate::Failure;

/// `strom features ...`
#[derive(Debug, Subcommand)]
pub(crate) enum FeaturesAction {
    /// The finalized (in use) and supported levels of every feature.
    ///
    /// Example: `strom features describe --json`.
    Describe {
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Raise features' levels. Example: `strom features upgrade --feature
    /// transaction.version=2 --dry-run`.
    Upgrade {
        /// NAME=LEVEL (repeatable).
        #[arg(long = "feature", value_name = "NAME=LEVEL", required = true)]
        features: Vec<String>,
        /// Have the controller check the change, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Lower features' levels (0 disables one). Example: `strom features downgrade
    /// --feature group.version=0 --dry-run`.
    Downgrade {
        /// NAME=LEVEL (repeatable).
        #[arg(long = "feature", value_name = "NAME=LEVEL", required = true)]
        features: Vec<String>,
        /// Allow a downgrade that loses metadata.
        #[arg(long = "unsafe")]
        unsafe_downgrade: bool,
        /// Have the controller check the change, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

fn parse(features: &[String]) -> Result<Vec<(String, i16)>, Failure> {
    features
        .iter()
        .map(|f| {
            f.split_once('=')
                .and_then(|(n, l)| Some((n.to_owned(), l.trim().parse::<i16>().ok()?)))
                .filter(|(n, l)| !n.is_empty() && *l >= 0)
                .ok_or_else(|| Failure::Error(format!("--feature {f}: expected NAME=LEVEL (a level >= 0)")))
        })
        .collect()
}

/// `strom features ...`.
pub(crate) async fn features(config: ClientConfig, action: FeaturesAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    let (features, how, dry_run) = match action {
        FeaturesAction::Describe { json } => {
            let f = admin.describe_features().await.map_err(e)?;
            if json {
                let level = |m: &std::collections::BTreeMap<String, (i16, i16)>| {
                    m.iter()
                        .map(|(n, (lo, hi))| (n.clone(), serde_json::json!({"min": lo, "max": hi})))
                        .collect::<serde_json::Map<_, _>>()
                };
                let doc = serde_json::json!({
                    "finalized_epoch": f.finalized_epoch,
                    "finalized": level(&f.finalized),
                    "supported": level(&f.supported),
                });
                outln!("{doc}")?;
                return Ok(());
            }
            let mut names: Vec<&String> = f.finalized.keys().chain(f.supported.keys()).collect();
            names.sort();
            names.dedup();
            for n in names {
                let finalized = f.finalized.get(n).map_or(0, |(_, hi)| *hi);
                let (lo, hi) = f.supported.get(n).copied().unwrap_or((0, 0));
                outln!("{n}\tfinalized {finalized}\tsupported {lo}-{hi}")?;
            }
            return Ok(());
        }
        FeaturesAction::Upgrade { features, dry_run } => (features, FeatureUpgradeType::Upgrade, dry_run),
        FeaturesAction::Downgrade {
            features,
            unsafe_downgrade,
            dry_run,
        } => (
            features,
            if unsafe_downgrade {
                FeatureUpgradeType::UnsafeDowngrade
            } else {
                FeatureUpgradeType::SafeDowngrade
            },
            dry_run,
        ),
    };
    let parsed = parse(&features)?;
    let updates: Vec<(&str, i16, FeatureUpgradeType)> = parsed.iter().map(|(n, l)| (n.as_str(), *l, how)).collect();
    let results = admin.update_features(&updates, dry_run).await.map_err(e)?;
    let mut failed = Vec::new();
    for (name, r) in results {
        match r {
            Ok(()) if dry_run => outln!("dry run: the controller accepts {name}")?,
            Ok(()) => outln!("updated {name}")?,
            Err(err) => failed.push(err.to_string()),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Error(failed.join("; ")))
    }
}

/// `strom quorum`: the metadata quorum's leader, epoch and high watermark, and each
/// replica's lag.
pub(crate) async fn quorum(config: ClientConfig, json: bool) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    let q = admin.describe_metadata_quorum().await.map_err(e)?;
    let replicas = |role: &str, rs: &[strom_client::QuorumReplica]| -> Vec<serde_json::Value> {
        rs.iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.replica_id,
                    "role": role,
                    "log_end_offset": r.log_end_offset,
                    "lag": q.high_watermark.saturating_sub(r.log_end_offset).max(0),
                    "last_fetch_timestamp": r.last_fetch_timestamp,
                    "last_caught_up_timestamp": r.last_caught_up_timestamp,
                })
            })
            .collect()
    };
    let mut all = replicas("voter", &q.voters);
    all.extend(replicas("observer", &q.observers));
    if json {
        let doc = serde_json::json!({
            "leader_id": q.leader_id,
            "leader_epoch": q.leader_epoch,
            "high_watermark": q.high_watermark,
            "replicas": all,
        });
        outln!("{doc}")?;
        return Ok(());
    }
    outln!(
        "leader {} epoch {} high watermark {}",
        q.leader_id,
        q.leader_epoch,
        q.high_watermark
    )?;
    for r in &all {
        outln!(
            "  {} {}: log end {} lag {}",
            r["role"].as_str().unwrap_or(""),
            r["id"],
            r["log_end_offset"],
            r["lag"]
        )?;
    }
    Ok(())
}
