//! Admin for access control lists (Java's `Admin.createAcls`, `describeAcls`, `deleteAcls`):
//! bindings of a resource pattern to an access control entry, and filters that match them.
//! The requests go to any broker, which forwards creations and deletions to the controller.
//! The broker must run an authorizer (`authorizer.class.name`); without one it answers
//! SECURITY_DISABLED.

use std::fmt;
use std::str::FromStr;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::create_acls_request::AclCreation;
use strom_protocol::messages::delete_acls_request::DeleteAclsFilter;
use strom_protocol::messages::{CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};

use crate::admin::Admin;
use crate::error::check;
use crate::error::{Error, Result};

/// Declares a wire enum with Java's names (`TOPIC`, `LITERAL`, `READ`, `ALLOW`), parsed
/// case-insensitively, with `-` or `_` between words.
macro_rules! acl_enum {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $code:literal, $java:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $v,)+
        }

        impl $name {
            /// Every value, in wire-code order.
            pub const ALL: &'static [$name] = &[$($name::$v),+];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$v => $code,)+
                }
            }

            /// The value of a wire code; `None` for UNKNOWN (0) or a code this build does not
            /// know.
            pub fn from_code(code: i8) -> Option<Self> {
                match code {
                    $($code => Some($name::$v),)+
                    _ => None,
                }
            }

            /// Java's name (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`, ...).
            pub fn java_name(self) -> &'static str {
                match self {
                    $($name::$v => $java,)+
                }
            }

            fn decode(code: i8, field: &str) -> Result<Self> {
                Self::from_code(code).ok_or_else(|| {
                    Error::protocol(format!("the broker sent {field} {code}, which is not a known {}", $what))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.java_name())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self> {
                let norm = s.trim().to_ascii_uppercase().replace('-', "_");
                $(if norm == $java || norm.replace('_', "") == $java.replace('_', "") {
                    return Ok($name::$v);
                })+
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.java_name()).collect();
                Err(Error::config(format!(
                    "{s:?}: not a known {}; one of {}",
                    $what,
                    names.join(", ")
                )))
            }
        }
    };
}

acl_enum!(
    /// The kind of resource an ACL is about (Java's `ResourceType`).
    AclResourceType, "resource type" {
        /// Any type (filters only).
        Any = 1, "ANY";
        /// A topic.
        Topic = 2, "TOPIC";
        /// A consumer group.
        Group = 3, "GROUP";
        /// The cluster (its one resource is named `kafka-cluster`).
        Cluster = 4, "CLUSTER";
        /// A transactional id.
        TransactionalId = 5, "TRANSACTIONAL_ID";
        /// A delegation token.
        DelegationToken = 6, "DELEGATION_TOKEN";
        /// A user (for `CreateTokens`/`DescribeTokens` on behalf of others).
        User = 7, "USER";
    }
);

acl_enum!(
    /// How a resource name matches (Java's `PatternType`).
    AclPatternType, "pattern type" {
        /// Any pattern type (filters only).
        Any = 1, "ANY";
        /// Every binding that applies to the name: literal, wildcard and prefixes of it
        /// (filters only).
        Match = 2, "MATCH";
        /// Exactly the name (`*` is the wildcard).
        Literal = 3, "LITERAL";
        /// Every name that starts with it.
        Prefixed = 4, "PREFIXED";
    }
);

