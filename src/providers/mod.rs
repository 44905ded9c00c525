//! The provider-adapter module: everything that knows an upstream's wire
//! format lives here, once, and every subcommand uses it.
//!
//! A [`Provider`] is data (a name, a base URL, how its key is found and
//! sent, extra headers, a timeout); its [`Kind`] picks one of the native
//! adapters, one file per wire format, each implementing [`WireFormat`]. The
//! [`Registry`] holds the built-in providers and those of the config file.
//! Adding a wire format means one new file implementing [`WireFormat`] and
//! one variant of [`Kind`]; adding a provider of a known format is data.

mod anthropic;
mod builtin;
pub mod compat;
mod gemini;
mod openai;
mod registry;
mod request;
mod response;
mod retry;
mod sse;
mod upstream;

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};

use crate::config::Settings;
use crate::error::{Error, Result};

pub use builtin::BUILTIN_NAMES;
pub use registry::{Alias, Registry};
pub use request::{messages_from_value, ChatRequest, Message, Role};
pub use response::{normalize_stop_reason, ChatResponse, StreamUsage, Usage};
pub use retry::{RetryNotice, RetryReason};
pub use sse::text_deltas;
pub use upstream::{Prepared, Sent, Upstream, UpstreamResponse};

/// The wire formats llmproxy speaks natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
        }
    }

    fn wire(self) -> &'static dyn WireFormat {
        match self {
            Kind::OpenAi => &openai::OpenAi,
            Kind::Anthropic => &anthropic::Anthropic,
            Kind::Gemini => &gemini::Gemini,
        }
    }
}

/// Whether a provider wants the caller's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// A request without a key is refused (401 / exit 2).
    Required,
    /// Sent when the caller has one (local servers such as Ollama).
    Optional,
    /// Never sent, even when the caller sends one.
    Never,
}

/// Which OpenAI request field carries the caller's `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

/// One upstream the proxy can reach. Built once per process (the registry
/// leaks them, so every request and error can borrow them for `'static`).
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    /// The name in `/v1/chat/{name}` and on the command line.
    pub name: &'static str,
    pub kind: Kind,
    /// Without a trailing slash; adapters append their paths.
    pub base_url: String,
    pub key: KeyPolicy,
    /// Where `chat` and `stream` look for the key, in order.
    pub key_variables: Vec<String>,
    /// OpenAI-format providers: which field carries `max_tokens`.
    pub max_tokens_field: MaxTokensField,
    /// Extra static headers sent with every request (never auth headers).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Connect timeout and the longest wait for the next upstream byte.
    pub timeout: Duration,
    /// Retries of a failed attempt, when the config file sets them.
    pub retries: Option<u32>,
    /// Shipped with llmproxy, as opposed to added by the config file.
    pub builtin: bool,
    /// The URL of every request, parsed once, for the formats whose URL
    /// does not depend on the request.
    endpoint: Option<reqwest::Url>,
}

impl Provider {
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn wire(&self) -> &'static dyn WireFormat {
        self.kind.wire()
    }

    /// The key to send, from what the caller gave: `Ok(None)` sends none.
    pub fn key_to_send<'k>(&self, given: Option<&'k str>) -> Result<Option<&'k str>> {
        let given = given.map(str::trim).filter(|k| !k.is_empty());
        match (self.key, given) {
            (KeyPolicy::Never, _) => Ok(None),
            (KeyPolicy::Required, None) => Err(Error::MissingApiKey),
            (_, given) => Ok(given),
        }
    }

    /// Turns a 2xx non-streamed reply into the normalized response.
    pub fn normalize(
        &'static self,
        requested_model: &str,
        body: &[u8],
    ) -> std::result::Result<ChatResponse, String> {
        self.wire().normalize(self, requested_model, body)
    }

    /// Interprets the JSON `data` of one SSE event.
    pub fn stream_event(&self, data: &str) -> StreamEvent {
        self.wire().stream_event(data)
    }

    /// One SSE event in this provider's own error format.
    pub fn error_event(&self, fault: StreamFault, message: &str) -> Bytes {
        self.wire().error_event(fault, message)
    }

    /// Whether the end of a stream (see [`StreamTail`]) holds its end
    /// marker or an error event, so a clean close after it is no truncation.
    pub fn stream_is_complete(&self, tail: &[u8]) -> bool {
        self.wire().stream_is_complete(tail)
    }

    /// The token usage one SSE event reports, if any (see
    /// [`WireFormat::stream_usage`]).
    pub fn stream_usage(&self, data: &str) -> Option<StreamUsage> {
        self.wire().stream_usage(data)
    }

    /// The URL of a request for `model`: the endpoint parsed once, or (for
    /// formats whose URL names the model) built and checked now.
    pub fn url(&self, model: &str, stream: bool) -> Result<reqwest::Url> {
        if let Some(url) = &self.endpoint {
            return Ok(url.clone());
        }
        let url = self.wire().request_url(&self.base_url, model, stream)?;
        reqwest::Url::parse(&url).map_err(|e| Error::invalid("model", e.to_string()))
    }

    /// Auth headers and JSON body of the native route's `request`.
    pub fn build_request(
        &self,
        settings: &Settings,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest> {
        self.wire().build_request(self, settings, request, api_key)
    }

    /// A JSON request in this provider's format with any `body`: its
    /// headers, the key under its header when there is one, and the body
    /// (the native route's [`Provider::build_request`] and the
    /// OpenAI-compatible route's translations both use it).
    pub fn json_request(
        &self,
        settings: &Settings,
        api_key: Option<&str>,
        body: &impl serde::Serialize,
    ) -> Result<UpstreamRequest> {
        let (headers, key) = self.wire().auth_headers(settings, api_key)?;
        json_request(headers, key, body)
    }

    /// What a passthrough keeps of a stream to judge its end.
    pub fn stream_tail(&self) -> StreamTail {
        StreamTail::new(self.wire().tail_kind())
    }
}

