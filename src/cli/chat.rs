//! `llmproxy chat` and `llmproxy stream`: the provider adapters, called
//! directly from the terminal.

use std::time::Duration;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::exit::Failure;
use super::output::Output;
use crate::providers::{text_deltas, ChatProvider, ChatRequest, Upstream};

/// Sends the request and prints the reply text (or its JSON) once complete.
pub async fn chat(
    upstream: &Upstream,
    provider: &'static dyn ChatProvider,
    request: &ChatRequest,
    api_key: &str,
    json: bool,
) -> Result<(), Failure> {
    let spinner = Spinner::start();
    let reply = async {
        upstream
            .send(provider, request, api_key)
            .await?
            .into_chat_response()
            .await
    }
    .await;
    drop(spinner);
    let reply = reply?;
    let mut out = Output::default();
    if json {
        let text = serde_json::to_string(&reply).map_err(anyhow::Error::from)?;
        out.write(text.as_bytes())?;
        out.write(b"\n")
    } else {
        out.write(reply.content.as_bytes())?;
        out.write(b"\n")
    }
}

/// Sends the request and writes each text delta (or, with `raw`, each
/// upstream byte chunk) the moment it arrives.
pub async fn stream(
    upstream: &Upstream,
    provider: &'static dyn ChatProvider,
    request: &ChatRequest,
    api_key: &str,
    raw: bool,
) -> Result<(), Failure> {
    let response = upstream.send(provider, request, api_key).await?;
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

/// A spinner on stderr while waiting; invisible when stderr is not a
/// terminal, and cleared when dropped.
struct Spinner(ProgressBar);

impl Spinner {
    fn start() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.set_message("waiting for the reply");
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner(bar)
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
