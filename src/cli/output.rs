//! Writing to stdout for pipes: every write is flushed at once (Rust's
//! stdout is line-buffered and would hold tokens back until a newline), and
//! a closed pipe is a quiet, successful end rather than an error.

use std::io::{ErrorKind, Write};

use super::exit::Failure;

#[derive(Default)]
pub struct Output {
    /// Whether the last byte written was a newline (or nothing was written).
    at_line_start: bool,
    wrote: bool,
}

impl Output {
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(bytes)
            .and_then(|()| stdout.flush())
            .map_err(pipe_error)?;
        self.wrote = true;
        self.at_line_start = bytes.ends_with(b"\n");
        Ok(())
    }

    /// Ends the output with a newline unless it already ends with one.
    pub fn finish_line(&mut self) -> Result<(), Failure> {
        if self.wrote && !self.at_line_start {
            self.write(b"\n")?;
        }
        Ok(())
    }
}

fn pipe_error(error: std::io::Error) -> Failure {
    if error.kind() == ErrorKind::BrokenPipe {
        Failure::PipeClosed
    } else {
        Failure::Other(anyhow::Error::new(error).context("could not write to stdout"))
    }
}
