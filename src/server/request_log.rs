//! The per-request record of the chat route: what the handler (and, for a
//! stream, the response body) learns about a request as it goes. When the
//! request is over it becomes one log line and the request's metrics.
//! Never the key, never message content.
//!
//! It is written exactly once: by [`RequestLog::finish`] when the reply (or
//! the stream) is over, or, if the request is abandoned first (the client
//! went away and the handler future or the body was dropped), on drop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::log_fields;
use super::log_line::{self, Value};
use super::metrics::{Metrics, Outcome, ROUTE_CHAT, UNKNOWN_PROVIDER};
use super::request_id::RequestId;
use crate::error::Error;
use crate::providers::StreamUsage;

/// The status logged and counted for a request whose client went away
/// before it got a reply (nginx's convention).
pub const CLIENT_CLOSED_STATUS: u16 = 499;

/// Why a request failed, in one short word for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No upstream byte in time (before or during the reply).
    Timeout,
    /// The upstream could not be reached, or its connection broke.
    Connect,
    /// The upstream answered a non-2xx status below 500.
    Upstream4xx,
    /// The upstream answered 5xx, or sent an error event in a stream.
    Upstream5xx,
    /// A 2xx reply that is not the provider's format.
    InvalidReply,
    /// The client went away before the reply was over.
    ClientClosed,
    /// The proxy refused the request (body, key, provider, fields).
    InvalidRequest,
    /// No upstream slot became free in time (`HTTP_MAX_CONNECTIONS`).
    Overloaded,
    /// The server is shutting down.
    Shutdown,
}

impl ErrorKind {
    pub fn of(error: &Error) -> Self {
        match error {
            Error::MalformedJson(_)
            | Error::InvalidField { .. }
            | Error::BodyTooLarge { .. }
            | Error::UnknownProvider { .. }
            | Error::MissingApiKey => ErrorKind::InvalidRequest,
            Error::UpstreamStatus { status, .. } if *status >= 500 => ErrorKind::Upstream5xx,
            Error::UpstreamStatus { .. } => ErrorKind::Upstream4xx,
            Error::Unreachable { .. }
            | Error::ConnectionLost { .. }
            | Error::StreamTruncated { .. } => ErrorKind::Connect,
            Error::StreamFailed { .. } => ErrorKind::Upstream5xx,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::InvalidReply { .. } => ErrorKind::InvalidReply,
            Error::Saturated => ErrorKind::Overloaded,
            Error::ShuttingDown => ErrorKind::Shutdown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::Upstream4xx => "upstream_4xx",
            ErrorKind::Upstream5xx => "upstream_5xx",
            ErrorKind::InvalidReply => "invalid_reply",
            ErrorKind::ClientClosed => "client_closed",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Shutdown => "shutdown",
        }
    }
}

/// How a streamed reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream's end marker, then its close.
    Complete = 0,
    /// The upstream sent an error event.
    UpstreamError = 1,
    /// The upstream closed or reset before its end marker.
    Truncated = 2,
    /// The client went away first.
    ClientClosed = 3,
    /// The upstream went silent for `HTTP_TIMEOUT_SECONDS`.
    Timeout = 4,
    /// The shutdown grace period ran out.
    Shutdown = 5,
}

impl StreamEnd {
    /// In discriminant order.
    pub const ALL: [StreamEnd; 6] = [
        StreamEnd::Complete,
        StreamEnd::UpstreamError,
        StreamEnd::Truncated,
        StreamEnd::ClientClosed,
        StreamEnd::Timeout,
        StreamEnd::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StreamEnd::Complete => "complete",
            StreamEnd::UpstreamError => "upstream_error",
            StreamEnd::Truncated => "truncated",
            StreamEnd::ClientClosed => "client_closed",
            StreamEnd::Timeout => "timeout",
            StreamEnd::Shutdown => "shutdown",
        }
    }

    /// The `error` of a request whose stream ended this way.
    fn error(self) -> Option<ErrorKind> {
        match self {
            StreamEnd::Complete => None,
            StreamEnd::UpstreamError => Some(ErrorKind::Upstream5xx),
            StreamEnd::Truncated => Some(ErrorKind::Connect),
            StreamEnd::ClientClosed => Some(ErrorKind::ClientClosed),
            StreamEnd::Timeout => Some(ErrorKind::Timeout),
            StreamEnd::Shutdown => Some(ErrorKind::Shutdown),
        }
    }
}

pub struct RequestLog {
    started: Instant,
    id: RequestId,
    /// The metrics' `route` label.
    route: &'static str,
    /// The provider as the client named it in the path (it may not be one).
    path_provider: String,
    /// The provider it resolved to.
    provider: Option<&'static str>,
    /// As requested; known once the body has been parsed.
    model: Option<String>,
    stream: bool,
    upstream_status: Option<u16>,
    /// Upstream requests made: 0 or 1 (retries will add to it).
    attempts: u32,
    /// Time spent waiting on the upstream before the client's reply head:
    /// for the upstream's reply head, and for a stream its first chunk.
    upstream_wait: Duration,
    ttfb: Option<Duration>,
    overhead: Option<Duration>,
    usage: StreamUsage,
    error: Option<ErrorKind>,
    stream_end: Option<StreamEnd>,
    /// The status sent to the client, once it is known.
    status: Option<u16>,
    metrics: Option<Arc<Metrics>>,
    written: bool,
}

