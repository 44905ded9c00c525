//! `llmproxy stream`: the reply written token by token as it arrives, or
//! with `--raw` the upstream's own SSE bytes.

use futures::StreamExt;

use super::exit::Failure;
use super::output::Output;
use crate::providers::{text_deltas, ChatRequest, Provider, Upstream};

/// Sends the request and writes each text delta (or, with `raw`, each
/// upstream byte chunk) the moment it arrives.
pub async fn stream(
    upstream: &Upstream,
    provider: &'static Provider,
    request: &ChatRequest,
    api_key: Option<&str>,
    raw: bool,
) -> Result<(), Failure> {
    let response = super::send::send(upstream, provider, request, api_key).await?;
    let mut out = Output::default();
    if raw {
        // Each chunk goes out unchanged as it passes; the adapter's SSE
        // reader still watches it for error events and the end marker.
        let written = response.into_bytes().map(move |chunk| {
            let chunk = chunk?;
            out.write(&chunk)?;
            Ok::<_, Failure>(chunk)
        });
        let mut events = std::pin::pin!(text_deltas(provider, written));
        while let Some(event) = events.next().await {
            event?;
        }
        return Ok(());
    }
    let mut deltas = std::pin::pin!(response.into_text_deltas());
    while let Some(delta) = deltas.next().await {
        match delta {
            Ok(text) => out.write(text.as_bytes())?,
            Err(error) => {
                // What was printed stays printed; end the line for the shell.
                out.finish_line()?;
                return Err(error.into());
            }
        }
    }
    out.write(b"\n")
}
