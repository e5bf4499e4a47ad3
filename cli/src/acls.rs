//! `strom acls list|create|delete`: Java's `kafka-acls.sh` and rpk's `security acl`.

use clap::{Args, Subcommand};
use strom_client::{
    AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermissionType, AclResourceType, Admin, ClientConfig,
};

use crate::out::outln;
use crate::Failure;

/// `strom acls ...`
#[derive(Debug, Subcommand)]
pub(crate) enum AclsAction {
    /// ACLs matching a filter (every ACL without one).
    ///
    /// Example: `strom acls list --topic orders --json`. With a resource, only literal
    /// bindings of that name unless `--resource-pattern-type` says otherwise (`match`: every
    /// binding that applies to it, wildcards and prefixes included).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create ACLs: one per principal and operation, on one resource.
    ///
    /// Example: `strom acls create --allow-principal User:alice --operation read
    /// --operation describe --topic orders`; `--resource-pattern-type prefixed` for every
    /// topic starting with `orders`.
    #[command(group(clap::ArgGroup::new("who").required(true).multiple(true).args(["allow", "deny"])))]
    Create {
        #[command(flatten)]
        resource: ResourceArgs,
        /// literal (exactly the name) or prefixed (every name starting with it).
        #[arg(long, default_value = "literal")]
        resource_pattern_type: AclPatternType,
        /// A principal to allow, TYPE:NAME (repeatable).
        #[arg(long = "allow-principal", value_name = "PRINCIPAL")]
        allow: Vec<String>,
        /// A principal to deny, TYPE:NAME (repeatable); a deny wins over any allow.
        #[arg(long = "deny-principal", value_name = "PRINCIPAL")]
        deny: Vec<String>,
        /// An operation: read, write, create, delete, alter, describe, cluster-action,
        /// describe-configs, alter-configs, idempotent-write, all, ... (repeatable).
        #[arg(long = "operation", required = true)]
        operations: Vec<AclOperation>,
        /// The client host the ACL applies to.
        #[arg(long, default_value = "*")]
        host: String,
        /// Print the bindings without creating them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete the ACLs matching a filter, printing each one deleted.
    ///
    /// Example: `strom acls delete --topic orders --principal User:alice --dry-run`. A
    /// resource or a principal is required (nothing deletes every ACL by accident);
    /// `--resource-pattern-type` defaults to literal, as in kafka-acls.sh.
    #[command(group(
        clap::ArgGroup::new("delete_what")
            .required(true)
            .multiple(true)
            .args(["topic", "group", "transactional_id", "user", "cluster", "principal"])
    ))]
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
        /// List what would be deleted, deleting nothing.
        #[arg(long)]
        dry_run: bool,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Exactly one resource (create).
#[derive(Debug, Args)]
#[group(required = true, multiple = false, id = "resource")]
pub(crate) struct ResourceArgs {
    /// A topic (`*`: every topic).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer group (`*`: every group).
    #[arg(long)]
    group: Option<String>,
    /// A transactional id (`*`: every one).
    #[arg(long)]
    transactional_id: Option<String>,
    /// A user (CREATE_TOKENS / DESCRIBE_TOKENS on behalf of it).
    #[arg(long)]
    user: Option<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
}

impl ResourceArgs {
    fn pick(&self) -> (AclResourceType, String) {
        named(
            &self.topic,
            &self.group,
            &self.transactional_id,
            &self.user,
            self.cluster,
        )
        .unwrap_or((AclResourceType::Cluster, CLUSTER.to_owned()))
    }
}

/// The cluster's one resource name.
const CLUSTER: &str = "kafka-cluster";

/// The resource one of the flags names, if any.
fn named(
    topic: &Option<String>,
    group: &Option<String>,
    transactional_id: &Option<String>,
    user: &Option<String>,
    cluster: bool,
) -> Option<(AclResourceType, String)> {
    [
        (AclResourceType::Topic, topic),
        (AclResourceType::Group, group),
        (AclResourceType::TransactionalId, transactional_id),
        (AclResourceType::User, user),
    ]
    .into_iter()
    .find_map(|(t, n)| n.as_ref().map(|n| (t, n.clone())))
    .or_else(|| cluster.then(|| (AclResourceType::Cluster, CLUSTER.to_owned())))
}

/// At most one resource, and who/what/how (list, delete).
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only ACLs on this topic.
    #[arg(long, group = "filter_resource")]
    topic: Option<String>,
    /// Only ACLs on this consumer group.
    #[arg(long, group = "filter_resource")]
    group: Option<String>,
    /// Only ACLs on this transactional id.
    #[arg(long, group = "filter_resource")]
    transactional_id: Option<String>,
    /// Only ACLs on this user.
    #[arg(long, group = "filter_resource")]
    user: Option<String>,
    /// Only ACLs on the cluster.
    #[arg(long, group = "filter_resource")]
    cluster: bool,
    /// any, match, literal or prefixed (default: any for list, literal for delete, when a
    /// resource is named).
    #[arg(long)]
    resource_pattern_type: Option<AclPatternType>,
    /// Only ACLs of this principal (TYPE:NAME).
    #[arg(long)]
    principal: Option<String>,
    /// Only ACLs for this host.
    #[arg(long)]
    host: Option<String>,
    /// Only ACLs of this operation.
    #[arg(long)]
    operation: Option<AclOperation>,
    /// Only allow or only deny ACLs.
    #[arg(long)]
    permission: Option<AclPermissionType>,
}

