//! `strom configs describe|alter` (kafka-configs.sh, rpk's `cluster config` and `topic
//! alter-config`) and `strom topics alter-config`.

use clap::{Args, Subcommand};
use strom_client::{Admin, AlterConfigOp, ClientConfig, ConfigResource, ConfigSource};

use crate::out::outln;
use crate::Failure;

/// `strom configs ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigsAction {
    /// A resource's configs: the ones set on it (every key with `--all`).
    ///
    /// Example: `strom configs describe --broker 1 --all --json`.
    Describe {
        #[command(flatten)]
        resource: Resource,
        /// Every key, defaults included, with where its value comes from.
        #[arg(long)]
        all: bool,
        /// One JSON array instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Change a resource's configs (IncrementalAlterConfigs).
    ///
    /// Example: `strom configs alter --topic orders --set retention.ms=86400000 --append
    /// cleanup.policy=compact --dry-run`; `--broker-default --set log.cleaner.threads=2`;
    /// `--broker-logger 1 --set kafka.server.ReplicaManager=DEBUG`.
    Alter {
        #[command(flatten)]
        resource: Resource,
        #[command(flatten)]
        changes: Changes,
        /// Have the broker check the changes (validate_only), changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Exactly one resource.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Resource {
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// A broker, by node id.
    #[arg(long)]
    broker: Option<i32>,
    /// The cluster-wide default of every broker.
    #[arg(long)]
    broker_default: bool,
    /// A broker's loggers, by node id (logger=LEVEL; not kept over a restart).
    #[arg(long)]
    broker_logger: Option<i32>,
    /// A consumer group (KIP-848 group configs).
    #[arg(long)]
    group: Option<String>,
    /// A client metrics subscription (KIP-714).
    #[arg(long)]
    client_metrics: Option<String>,
}

impl Resource {
    fn resource(&self) -> ConfigResource {
        if let Some(t) = &self.topic {
            ConfigResource::Topic(t.clone())
        } else if let Some(b) = self.broker {
            ConfigResource::Broker(b)
        } else if let Some(b) = self.broker_logger {
            ConfigResource::BrokerLogger(b)
        } else if let Some(g) = &self.group {
            ConfigResource::Group(g.clone())
        } else if let Some(c) = &self.client_metrics {
            ConfigResource::ClientMetrics(c.clone())
        } else {
            ConfigResource::BrokerDefault
        }
    }
}

/// The changes of an alter (at least one).
#[derive(Debug, Args)]
#[group(required = true, multiple = true, id = "changes")]
pub(crate) struct Changes {
    /// Set KEY to VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remove KEY's value here, so the next level's applies (repeatable).
    #[arg(long = "delete", value_name = "KEY")]
    delete: Vec<String>,
    /// Add VALUE to the list KEY (repeatable).
    #[arg(long = "append", value_name = "KEY=VALUE")]
    append: Vec<String>,
    /// Remove VALUE from the list KEY (repeatable).
    #[arg(long = "subtract", value_name = "KEY=VALUE")]
    subtract: Vec<String>,
}

impl Changes {
    fn ops(&self) -> Result<Vec<AlterConfigOp>, Failure> {
        let pair = |flag: &str, kv: &str| -> Result<(String, String), Failure> {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| Failure::Error(format!("--{flag} {kv}: expected KEY=VALUE")))
        };
        let mut ops = Vec::new();
        for kv in &self.set {
            let (k, v) = pair("set", kv)?;
            ops.push(AlterConfigOp::Set(k, v));
        }
        for k in &self.delete {
            ops.push(AlterConfigOp::Delete(k.clone()));
        }
        for kv in &self.append {
            let (k, v) = pair("append", kv)?;
            ops.push(AlterConfigOp::Append(k, v));
        }
        for kv in &self.subtract {
            let (k, v) = pair("subtract", kv)?;
            ops.push(AlterConfigOp::Subtract(k, v));
        }
        Ok(ops)
    }
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

fn source_name(s: ConfigSource) -> String {
    match s {
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG".into(),
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG".into(),
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG".into(),
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG".into(),
        ConfigSource::Default => "DEFAULT_CONFIG".into(),
        ConfigSource::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG".into(),
        ConfigSource::ClientMetrics => "CLIENT_METRICS_CONFIG".into(),
        ConfigSource::Group => "GROUP_CONFIG".into(),
        ConfigSource::Unknown(c) => format!("UNKNOWN({c})"),
        _ => "UNKNOWN".into(),
    }
}

/// Applies `changes` to `resource`, printing what was done (or checked).
pub(crate) async fn alter(
    admin: &Admin,
    resource: &ConfigResource,
    changes: &Changes,
    dry_run: bool,
) -> Result<(), Failure> {
    let ops = changes.ops()?;
    admin
        .incremental_alter_configs(resource, &ops, dry_run)
        .await
        .map_err(e)?;
    let verb = if dry_run {
        "dry run: the broker accepts"
    } else {
        "altered"
    };
    for op in &ops {
        let line = match op {
            AlterConfigOp::Set(k, v) => format!("set {k}={v}"),
            AlterConfigOp::Delete(k) => format!("delete {k}"),
            AlterConfigOp::Append(k, v) => format!("append {k}+={v}"),
            AlterConfigOp::Subtract(k, v) => format!("subtract {k}-={v}"),
        };
        outln!("{verb}: {line}")?;
    }
    Ok(())
}

/// `strom configs ...`.
pub(crate) async fn configs(config: ClientConfig, action: ConfigsAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        ConfigsAction::Describe { resource, all, json } => {
            let resource = resource.resource();
            let mut entries = admin.describe_configs(&resource).await.map_err(e)?;
            entries.retain(|c| all || c.source != ConfigSource::Default);
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            if json {
                let doc: Vec<serde_json::Value> = entries
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name,
                            "value": c.value,
                            "source": source_name(c.source),
                            "read_only": c.read_only,
                            "sensitive": c.is_sensitive,
                            "synonyms": c.synonyms.iter().map(|s| serde_json::json!({
                                "name": s.name,
                                "value": s.value,
                                "source": source_name(s.source),
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            for c in &entries {
                let value = if c.is_sensitive {
                    "(sensitive)"
                } else {
                    c.value.as_deref().unwrap_or("(null)")
                };
                outln!("{}={} ({})", c.name, value, source_name(c.source))?;
            }
            Ok(())
        }
        ConfigsAction::Alter {
            resource,
            changes,
            dry_run,
        } => alter(&admin, &resource.resource(), &changes, dry_run).await,
    }
}
