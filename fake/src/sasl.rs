//! SASL on the fake's listeners (SASL_PLAINTEXT): PLAIN and SCRAM-SHA-256/512 (RFC 5802,
//! RFC 7677) against the users the test configured, sans-IO: one exchange per connection,
//! fed the client's tokens, answering the server's.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The mechanisms the fake offers.
pub(crate) const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// SCRAM iterations (Kafka's minimum).
const ITERATIONS: u32 = 4096;

/// Where one connection's authentication is.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// Waiting for SaslHandshake.
    Start,
    /// The mechanism chosen; waiting for the first token.
    Chosen(String),
    /// SCRAM: the server-first message sent.
    ScramFirst {
        sha512: bool,
        user: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        salt: Vec<u8>,
    },
    /// Authenticated as this user.
    Done(String),
}

/// What a token leads to.
pub(crate) enum Next {
    /// Answer these bytes and wait for the next token.
    Continue(Vec<u8>),
    /// Authenticated: answer these bytes (SCRAM's server-final, empty for PLAIN).
    Done(Vec<u8>),
    /// Refused, with the reason the client is told.
    Fail(String),
}

/// HMAC (any key length is accepted; an empty result, which no proof matches, otherwise).
fn hmac_sha(sha512: bool, key: &[u8], data: &[u8]) -> Vec<u8> {
    if sha512 {
        let Ok(mut m) = <Hmac<Sha512> as Mac>::new_from_slice(key) else {
            return Vec::new();
        };
        m.update(data);
        m.finalize().into_bytes().to_vec()
    } else {
        let Ok(mut m) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
            return Vec::new();
        };
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
}

fn salted(sha512: bool, password: &str, salt: &[u8]) -> Vec<u8> {
    if sha512 {
        let mut out = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, ITERATIONS, &mut out);
        out.to_vec()
    } else {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, ITERATIONS, &mut out);
        out.to_vec()
    }
}

fn digest(sha512: bool, data: &[u8]) -> Vec<u8> {
    if sha512 {
        Sha512::digest(data).to_vec()
    } else {
        Sha256::digest(data).to_vec()
    }
}

/// The value of `key=` in a SCRAM attribute list.
fn attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',')
        .find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| (uuid::Uuid::new_v4().as_u128() & 0xff) as u8).collect()
}

impl Exchange {
    /// SaslHandshake: `false` if the mechanism is not offered.
    pub(crate) fn handshake(&mut self, mechanism: &str) -> bool {
        if MECHANISMS.contains(&mechanism) {
            *self = Exchange::Chosen(mechanism.to_owned());
            true
        } else {
            false
        }
    }

    /// One SaslAuthenticate token.
    pub(crate) fn step(&mut self, token: &[u8], users: &BTreeMap<String, String>) -> Next {
        let state = std::mem::replace(self, Exchange::Start);
        match state {
            Exchange::Chosen(m) if m == "PLAIN" => {
                // authzid NUL user NUL password
                let mut parts = token.split(|b| *b == 0);
                let (_, user, pass) = (parts.next(), parts.next(), parts.next());
                let (Some(user), Some(pass)) = (user, pass) else {
                    return Next::Fail("a malformed PLAIN token".into());
                };
                let user = String::from_utf8_lossy(user).into_owned();
                if users.get(&user).map(String::as_bytes) == Some(pass) {
                    *self = Exchange::Done(user);
                    Next::Done(Vec::new())
                } else {
                    Next::Fail("Authentication failed: Invalid username or password".into())
                }
            }
            Exchange::Chosen(m) => {
                let sha512 = m == "SCRAM-SHA-512";
                let Ok(first) = std::str::from_utf8(token) else {
                    return Next::Fail("a SCRAM client-first message that is not UTF-8".into());
                };
                let Some(bare) = first.strip_prefix("n,,").or_else(|| first.strip_prefix("y,,")) else {
                    return Next::Fail("a SCRAM client-first message without a gs2 header".into());
                };
                let (Some(user), Some(cnonce)) = (attr(bare, 'n'), attr(bare, 'r')) else {
                    return Next::Fail("a SCRAM client-first message without n= or r=".into());
                };
                let user = user.replace("=2C", ",").replace("=3D", "=");
                if !users.contains_key(&user) {
                    return Next::Fail(format!("Authentication failed during authentication due to invalid credentials with SASL mechanism {m}"));
                }
                let salt = random_bytes(16);
                let nonce = format!("{cnonce}{}", B64.encode(random_bytes(18)));
                let server_first = format!("r={nonce},s={},i={ITERATIONS}", B64.encode(&salt));
                let out = server_first.clone().into_bytes();
                *self = Exchange::ScramFirst {
                    sha512,
                    user,
                    client_first_bare: bare.to_owned(),
                    server_first,
                    nonce,
                    salt,
                };
                Next::Continue(out)
            }
            Exchange::ScramFirst {
                sha512,
                user,
                client_first_bare,
                server_first,
                nonce,
                salt,
            } => {
                let Ok(fin) = std::str::from_utf8(token) else {
                    return Next::Fail("a SCRAM client-final message that is not UTF-8".into());
                };
                let (Some(r), Some(proof)) = (attr(fin, 'r'), attr(fin, 'p')) else {
                    return Next::Fail("a SCRAM client-final message without r= or p=".into());
                };
                if r != nonce {
                    return Next::Fail("the SCRAM nonce does not match".into());
                }
                let Some(without_proof) = fin.rsplit_once(",p=").map(|(a, _)| a) else {
                    return Next::Fail("a SCRAM client-final message without a proof".into());
                };
                let Ok(proof) = B64.decode(proof) else {
                    return Next::Fail("a SCRAM proof that is not base64".into());
                };
                let password = users.get(&user).cloned().unwrap_or_default();
                let salted = salted(sha512, &password, &salt);
                let client_key = hmac_sha(sha512, &salted, b"Client Key");
                let stored_key = digest(sha512, &client_key);
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let signature = hmac_sha(sha512, &stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return Next::Fail("a SCRAM proof of the wrong length".into());
                }
                let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                if digest(sha512, &recovered) != stored_key {
                    return Next::Fail(format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-{}",
                        if sha512 { 512 } else { 256 }
                    ));
                }
                let server_key = hmac_sha(sha512, &salted, b"Server Key");
                let server_sig = hmac_sha(sha512, &server_key, auth_message.as_bytes());
                *self = Exchange::Done(user);
                Next::Done(format!("v={}", B64.encode(server_sig)).into_bytes())
            }
            Exchange::Start => Next::Fail("SaslAuthenticate before SaslHandshake".into()),
            Exchange::Done(u) => {
                *self = Exchange::Done(u);
                Next::Fail("already authenticated".into())
            }
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self, Exchange::Done(_))
    }
}
