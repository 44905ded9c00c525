//! The binary: loads `.env`, parses the command line, and decides the exit
//! code (0 ok, 1 upstream or network failure, 2 usage, 130 Ctrl-C; a closed
//! stdout pipe counts as success).
//!
//! One exception: when Ctrl-C arrives while `chat`/`stream` is blocked
//! writing to a stdout pipe nobody reads, the command can never return here,
//! so the watchdog in `cli::terminal` exits with 130 itself.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use llmproxy::cli::{self, Cli};

fn main() -> ExitCode {
    // Before parsing, so clap's `env` attributes see `.env` values too; it
    // never overrides variables that are already set. A broken `.env` is
    // worth a warning (its later lines are not loaded), not a refusal to run.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            let _ = writeln!(std::io::stderr(), "warning: .env: {error}");
        }
    }
    let cli = Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.exit_code())
        }
    }
}
