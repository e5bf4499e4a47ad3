//! Delegation tokens (KIP-48): create, renew, expire and describe them (Java's
//! `Admin.createDelegationToken` and friends). A token is a shared secret (its HMAC) that
//! authenticates as its owner over SASL SCRAM, so that short-lived workers need no
//! password or Kerberos keytab of their own: see [`DelegationToken::jaas_config`].
//!
//! The broker serves these requests only with `delegation.token.secret.key` set
//! (DELEGATION_TOKEN_AUTH_DISABLED otherwise), and only on a SASL connection that was not
//! itself authenticated by a token (DELEGATION_TOKEN_REQUEST_NOT_ALLOWED otherwise).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use strom_protocol::messages::create_delegation_token_request::CreatableRenewers;
use strom_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
use strom_protocol::messages::{
    ApiKey, CreateDelegationTokenRequest, DescribeDelegationTokenRequest, ExpireDelegationTokenRequest,
    RenewDelegationTokenRequest,
};

use crate::admin::{s, Admin};
use crate::error::check;
use crate::error::{Error, Result};

/// A delegation token: what the broker knows of it, and its HMAC (the secret).
///
/// `Debug` never shows the HMAC; [`DelegationToken::hmac_base64`] does, for handing the
/// token to the worker that will use it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DelegationToken {
    /// The token's id: the SCRAM username when authenticating with it.
    pub token_id: String,
    hmac: Vec<u8>,
    /// Whom the token authenticates as, e.g. `User:alice`.
    pub owner: String,
    /// Who asked for it (the owner, unless created on an owner's behalf).
    pub token_requester: String,
    /// Principals that may renew it besides the owner.
    pub renewers: Vec<String>,
    /// When it was issued (ms since the epoch).
    pub issue_timestamp_ms: i64,
    /// When it expires unless renewed (ms since the epoch).
    pub expiry_timestamp_ms: i64,
    /// When it expires for good, renewed or not (ms since the epoch).
    pub max_timestamp_ms: i64,
}

impl fmt::Debug for DelegationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegationToken")
            .field("token_id", &self.token_id)
            .field("hmac", &"[redacted]")
            .field("owner", &self.owner)
            .field("token_requester", &self.token_requester)
            .field("renewers", &self.renewers)
            .field("issue_timestamp_ms", &self.issue_timestamp_ms)
            .field("expiry_timestamp_ms", &self.expiry_timestamp_ms)
            .field("max_timestamp_ms", &self.max_timestamp_ms)
            .finish()
    }
}

impl DelegationToken {
    /// The HMAC: the token's secret (renew and expire name the token by it).
    pub fn hmac(&self) -> &[u8] {
        &self.hmac
    }

    /// The HMAC in base64: the SCRAM password when authenticating with the token, as
    /// Java's `kafka-delegation-tokens.sh` prints it.
    pub fn hmac_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.hmac)
    }

    /// The `sasl.jaas.config` that authenticates with this token, with
    /// `sasl.mechanism=SCRAM-SHA-256` or `SCRAM-SHA-512` (Java's form: ScramLoginModule,
    /// the token id as username, the HMAC as password, `tokenauth="true"`). It holds the
    /// secret: treat it as a password.
    pub fn jaas_config(&self) -> String {
        format!(
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{}\" password=\"{}\" tokenauth=\"true\";",
            self.token_id,
            self.hmac_base64()
        )
    }
}

/// What [`Admin::create_delegation_token`] asks for (Java's
/// `CreateDelegationTokenOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateDelegationTokenOptions {
    /// Principals (`User:bob`) that may renew the token besides its owner.
    pub renewers: Vec<String>,
    /// Create the token for this principal rather than the caller (KIP-373; needs
    /// CreateTokens on that user, and a broker of Kafka 3.3 or later).
    pub owner: Option<String>,
    /// Its maximum lifetime; `None`: the broker's `delegation.token.max.lifetime.ms`
    /// (which also caps a longer one).
    pub max_lifetime: Option<Duration>,
}

impl CreateDelegationTokenOptions {
    /// Adds a principal that may renew the token.
    pub fn renewer(mut self, principal: impl Into<String>) -> Self {
        self.renewers.push(principal.into());
        self
    }

    /// Creates the token on behalf of `principal`.
    pub fn owner(mut self, principal: impl Into<String>) -> Self {
        self.owner = Some(principal.into());
        self
    }

    /// Caps the token's lifetime.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }
}

/// `User:alice` -> ("User", "alice").
fn principal(p: &str) -> Result<(&str, &str)> {
    p.split_once(':')
        .filter(|(t, n)| !t.is_empty() && !n.is_empty())
        .ok_or_else(|| Error::config(format!("principal {p:?}: expected TYPE:NAME, e.g. User:alice")))
}

fn joined(t: &str, n: &str) -> String {
    format!("{t}:{n}")
}

