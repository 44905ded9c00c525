//! llmproxy: one provider-adapter module ([`providers`]) shared by an HTTP
//! proxy ([`server`]) and terminal front-ends ([`cli`]).
//!
//! Data flows one way: clap arguments -> [`config::Settings`] -> adapter ->
//! upstream -> adapter -> (server reply | terminal output).

pub mod cli;
pub mod config;
pub mod error;
pub mod providers;
pub mod server;
