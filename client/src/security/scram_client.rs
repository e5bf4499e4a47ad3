//! The client side of SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka
//! speaks it: no channel binding (`n,,`), and the SCRAM extensions of KIP-84 after the
//! nonce, of which Kafka defines one, `tokenauth=true`, for authenticating with a
//! delegation token (KIP-48) instead of a user's password.
//!
//! A sans-IO state machine: [`ScramClient::step`] takes the broker's last message and
//! returns what to send next. The broker's values are never trusted: its nonce must extend
//! ours, the iteration count is bounded (a hostile count would make the client burn CPU),
//! and the server signature is verified before authentication counts as done.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use strom_protocol::ErrorCode;

use super::mechanism::{Secret, Step};
use crate::error::{Error, Result};

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256 (wire id 1).
    Sha256,
    /// SCRAM-SHA-512 (wire id 2).
    Sha512,
}

impl ScramMechanism {
    pub(crate) fn id(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub(crate) fn from_id(id: i8) -> Option<Self> {
        match id {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// `Hi(password, salt, iterations)`.
    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramMechanism::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// Kafka's bounds on SCRAM iterations (`ScramMechanism.minIterations`/`maxIterations`): a
/// broker never stores credentials outside them, so a count outside is refused.
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 16384;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

enum State {
    Initial,
    /// Client-first sent: its bare part (after the GS2 header) is in the AuthMessage.
    SentFirst {
        client_first_bare: String,
    },
    /// Client-final sent: the signature the broker must answer with.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

/// One SCRAM authentication.
pub(crate) struct ScramClient {
    mechanism: ScramMechanism,
    username: String,
    password: Secret,
    nonce: String,
    extensions: BTreeMap<String, String>,
    state: State,
}

/// `saslname` of RFC 5802: `=` and `,` escaped.
fn sasl_name(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn failed(mechanism: ScramMechanism, what: impl std::fmt::Display) -> Error {
    Error::kafka(ErrorCode::SaslAuthenticationFailed).with_context(format!("SASL {}: {what}", mechanism.name()))
}

impl ScramClient {
    /// A client for `username` with `password` (for a delegation token: its id and its
    /// HMAC in base64, with `tokenauth=true` among the extensions). `nonce` must be
    /// printable ASCII without ','; [`ScramClient::random_nonce`] makes one.
    pub(crate) fn new(
        mechanism: ScramMechanism,
        username: String,
        password: Secret,
        extensions: BTreeMap<String, String>,
        nonce: String,
    ) -> Self {
        ScramClient {
            mechanism,
            username,
            password,
            nonce,
            extensions,
            state: State::Initial,
        }
    }

    /// 24 random bytes, base64: printable and without ','.
    pub(crate) fn random_nonce() -> Result<String> {
        let mut bytes = [0u8; 24];
        getrandom::getrandom(&mut bytes)
            .map_err(|e| Error::internal(format!("no randomness for a SCRAM nonce: {e}")))?;
        Ok(B64.encode(bytes))
    }

    /// The next message: `None` to start, then each message of the broker.
    pub(crate) fn step(&mut self, input: Option<&[u8]>) -> Result<Step> {
        let m = self.mechanism;
        match (std::mem::replace(&mut self.state, State::Done), input) {
            (State::Initial, _) => {
                let mut bare = format!("n={},r={}", sasl_name(&self.username), self.nonce);
                for (k, v) in &self.extensions {
                    bare.push_str(&format!(",{k}={v}"));
                }
                let first = format!("n,,{bare}");
                self.state = State::SentFirst {
                    client_first_bare: bare,
                };
                Ok(Step::Send(first.into_bytes()))
            }
            (State::SentFirst { client_first_bare }, Some(server_first)) => {
                let server_first = std::str::from_utf8(server_first)
                    .map_err(|_| failed(m, "the broker's first message is not UTF-8"))?;
                let attrs = attributes(server_first);
                if let Some(e) = attrs.get("e") {
                    return Err(failed(m, format!("the broker refused: {e}")));
                }
                let server_nonce = attrs
                    .get("r")
                    .filter(|r| r.len() > self.nonce.len() && r.starts_with(&self.nonce))
                    .ok_or_else(|| failed(m, "the broker's nonce does not extend ours"))?;
                let salt = attrs
                    .get("s")
                    .and_then(|s| B64.decode(s).ok())
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| failed(m, "the broker sent no usable salt"))?;
                let iterations = attrs
                    .get("i")
                    .and_then(|i| i.parse::<u32>().ok())
                    .ok_or_else(|| failed(m, "the broker sent no iteration count"))?;
                if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
                    return Err(failed(
                        m,
                        format!("the broker asks for {iterations} iterations (Kafka allows {MIN_ITERATIONS}..={MAX_ITERATIONS})"),
                    ));
                }
                let salted = m.salted_password(self.password.expose().as_bytes(), &salt, iterations);
                let without_proof = format!("c=biws,r={server_nonce}");
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let client_key = hmac(m, &salted, b"Client Key");
                let stored_key = hash(m, &client_key);
                let signature = hmac(m, &stored_key, auth_message.as_bytes());
                let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(k, s)| k ^ s).collect();
                let server_key = hmac(m, &salted, b"Server Key");
                self.state = State::SentFinal {
                    server_signature: hmac(m, &server_key, auth_message.as_bytes()),
                };
                Ok(Step::Send(
                    format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
                ))
            }
            (State::SentFinal { server_signature }, Some(server_final)) => {
                let text = std::str::from_utf8(server_final)
                    .map_err(|_| failed(m, "the broker's final message is not UTF-8"))?;
                let attrs = attributes(text);
                if let Some(e) = attrs.get("e") {
                    return Err(failed(m, format!("the broker refused: {e}")));
                }
                let verifier = attrs.get("v").and_then(|v| B64.decode(v).ok());
                match verifier {
                    Some(v) if v == server_signature => Ok(Step::Done),
                    _ => Err(failed(m, "the broker failed to prove it knows the credentials")),
                }
            }
            (_, _) => Err(failed(m, "unexpected message in the exchange")),
        }
    }
}

/// What the `client_scram` fuzz target runs: the input split in two at its first NUL,
/// the broker's first and final messages, for a client whose nonce is `fuzz`.
pub(crate) fn fuzz_exchange(data: &[u8]) {
    let (first, last) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let mut c = ScramClient::new(
        ScramMechanism::Sha256,
        "user".into(),
        Secret("pencil".into()),
        BTreeMap::new(),
        "fuzz".into(),
    );
    if c.step(None).is_ok() && c.step(Some(first)).is_ok() {
        let _ = c.step(Some(last));
    }
}

/// `k=v,k=v` attributes (a value may hold '=').
fn attributes(msg: &str) -> BTreeMap<&str, &str> {
    msg.split(',').filter_map(|kv| kv.split_once('=')).collect()
}

fn hmac(m: ScramMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            // HMAC takes keys of any length: unreachable.
            Err(_) => Vec::new(),
        },
        ScramMechanism::Sha512 => match Hmac::<Sha512>::new_from_slice(key) {
            Ok(mut mac) => {
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        },
    }
}

fn hash(m: ScramMechanism, data: &[u8]) -> Vec<u8> {
    match m {
        ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
        ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::mechanism::Secret;

    /// RFC 7677 §3's example exchange, SCRAM-SHA-256 (user "user", password "pencil").
    #[test]
    fn rfc7677_example() {
        let mut c = ScramClient::new(
            ScramMechanism::Sha256,
            "user".into(),
            Secret::new("pencil".into()),
            BTreeMap::new(),
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(
            c.step(None).unwrap(),
            Step::Send(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec())
        );
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.step(Some(server_first)).unwrap(),
            Step::Send(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
                    .to_vec()
            )
        );
        assert_eq!(
            c.step(Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).unwrap(),
            Step::Done
        );
    }

    fn started(extensions: &[(&str, &str)]) -> (ScramClient, Vec<u8>) {
        let mut c = ScramClient::new(
            ScramMechanism::Sha512,
            "to,ken=id".into(),
            Secret::new("hmac".into()),
            extensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            "abc".into(),
        );
        let Step::Send(first) = c.step(None).unwrap() else {
            panic!("no first message")
        };
        (c, first)
    }

    #[test]
    fn name_escaping_and_the_tokenauth_extension() {
        let (_, first) = started(&[("tokenauth", "true")]);
        assert_eq!(first, b"n,,n=to=2Cken=3Did,r=abc,tokenauth=true");
    }

    #[test]
    fn a_hostile_or_broken_broker_is_refused() {
        let cases: [(&[u8], &str); 7] = [
            (b"r=xyz,s=c2FsdA==,i=4096", "does not extend ours"),
            (b"r=abc,s=c2FsdA==,i=4096", "does not extend ours"),
            (b"r=abcd,s=!!,i=4096", "no usable salt"),
            (b"r=abcd,s=c2FsdA==", "no iteration count"),
            (b"r=abcd,s=c2FsdA==,i=4000000000", "4000000000 iterations"),
            (b"e=invalid-proof", "the broker refused: invalid-proof"),
            (&[0xff, 0xfe], "not UTF-8"),
        ];
        for (msg, want) in cases {
            let (mut c, _) = started(&[]);
            let e = c.step(Some(msg)).unwrap_err();
            assert_eq!(e.kafka_code(), Some(ErrorCode::SaslAuthenticationFailed));
            assert!(e.to_string().contains(want), "{e}");
        }
        // A wrong server signature, and a message after the end.
        let (mut c, _) = started(&[]);
        assert!(matches!(c.step(Some(b"r=abcd,s=c2FsdA==,i=4096")), Ok(Step::Send(_))));
        let e = c.step(Some(b"v=AAAA")).unwrap_err();
        assert!(e.to_string().contains("failed to prove"), "{e}");
        assert!(c.step(Some(b"v=AAAA")).is_err());
    }
}