acl_enum!(
    /// An operation an ACL allows or denies (Java's `AclOperation`).
    AclOperation, "ACL operation" {
        /// Any operation (filters only).
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        /// Read.
        Read = 3, "READ";
        /// Write.
        Write = 4, "WRITE";
        /// Create.
        Create = 5, "CREATE";
        /// Delete.
        Delete = 6, "DELETE";
        /// Alter.
        Alter = 7, "ALTER";
        /// Describe.
        Describe = 8, "DESCRIBE";
        /// Cluster actions (broker-to-broker).
        ClusterAction = 9, "CLUSTER_ACTION";
        /// Describe configs.
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        /// Alter configs.
        AlterConfigs = 11, "ALTER_CONFIGS";
        /// Idempotent writes.
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        /// Create delegation tokens.
        CreateTokens = 13, "CREATE_TOKENS";
        /// Describe delegation tokens.
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        /// Two-phase-commit transactions (KIP-939).
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

acl_enum!(
    /// Whether an ACL allows or denies (Java's `AclPermissionType`).
    AclPermissionType, "permission type" {
        /// Either (filters only).
        Any = 1, "ANY";
        /// Denies; a deny wins over any allow.
        Deny = 2, "DENY";
        /// Allows.
        Allow = 3, "ALLOW";
    }
);

/// One ACL: who may (or may not) do what, from where, to which resources (Java's
/// `AclBinding`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resource type.
    pub resource_type: AclResourceType,
    /// The resource name (`*`: every resource of the type; `kafka-cluster` for the cluster).
    pub resource_name: String,
    /// How the name matches: [`AclPatternType::Literal`] or [`AclPatternType::Prefixed`].
    pub pattern_type: AclPatternType,
    /// The principal, `User:alice` (`User:*`: everyone).
    pub principal: String,
    /// The client host (`*`: any).
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or deny.
    pub permission: AclPermissionType,
}

impl AclBinding {
    /// `principal` may do `operation` on the topic `name`, from any host.
    pub fn allow(resource_type: AclResourceType, name: &str, principal: &str, operation: AclOperation) -> Self {
        AclBinding {
            resource_type,
            resource_name: name.to_owned(),
            pattern_type: AclPatternType::Literal,
            principal: principal.to_owned(),
            host: "*".to_owned(),
            operation,
            permission: AclPermissionType::Allow,
        }
    }

    /// The same binding, but denying.
    pub fn deny(mut self) -> Self {
        self.permission = AclPermissionType::Deny;
        self
    }

    /// The same binding, for every resource whose name starts with the name.
    pub fn prefixed(mut self) -> Self {
        self.pattern_type = AclPatternType::Prefixed;
        self
    }

    /// The same binding, from `host` only.
    pub fn host(mut self, host: &str) -> Self {
        self.host = host.to_owned();
        self
    }

    /// The filter that matches exactly this binding.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission: self.permission,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::config(format!("ACL binding {self}: {what}")));
        if self.resource_type == AclResourceType::Any {
            return bad("the resource type ANY is for filters; name a type");
        }
        if !matches!(self.pattern_type, AclPatternType::Literal | AclPatternType::Prefixed) {
            return bad("the pattern type must be LITERAL or PREFIXED");
        }
        if self.operation == AclOperation::Any || self.permission == AclPermissionType::Any {
            return bad("ANY is for filters; name an operation and ALLOW or DENY");
        }
        if self.resource_name.is_empty() {
            return bad("the resource name is empty");
        }
        if !self.principal.contains(':') {
            return bad("the principal must be TYPE:NAME, e.g. User:alice");
        }
        Ok(())
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} on {} {:?} ({}) for {} from {}",
            self.permission,
            self.operation,
            self.resource_type,
            self.resource_name,
            self.pattern_type,
            self.principal,
            self.host
        )
    }
}

/// What [`Admin::describe_acls`] and [`Admin::delete_acls`] match (Java's
/// `AclBindingFilter`): `None` and the `Any` values match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclBindingFilter {
    /// The resource type, or [`AclResourceType::Any`].
    pub resource_type: AclResourceType,
    /// The resource name, or `None` for any.
    pub resource_name: Option<String>,
    /// [`AclPatternType::Any`], [`AclPatternType::Match`] (every binding that applies to
    /// the name), or one type.
    pub pattern_type: AclPatternType,
    /// The principal, or `None` for any.
    pub principal: Option<String>,
    /// The host, or `None` for any.
    pub host: Option<String>,
    /// The operation, or [`AclOperation::Any`].
    pub operation: AclOperation,
    /// The permission, or [`AclPermissionType::Any`].
    pub permission: AclPermissionType,
}

