//! `llmproxy chat`: one prompt, the whole reply printed once complete.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::exit::Failure;
use super::output::Output;
use crate::providers::{ChatRequest, Provider, Upstream};

/// Sends the request and prints the reply text (or its JSON) once complete.
pub async fn chat(
    upstream: &Upstream,
    provider: &'static Provider,
    request: &ChatRequest,
    api_key: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let spinner = Spinner::start();
    let reply = async {
        super::send::send(upstream, provider, request, api_key)
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
