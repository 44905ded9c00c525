//! The OpenAI-compatible route (`POST /v1/chat/completions`, `GET
//! /v1/models`) against a mock of every upstream: routing and keys, the
//! byte-for-byte passthrough to OpenAI-format providers, the Anthropic and
//! Gemini translations both ways (replies, streams, errors), and the
//! proxy's own errors, all in OpenAI's shapes.

#[path = "../common/mod.rs"]
mod common;

mod anthropic;
mod gemini;
mod passthrough;
mod routing;
mod support;
