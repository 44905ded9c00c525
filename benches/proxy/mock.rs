//! The mock upstream: OpenAI and Anthropic shapes, stream and non-stream.
//! Non-stream bodies are the recorded fixtures byte for byte; streams are
//! cut from the recorded fixture streams, with a stamp of the write time in
//! every chunk.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::clock::{find, now_ns, push_stamp, STAMP_LEN};
use crate::endpoint::Provider;
use crate::fixtures::fixture;

/// The response headers the fixtures' README lists for a real reply (a
/// fixture file holds a body only).
const OPENAI_HEADERS: [(&str, &str); 12] = [
    ("openai-organization", "user-q2mzk7yt8vhn3lbwx5rcjd1p"),
    ("openai-processing-ms", "412"),
    ("openai-project", "proj_Hq3VtZ8mK1xLw5RbN7cYpD2s"),
    ("openai-version", "2020-10-01"),
    ("x-request-id", "req_5b1e9c0d4a7f4e2b9c3d8e6f1a2b7c40"),
    ("x-ratelimit-limit-requests", "500"),
    ("x-ratelimit-limit-tokens", "200000"),
    ("x-ratelimit-remaining-requests", "499"),
    ("x-ratelimit-remaining-tokens", "199981"),
    ("x-ratelimit-reset-requests", "120ms"),
    ("x-ratelimit-reset-tokens", "5ms"),
    ("access-control-expose-headers", "X-Request-ID"),
];

const ANTHROPIC_HEADERS: [(&str, &str); 14] = [
    ("request-id", "req_011CVg6Pq2WmX8tLb4ZrK9Nd"),
    (
        "anthropic-organization-id",
        "5f2c9a1e-7b3d-4e8f-9a6c-2d1b0e4f7a93",
    ),
    ("anthropic-ratelimit-requests-limit", "1000"),
    ("anthropic-ratelimit-requests-remaining", "999"),
    ("anthropic-ratelimit-requests-reset", "2025-11-26T12:40:13Z"),
    ("anthropic-ratelimit-input-tokens-limit", "80000"),
    ("anthropic-ratelimit-input-tokens-remaining", "80000"),
    (
        "anthropic-ratelimit-input-tokens-reset",
        "2025-11-26T12:40:12Z",
    ),
    ("anthropic-ratelimit-output-tokens-limit", "16000"),
    ("anthropic-ratelimit-output-tokens-remaining", "16000"),
    (
        "anthropic-ratelimit-output-tokens-reset",
        "2025-11-26T12:40:13Z",
    ),
    ("anthropic-ratelimit-tokens-limit", "96000"),
    ("anthropic-ratelimit-tokens-remaining", "96000"),
    ("anthropic-ratelimit-tokens-reset", "2025-11-26T12:40:12Z"),
];

/// What the mock answers, read from the fixtures once, before it starts.
struct Replies {
    /// Leaked once so that every reply is a `Bytes::from_static`, with no
    /// reference count shared between the mock's threads.
    openai_chat: &'static [u8],
    anthropic_message: &'static [u8],
    openai_stream: StreamShape,
    anthropic_stream: StreamShape,
}

static REPLIES: OnceLock<Replies> = OnceLock::new();

fn replies() -> &'static Replies {
    REPLIES.get_or_init(|| {
        let leak = |name: &str| &*Box::leak(fixture(name).into_boxed_slice());
        Replies {
            openai_chat: leak("openai-chat.json"),
            anthropic_message: leak("anthropic-messages.json"),
            openai_stream: StreamShape::openai(),
            anthropic_stream: StreamShape::anthropic(),
        }
    })
}

/// A provider's stream, cut from its recorded fixture: the opening events
/// as chunk 0, one text delta for every further chunk, and the closing
/// events appended to the last one. Each chunk carries one stamp where the
/// fixture has a value nothing depends on: OpenAI's `obfuscation` padding,
/// Anthropic's message id and the end of its delta's text.
struct StreamShape {
    /// Chunk 0, before and after the stamp.
    first: (String, String),
    /// Every further chunk, before and after the stamp.
    delta: (String, String),
    /// What ends the stream, after the last chunk.
    end: String,
}

impl StreamShape {
    fn openai() -> Self {
        let events = events("openai-stream.sse");
        let padding = "\"obfuscation\":\"";
        StreamShape {
            first: cut(&events[0], padding, false),
            delta: cut(&events[1], padding, false),
            // The `finish_reason` chunk and `[DONE]`.
            end: events[events.len() - 2..].concat(),
        }
    }

    fn anthropic() -> Self {
        let events = events("anthropic-stream.sse");
        // message_start, content_block_start and ping come together.
        let start = events[..3].concat();
        StreamShape {
            first: cut(&start, "\"id\":\"msg_", false),
            delta: cut(&events[3], "\"text\":\"", true),
            // content_block_stop, message_delta, message_stop.
            end: events[events.len() - 3..].concat(),
        }
    }

