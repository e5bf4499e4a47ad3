//! Admin for client quotas (Java's `Admin.describeClientQuotas` and `alterClientQuotas`):
//! byte rates, request percentages and connection rates per user, client id or IP, or
//! their defaults. The requests go to any broker, which forwards changes to the controller.

use std::collections::BTreeMap;
use std::fmt;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::alter_client_quotas_request::{EntityData as AlterEntity, EntryData, OpData};
use strom_protocol::messages::describe_client_quotas_request::ComponentData;
use strom_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};

use crate::admin::Admin;
use crate::error::check;
use crate::error::{Error, Result};

/// Java's entity type of a user principal's quotas.
pub const QUOTA_USER: &str = "user";
/// Java's entity type of a client id's quotas.
pub const QUOTA_CLIENT_ID: &str = "client-id";
/// Java's entity type of an IP address's quotas (`connection_creation_rate` only).
pub const QUOTA_IP: &str = "ip";

/// Whose quotas (Java's `ClientQuotaEntity`): one to three (entity type, name) parts, a
/// name of `None` being the type's default, e.g. `[("user", Some("alice")), ("client-id",
/// None)]` for alice's default client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QuotaEntity(pub Vec<(String, Option<String>)>);

impl QuotaEntity {
    /// A user's quotas.
    pub fn user(name: &str) -> Self {
        QuotaEntity(vec![(QUOTA_USER.to_owned(), Some(name.to_owned()))])
    }

    /// A client id's quotas.
    pub fn client_id(id: &str) -> Self {
        QuotaEntity(vec![(QUOTA_CLIENT_ID.to_owned(), Some(id.to_owned()))])
    }

    /// An IP address's quotas.
    pub fn ip(address: &str) -> Self {
        QuotaEntity(vec![(QUOTA_IP.to_owned(), Some(address.to_owned()))])
    }

    /// Adds a part (e.g. a client id to a user).
    pub fn and(mut self, entity_type: &str, name: Option<&str>) -> Self {
        self.0.push((entity_type.to_owned(), name.map(str::to_owned)));
        self
    }

    fn normalized(mut self) -> Self {
        self.0.sort();
        self
    }
}

impl fmt::Display for QuotaEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(t, n)| match n {
                Some(n) => format!("{t}={n}"),
                None => format!("{t}=<default>"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// How a [`QuotaFilter`] part matches names of its entity type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuotaMatch {
    /// This name.
    Exact(String),
    /// The type's default entity.
    Default,
    /// Any name, the default included.
    Any,
}

/// What [`Admin::describe_client_quotas`] returns (Java's `ClientQuotaFilter`): entities
/// whose parts match every component; with `strict`, only entities that have no other parts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuotaFilter {
    /// (entity type, match) parts.
    pub components: Vec<(String, QuotaMatch)>,
    /// Only entities made of exactly these parts.
    pub strict: bool,
}

impl QuotaFilter {
    /// Every quota entity.
    pub fn all() -> Self {
        QuotaFilter::default()
    }

    /// Adds a part.
    pub fn with(mut self, entity_type: &str, matched: QuotaMatch) -> Self {
        self.components.push((entity_type.to_owned(), matched));
        self
    }

    /// Only entities made of exactly these parts.
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }
}

/// One change of [`Admin::alter_client_quotas`] (Java's `ClientQuotaAlteration.Op`).
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaOp {
    /// Sets a quota, e.g. `producer_byte_rate` to 1048576 (bytes per second).
    Set(String, f64),
    /// Removes a quota (the next level applies: the default entity's, or none).
    Remove(String),
}

/// The quotas of [`Admin::describe_client_quotas`]: per entity, quota name to value.
pub type ClientQuotas = BTreeMap<QuotaEntity, BTreeMap<String, f64>>;

fn opt(s: Option<&str>) -> Option<StrBytes> {
    s.map(|s| StrBytes::from_string(s.to_owned()))
}