/// Headers and body of a provider-specific request.
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Cheap to clone, for another attempt.
    pub body: Bytes,
}

/// What one upstream SSE event means to a reader of text.
#[derive(Debug, PartialEq)]
pub enum StreamEvent {
    Text(String),
    /// The last text of the stream (Gemini has no separate end marker).
    Final(String),
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

/// One native adapter: request building, normalization and stream
/// interpretation for one wire format.
pub trait WireFormat: Send + Sync + 'static {
    /// The URL of every request, when it does not depend on the request.
    fn fixed_endpoint(&self, base_url: &str) -> Option<String>;

    /// The URL of a request for `model`, for formats without a fixed
    /// endpoint.
    fn request_url(&self, base_url: &str, model: &str, stream: bool) -> Result<String> {
        let _ = (model, stream);
        self.fixed_endpoint(base_url)
            .ok_or_else(|| Error::invalid("model", "no endpoint for this provider"))
    }

    /// The headers every request of this format carries, and the caller's
    /// key with the header it goes in (`api_key` None sends no auth header).
    fn auth_headers(&self, settings: &Settings, api_key: Option<&str>) -> Result<AuthHeaders>;

    /// Auth headers and JSON body for `request` (`api_key` None sends no
    /// auth header).
    fn build_request(
        &self,
        provider: &Provider,
        settings: &Settings,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest>;

    /// Turns a 2xx non-streamed reply into the normalized response.
    fn normalize(
        &self,
        provider: &Provider,
        requested_model: &str,
        body: &[u8],
    ) -> std::result::Result<ChatResponse, String>;

    /// Interprets the JSON `data` of one SSE event.
    fn stream_event(&self, data: &str) -> StreamEvent;

    /// One SSE event in this format's own error shape, so that clients
    /// which understand the provider's stream see the failure.
    fn error_event(&self, fault: StreamFault, message: &str) -> Bytes;

    /// Whether the stream's tail holds its end marker or an error event.
    fn stream_is_complete(&self, tail: &[u8]) -> bool;

    /// What of a stream's end [`WireFormat::stream_is_complete`] needs.
    fn tail_kind(&self) -> TailKind {
        TailKind::LastBytes
    }

    /// The token usage the JSON `data` of one SSE event reports, if any.
    /// Not called on every event: the server only passes events with a
    /// member named `usage…` holding an object (`"usage": {`,
    /// `"usageMetadata": {`), and of those only a stream's first and last.
    fn stream_usage(&self, _data: &str) -> Option<StreamUsage> {
        None
    }
}

/// A format's fixed headers, and the caller's key under its header name.
pub type AuthHeaders = (Vec<(HeaderName, HeaderValue)>, Option<(HeaderName, String)>);

/// A JSON request with `headers`, and the caller's key under its header
/// when there is one.
fn json_request(
    mut headers: Vec<(HeaderName, HeaderValue)>,
    key: Option<(HeaderName, String)>,
    body: &impl serde::Serialize,
) -> Result<UpstreamRequest> {
    headers.push((reqwest::header::CONTENT_TYPE, JSON));
    if let Some((name, value)) = key {
        headers.push((name, secret_header(value)?));
    }
    Ok(UpstreamRequest {
        headers,
        body: serde_json::to_vec(body).unwrap_or_default().into(),
    })
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

/// What a passthrough keeps of a stream's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailKind {
    /// The last [`StreamTail::KEEP`] bytes: enough for an end marker.
    LastBytes,
    /// The whole last event, however long (its content is the marker).
    LastEvent,
}

/// The end of a stream, enough for [`Provider::stream_is_complete`] to find
/// the end marker when the upstream closes. Cheap per chunk: no parsing on
/// the passthrough path.
pub struct StreamTail {
    kind: TailKind,
    bytes: Vec<u8>,
}

impl StreamTail {
    const KEEP: usize = 128;

