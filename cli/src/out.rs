//! How a command ends, and writing to stdout without panicking when its reader is gone.

use std::io::Write;
use std::process::ExitCode;

use crate::signals::Signal;

/// Why a command did not succeed. Each kind has its exit status and message.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An error: `strom: MESSAGE` on stderr, exit 1.
    Error(String),
    /// Stopped by a signal: the report on stderr, exit 128 + the signal's number.
    Signal {
        /// SIGINT or SIGTERM.
        signal: Signal,
        /// What was done before stopping (what landed, a transaction aborted).
        report: String,
    },
    /// The reader of stdout went away (`strom topics list | head -1`): a quiet end, exit 0,
    /// as the output nobody reads is not missed.
    ClosedStdout,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Error(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Error(message.to_owned())
    }
}

impl Failure {
    /// Prints the message (never panicking on a closed stderr) and gives the exit status.
    pub(crate) fn report(self) -> ExitCode {
        let mut err = std::io::stderr();
        match self {
            Failure::Error(m) => {
                let _ = writeln!(err, "strom: {m}");
                ExitCode::FAILURE
            }
            Failure::Signal { signal, report } => {
                let _ = writeln!(err, "strom: {report}");
                ExitCode::from(signal.exit_status())
            }
            Failure::ClosedStdout => ExitCode::SUCCESS,
        }
    }
}

/// Maps a failed write to stdout: a closed pipe is [`Failure::ClosedStdout`].
pub(crate) fn write_failure(e: &std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::ClosedStdout
    } else {
        Failure::Error(format!("writing stdout: {e}"))
    }
}

/// Writes `text` to stdout and flushes it.
pub(crate) fn print(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| write_failure(&e))
}

/// A line on stderr (a report, not an error); a closed stderr is ignored.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// `println!` that ends the command quietly when stdout's reader is gone.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::print(&format!("{}\n", format_args!($($arg)*)))
    };
}
pub(crate) use outln;
