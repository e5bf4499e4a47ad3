//! Crash injection for the exactly-once tests (feature `crash-injection`): where in a
//! checkpoint a pipeline aborts the process or fails, named on the command line or by
//! `STROM_PIPELINE_CRASH_AT`. Without the feature none of this is compiled.

use std::fmt;
use std::str::FromStr;

use crate::{ConnectorError, Result};

/// Environment variable with a [`CrashAt`] that aborts the process (tests only).
pub const CRASH_AT_ENV: &str = "STROM_PIPELINE_CRASH_AT";

/// Where a run crashes on purpose ([`Pipeline::crash_at`](crate::Pipeline::crash_at), [`CRASH_AT_ENV`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashStage {
    /// After the N-th element read in this run, before it is processed.
    Records,
    /// At a checkpoint, before the sink's pre-commit (the transaction is open).
    BeforePreCommit,
    /// After the pre-commit, before the checkpoint is stored.
    AfterPreCommit,
    /// After the checkpoint is stored, before its transactions are committed.
    AfterStore,
    /// While the commit is in flight (a few ms after it was started).
    DuringCommit,
    /// After the commit, before the source and sink are notified.
    AfterCommit,
}

/// A crash point: a stage and a count (records, or checkpoint id).
///
/// Parsed from `stage:N` or `stage:+N` with stage one of `records`, `before-precommit`,
/// `after-precommit` (alias `precommit`), `after-store`, `during-commit` (alias `commit`),
/// `after-commit`. For checkpoint stages `N` is the checkpoint id, `+N` the N-th checkpoint
/// of this run (ids continue across restarts, so `+N` always fires); for `records` N counts
/// elements of this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashAt {
    /// Where.
    pub stage: CrashStage,
    /// Record count or checkpoint id.
    pub n: u64,
    /// `n` counts checkpoints of this run rather than naming a checkpoint id.
    pub relative: bool,
}

impl FromStr for CrashAt {
    type Err = ConnectorError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            ConnectorError::Config(format!(
                "crash point {s:?}: expected STAGE:N or STAGE:+N, STAGE one of records, before-precommit, \
                 after-precommit, after-store, during-commit, after-commit"
            ))
        };
        let (stage, n) = s.trim().split_once(':').ok_or_else(bad)?;
        let stage = match stage.trim() {
            "records" => CrashStage::Records,
            "before-precommit" => CrashStage::BeforePreCommit,
            "after-precommit" | "precommit" => CrashStage::AfterPreCommit,
            "after-store" => CrashStage::AfterStore,
            "during-commit" | "commit" => CrashStage::DuringCommit,
            "after-commit" => CrashStage::AfterCommit,
            _ => return Err(bad()),
        };
        let n = n.trim();
        let (relative, digits) = match n.strip_prefix('+') {
            Some(d) => (true, d),
            None => (stage == CrashStage::Records, n),
        };
        let n = digits.parse::<u64>().map_err(|_| bad())?;
        Ok(CrashAt { stage, n, relative })
    }
}

impl fmt::Display for CrashAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            CrashStage::Records => "records",
            CrashStage::BeforePreCommit => "before-precommit",
            CrashStage::AfterPreCommit => "after-precommit",
            CrashStage::AfterStore => "after-store",
            CrashStage::DuringCommit => "during-commit",
            CrashStage::AfterCommit => "after-commit",
        };
        let plus = if self.relative && self.stage != CrashStage::Records {
            "+"
        } else {
            ""
        };
        write!(f, "{stage}:{plus}{}", self.n)
    }
}

/// What an injected crash does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashAction {
    /// `std::process::abort()`: the process dies at once, nothing flushed or closed.
    Abort,
    /// The run returns `ConnectorError::User("crash injected at …")` at once, without closing
    /// the writer or the reader (their transactions stay open, as after a crash).
    Fail,
}

pub(crate) fn crash(at: CrashAt, action: CrashAction) -> Result<()> {
    match action {
        CrashAction::Abort => {
            eprintln!("strom pipeline: crash injected at {at}; aborting");
            std::process::abort();
        }
        CrashAction::Fail => Err(ConnectorError::User(format!("crash injected at {at}"))),
    }
}

pub(crate) fn crash_from_env() -> Result<Option<(CrashAt, CrashAction)>> {
    match std::env::var(CRASH_AT_ENV) {
        Ok(v) if !v.trim().is_empty() => Ok(Some((v.parse()?, CrashAction::Abort))),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse_and_print() {
        let c: CrashAt = "after-store:3".parse().unwrap();
        assert_eq!(
            c,
            CrashAt {
                stage: CrashStage::AfterStore,
                n: 3,
                relative: false
            }
        );
        assert_eq!(c.to_string(), "after-store:3");
        let c: CrashAt = "precommit:+2".parse().unwrap();
        assert_eq!((c.stage, c.n, c.relative), (CrashStage::AfterPreCommit, 2, true));
        assert_eq!(c.to_string(), "after-precommit:+2");
        let c: CrashAt = "records:5000".parse().unwrap();
        assert!(c.relative);
        assert_eq!(c.to_string(), "records:5000");
        for s in ["commit:1", "during-commit:+1", "before-precommit:4", "after-commit:2"] {
            s.parse::<CrashAt>().unwrap();
        }
        for bad in ["", "store:1", "after-store", "after-store:x", "records:-1"] {
            let e = bad.parse::<CrashAt>().unwrap_err().to_string();
            assert!(e.contains("crash point"), "{e}");
        }
    }
}