impl AclBindingFilter {
    /// Matches every binding.
    pub const ANY: AclBindingFilter = AclBindingFilter {
        resource_type: AclResourceType::Any,
        resource_name: None,
        pattern_type: AclPatternType::Any,
        principal: None,
        host: None,
        operation: AclOperation::Any,
        permission: AclPermissionType::Any,
    };

    /// Every binding of one resource type and name (literal bindings of that exact name).
    pub fn resource(resource_type: AclResourceType, name: &str) -> Self {
        AclBindingFilter {
            resource_type,
            resource_name: Some(name.to_owned()),
            pattern_type: AclPatternType::Literal,
            ..Self::ANY
        }
    }

    /// Whether `b` is one this filter matches, by the broker's rules except `MATCH` (which
    /// needs the authorizer's view of wildcards and prefixes; it is treated as any here).
    pub fn matches(&self, b: &AclBinding) -> bool {
        (self.resource_type == AclResourceType::Any || self.resource_type == b.resource_type)
            && self.resource_name.as_ref().is_none_or(|n| *n == b.resource_name)
            && (matches!(self.pattern_type, AclPatternType::Any | AclPatternType::Match)
                || self.pattern_type == b.pattern_type)
            && self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == AclPermissionType::Any || self.permission == b.permission)
    }
}

fn opt(s: &Option<String>) -> Option<StrBytes> {
    s.as_ref().map(|s| StrBytes::from_string(s.clone()))
}

fn binding(
    resource_type: i8,
    resource_name: &StrBytes,
    pattern_type: i8,
    principal: &StrBytes,
    host: &StrBytes,
    operation: i8,
    permission: i8,
) -> Result<AclBinding> {
    Ok(AclBinding {
        resource_type: AclResourceType::decode(resource_type, "resource type")?,
        resource_name: resource_name.to_string(),
        pattern_type: AclPatternType::decode(pattern_type, "pattern type")?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: AclOperation::decode(operation, "operation")?,
        permission: AclPermissionType::decode(permission, "permission type")?,
    })
}