impl Admin {
    /// The quotas of the entities `filter` matches (Java's `describeClientQuotas`).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_client_quotas(&self, filter: &QuotaFilter) -> Result<ClientQuotas> {
        let req = DescribeClientQuotasRequest::default()
            .with_strict(filter.strict)
            .with_components(
                filter
                    .components
                    .iter()
                    .map(|(t, m)| {
                        let (match_type, name) = match m {
                            QuotaMatch::Exact(n) => (0, Some(n.as_str())),
                            QuotaMatch::Default => (1, None),
                            QuotaMatch::Any => (2, None),
                        };
                        ComponentData::default()
                            .with_entity_type(StrBytes::from_string(t.clone()))
                            .with_match_type(match_type)
                            .with_match(opt(name))
                    })
                    .collect(),
            );
        let client = self.client();
        let resp = client
            .with_retries("DescribeClientQuotas", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, resp.error_message.as_ref(), || {
                    "DescribeClientQuotas".to_owned()
                })?;
                Ok(resp)
            })
            .await?;
        let mut out = ClientQuotas::new();
        for e in resp.entries.unwrap_or_default() {
            let entity = QuotaEntity(
                e.entity
                    .iter()
                    .map(|p| (p.entity_type.to_string(), p.entity_name.as_ref().map(|n| n.to_string())))
                    .collect(),
            )
            .normalized();
            let values = out.entry(entity).or_default();
            for v in e.values {
                values.insert(v.key.to_string(), v.value);
            }
        }
        Ok(out)
    }

    /// Applies quota changes (Java's `alterClientQuotas`); with `validate_only` the broker
    /// checks them (unknown quota names, bad entity combinations) and changes nothing.
    /// Returns each entity's outcome in order; the call fails as a whole only when the
    /// request does.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn alter_client_quotas(
        &self,
        changes: &[(QuotaEntity, Vec<QuotaOp>)],
        validate_only: bool,
    ) -> Result<Vec<Result<()>>> {
        for (entity, ops) in changes {
            if entity.0.is_empty() || ops.is_empty() {
                return Err(Error::config(format!(
                    "quota change of {entity:?}: name an entity and at least one quota"
                )));
            }
            for op in ops {
                if let QuotaOp::Set(k, v) = op {
                    if !v.is_finite() || *v < 0.0 {
                        return Err(Error::config(format!(
                            "quota {k} of {entity}: {v} is not a rate (a finite number >= 0)"
                        )));
                    }
                }
            }
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let req = AlterClientQuotasRequest::default()
            .with_validate_only(validate_only)
            .with_entries(
                changes
                    .iter()
                    .map(|(entity, ops)| {
                        EntryData::default()
                            .with_entity(
                                entity
                                    .0
                                    .iter()
                                    .map(|(t, n)| {
                                        AlterEntity::default()
                                            .with_entity_type(StrBytes::from_string(t.clone()))
                                            .with_entity_name(opt(n.as_deref()))
                                    })
                                    .collect(),
                            )
                            .with_ops(
                                ops.iter()
                                    .map(|op| match op {
                                        QuotaOp::Set(k, v) => OpData::default()
                                            .with_key(StrBytes::from_string(k.clone()))
                                            .with_value(*v),
                                        QuotaOp::Remove(k) => OpData::default()
                                            .with_key(StrBytes::from_string(k.clone()))
                                            .with_remove(true),
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let client = self.client();
        let resp = client
            .with_retries("AlterClientQuotas", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        // Each answer names its entity; match them up rather than trust the order.
        let mut by_entity: BTreeMap<QuotaEntity, Result<()>> = BTreeMap::new();
        for e in &resp.entries {
            let entity = QuotaEntity(
                e.entity
                    .iter()
                    .map(|p| (p.entity_type.to_string(), p.entity_name.as_ref().map(|n| n.to_string())))
                    .collect(),
            )
            .normalized();
            let result = check(e.error_code, e.error_message.as_ref(), || format!("quotas of {entity}"));
            by_entity.insert(entity, result);
        }
        Ok(changes
            .iter()
            .map(|(entity, _)| {
                let key = entity.clone().normalized();
                match by_entity.remove(&key) {
                    Some(r) => r,
                    None => Err(Error::protocol(format!("AlterClientQuotas: no answer for {entity}"))),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_compare_by_their_parts_in_any_order() {
        let a = QuotaEntity::user("alice").and(QUOTA_CLIENT_ID, None).normalized();
        let b = QuotaEntity::client_id("x").normalized();
        let c = QuotaEntity(vec![
            (QUOTA_CLIENT_ID.into(), None),
            (QUOTA_USER.into(), Some("alice".into())),
        ])
        .normalized();
        assert_eq!(a, c);
        assert_ne!(a, b);
        assert_eq!(a.to_string(), "client-id=<default>,user=alice");
    }
}
