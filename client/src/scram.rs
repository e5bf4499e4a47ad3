//! SCRAM credentials (KIP-554): describe, create or update, delete.
//!
//! The client salts the password itself, as Java's `ScramFormatter` does: the broker stores
//! `SaltedPassword = Hi(password, salt, iterations)` (RFC 5802: PBKDF2 with HMAC-SHA-256 or
//! HMAC-SHA-512) and never sees the password.

use bytes::Bytes;
use strom_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use strom_protocol::messages::describe_user_scram_credentials_request::UserName;
use strom_protocol::messages::{AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest};

use crate::admin::{s, Admin};
use crate::error::check;
use crate::error::{Error, Result};
use crate::security::ScramMechanism;

/// A user's SCRAM credentials: mechanism and iteration count (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramUser {
    /// User name.
    pub user: String,
    /// Credentials by mechanism.
    pub credentials: Vec<(ScramMechanism, i32)>,
}

impl Admin {
    /// SCRAM credentials of `users` (all users when `None`).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_scram_users(&self, users: Option<&[&str]>) -> Result<Vec<ScramUser>> {
        let req = DescribeUserScramCredentialsRequest::default()
            .with_users(users.map(|us| us.iter().map(|u| UserName::default().with_name(s(u))).collect()));
        let client = self.client();
        let resp = client
            .with_retries("DescribeUserScramCredentials", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        check(resp.error_code, resp.error_message.as_ref(), || "SCRAM users".into())?;
        resp.results
            .into_iter()
            .map(|r| {
                check(r.error_code, r.error_message.as_ref(), || {
                    format!("SCRAM user {}", r.user.as_str())
                })?;
                Ok(ScramUser {
                    user: r.user.to_string(),
                    credentials: r
                        .credential_infos
                        .iter()
                        .filter_map(|c| ScramMechanism::from_id(c.mechanism).map(|m| (m, c.iterations)))
                        .collect(),
                })
            })
            .collect()
    }

    /// Creates or replaces `user`'s credential for `mechanism` (`iterations` >= 4096, as
    /// the broker requires). The password is salted here and never sent.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn upsert_scram_user(
        &self,
        user: &str,
        mechanism: ScramMechanism,
        password: &str,
        iterations: u32,
    ) -> Result<()> {
        let mut salt = [0u8; 32];
        getrandom::getrandom(&mut salt).map_err(|e| Error::internal(format!("no randomness for a SCRAM salt: {e}")))?;
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        let upsert = ScramCredentialUpsertion::default()
            .with_name(s(user))
            .with_mechanism(mechanism.id())
            .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
            .with_salt(Bytes::copy_from_slice(&salt))
            .with_salted_password(Bytes::from(salted));
        self.alter_scram(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert]),
            user,
        )
        .await
    }

    /// Deletes `user`'s credential for `mechanism`.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn delete_scram_user(&self, user: &str, mechanism: ScramMechanism) -> Result<()> {
        let del = ScramCredentialDeletion::default()
            .with_name(s(user))
            .with_mechanism(mechanism.id());
        self.alter_scram(
            AlterUserScramCredentialsRequest::default().with_deletions(vec![del]),
            user,
        )
        .await
    }

    async fn alter_scram(&self, req: AlterUserScramCredentialsRequest, user: &str) -> Result<()> {
        let client = self.client();
        let resp = client
            .with_retries("AlterUserScramCredentials", || async {
                client.any_broker().await?.send(&req).await
            })
            .await?;
        for r in &resp.results {
            check(r.error_code, r.error_message.as_ref(), || format!("SCRAM user {user}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 test vector: SCRAM-SHA-256, user "user", password "pencil",
    /// salt base64 "W22ZaJ0SNY7soEsUEjb6gQ==", 4096 iterations; SaltedPassword from the RFC's
    /// ClientKey derivation as computed by any SCRAM implementation.
    #[test]
    fn salted_password_is_pbkdf2() {
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81,
        ];
        let sp = ScramMechanism::Sha256.salted_password(b"pencil", &salt, 4096);
        assert_eq!(sp.len(), 32);
        let hex: String = sp.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "c4a49510323ab4f952cac1fa99441939e78ea74d6be81ddf7096e87513dc615d");
        assert_eq!(ScramMechanism::Sha512.salted_password(b"pencil", &salt, 4096).len(), 64);
    }
}
