//! Streaming replies: upstream SSE bytes go to the client exactly as
//! received, chunk by chunk, with no parsing on the way. A task pumps them
//! through a small bounded channel so that a client that stops reading
//! cannot hold the upstream connection forever, and so that a failure can
//! be reported in the provider's own error format.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::errors::insert_passthrough;
use super::state::{AppState, InFlight};
use crate::error::Error;
use crate::providers::{ChatProvider, StreamFault, StreamTail, UpstreamResponse};

/// Chunks buffered for a slow client; past this the pump waits up to the
/// timeout for the client, then ends the stream.
const BUFFERED_CHUNKS: usize = 32;

/// Waits for the first upstream chunk (so that a failure before any byte
/// still gets a proper status, 502 or 504), then answers 200 and pumps the
/// rest as it arrives.
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
    let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
    let gave_up = Arc::new(AtomicBool::new(false));
    let pump = Pump {
        provider,
        tx,
        gave_up: gave_up.clone(),
        client_timeout: state.upstream.settings().timeout,
        _in_flight: in_flight,
    };
    tokio::spawn(pump.run(first, chunks, state.aborted()));

    let mut reply = warp::reply::stream(ChannelBody { rx, gave_up }).into_response();
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

struct Pump {
    provider: &'static dyn ChatProvider,
    tx: mpsc::Sender<Bytes>,
    /// Set when the client stopped reading and the pump gave up on it.
    gave_up: Arc<AtomicBool>,
    client_timeout: Duration,
    _in_flight: InFlight,
}

impl Pump {
    async fn run(
        self,
        first: Bytes,
        mut chunks: Pin<Box<impl Stream<Item = Result<Bytes, Error>>>>,
        aborted: impl std::future::Future<Output = ()>,
    ) {
        let provider = self.provider;
        let mut aborted = std::pin::pin!(aborted);
        let mut tail = StreamTail::default();
        tail.push(&first);
        if !self.send(first).await {
            return;
        }
        loop {
            let next = tokio::select! {
                biased;
                // The client went away: returning drops the upstream
                // response, which closes its connection.
                _ = self.tx.closed() => return,
                _ = &mut aborted => {
                    self.fail(StreamFault::ShuttingDown, "the proxy is shutting down").await;
                    return;
                }
                next = chunks.next() => next,
            };
            match next {
                Some(Ok(chunk)) => {
                    tail.push(&chunk);
                    if !self.send(chunk).await {
                        return;
                    }
                }
                Some(Err(error)) => {
                    let fault = match error {
                        Error::Timeout { .. } => StreamFault::Timeout,
                        _ => StreamFault::Disconnected,
                    };
                    self.fail(fault, &error.to_string()).await;
                    return;
                }
                None => {
                    if !provider.stream_is_complete(tail.bytes()) {
                        let message = format!(
                            "{} closed the stream before its end marker",
                            provider.name()
                        );
                        self.fail(StreamFault::Disconnected, &message).await;
                    }
                    return;
                }
            }
        }
    }

    /// Sends one chunk, waiting at most the timeout for a slow client.
    async fn send(&self, chunk: Bytes) -> bool {
        match tokio::time::timeout(self.client_timeout, self.tx.send(chunk)).await {
            Ok(Ok(())) => true,
            // The client is gone.
            Ok(Err(_)) => false,
            Err(_) => {
                self.gave_up.store(true, Ordering::Release);
                false
            }
        }
    }

    /// Ends the stream with one event in the provider's error format.
    async fn fail(&self, fault: StreamFault, message: &str) {
        self.send(self.provider.error_event(fault, message)).await;
    }
}

/// The response body: whatever the pump sends, in order. If the pump gave
/// up on a client that stopped reading, the body ends with an error, so the
/// connection is cut instead of the truncated stream looking complete.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    gave_up: Arc<AtomicBool>,
}

impl Stream for ChannelBody {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|chunk| match chunk {
            Some(chunk) => Some(Ok(chunk)),
            None if self.gave_up.load(Ordering::Acquire) => Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            None => None,
        })
    }
}
