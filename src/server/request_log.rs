//! The per-request log record of the chat route: what the handler learns
//! about a request as it goes, written as one line when the reply is ready.
//! Never the key, never message content.

use std::time::Instant;

use super::log_fields::{Escaped, Millis};

pub struct RequestLog {
    started: Instant,
    /// As the client named it (it may not be a provider).
    provider: String,
    /// As requested; known once the body has been parsed.
    pub model: Option<String>,
}

impl RequestLog {
    pub fn start(provider: &str) -> Self {
        RequestLog {
            started: Instant::now(),
            provider: provider.to_owned(),
            model: None,
        }
    }

    /// Writes the line, at `info`.
    pub fn write(&self, status: u16) {
        tracing::info!(
            method = "POST",
            path = %format_args!("/v1/chat/{}", Escaped(&self.provider)),
            provider = %Escaped(&self.provider),
            model = %Escaped(self.model.as_deref().unwrap_or("-")),
            status,
            duration_ms = %Millis(self.started.elapsed()),
            "request"
        );
    }
}
