//! The body of a translated stream (Anthropic or Gemini answering the
//! OpenAI-compatible route): the adapter's chunks, each handed to the
//! client the moment its upstream event arrives. Like the passthrough
//! ([`super::passthrough`]) the body polls the upstream itself, ends a
//! failed stream with one error chunk (OpenAI's shape, no `[DONE]`), and
//! writes the request's log record when the stream ends or is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use warp::http::StatusCode;
use warp::reply::Response;

use super::passthrough::sse_reply;
use super::request_log::{RequestLog, StreamEnd};
use super::state::{AppState, InFlight};
use crate::error::Error;
use crate::providers::compat::{self, ChunkStream};
use crate::providers::UpstreamResponse;

/// A translated stream whose first chunk is ready: the reply can start.
pub struct OpenTranslated<S> {
    headers: Vec<(&'static str, String)>,
    first: Bytes,
    chunks: ChunkStream<S>,
}

/// Reads up to the first chunk, so that a failure before it still gets a
/// proper status (502, 504). The wait counts as upstream time in `log`.
pub async fn open_translated(
    upstream: UpstreamResponse,
    requested_model: &str,
    include_usage: bool,
    log: &mut RequestLog,
) -> Result<OpenTranslated<impl Stream<Item = Result<Bytes, Error>> + Send + Sync + 'static>, Error>
{
    let provider = upstream.provider();
    let headers = upstream.passthrough_headers();
    let mut chunks = ChunkStream::new(upstream, requested_model, include_usage);
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
    Ok(OpenTranslated {
        headers,
        first,
        chunks,
    })
}

impl<S> OpenTranslated<S>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Sync + 'static,
{
    /// Answers 200 and streams the chunks. The body owns `log` from here.
    pub fn into_reply(
        self,
        state: &AppState,
        in_flight: InFlight,
        mut log: RequestLog,
    ) -> Response {
        log.streaming(StatusCode::OK.as_u16());
        log.head_ready();
        let body = Translated {
            pending: Some(self.first),
            chunks: self.chunks,
            aborted: Box::pin(state.aborted()),
            ended: false,
            log,
            _in_flight: in_flight,
        };
        sse_reply(body, &self.headers)
    }
}

struct Translated<S> {
    /// The first chunk, read before the reply started.
    pending: Option<Bytes>,
    chunks: ChunkStream<S>,
    /// The shutdown grace period ran out.
    aborted: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    ended: bool,
    log: RequestLog,
    _in_flight: InFlight,
}

impl<S> Translated<S>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    fn next_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = self.pending.take() {
            self.log.first_byte();
            return Poll::Ready(Some(first));
        }
        if self.aborted.as_mut().poll(cx).is_ready() {
            return self.fail(
                StreamEnd::Shutdown,
                "the proxy is shutting down",
                "server_error",
            );
        }
        match ready!(self.chunks.poll_next_unpin(cx)) {
            // An error event also comes as a chunk; the stream ends after.
            Some(Ok(chunk)) => Poll::Ready(Some(chunk)),
            Some(Err(error)) => {
                let how = match error {
                    Error::Timeout { .. } => StreamEnd::Timeout,
                    _ => StreamEnd::Truncated,
                };
                self.fail(how, &error.to_string(), "api_error")
            }
            None => {
                let how = if self.chunks.upstream_error() {
                    StreamEnd::UpstreamError
                } else {
                    StreamEnd::Complete
                };
                self.end(how);
                Poll::Ready(None)
            }
        }
    }

    /// Ends the stream with one error chunk.
    fn fail(&mut self, how: StreamEnd, message: &str, kind: &str) -> Poll<Option<Bytes>> {
        self.end(how);
        Poll::Ready(Some(compat::error_event(message, kind)))
    }
}

impl<S> Translated<S> {
    /// Marks the stream over and writes its record.
    fn end(&mut self, how: StreamEnd) {
        self.ended = true;
        let usage = self.chunks.usage();
        self.log.stream_ended(how, usage);
    }
}

impl<S> Drop for Translated<S> {
    fn drop(&mut self) {
        if !self.ended {
            // A client may hang up as soon as it has `[DONE]` (OpenAI's
            // Python SDK does), while the upstream's last bytes are read.
            let how = if self.chunks.finished() {
                StreamEnd::Complete
            } else {
                StreamEnd::ClientClosed
            };
            self.end(how);
        }
    }
}

impl<S> Stream for Translated<S>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.next_chunk(cx).map(|chunk| chunk.map(Ok))
    }
}
