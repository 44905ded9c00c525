//! Streaming replies: upstream SSE bytes go to the client exactly as
//! received, chunk by chunk, with no parsing on the way.
//!
//! The response body polls the upstream stream itself: no task and no
//! channel in between, so a chunk costs no extra wake-up and an open stream
//! holds no extra buffer. Backpressure is the sockets': while the client's
//! socket is full, hyper does not poll the body and the upstream is not
//! read. A client that stays stuck is cut by the connection's write timeout
//! ([`super::stall`]), which drops this body and with it the upstream
//! connection. A failure is reported in the provider's own error format.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::errors::insert_passthrough;
use super::state::{AppState, InFlight};
use crate::error::Error;
use crate::providers::{Provider, StreamFault, StreamTail, UpstreamResponse};

/// Waits for the first upstream chunk (so that a failure before any byte
/// still gets a proper status, 502 or 504), then answers 200 and passes the
/// rest on as it arrives.
pub async fn stream_reply(
    upstream: UpstreamResponse,
    state: &AppState,
    in_flight: InFlight,
) -> Result<Response, Error> {
    let provider = upstream.provider();
    let headers = upstream.passthrough_headers();
    let mut chunks = Box::pin(upstream.into_bytes());
    let first = match chunks.next().await {
        Some(chunk) => chunk?,
        None => {
            return Err(Error::InvalidReply {
                provider: provider.name(),
                reason: "the stream was empty".to_owned(),
            })
        }
    };
    let mut tail = provider.stream_tail();
    tail.push(&first);
    let body = Passthrough {
        provider,
        pending: Some(first),
        chunks,
        aborted: Box::pin(state.aborted()),
        tail,
        ended: false,
        _in_flight: in_flight,
    };

    let mut reply = warp::reply::stream(body).into_response();
    *reply.status_mut() = StatusCode::OK;
    let h = reply.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    insert_passthrough(h, &headers);
    Ok(reply)
}

/// The response body: the upstream's chunks in order, then, if the stream
/// did not end properly, one error event. Dropping it (the client left, or
/// its connection timed out) drops the upstream connection.
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
            return Poll::Ready(Some(first));
        }
        if self.aborted.as_mut().poll(cx).is_ready() {
            return self.fail(StreamFault::ShuttingDown, "the proxy is shutting down");
        }
        match ready!(self.chunks.as_mut().poll_next(cx)) {
            Some(Ok(chunk)) => {
                self.tail.push(&chunk);
                Poll::Ready(Some(chunk))
            }
            Some(Err(error)) => {
                let fault = match error {
                    Error::Timeout { .. } => StreamFault::Timeout,
                    _ => StreamFault::Disconnected,
                };
                self.fail(fault, &error.to_string())
            }
            None if self.provider.stream_is_complete(self.tail.bytes()) => {
                self.ended = true;
                Poll::Ready(None)
            }
            None => {
                let message = format!(
                    "{} closed the stream before its end marker",
                    self.provider.name()
                );
                self.fail(StreamFault::Disconnected, &message)
            }
        }
    }

    /// Ends the stream with one event in the provider's error format.
    fn fail(&mut self, fault: StreamFault, message: &str) -> Poll<Option<Bytes>> {
        self.ended = true;
        Poll::Ready(Some(self.provider.error_event(fault, message)))
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
