//! The one place that maps failures to exit codes and stderr lines.

use std::io::{IsTerminal, Write};

use crate::config::ConfigError;
use crate::error::Error;

/// Why a command did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line or its input is unusable.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Library(#[from] Error),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// The reader of stdout went away (`| head`): a normal way to end.
    #[error("stdout closed")]
    PipeClosed,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Config(_) => 2,
            Failure::Library(error) => match error {
                Error::MissingApiKey
                | Error::InvalidField { .. }
                | Error::MalformedJson(_)
                | Error::UnknownProvider { .. }
                | Error::BodyTooLarge { .. } => 2,
                _ => 1,
            },
            Failure::Interrupted => 130,
            Failure::PipeClosed => 0,
            Failure::Other(_) => 1,
        }
    }

    /// Prints the one stderr line (nothing for Ctrl-C: the shell shows it).
    pub fn report(&self) {
        if matches!(self, Failure::Interrupted | Failure::PipeClosed) {
            return;
        }
        let label = if colour_stderr() {
            "\x1b[1;31merror:\x1b[0m"
        } else {
            "error:"
        };
        let message = match self {
            Failure::Other(error) => format!("{error:#}"),
            other => other.to_string(),
        };
        // Not `eprintln!`, which panics when stderr is a pipe whose reader
        // is gone (`2>&1 | head -c 10`).
        let _ = writeln!(std::io::stderr().lock(), "{label} {message}");
    }
}

/// Colour only on a terminal, and never when `NO_COLOR` is set.
pub fn colour_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
