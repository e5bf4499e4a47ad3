//! What the SASL exchange ([`super::sasl`]) and a mechanism's own state machine
//! ([`super::scram_client`], [`super::gssapi`]) share: the next step, and a secret that
//! never shows.

use std::fmt;

/// What a mechanism wants done next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these bytes; the broker's answer feeds the next step.
    Send(Vec<u8>),
    /// Send these bytes; a successful answer completes authentication.
    SendLast(Vec<u8>),
    /// Authenticated (the last answer was verified).
    Done,
}

/// A password that never shows in `Debug`.
#[derive(Clone)]
pub(crate) struct Secret(pub(super) String);

impl Secret {
    #[cfg(test)]
    pub(crate) fn new(secret: String) -> Self {
        Secret(secret)
    }

    /// The secret itself, for the mechanism that needs it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
