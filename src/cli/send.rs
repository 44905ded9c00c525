//! Sending from the terminal: the adapter's send with its retries, each
//! retry announced on stderr (the CLI is the client: it retries by default).

use std::io::Write;

use crate::error::Result;
use crate::providers::{ChatRequest, Prepared, Provider, RetryNotice, Upstream, UpstreamResponse};

/// Sends `request`; a retry writes one line such as
/// `openai answered 429; retrying in 1.2 s (1 of 2)`.
pub async fn send(
    upstream: &Upstream,
    provider: &'static Provider,
    request: &ChatRequest,
    api_key: Option<&str>,
) -> Result<UpstreamResponse> {
    let prepared = Prepared::native(provider, upstream.settings(), request, api_key)?;
    let mut announce = |notice: &RetryNotice| {
        // Not `eprintln!`: it panics when stderr's reader is gone.
        let _ = writeln!(std::io::stderr().lock(), "{notice}");
    };
    upstream
        .send_observed(provider, prepared, &mut announce)
        .await
        .result
}