    pub fn new(kind: TailKind) -> Self {
        StreamTail {
            kind,
            bytes: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        if self.bytes.is_empty() {
            // Lets markers at the very start of a stream match "\nevent:".
            self.bytes.push(b'\n');
        }
        match self.kind {
            TailKind::LastBytes => {
                let chunk = &chunk[chunk.len().saturating_sub(Self::KEEP)..];
                self.bytes.extend_from_slice(chunk);
                let excess = self.bytes.len().saturating_sub(Self::KEEP);
                self.bytes.drain(..excess);
            }
            TailKind::LastEvent => {
                self.bytes.extend_from_slice(chunk);
                // Keep from the start of the last event: after the last
                // blank line that is not the stream's final one.
                let body = trim_line_ends(&self.bytes);
                if let Some(at) = last_blank_line_end(body) {
                    self.bytes.drain(..at);
                }
            }
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

fn trim_line_ends(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The index just past the last blank line (`\n\n` or `\n\r\n`).
fn last_blank_line_end(bytes: &[u8]) -> Option<usize> {
    let mut i = bytes.len();
    while i >= 2 {
        i -= 1;
        if bytes[i] == b'\n' {
            if bytes[i - 1] == b'\n' {
                return Some(i + 1);
            }
            if i >= 2 && bytes[i - 1] == b'\r' && bytes[i - 2] == b'\n' {
                return Some(i + 1);
            }
        }
    }
    None
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

/// What the adapters' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Provider, StreamUsage, WireFormat};
    use crate::config::Settings;

    /// Default settings, with `variable` (a base URL) set to `value`.
    pub fn settings_with(variable: &str, value: &str) -> Settings {
        Settings::from_lookup(|name| (name == variable).then(|| value.to_owned()))
            .expect("valid test settings")
    }

    /// A provider of the default registry.
    pub fn provider(name: &str) -> crate::error::Result<&'static Provider> {
        settings_with("", "").providers.provider(name)
    }

    /// The usage `wire` finds in each `data:` line of a fixture stream.
    pub fn stream_usages(wire: &dyn WireFormat, file: &str) -> Vec<StreamUsage> {
        let stream = super::test_fixture(file);
        std::str::from_utf8(&stream)
            .expect("utf-8 fixture")
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|data| wire.stream_usage(data))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes_across_chunks() {
        let mut tail = StreamTail::new(TailKind::LastBytes);
        tail.push(b"event: message_stop");
        assert!(tail.bytes().starts_with(b"\nevent: message_stop"));
        tail.push(&[b'x'; 500]);
        tail.push(b"data: [DONE]\n\n");
        assert_eq!(tail.bytes().len(), StreamTail::KEEP);
        assert!(tail.bytes().ends_with(b"xdata: [DONE]\n\n"));
    }

    #[test]
    fn event_tail_keeps_the_whole_last_event_whatever_its_length() {
        let mut tail = StreamTail::new(TailKind::LastEvent);
        tail.push(b"data: {\"a\": 1}\r\n\r\ndata: {\"b\"");
        assert_eq!(tail.bytes(), b"data: {\"b\"");
        let long = vec![b'x'; 5000];
        tail.push(&long);
        tail.push(b"}\r\n\r\n");
        assert!(tail.bytes().starts_with(b"data: {\"b\"xxx"));
        assert!(tail.bytes().ends_with(b"x}\r\n\r\n"));
        assert_eq!(tail.bytes().len(), 10 + 5000 + 5);
        tail.push(b"data: {\"c\": 3}\n\n");
        assert_eq!(tail.bytes(), b"data: {\"c\": 3}\n\n");
    }
}
