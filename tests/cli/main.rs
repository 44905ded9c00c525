//! Black-box tests of `llmproxy chat` and `llmproxy stream`: the real
//! binary, a cleaned environment, an empty working directory, and the
//! scripted mock upstream from `common` on 127.0.0.1. Nothing goes online.
//!
//! `support` runs the binary, `pty` gives it a terminal; the other modules
//! hold the tests, by subject.

#[path = "../common/mod.rs"]
mod common;
#[cfg(target_os = "linux")]
mod pty;
mod support;

mod broken_streams;
mod errors_and_exit_codes;
mod examples;
mod output;
mod providers;
mod request;
mod terminal;
