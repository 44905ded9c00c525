//! The binary: loads `.env`, parses the command line, and decides the exit
//! code (0 ok, 1 upstream or network failure, 2 usage, 130 Ctrl-C; a closed
//! stdout pipe counts as success).
//!
//! One exception: when Ctrl-C arrives while `chat`/`stream` is blocked
//! writing to a stdout pipe nobody reads, the command can never return here,
//! so the watchdog in `cli::terminal` exits with 130 itself.

use std::io::Write;
use std::process::ExitCode;

use llmproxy::cli;
use llmproxy::config::Settings;

fn main() -> ExitCode {
    // Before parsing, so clap's `env` attributes see `.env` values too; it
    // never overrides variables that are already set. A broken `.env` is
    // worth a warning (its later lines are not loaded), not a refusal to run.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            let _ = writeln!(std::io::stderr(), "warning: .env: {error}");
        }
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Settings before parsing: the config file adds provider names that
    // clap must accept. A configuration error is reported by the command
    // that needs the settings (so `--help` still works).
    let settings = Settings::from_env(cli::args::config_flag(&args).as_deref());
    let names = settings
        .as_ref()
        .ok()
        .map(|settings| settings.providers.names().collect());
    let cli = cli::args::parse_with(names, args);
    match cli::run(cli, settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            failure.report();
            ExitCode::from(failure.exit_code())
        }
    }
}
