//! `strom quotas describe|alter` (kafka-configs.sh for users, clients and IPs; rpk's
//! `cluster quotas`).

use clap::{Args, Subcommand};
use strom_client::{
    Admin, ClientConfig, QuotaEntity, QuotaFilter, QuotaMatch, QuotaOp, QUOTA_CLIENT_ID, QUOTA_IP, QUOTA_USER,
};

use crate::out::outln;
use crate::Failure;

/// `strom quotas ...`
#[derive(Debug, Subcommand)]
pub(crate) enum QuotasAction {
    /// Quotas of the users, client ids and IPs that match (every quota without a filter).
    ///
    /// Example: `strom quotas describe --user alice --json`; `--user-default` for the
    /// default user's; `--strict` for entities made of exactly the parts named.
    Describe {
        #[command(flatten)]
        who: Who,
        /// Only entities made of exactly the parts named (e.g. alice, not alice's clients).
        #[arg(long)]
        strict: bool,
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Set or remove quotas of one entity: a user, a client id, both, or an IP.
    ///
    /// Example: `strom quotas alter --user alice --client-id billing --set
    /// producer_byte_rate=1048576 --delete consumer_byte_rate`. Quotas: producer_byte_rate,
    /// consumer_byte_rate, request_percentage, controller_mutation_rate (users, clients),
    /// connection_creation_rate (IPs).
    #[command(group(clap::ArgGroup::new("ops").required(true).multiple(true).args(["set", "delete"])))]
    Alter {
        #[command(flatten)]
        who: Who,
        /// Set QUOTA to VALUE (repeatable).
        #[arg(long = "set", value_name = "QUOTA=VALUE")]
        set: Vec<String>,
        /// Remove QUOTA (repeatable).
        #[arg(long = "delete", value_name = "QUOTA")]
        delete: Vec<String>,
        /// Have the broker check the changes, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The entity parts: each type named at most once, by name or as its default.
#[derive(Debug, Args)]
pub(crate) struct Who {
    /// A user principal's name.
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default client id.
    #[arg(long)]
    client_id_default: bool,
    /// An IP address.
    #[arg(long, conflicts_with_all = ["ip_default", "user", "user_default", "client_id", "client_id_default"])]
    ip: Option<String>,
    /// The default IP.
    #[arg(long, conflicts_with_all = ["user", "user_default", "client_id", "client_id_default"])]
    ip_default: bool,
}

impl Who {
    /// (type, Some(name) | None for the default) of each part named.
    fn parts(&self) -> Vec<(&'static str, Option<String>)> {
        let mut parts = Vec::new();
        for (t, name, default) in [
            (QUOTA_USER, &self.user, self.user_default),
            (QUOTA_CLIENT_ID, &self.client_id, self.client_id_default),
            (QUOTA_IP, &self.ip, self.ip_default),
        ] {
            if let Some(n) = name {
                parts.push((t, Some(n.clone())));
            } else if default {
                parts.push((t, None));
            }
        }
        parts
    }
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

/// `strom quotas ...`.
pub(crate) async fn quotas(config: ClientConfig, action: QuotasAction) -> Result<(), Failure> {
    match action {
        QuotasAction::Describe { who, strict, json } => {
            let mut filter = QuotaFilter::all();
            for (t, n) in who.parts() {
                filter = filter.with(t, n.map_or(QuotaMatch::Default, QuotaMatch::Exact));
            }
            filter.strict = strict;
            let admin = Admin::connect(config).await.map_err(e)?;
            let found = admin.describe_client_quotas(&filter).await.map_err(e)?;
            if json {
                let doc: Vec<serde_json::Value> = found
                    .iter()
                    .map(|(entity, values)| {
                        let parts: serde_json::Map<String, serde_json::Value> = entity
                            .0
                            .iter()
                            .map(|(t, n)| (t.clone(), n.clone().map_or(serde_json::Value::Null, Into::into)))
                            .collect();
                        serde_json::json!({ "entity": parts, "quotas": values })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            for (entity, values) in &found {
                let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                outln!("{entity}: {}", values.join(", "))?;
            }
            Ok(())
        }
        QuotasAction::Alter {
            who,
            set,
            delete,
            dry_run,
        } => {
            let parts = who.parts();
            if parts.is_empty() {
                return Err("quotas alter: name whose quotas: --user, --client-id, --ip or their --*-default".into());
            }
            let mut ops = Vec::new();
            for kv in &set {
                let (k, v) = kv
                    .split_once('=')
                    .and_then(|(k, v)| Some((k, v.trim().parse::<f64>().ok()?)))
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or_else(|| Failure::Error(format!("--set {kv}: expected QUOTA=NUMBER")))?;
                ops.push(QuotaOp::Set(k.to_owned(), v));
            }
            ops.extend(delete.iter().map(|k| QuotaOp::Remove(k.clone())));
            let mut entity = QuotaEntity(Vec::new());
            for (t, n) in parts {
                entity = entity.and(t, n.as_deref());
            }
            let admin = Admin::connect(config).await.map_err(e)?;
            let mut results = admin
                .alter_client_quotas(&[(entity.clone(), ops.clone())], dry_run)
                .await
                .map_err(e)?;
            results.pop().ok_or("AlterClientQuotas answered nothing")?.map_err(e)?;
            let verb = if dry_run {
                "dry run: the broker accepts"
            } else {
                "altered"
            };
            for op in &ops {
                match op {
                    QuotaOp::Set(k, v) => outln!("{verb}: {entity} {k}={v}")?,
                    QuotaOp::Remove(k) => outln!("{verb}: {entity} delete {k}")?,
                }
            }
            Ok(())
        }
    }
}