    /// Chunk `i` of `n`, stamped with `ns`.
    fn chunk(&self, i: usize, n: usize, ns: u64) -> String {
        let (before, after) = if i == 0 { &self.first } else { &self.delta };
        let last = i + 1 == n;
        let end = if last { self.end.as_str() } else { "" };
        let mut out = String::with_capacity(before.len() + STAMP_LEN + after.len() + end.len());
        out.push_str(before);
        push_stamp(&mut out, ns);
        out.push_str(after);
        out.push_str(end);
        out
    }
}

/// The events of a fixture stream, each with its closing blank line.
fn events(name: &str) -> Vec<String> {
    let text = String::from_utf8(fixture(name)).expect("a UTF-8 fixture");
    text.split_inclusive("\n\n").map(str::to_owned).collect()
}

/// `event` cut where the stamp goes: after the string value that follows
/// `marker` when `keep_value`, else in its place.
fn cut(event: &str, marker: &str, keep_value: bool) -> (String, String) {
    let start = event
        .find(marker)
        .expect("the stamp's place in the fixture")
        + marker.len();
    let end = start + event[start..].find('"').expect("a closing quote");
    let before = if keep_value { end } else { start };
    (event[..before].to_owned(), event[end..].to_owned())
}

/// The last event of `provider`'s stream, as the client must receive it.
pub fn stream_end(provider: Provider) -> &'static str {
    let shape = match provider {
        Provider::OpenAi => &replies().openai_stream,
        Provider::Anthropic => &replies().anthropic_stream,
    };
    let end = shape.end.trim_end_matches("\n\n");
    let from = end.rfind("\n\n").map_or(0, |at| at + 2);
    &shape.end[from..]
}

type MockBody =
    Either<Full<Bytes>, StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>>;

/// Starts the mock upstream on a free loopback port.
pub async fn start() -> Result<SocketAddr> {
    replies();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(reply);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn reply(request: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
    let provider = match request.uri().path() {
        "/v1/chat/completions" => Some(Provider::OpenAi),
        "/v1/messages" => Some(Provider::Anthropic),
        _ => None,
    };
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let Some(provider) = provider else {
        let mut reply = Response::new(Either::Left(Full::new(Bytes::from_static(b"{}"))));
        *reply.status_mut() = StatusCode::NOT_FOUND;
        return Ok(reply);
    };
    let replies = replies();
    let streaming = find(&body, b"\"stream\":true").is_some();
    let mut reply = if streaming {
        // The stream's shape comes with the request: model "bench-c<chunks>-i<ms>".
        let (chunks, interval) = stream_plan(&body).unwrap_or((20, Duration::from_millis(50)));
        let shape = match provider {
            Provider::OpenAi => &replies.openai_stream,
            Provider::Anthropic => &replies.anthropic_stream,
        };
        let start = tokio::time::Instant::now();
        // The state holds the open-stream guard: dropped with the body.
        let state = (0usize, OpenStream::new());
        let chunks_stream = futures::stream::unfold(state, move |(i, open)| async move {
            if i >= chunks {
                return None;
            }
            if i > 0 {
                tokio::time::sleep_until(start + interval * i as u32).await;
            }
            // Stamped just before hyper writes it to the socket.
            let chunk = shape.chunk(i, chunks, now_ns());
            Some((Ok(Frame::data(Bytes::from(chunk))), (i + 1, open)))
        });
        let mut reply = Response::new(Either::Right(StreamBody::new(chunks_stream.boxed())));
        reply.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        reply
    } else {
        let body = match provider {
            Provider::OpenAi => replies.openai_chat,
            Provider::Anthropic => replies.anthropic_message,
        };
        let mut reply = Response::new(Either::Left(Full::new(Bytes::from_static(body))));
        reply
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        reply
    };
    let headers: &[(&str, &str)] = match provider {
        Provider::OpenAi => &OPENAI_HEADERS,
        Provider::Anthropic => &ANTHROPIC_HEADERS,
    };
    for (name, value) in headers {
        reply
            .headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
    Ok(reply)
}

/// Streams the mock is serving right now (ended or dropped ones are not).
static MOCK_STREAMS: AtomicUsize = AtomicUsize::new(0);

struct OpenStream;

impl OpenStream {
    fn new() -> Arc<OpenStream> {
        MOCK_STREAMS.fetch_add(1, Ordering::AcqRel);
        Arc::new(OpenStream)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        MOCK_STREAMS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits (at most `limit`) until the mock serves no stream, so that the
/// proxy has let go of the previous round's before the next one.
pub fn wait_for_streams_to_close(limit: Duration) -> bool {
    wait_for_open_streams_at_most(0, limit)
}

pub fn wait_for_open_streams_at_most(open: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while MOCK_STREAMS.load(Ordering::Acquire) > open {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// `(chunks, interval)` from a model named `bench-c<chunks>-i<ms>`.
fn stream_plan(body: &[u8]) -> Option<(usize, Duration)> {
    let at = find(body, b"\"model\":\"bench-c")? + b"\"model\":\"bench-c".len();
    let rest = std::str::from_utf8(&body[at..]).ok()?;
    let end = rest.find('"')?;
    let (chunks, ms) = rest[..end].split_once("-i")?;
    Some((
        chunks.parse().ok()?,
        Duration::from_millis(ms.parse().ok()?),
    ))
}