impl FilterArgs {
    fn resource(&self) -> Option<(AclResourceType, String)> {
        named(
            &self.topic,
            &self.group,
            &self.transactional_id,
            &self.user,
            self.cluster,
        )
    }

    fn to_filter(&self, default_pattern: AclPatternType) -> AclBindingFilter {
        let resource = self.resource();
        AclBindingFilter {
            resource_type: resource.as_ref().map_or(AclResourceType::Any, |(t, _)| *t),
            pattern_type: self.resource_pattern_type.unwrap_or(if resource.is_some() {
                default_pattern
            } else {
                AclPatternType::Any
            }),
            resource_name: resource.map(|(_, n)| n),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.unwrap_or(AclOperation::Any),
            permission: self.permission.unwrap_or(AclPermissionType::Any),
        }
    }
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

fn print(bindings: &[AclBinding], json: bool) -> Result<(), Failure> {
    if json {
        let doc: Vec<serde_json::Value> = bindings
            .iter()
            .map(|b| {
                serde_json::json!({
                    "resource_type": b.resource_type.java_name(),
                    "resource_name": b.resource_name,
                    "pattern_type": b.pattern_type.java_name(),
                    "principal": b.principal,
                    "host": b.host,
                    "operation": b.operation.java_name(),
                    "permission": b.permission.java_name(),
                })
            })
            .collect();
        outln!("{}", serde_json::Value::Array(doc))?;
        return Ok(());
    }
    if bindings.is_empty() {
        return Ok(());
    }
    let rows: Vec<[&str; 7]> = bindings
        .iter()
        .map(|b| {
            [
                b.permission.java_name(),
                b.operation.java_name(),
                b.resource_type.java_name(),
                b.resource_name.as_str(),
                b.pattern_type.java_name(),
                b.principal.as_str(),
                b.host.as_str(),
            ]
        })
        .collect();
    let header = [
        "PERMISSION",
        "OPERATION",
        "RESOURCE",
        "NAME",
        "PATTERN",
        "PRINCIPAL",
        "HOST",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        outln!("{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// `strom acls ...`.
pub(crate) async fn acls(config: ClientConfig, action: AclsAction) -> Result<(), Failure> {
    match action {
        AclsAction::List { filter, json } => {
            let admin = Admin::connect(config).await.map_err(e)?;
            let found = admin
                .describe_acls(&filter.to_filter(AclPatternType::Any))
                .await
                .map_err(e)?;
            print(&found, json)
        }
        AclsAction::Create {
            resource,
            resource_pattern_type,
            allow,
            deny,
            operations,
            host,
            dry_run,
        } => {
            if allow.is_empty() && deny.is_empty() {
                return Err("acls create: name a principal with --allow-principal or --deny-principal".into());
            }
            let (resource_type, name) = resource.pick();
            let mut bindings = Vec::new();
            for (principals, permission) in [(&allow, AclPermissionType::Allow), (&deny, AclPermissionType::Deny)] {
                for principal in principals {
                    for op in &operations {
                        bindings.push(AclBinding {
                            resource_type,
                            resource_name: name.clone(),
                            pattern_type: resource_pattern_type,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *op,
                            permission,
                        });
                    }
                }
            }
            if dry_run {
                outln!("dry run: would create {} ACLs", bindings.len())?;
                return print(&bindings, false);
            }
            let admin = Admin::connect(config).await.map_err(e)?;
            let results = admin.create_acls(&bindings).await.map_err(e)?;
            let mut failed = Vec::new();
            for (b, r) in bindings.iter().zip(results) {
                match r {
                    Ok(()) => outln!("created: {b}")?,
                    Err(err) => failed.push(err.to_string()),
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Failure::Error(failed.join("; ")))
            }
        }
        AclsAction::Delete { filter, dry_run, json } => {
            if filter.resource().is_none() && filter.principal.is_none() {
                return Err("acls delete: name a resource (--topic, --group, ...) or a --principal".into());
            }
            let f = filter.to_filter(AclPatternType::Literal);
            let admin = Admin::connect(config).await.map_err(e)?;
            if dry_run {
                let found = admin.describe_acls(&f).await.map_err(e)?;
                if !json {
                    outln!("dry run: would delete {} ACLs", found.len())?;
                }
                return print(&found, json);
            }
            let mut results = admin.delete_acls(std::slice::from_ref(&f)).await.map_err(e)?;
            let deleted = results.pop().ok_or("DeleteAcls answered no result")?.map_err(e)?;
            if !json {
                outln!("deleted {} ACLs", deleted.len())?;
            }
            print(&deleted, json)
        }
    }
}
