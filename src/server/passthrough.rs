//! Streaming replies: upstream SSE bytes go to the client exactly as
//! received, chunk by chunk, with no parsing on the way. A task pumps them
//! through a small bounded channel so that a client that stops reading
//! cannot hold the upstream connection forever, and so that a failure can
//! be reported in the provider's own error format.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::state::{AppState, InFlight};
use crate::error::Error;
use crate::providers::{ChatProvider, StreamFault, StreamTail, UpstreamResponse};

/// Chunks buffered for a slow client; past this the pump waits up to the
/// timeout for the client, then ends the stream.
const BUFFERED_CHUNKS: usize = 32;

pub fn stream_reply(upstream: UpstreamResponse, state: &AppState, in_flight: InFlight) -> Response {
    let headers = upstream.passthrough_headers();
    let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
    let aborted = state.aborted();
    let client_timeout = state.upstream.settings().timeout;
    tokio::spawn(pump(upstream, tx, aborted, client_timeout, in_flight));

    let mut reply = warp::reply::stream(ChannelBody(rx)).into_response();
    *reply.status_mut() = StatusCode::OK;
    let h = reply.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    for (name, value) in headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            h.insert(name, value);
        }
    }
    reply
}

async fn pump(
    upstream: UpstreamResponse,
    tx: mpsc::Sender<Bytes>,
    aborted: impl std::future::Future<Output = ()>,
    client_timeout: Duration,
    _in_flight: InFlight,
) {
    let provider = upstream.provider();
    let mut bytes = std::pin::pin!(upstream.into_bytes());
    let mut aborted = std::pin::pin!(aborted);
    let mut tail = StreamTail::default();
    loop {
        let next = tokio::select! {
            biased;
            // The client went away: returning drops the upstream response,
            // which closes its connection.
            _ = tx.closed() => return,
            _ = &mut aborted => {
                let event = provider.error_event(StreamFault::ShuttingDown, "the proxy is shutting down");
                send(&tx, event, client_timeout).await;
                return;
            }
            next = bytes.next() => next,
        };
        match next {
            Some(Ok(chunk)) => {
                tail.push(&chunk);
                if !send(&tx, chunk, client_timeout).await {
                    return;
                }
            }
            Some(Err(error)) => {
                send(&tx, fault_event(provider, &error), client_timeout).await;
                return;
            }
            None => {
                if !provider.stream_is_complete(tail.bytes()) {
                    let message = format!(
                        "{} closed the stream before its end marker",
                        provider.name()
                    );
                    let event = provider.error_event(StreamFault::Disconnected, &message);
                    send(&tx, event, client_timeout).await;
                }
                return;
            }
        }
    }
}

/// Sends one chunk, waiting at most `timeout` for a slow client.
async fn send(tx: &mpsc::Sender<Bytes>, chunk: Bytes, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tx.send(chunk)).await,
        Ok(Ok(()))
    )
}

fn fault_event(provider: &dyn ChatProvider, error: &Error) -> Bytes {
    let fault = match error {
        Error::Timeout { .. } => StreamFault::Timeout,
        _ => StreamFault::Disconnected,
    };
    provider.error_event(fault, &error.to_string())
}

/// The response body: whatever the pump sends, in order.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Stream for ChannelBody {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
}
