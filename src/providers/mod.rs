//! The provider-adapter module: everything that knows an upstream's wire
//! format lives here, once, and every subcommand uses it.
//!
//! Adding a provider means one new file implementing [`ChatProvider`] and one
//! line in [`PROVIDERS`].

mod anthropic;
mod openai;
mod request;
mod response;
mod sse;
mod upstream;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};

use crate::config::Settings;
use crate::error::{Error, Result};

pub use request::{messages_from_value, ChatRequest, Message, Role};
pub use response::{normalize_stop_reason, ChatResponse, StreamUsage, Usage};
pub use sse::text_deltas;
pub use upstream::{Upstream, UpstreamResponse};

/// Every supported provider, by the name used in URLs and on the CLI.
pub static PROVIDERS: [&dyn ChatProvider; 2] = [&openai::OpenAi, &anthropic::Anthropic];

/// The names of all providers, for messages and CLI value hints.
pub fn provider_names() -> impl Iterator<Item = &'static str> {
    PROVIDERS.iter().map(|p| p.name())
}

/// The factory: maps a provider name to its adapter.
pub fn provider(name: &str) -> Result<&'static dyn ChatProvider> {
    PROVIDERS
        .iter()
        .copied()
        .find(|p| p.name() == name)
        .ok_or_else(|| Error::UnknownProvider {
            name: name.chars().take(64).collect(),
        })
}

/// Headers and body of a provider-specific request (the URL is
/// [`ChatProvider::endpoint`], parsed once per process).
#[derive(Debug)]
pub struct UpstreamRequest {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Vec<u8>,
}

/// What one upstream SSE event means to a reader of text.
#[derive(Debug, PartialEq)]
pub enum StreamEvent {
    Text(String),
    /// The provider's end marker.
    Done,
    /// An error the upstream reported inside the stream.
    Failed(String),
    /// Anything else (role chunks, pings, usage, unknown event types).
    Skip,
}

/// Why the proxy itself ended a stream early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    /// No upstream byte within `HTTP_TIMEOUT_SECONDS`.
    Timeout,
    /// The upstream connection failed or closed before the end marker.
    Disconnected,
    /// The server's shutdown grace period ran out.
    ShuttingDown,
}

pub trait ChatProvider: Send + Sync + 'static {
    /// The name in `/v1/chat/{name}` and on the command line.
    fn name(&self) -> &'static str;

    /// The environment variable the CLI reads the key from.
    fn api_key_variable(&self) -> &'static str;

    /// The URL every request of this provider goes to.
    fn endpoint(&self, settings: &Settings) -> String;

    /// Auth headers and JSON body for `request`.
    fn build_request(
        &self,
        settings: &Settings,
        request: &ChatRequest,
        api_key: &str,
    ) -> Result<UpstreamRequest>;

    /// Turns a 2xx non-streamed reply into the normalized response.
    fn normalize(&self, body: &[u8]) -> std::result::Result<ChatResponse, String>;

    /// Interprets the JSON `data` of one SSE event.
    fn stream_event(&self, data: &str) -> StreamEvent;

    /// One SSE event in this provider's own error format, so that clients
    /// which understand the provider's stream see the failure.
    fn error_event(&self, fault: StreamFault, message: &str) -> Bytes;

    /// Whether the last bytes of a stream hold its end marker or an error
    /// event (so a clean close after them is not a truncation).
    fn stream_is_complete(&self, tail: &[u8]) -> bool;

    /// The token usage the JSON `data` of one SSE event reports, if any.
    /// Not called on every event: the server only passes events with a
    /// member named `usage…` holding an object (`"usage": {`,
    /// `"usageMetadata": {`), and of those only a stream's first and last.
    fn stream_usage(&self, _data: &str) -> Option<StreamUsage> {
        None
    }
}

/// Builds an auth header value that `Debug` output and logs never show.
fn secret_header(value: String) -> Result<HeaderValue> {
    let mut header = HeaderValue::try_from(value).map_err(|_| {
        Error::invalid(
            "api key",
            "contains characters not allowed in an HTTP header",
        )
    })?;
    header.set_sensitive(true);
    Ok(header)
}

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// The last bytes of a stream, enough for [`ChatProvider::stream_is_complete`]
/// to find the end marker when the upstream closes. Cheap per chunk: no
/// parsing on the passthrough path.
#[derive(Default)]
pub struct StreamTail(Vec<u8>);

impl StreamTail {
    const KEEP: usize = 128;

    pub fn push(&mut self, chunk: &[u8]) {
        if self.0.is_empty() {
            // Lets markers at the very start of a stream match "\nevent:".
            self.0.push(b'\n');
        }
        let chunk = &chunk[chunk.len().saturating_sub(Self::KEEP)..];
        self.0.extend_from_slice(chunk);
        let excess = self.0.len().saturating_sub(Self::KEEP);
        self.0.drain(..excess);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The recorded upstream payloads of `tests/fixtures`: one loader for the
/// unit tests, the integration tests and the benchmark.
#[cfg(test)]
#[path = "../../tests/common/fixtures.rs"]
pub(crate) mod fixtures;
#[cfg(test)]
pub(crate) use fixtures::fixture as test_fixture;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_across_chunks() {
        let mut tail = StreamTail::default();
        tail.push(b"event: message_stop");
        assert!(tail.bytes().starts_with(b"\nevent: message_stop"));
        tail.push(&[b'x'; 500]);
        tail.push(b"data: [DONE]\n\n");
        assert_eq!(tail.bytes().len(), StreamTail::KEEP);
        assert!(tail.bytes().ends_with(b"xdata: [DONE]\n\n"));
    }

    #[test]
    fn factory_knows_every_provider_and_rejects_others() {
        for name in provider_names() {
            assert_eq!(provider(name).unwrap().name(), name);
        }
        let err = provider("gemini").err().unwrap();
        assert!(err.to_string().contains("openai, anthropic"), "{err}");
    }
}