/// A period for the wire: `None` is -1 (the broker's default, or for expire: now).
fn period_ms(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Admin {
    /// Creates a delegation token owned by the caller (or by `options.owner`).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn create_delegation_token(&self, options: &CreateDelegationTokenOptions) -> Result<DelegationToken> {
        let renewers = options
            .renewers
            .iter()
            .map(|r| {
                let (t, n) = principal(r)?;
                Ok(CreatableRenewers::default()
                    .with_principal_type(s(t))
                    .with_principal_name(s(n)))
            })
            .collect::<Result<Vec<_>>>()?;
        let owner = options.owner.as_deref().map(principal).transpose()?;
        let client = self.client();
        if owner.is_some() {
            let v = client
                .any_broker()
                .await?
                .versions()
                .version(ApiKey::CreateDelegationToken)?;
            if v < 3 {
                return Err(Error::kafka(strom_protocol::ErrorCode::UnsupportedVersion)
                    .with_context("creating a token for another owner needs CreateDelegationToken v3 (Kafka 3.3+)"));
            }
        }
        let req = CreateDelegationTokenRequest::default()
            .with_owner_principal_type(owner.map(|(t, _)| s(t)))
            .with_owner_principal_name(owner.map(|(_, n)| s(n)))
            .with_renewers(renewers)
            .with_max_lifetime_ms(period_ms(options.max_lifetime));
        let r = client
            .with_retries("CreateDelegationToken", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        check(r.error_code, None, || "a delegation token".into())?;
        Ok(DelegationToken {
            token_id: r.token_id.to_string(),
            hmac: r.hmac.to_vec(),
            owner: joined(&r.principal_type, &r.principal_name),
            token_requester: if r.token_requester_principal_name.is_empty() {
                joined(&r.principal_type, &r.principal_name)
            } else {
                joined(&r.token_requester_principal_type, &r.token_requester_principal_name)
            },
            renewers: options.renewers.clone(),
            issue_timestamp_ms: r.issue_timestamp_ms,
            expiry_timestamp_ms: r.expiry_timestamp_ms,
            max_timestamp_ms: r.max_timestamp_ms,
        })
    }

    /// Renews the token with this HMAC (as its owner or a renewer) by `renew_period`
    /// (`None`: the broker's `delegation.token.expiry.time.ms`), never past its maximum
    /// lifetime. Returns the new expiry (ms since the epoch).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn renew_delegation_token(&self, hmac: &[u8], renew_period: Option<Duration>) -> Result<i64> {
        let req = RenewDelegationTokenRequest::default()
            .with_hmac(Bytes::copy_from_slice(hmac))
            .with_renew_period_ms(period_ms(renew_period));
        let client = self.client();
        let r = client
            .with_retries("RenewDelegationToken", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        check(r.error_code, None, || "renewing the delegation token".into())?;
        Ok(r.expiry_timestamp_ms)
    }

    /// Expires the token with this HMAC after `expiry_period` (`None`: now, as Java's
    /// default). Returns its expiry (ms since the epoch).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn expire_delegation_token(&self, hmac: &[u8], expiry_period: Option<Duration>) -> Result<i64> {
        let req = ExpireDelegationTokenRequest::default()
            .with_hmac(Bytes::copy_from_slice(hmac))
            .with_expiry_time_period_ms(period_ms(expiry_period));
        let client = self.client();
        let r = client
            .with_retries("ExpireDelegationToken", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        check(r.error_code, None, || "expiring the delegation token".into())?;
        Ok(r.expiry_timestamp_ms)
    }

    /// The tokens of these owners (`None`: every token the caller may describe: its own,
    /// those it may renew, and with Describe on the token, others).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_delegation_tokens(&self, owners: Option<&[&str]>) -> Result<Vec<DelegationToken>> {
        let owners = owners
            .map(|os| {
                os.iter()
                    .map(|o| {
                        let (t, n) = principal(o)?;
                        Ok(DescribeDelegationTokenOwner::default()
                            .with_principal_type(s(t))
                            .with_principal_name(s(n)))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        let req = DescribeDelegationTokenRequest::default().with_owners(owners);
        let client = self.client();
        let r = client
            .with_retries("DescribeDelegationToken", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        check(r.error_code, None, || "delegation tokens".into())?;
        Ok(r.tokens
            .into_iter()
            .map(|t| DelegationToken {
                token_id: t.token_id.to_string(),
                hmac: t.hmac.to_vec(),
                owner: joined(&t.principal_type, &t.principal_name),
                token_requester: if t.token_requester_principal_name.is_empty() {
                    joined(&t.principal_type, &t.principal_name)
                } else {
                    joined(&t.token_requester_principal_type, &t.token_requester_principal_name)
                },
                renewers: t
                    .renewers
                    .iter()
                    .map(|r| joined(&r.principal_type, &r.principal_name))
                    .collect(),
                issue_timestamp_ms: t.issue_timestamp,
                expiry_timestamp_ms: t.expiry_timestamp,
                max_timestamp_ms: t.max_timestamp,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_hmac_and_principals_are_checked() {
        let t = DelegationToken {
            token_id: "id1".into(),
            hmac: vec![0xAB; 16],
            owner: "User:alice".into(),
            token_requester: "User:alice".into(),
            renewers: vec![],
            issue_timestamp_ms: 1,
            expiry_timestamp_ms: 2,
            max_timestamp_ms: 3,
        };
        let debug = format!("{t:?}");
        assert!(
            !debug.contains(&t.hmac_base64()) && debug.contains("[redacted]"),
            "{debug}"
        );
        assert!(t.jaas_config().contains("tokenauth=\"true\"") && t.jaas_config().contains("username=\"id1\""));
        assert_eq!(principal("User:a:b").ok(), Some(("User", "a:b")));
        for bad in ["alice", ":alice", "User:"] {
            assert!(principal(bad).unwrap_err().to_string().contains("TYPE:NAME"), "{bad}");
        }
    }
}
