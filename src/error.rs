//! The one error type of the library. `serve` maps it to HTTP statuses in
//! `server::errors`, the CLI to exit codes in `cli::exit`.

use bytes::Bytes;

/// Headers of an upstream error reply that callers need to see (rate-limit
/// back-off and request ids for support tickets).
/// `retry-after-ms` and `x-should-retry` also steer the SDKs' own retries.
/// Parsed once: header names given as text are parsed on every lookup.
pub static PASSTHROUGH_HEADERS: [reqwest::header::HeaderName; 5] = [
    reqwest::header::HeaderName::from_static("retry-after"),
    reqwest::header::HeaderName::from_static("retry-after-ms"),
    reqwest::header::HeaderName::from_static("x-should-retry"),
    reqwest::header::HeaderName::from_static("x-request-id"),
    reqwest::header::HeaderName::from_static("request-id"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body is not JSON (or not UTF-8).
    #[error("malformed JSON body: {0}")]
    MalformedJson(String),
    /// The body is JSON but breaks the request schema; `field` names where.
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("unknown provider '{name}'; supported: {known}")]
    UnknownProvider { name: String, known: String },
    /// No key for a provider that needs one (each front-end says where
    /// its key comes from).
    #[error("missing API key")]
    MissingApiKey,

    /// The upstream answered with a non-2xx status.
    #[error("{provider} returned {status}: {}", upstream_message(.body))]
    UpstreamStatus {
        provider: &'static str,
        status: u16,
        body: Bytes,
        headers: Vec<(&'static str, String)>,
    },
    /// Connection refused, DNS, TLS, or a reset before the reply started.
    #[error("could not reach {provider}: {reason}")]
    Unreachable {
        provider: &'static str,
        reason: String,
    },
    /// The connection broke after the reply had started.
    #[error("{provider} connection broke mid-reply: {reason}")]
    ConnectionLost {
        provider: &'static str,
        reason: String,
    },
    #[error("{provider} did not answer within {seconds}s")]
    Timeout {
        provider: &'static str,
        seconds: u64,
    },
    /// A 2xx reply that is not the provider's JSON.
    #[error("{provider} sent an invalid reply: {reason}")]
    InvalidReply {
        provider: &'static str,
        reason: String,
    },
    /// An error event inside a stream that had already started.
    #[error("{provider} stream failed: {message}")]
    StreamFailed {
        provider: &'static str,
        message: String,
    },
    /// The stream ended before the provider's end marker.
    #[error("{provider} stream ended before its end marker")]
    StreamTruncated { provider: &'static str },
    /// All `HTTP_MAX_CONNECTIONS` upstream slots stayed busy for the timeout.
    #[error("too many upstream requests in flight; try again shortly")]
    Saturated,
    #[error("server is shutting down")]
    ShuttingDown,
}

/// The human-readable message inside an upstream error body: both providers
/// put it at `error.message`; anything else is shown as trimmed text.
pub fn upstream_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope.error.message,
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                text.chars().take(300).collect()
            }
        }
    }
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
