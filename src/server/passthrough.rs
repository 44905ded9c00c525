//! Streaming replies: upstream SSE bytes go to the client exactly as
//! received, chunk by chunk, with no parsing on the way (a byte search
//! finds the few events worth a look for the log, see `stream_scan`).
//!
//! The response body polls the upstream stream itself: no task and no
//! channel in between, so a chunk costs no extra wake-up and an open stream
//! holds no extra buffer. Backpressure is the sockets': while the client's
//! socket is full, hyper does not poll the body and the upstream is not
//! read. A client that stays stuck is cut by the connection's write timeout
//! ([`super::write_timeout`]), which drops this body and with it the upstream
//! connection. A failure is reported in the provider's own error format.
//! The body also carries the request's log record, written when the stream
//! ends (how it ended, its usage) or when the body is dropped before.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use warp::http::{header, HeaderName, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::errors::insert_passthrough;
use super::request_log::{RequestLog, StreamEnd};
use super::state::{AppState, InFlight};
use super::stream_scan::StreamScan;
use crate::error::Error;
use crate::providers::{Provider, StreamFault, StreamTail, UpstreamResponse};

/// A stream whose first upstream chunk has arrived: the reply can start.
pub struct OpenStream<S> {
    provider: &'static Provider,
    headers: Vec<(&'static str, String)>,
    first: Bytes,
    chunks: Pin<Box<S>>,
}

/// Waits for the first upstream chunk, so that a failure before any byte
/// still gets a proper status (502 or 504). The wait counts as upstream
/// time in `log`.
pub async fn open_stream(
    upstream: UpstreamResponse,
    log: &mut RequestLog,
) -> Result<OpenStream<impl Stream<Item = Result<Bytes, Error>> + Send + Sync + 'static>, Error> {
    let provider = upstream.provider();
    let headers = upstream.passthrough_headers();
    let mut chunks = Box::pin(upstream.into_bytes());
    let waiting = Instant::now();
    let first = chunks.next().await;
    log.waited(waiting);
    let first = match first {
        Some(chunk) => chunk?,
        None => {
            return Err(Error::InvalidReply {
                provider: provider.name(),
                reason: "the stream was empty".to_owned(),
            })
        }
    };
    Ok(OpenStream {
        provider,
        headers,
        first,
        chunks,
    })
}

impl<S> OpenStream<S>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Sync + 'static,
{
    /// Answers 200 and passes the stream on as it arrives. The body owns
    /// `log` from here and writes it when the stream ends.
    pub fn into_reply(
        self,
        state: &AppState,
        in_flight: InFlight,
        mut log: RequestLog,
    ) -> Response {
        let mut tail = self.provider.stream_tail();
        tail.push(&self.first);
        log.streaming(StatusCode::OK.as_u16());
        log.head_ready();
        let body = Passthrough {
            provider: self.provider,
            pending: Some(self.first),
            chunks: self.chunks,
            aborted: Box::pin(state.aborted()),
            tail,
            ended: false,
            scan: StreamScan::default(),
            log,
            _in_flight: in_flight,
        };
        sse_reply(body, &self.headers)
    }
}

/// The 200 head of every streamed reply (passed through or translated),
/// with the upstream's request-id and retry headers, around `body`.
pub(super) fn sse_reply<B>(body: B, upstream_headers: &[(&'static str, String)]) -> Response
where
    B: Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + Sync + 'static,
{
    let mut reply = warp::reply::stream(body).into_response();
    *reply.status_mut() = StatusCode::OK;
    let h = reply.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    insert_passthrough(h, upstream_headers);
    reply
}

/// The response body: the upstream's chunks in order, then, if the stream
/// did not end properly, one error event. Dropping it (the client left, or
/// its connection timed out) drops the upstream connection. It writes the
/// request's log record when the stream ends, or when it is dropped before.
struct Passthrough<S> {
    provider: &'static Provider,
    /// A chunk read but not yet handed out (the first one).
    pending: Option<Bytes>,
    chunks: Pin<Box<S>>,
    /// The shutdown grace period ran out.
    aborted: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    /// The last bytes seen, to tell a finished stream from a truncated one.
    tail: StreamTail,
    ended: bool,
    /// Usage and error events, found without parsing every chunk.
    scan: StreamScan,
    log: RequestLog,
    _in_flight: InFlight,
}

impl<S> Passthrough<S>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    fn next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = self.pending.take() {
            self.log.first_byte();
            self.scan.push(self.provider, &first);
            return Poll::Ready(Some(first));
        }
        if self.aborted.as_mut().poll(cx).is_ready() {
            return self.fail(
                StreamFault::ShuttingDown,
                StreamEnd::Shutdown,
                "the proxy is shutting down",
            );
        }
        match ready!(self.chunks.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                self.tail.push(&chunk);
                self.scan.push(self.provider, &chunk);
                Poll::Ready(Some(chunk))
            }
            Some(Err(error)) => {
                let (fault, how) = match error {
                    Error::Timeout { .. } => (StreamFault::Timeout, StreamEnd::Timeout),
                    _ => (StreamFault::Disconnected, StreamEnd::Truncated),
                };
                self.fail(fault, how, &error.to_string())
            }
            None if self.provider.stream_is_complete(self.tail.bytes()) => {
                let how = if self.scan.upstream_error() {
                    StreamEnd::UpstreamError
                } else {
                    StreamEnd::Complete
                };
                self.end(how);
                Poll::Ready(None)
            }
            None => {
                let message = format!(
                    "{} closed the stream before its end marker",
                    self.provider.name()
                );
                self.fail(StreamFault::Disconnected, StreamEnd::Truncated, &message)
            }
        }
    }

    /// Ends the stream with one event in the provider's error format.
    fn fail(&mut self, fault: StreamFault, how: StreamEnd, message: &str) -> Poll<Option<Bytes>> {
        self.end(how);
        Poll::Ready(Some(self.provider.error_event(fault, message)))
    }
}

impl<S> Passthrough<S> {
    /// Marks the stream over and writes its record.
    fn end(&mut self, how: StreamEnd) {
        self.ended = true;
        let usage = self.scan.finish(self.provider);
        self.log.stream_ended(how, usage);
    }
}

impl<S> Drop for Passthrough<S> {
    fn drop(&mut self) {
        if !self.ended {
            // A client may hang up as soon as it has the end marker
            // (OpenAI's Python SDK does after `[DONE]`), before the
            // upstream closes: that stream was complete.
            let how = if !self.provider.stream_is_complete(self.tail.bytes()) {
                StreamEnd::ClientClosed
            } else if self.scan.upstream_error() {
                StreamEnd::UpstreamError
            } else {
                StreamEnd::Complete
            };
            self.end(how);
        }
    }
}

impl<S> Stream for Passthrough<S>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.next_chunk(cx).map(|chunk| chunk.map(Ok))
    }
}
