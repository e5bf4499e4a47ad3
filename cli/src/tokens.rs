//! `strom delegation-tokens create|renew|expire|describe` (kafka-delegation-tokens.sh).
//! The broker serves them only over SASL (not with a token), and only with
//! `delegation.token.secret.key` set.

use std::time::Duration;

use base64::Engine as _;
use clap::Subcommand;
use strom_client::{Admin, ClientConfig, CreateDelegationTokenOptions, DelegationToken};

use crate::out::outln;
use crate::Failure;

/// `strom delegation-tokens ...`
#[derive(Debug, Subcommand)]
pub(crate) enum TokensAction {
    /// Create a token owned by the caller (or --owner-principal). Prints its id and HMAC:
    /// the HMAC is a secret, the password of the token.
    ///
    /// Example: `strom -F admin.properties delegation-tokens create --renewer-principal
    /// User:scheduler --max-life-time-period 86400000`. Authenticate with it through
    /// `-X sasl.mechanism=SCRAM-SHA-256 -X sasl.jaas.config='...ScramLoginModule required
    /// username="TOKENID" password="HMAC" tokenauth="true";'`.
    Create {
        /// A principal that may renew the token (repeatable), e.g. User:bob.
        #[arg(long = "renewer-principal", value_name = "TYPE:NAME")]
        renewers: Vec<String>,
        /// Create it for this principal (needs CreateTokens on that user; Kafka 3.3+).
        #[arg(long, value_name = "TYPE:NAME")]
        owner_principal: Option<String>,
        /// Its maximum lifetime in ms (default: the broker's delegation.token.max.lifetime.ms).
        #[arg(long, value_name = "MS")]
        max_life_time_period: Option<u64>,
        /// One JSON object (with the HMAC in base64) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Renew a token (as its owner or a renewer). Prints the new expiry.
    Renew {
        /// The token's HMAC, base64 (as `create` printed it).
        #[arg(long)]
        hmac: String,
        /// By how long, in ms (default: the broker's delegation.token.expiry.time.ms).
        #[arg(long, value_name = "MS")]
        renew_time_period: Option<u64>,
    },
    /// Expire a token, now or after a period. Prints its expiry.
    Expire {
        /// The token's HMAC, base64.
        #[arg(long)]
        hmac: String,
        /// After this many ms (default: now).
        #[arg(long, value_name = "MS")]
        expiry_time_period: Option<u64>,
    },
    /// The tokens the caller may see (without their HMAC unless --show-hmac).
    Describe {
        /// Only tokens of this owner (repeatable), e.g. User:alice.
        #[arg(long = "owner-principal", value_name = "TYPE:NAME")]
        owners: Vec<String>,
        /// Include each token's HMAC (a secret).
        #[arg(long)]
        show_hmac: bool,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn e(err: strom_client::Error) -> Failure {
    Failure::Error(err.to_string())
}

fn hmac(arg: &str) -> Result<Vec<u8>, Failure> {
    base64::engine::general_purpose::STANDARD
        .decode(arg.trim())
        .map_err(|_| {
            Failure::Error("--hmac: not base64 (give the HMAC as `delegation-tokens create` printed it)".into())
        })
}

fn token_json(t: &DelegationToken, show_hmac: bool) -> serde_json::Value {
    serde_json::json!({
        "token_id": t.token_id,
        "hmac": show_hmac.then(|| t.hmac_base64()),
        "owner": t.owner,
        "token_requester": t.token_requester,
        "renewers": t.renewers,
        "issue_timestamp_ms": t.issue_timestamp_ms,
        "expiry_timestamp_ms": t.expiry_timestamp_ms,
        "max_timestamp_ms": t.max_timestamp_ms,
    })
}

pub(crate) async fn tokens(config: ClientConfig, action: TokensAction) -> Result<(), Failure> {
    let admin = Admin::connect(config).await.map_err(e)?;
    match action {
        TokensAction::Create {
            renewers,
            owner_principal,
            max_life_time_period,
            json,
        } => {
            let mut options = CreateDelegationTokenOptions::default();
            for r in renewers {
                options = options.renewer(r);
            }
            if let Some(o) = owner_principal {
                options = options.owner(o);
            }
            if let Some(ms) = max_life_time_period {
                options = options.max_lifetime(Duration::from_millis(ms));
            }
            let t = admin.create_delegation_token(&options).await.map_err(e)?;
            if json {
                outln!("{}", token_json(&t, true))?;
            } else {
                outln!("token id {}", t.token_id)?;
                outln!("hmac {}", t.hmac_base64())?;
                outln!(
                    "owner {} requester {} issued {} expires {} max {}",
                    t.owner,
                    t.token_requester,
                    t.issue_timestamp_ms,
                    t.expiry_timestamp_ms,
                    t.max_timestamp_ms
                )?;
            }
        }
        TokensAction::Renew {
            hmac: h,
            renew_time_period,
        } => {
            let expiry = admin
                .renew_delegation_token(&hmac(&h)?, renew_time_period.map(Duration::from_millis))
                .await
                .map_err(e)?;
            outln!("renewed: expires {expiry}")?;
        }
        TokensAction::Expire {
            hmac: h,
            expiry_time_period,
        } => {
            let expiry = admin
                .expire_delegation_token(&hmac(&h)?, expiry_time_period.map(Duration::from_millis))
                .await
                .map_err(e)?;
            outln!("expires {expiry}")?;
        }
        TokensAction::Describe {
            owners,
            show_hmac,
            json,
        } => {
            let refs: Vec<&str> = owners.iter().map(String::as_str).collect();
            let tokens = admin
                .describe_delegation_tokens((!refs.is_empty()).then_some(refs.as_slice()))
                .await
                .map_err(e)?;
            if json {
                let doc: Vec<_> = tokens.iter().map(|t| token_json(t, show_hmac)).collect();
                outln!("{}", serde_json::Value::Array(doc))?;
                return Ok(());
            }
            outln!(
                "{:<24} {:<20} {:<20} {:>14} {:>14} {:>14}  RENEWERS{}",
                "TOKENID",
                "OWNER",
                "REQUESTER",
                "ISSUED",
                "EXPIRES",
                "MAX",
                if show_hmac { "  HMAC" } else { "" }
            )?;
            for t in &tokens {
                outln!(
                    "{:<24} {:<20} {:<20} {:>14} {:>14} {:>14}  {}{}",
                    t.token_id,
                    t.owner,
                    t.token_requester,
                    t.issue_timestamp_ms,
                    t.expiry_timestamp_ms,
                    t.max_timestamp_ms,
                    if t.renewers.is_empty() {
                        "-".to_owned()
                    } else {
                        t.renewers.join(",")
                    },
                    if show_hmac {
                        format!("  {}", t.hmac_base64())
                    } else {
                        String::new()
                    }
                )?;
            }
        }
    }
    Ok(())
}