impl Admin {
    /// Creates ACL bindings (Java's `createAcls`). Returns each binding's outcome in order:
    /// the call fails as a whole only when the request does; a binding the broker refuses
    /// fails alone, naming it. Creating a binding that exists is a success.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn create_acls(&self, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
        for b in bindings {
            b.validate()?;
        }
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let req = CreateAclsRequest::default().with_creations(
            bindings
                .iter()
                .map(|b| {
                    AclCreation::default()
                        .with_resource_type(b.resource_type.code())
                        .with_resource_name(StrBytes::from_string(b.resource_name.clone()))
                        .with_resource_pattern_type(b.pattern_type.code())
                        .with_principal(StrBytes::from_string(b.principal.clone()))
                        .with_host(StrBytes::from_string(b.host.clone()))
                        .with_operation(b.operation.code())
                        .with_permission_type(b.permission.code())
                })
                .collect(),
        );
        let client = self.client();
        let resp = client
            .with_retries("CreateAcls", || async { client.any_broker().await?.send(&req).await })
            .await?;
        if resp.results.len() != bindings.len() {
            return Err(Error::protocol(format!(
                "CreateAcls: {} results for {} bindings",
                resp.results.len(),
                bindings.len()
            )));
        }
        Ok(resp
            .results
            .iter()
            .zip(bindings)
            .map(|(r, b)| check(r.error_code, r.error_message.as_ref(), || format!("creating ACL {b}")))
            .collect())
    }

    /// The ACL bindings that match `filter` (Java's `describeAcls`), sorted.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_acls(&self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type.code())
            .with_resource_name_filter(opt(&filter.resource_name))
            .with_pattern_type_filter(filter.pattern_type.code())
            .with_principal_filter(opt(&filter.principal))
            .with_host_filter(opt(&filter.host))
            .with_operation(filter.operation.code())
            .with_permission_type(filter.permission.code());
        let client = self.client();
        let resp = client
            .with_retries("DescribeAcls", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, resp.error_message.as_ref(), || {
                    "DescribeAcls".to_owned()
                })?;
                Ok(resp)
            })
            .await?;
        let mut out = Vec::new();
        for r in &resp.resources {
            for a in &r.acls {
                out.push(binding(
                    r.resource_type,
                    &r.resource_name,
                    r.pattern_type,
                    &a.principal,
                    &a.host,
                    a.operation,
                    a.permission_type,
                )?);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the ACL bindings matching each filter (Java's `deleteAcls`). Returns, per
    /// filter in order, the bindings it deleted, or why it failed; the call fails as a
    /// whole only when the request does.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn delete_acls(&self, filters: &[AclBindingFilter]) -> Result<Vec<Result<Vec<AclBinding>>>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let req = DeleteAclsRequest::default().with_filters(
            filters
                .iter()
                .map(|f| {
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(opt(&f.resource_name))
                        .with_pattern_type_filter(f.pattern_type.code())
                        .with_principal_filter(opt(&f.principal))
                        .with_host_filter(opt(&f.host))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code())
                })
                .collect(),
        );
        let client = self.client();
        let resp = client
            .with_retries("DeleteAcls", || async { client.any_broker().await?.send(&req).await })
            .await?;
        if resp.filter_results.len() != filters.len() {
            return Err(Error::protocol(format!(
                "DeleteAcls: {} results for {} filters",
                resp.filter_results.len(),
                filters.len()
            )));
        }
        let mut out = Vec::with_capacity(filters.len());
        for (r, f) in resp.filter_results.iter().zip(filters) {
            let result = check(r.error_code, r.error_message.as_ref(), || {
                format!("deleting ACLs {f:?}")
            })
            .and_then(|()| {
                let mut deleted = Vec::with_capacity(r.matching_acls.len());
                for m in &r.matching_acls {
                    check(m.error_code, m.error_message.as_ref(), || {
                        format!("deleting ACL on {}", m.resource_name.as_str())
                    })?;
                    deleted.push(binding(
                        m.resource_type,
                        &m.resource_name,
                        m.pattern_type,
                        &m.principal,
                        &m.host,
                        m.operation,
                        m.permission_type,
                    )?);
                }
                deleted.sort();
                Ok(deleted)
            });
            out.push(result);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_names_parse_both_ways() {
        for t in AclResourceType::ALL {
            assert_eq!(t.java_name().parse::<AclResourceType>().unwrap(), *t);
            assert_eq!(AclResourceType::from_code(t.code()), Some(*t));
        }
        assert_eq!(
            "transactional-id".parse::<AclResourceType>().unwrap(),
            AclResourceType::TransactionalId
        );
        assert_eq!(
            "TransactionalId".parse::<AclResourceType>().unwrap(),
            AclResourceType::TransactionalId
        );
        assert_eq!(
            "describe_configs".parse::<AclOperation>().unwrap(),
            AclOperation::DescribeConfigs
        );
        assert_eq!("Prefixed".parse::<AclPatternType>().unwrap(), AclPatternType::Prefixed);
        let e = "reed".parse::<AclOperation>().unwrap_err().to_string();
        assert!(
            e.contains("\"reed\": not a known ACL operation") && e.contains("READ"),
            "{e}"
        );
        assert_eq!(AclOperation::from_code(0), None, "UNKNOWN is not a value");
        assert_eq!(AclOperation::from_code(99), None);
    }

    #[test]
    fn bindings_are_checked_before_sending() {
        let ok = AclBinding::allow(AclResourceType::Topic, "t", "User:alice", AclOperation::Read);
        assert!(ok.validate().is_ok());
        assert!(ok.clone().prefixed().deny().host("10.0.0.1").validate().is_ok());
        let mut b = ok.clone();
        b.principal = "alice".into();
        assert!(b.validate().unwrap_err().to_string().contains("TYPE:NAME"));
        let mut b = ok.clone();
        b.pattern_type = AclPatternType::Match;
        assert!(b.validate().is_err());
        let mut b = ok.clone();
        b.operation = AclOperation::Any;
        assert!(b.validate().is_err());
        assert!(ok.to_filter().matches(&ok));
        assert!(AclBindingFilter::ANY.matches(&ok));
        assert!(!AclBindingFilter::resource(AclResourceType::Group, "t").matches(&ok));
    }
}