impl RequestLog {
    pub fn start(id: RequestId, path_provider: &str, metrics: Option<Arc<Metrics>>) -> Self {
        if let Some(metrics) = &metrics {
            metrics.request_started();
        }
        RequestLog {
            started: Instant::now(),
            id,
            route: ROUTE_CHAT,
            path_provider: path_provider.to_owned(),
            provider: None,
            model: None,
            stream: false,
            upstream_status: None,
            attempts: 0,
            upstream_wait: Duration::ZERO,
            ttfb: None,
            overhead: None,
            usage: StreamUsage::default(),
            error: None,
            stream_end: None,
            status: None,
            metrics,
            written: false,
        }
    }

    /// The metrics' `route` label ([`ROUTE_CHAT`] unless set). The OpenAI-
    /// compatible route starts its record with the path provider
    /// `completions`, so its line's path is `/v1/chat/completions`.
    pub fn route(&mut self, route: &'static str) {
        self.route = route;
    }

    pub fn provider(&mut self, name: &'static str) {
        self.provider = Some(name);
    }

    /// What the body asked for.
    pub fn requested(&mut self, model: &str, stream: bool) {
        self.model = Some(model.to_owned());
        self.stream = stream;
    }

    /// `attempts` upstream requests were made (whatever came of them).
    pub fn attempted(&mut self, attempts: u32) {
        self.attempts = attempts;
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn upstream_status(&mut self, status: u16) {
        self.upstream_status = Some(status);
    }

    /// Adds time spent waiting on the upstream (not the proxy's overhead).
    pub fn waited(&mut self, since: Instant) {
        self.upstream_wait += since.elapsed();
    }

    pub fn usage(&mut self, usage: StreamUsage) {
        self.usage = usage;
    }

    pub fn failed(&mut self, error: &Error) {
        self.error = Some(ErrorKind::of(error));
    }

    /// The reply head is ready: the proxy's overhead is known (for a
    /// request that went upstream).
    pub fn head_ready(&mut self) {
        if self.attempts > 0 {
            self.overhead = Some(self.started.elapsed().saturating_sub(self.upstream_wait));
        }
    }

    /// The first byte goes to the client: a whole reply is ready, or a
    /// stream hands out its first chunk.
    pub fn first_byte(&mut self) {
        if self.ttfb.is_none() {
            self.ttfb = Some(self.started.elapsed());
        }
    }

    /// A stream will answer `status`; the record is written when it ends.
    pub fn streaming(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Ends a stream's record.
    pub fn stream_ended(&mut self, how: StreamEnd, usage: StreamUsage) {
        self.stream_end = Some(how);
        self.usage = usage;
        if self.error.is_none() {
            self.error = how.error();
        }
        let status = self.status.unwrap_or(200);
        self.finish(status);
    }

    /// Writes the line and records the metrics (once).
    pub fn finish(&mut self, status: u16) {
        if self.written {
            return;
        }
        self.written = true;
        let duration = self.started.elapsed();
        self.write(status, duration);
        if let Some(metrics) = &self.metrics {
            metrics.request_finished(&Outcome {
                route: self.route,
                provider: self.provider,
                status,
                stream: self.stream,
                duration,
                ttfb: self.ttfb,
                overhead: self.overhead,
                input_tokens: self.usage.input_tokens,
                output_tokens: self.usage.output_tokens,
                stream_end: self.stream_end,
            });
        }
    }

    /// The line, at `info` (see `log_line`). Text: names the client chose
    /// are escaped; JSON: durations are numbers.
    fn write(&self, status: u16, duration: Duration) {
        if !log_line::enabled() {
            return;
        }
        let path = format!("/v1/chat/{}", self.path_provider);
        let provider = self.provider.unwrap_or(UNKNOWN_PROVIDER);
        let fields = [
            ("request_id", Some(Value::Word(self.id.as_str()))),
            ("method", Some(Value::Quoted("POST"))),
            ("path", Some(Value::Client(&path))),
            ("provider", Some(Value::Client(provider))),
            ("model", self.model.as_deref().map(Value::Client)),
            ("stream", Some(Value::Bool(self.stream))),
            ("status", Some(Value::Number(status.into()))),
            (
                "upstream_status",
                self.upstream_status.map(|s| Value::Number(s.into())),
            ),
            ("attempts", Some(Value::Number(self.attempts.into()))),
            ("duration_ms", Some(Value::Millis(duration))),
            ("ttfb_ms", self.ttfb.map(Value::Millis)),
            ("input_tokens", self.usage.input_tokens.map(Value::Number)),
            ("output_tokens", self.usage.output_tokens.map(Value::Number)),
            ("error", self.error.map(|e| Value::Word(e.as_str()))),
            (
                "stream_end",
                self.stream_end.map(|e| Value::Word(e.as_str())),
            ),
        ];
        log_line::write(log_fields::json(), log_fields::colour(), "request", &fields);
    }
}

impl Drop for RequestLog {
    /// The request was abandoned before its record was written: the
    /// client went away (or the task was cancelled).
    fn drop(&mut self) {
        if !self.written {
            self.error.get_or_insert(ErrorKind::ClientClosed);
            let status = self.status.unwrap_or(CLIENT_CLOSED_STATUS);
            self.finish(status);
        }
    }
}
