//! Load benchmark of `llmproxy serve`: `cargo bench --bench proxy`.
//!
//! One process holds a fast mock upstream (OpenAI and Anthropic shapes,
//! stream and non-stream, fixture-sized bodies) and a lean hyper HTTP/1.1
//! load client; the release `llmproxy` binary (built by cargo for this bench
//! target, `CARGO_BIN_EXE_llmproxy`) runs as a separate process in front of
//! the mock. Every figure is measured direct-to-mock and through the proxy in
//! the same run, repeated (median of 3), and printed as a table with the
//! targets; the raw numbers go to `<target dir>/bench-results/proxy.json`.
//!
//! Loopback only, offline, about 90 s. Timing targets live here, never in
//! `cargo test`. `-- --quick` runs shorter, single repetitions (for
//! development); `BENCH_PROXY_BIN=path` benchmarks another binary;
//! `BENCH_PROXY_LOG=file` keeps the proxy's log (default: discarded);
//! `BENCH_RUST_LOG=filter` sets the proxy's `RUST_LOG` (default: unset, so
//! the proxy's own default, `info`, is measured).

use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1 as client_http1;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Barrier, Mutex, Notify};

// ---------------------------------------------------------------------------
// Settings of one run
// ---------------------------------------------------------------------------

struct Plan {
    reps: usize,
    warmup: Duration,
    measure: Duration,
    /// Closed-loop workers (one keep-alive connection each).
    concurrency: usize,
    /// Open-loop request rate.
    rate: u64,
    /// Connections serving the open-loop requests.
    rate_connections: usize,
    streams: usize,
    chunks: usize,
    chunk_interval: Duration,
    open_streams: usize,
}

impl Plan {
    fn full() -> Self {
        Plan {
            reps: 3,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(3),
            concurrency: 64,
            rate: 1000,
            rate_connections: 32,
            streams: 200,
            chunks: 20,
            chunk_interval: Duration::from_millis(50),
            open_streams: 1000,
        }
    }

    fn quick() -> Self {
        Plan {
            reps: 1,
            measure: Duration::from_secs(1),
            ..Self::full()
        }
    }
}

/// Proxy settings for the whole run (the defaults, 100 in flight and 20
/// idle per host, are too small for this load).
const PROXY_ENV: [(&str, &str); 4] = [
    ("HTTP_MAX_CONNECTIONS", "2000"),
    ("HTTP_MAX_KEEPALIVE_CONNECTIONS", "256"),
    ("HTTP_TIMEOUT_SECONDS", "30"),
    ("SHUTDOWN_GRACE_SECONDS", "1"),
];

// ---------------------------------------------------------------------------
// A shared clock: the mock stamps each stream chunk with it, the client
// (same process) reads it back.
// ---------------------------------------------------------------------------

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The stamp in each chunk: `@T` and 20 digits of nanoseconds since EPOCH.
const STAMP: &[u8] = b"@T";
const STAMP_DIGITS: usize = 20;

fn stamp(ns: u64) -> String {
    format!("@T{ns:020}")
}

// ---------------------------------------------------------------------------
// The mock upstream
// ---------------------------------------------------------------------------

/// `openai-chat.json` from the shared fixtures, byte for byte (837 bytes).
const OPENAI_CHAT: &str = r#"{
  "id": "chatcmpl-CgT4kq8ZbN2xWv7LmR5sYd1JpFa9E",
  "object": "chat.completion",
  "created": 1764160812,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I help you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 9,
    "total_tokens": 28,
    "prompt_tokens_details": {
      "cached_tokens": 0,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_7c2d41b9e3"
}"#;

/// `anthropic-messages.json` from the shared fixtures (438 bytes).
const ANTHROPIC_MESSAGE: &str = r#"{"id":"msg_01HkR7mQ2vXsT9bLpWd4cYzN","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hello! How can I help you today?"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":14,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":12,"service_tier":"standard"}}"#;

/// The response headers the fixtures' README lists for a real reply.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    fn upstream_path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/v1/chat/completions",
            Provider::Anthropic => "/v1/messages",
        }
    }

    /// Chunk `i` of `n` of a stream in this provider's SSE shape (sizes like
    /// the fixtures': ~330 bytes for OpenAI, ~150 for an Anthropic delta),
    /// stamped with the time it is written.
    fn chunk(self, i: usize, n: usize, ns: u64) -> String {
        let t = stamp(ns);
        let mut out = match (self, i) {
            (Provider::OpenAi, 0) => format!(
                "data: {{\"id\":\"chatcmpl-CgT5Aw3nLq0ZrX8bVe2KmT6yHd4Ps\",\"object\":\"chat.completion.chunk\",\"created\":1764160845,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_7c2d41b9e3\",\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}},\"logprobs\":null,\"finish_reason\":null}}],\"obfuscation\":\"{t}\"}}\n\n"
            ),
            (Provider::OpenAi, _) => format!(
                "data: {{\"id\":\"chatcmpl-CgT5Aw3nLq0ZrX8bVe2KmT6yHd4Ps\",\"object\":\"chat.completion.chunk\",\"created\":1764160845,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_7c2d41b9e3\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" token\"}},\"logprobs\":null,\"finish_reason\":null}}],\"obfuscation\":\"{t}\"}}\n\n"
            ),
            (Provider::Anthropic, 0) => format!(
                "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"model\":\"claude-sonnet-4-5-20250929\",\"id\":\"msg_{t}\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":14,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1,\"service_tier\":\"standard\"}}}}}}\n\nevent: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\n"
            ),
            (Provider::Anthropic, _) => format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" token{t}\"}}}}\n\n"
            ),
        };
        if i + 1 == n {
            out.push_str(match self {
                Provider::OpenAi => "data: {\"id\":\"chatcmpl-CgT5Aw3nLq0ZrX8bVe2KmT6yHd4Ps\",\"object\":\"chat.completion.chunk\",\"created\":1764160845,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_7c2d41b9e3\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"obfuscation\":\"mZ4qW8\"}\n\ndata: [DONE]\n\n",
                Provider::Anthropic => "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":14,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":12}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            });
        }
        out
    }
}

type MockBody =
    Either<Full<Bytes>, StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>>;

/// Starts the mock upstream on a free loopback port.
async fn start_mock() -> Result<SocketAddr> {
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
                let service = hyper::service::service_fn(mock_reply);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn mock_reply(request: Request<Incoming>) -> Result<Response<MockBody>, Infallible> {
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
    let streaming = find(&body, b"\"stream\":true").is_some();
    let mut reply = if streaming {
        // The stream's shape comes with the request: model "bench-c<chunks>-i<ms>".
        let (chunks, interval) = stream_plan(&body).unwrap_or((20, Duration::from_millis(50)));
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
            let chunk = provider.chunk(i, chunks, now_ns());
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
            Provider::OpenAi => OPENAI_CHAT,
            Provider::Anthropic => ANTHROPIC_MESSAGE,
        };
        let mut reply = Response::new(Either::Left(Full::new(Bytes::from_static(body.as_bytes()))));
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
fn wait_for_streams_to_close(limit: Duration) -> bool {
    wait_for_open_streams_at_most(0, limit)
}

fn wait_for_open_streams_at_most(open: usize, limit: Duration) -> bool {
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

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------
// What the client sends
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Client -> mock.
    Direct,
    /// Client -> byte relay process -> mock.
    Relay,
    /// Client -> llmproxy -> mock.
    Proxied,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Direct => "direct",
            Side::Relay => "relay",
            Side::Proxied => "proxied",
        }
    }
}

struct Addrs {
    mock: SocketAddr,
    proxy: SocketAddr,
    relay: SocketAddr,
}

/// One kind of request, ready to send many times.
struct Endpoint {
    addr: SocketAddr,
    host: HeaderValue,
    path: &'static str,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Bytes,
}

impl Endpoint {
    /// Direct requests are what llmproxy itself sends upstream (same body
    /// shape and headers), so both sides do the same work at the mock.
    fn new(
        side: Side,
        provider: Provider,
        addrs: &Addrs,
        stream: Option<(usize, Duration)>,
    ) -> Self {
        let (proxy, mock) = (addrs.proxy, addrs.mock);
        let upstream = if side == Side::Relay {
            addrs.relay
        } else {
            mock
        };
        let model = match (stream, provider) {
            (Some((chunks, interval)), _) => {
                format!("bench-c{chunks}-i{}", interval.as_millis())
            }
            (None, Provider::OpenAi) => "gpt-4o-mini".to_owned(),
            (None, Provider::Anthropic) => "claude-sonnet-4-5-20250929".to_owned(),
        };
        let system = "You are a helpful assistant.";
        let user = "Hello! Please answer in one short, friendly sentence.";
        let stream_field = if stream.is_some() {
            ",\"stream\":true"
        } else {
            ""
        };
        let (addr, path, headers, body) = match (side, provider) {
            (Side::Proxied, _) => (
                proxy,
                match provider {
                    Provider::OpenAi => "/v1/chat/openai",
                    Provider::Anthropic => "/v1/chat/anthropic",
                },
                vec![
                    ("x-api-key", HeaderValue::from_static("sk-bench-0123456789abcdef")),
                    (CONTENT_TYPE.as_str(), HeaderValue::from_static("application/json")),
                ],
                format!(
                    "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"system\",\"content\":\"{system}\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}]{stream_field},\"max_tokens\":256,\"temperature\":0.7}}"
                ),
            ),
            (_, Provider::OpenAi) => (
                upstream,
                provider.upstream_path(),
                vec![
                    ("authorization", HeaderValue::from_static("Bearer sk-bench-0123456789abcdef")),
                    (CONTENT_TYPE.as_str(), HeaderValue::from_static("application/json")),
                ],
                format!(
                    "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"system\",\"content\":\"{system}\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}]{stream_field},\"max_tokens\":256,\"temperature\":0.7}}"
                ),
            ),
            (_, Provider::Anthropic) => (
                upstream,
                provider.upstream_path(),
                vec![
                    ("x-api-key", HeaderValue::from_static("sk-bench-0123456789abcdef")),
                    ("anthropic-version", HeaderValue::from_static("2023-06-01")),
                    (CONTENT_TYPE.as_str(), HeaderValue::from_static("application/json")),
                ],
                format!(
                    "{{\"model\":\"{model}\",\"max_tokens\":256,\"system\":\"{system}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{user}\"}}]{stream_field},\"temperature\":0.7}}"
                ),
            ),
        };
        Endpoint {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a header value"),
            path,
            headers,
            body: Bytes::from(body),
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_static(self.path);
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        for (name, value) in &self.headers {
            headers.insert(*name, value.clone());
        }
        request
    }
}

// ---------------------------------------------------------------------------
// The load client: one hyper HTTP/1.1 connection per worker, driven in the
// worker's own task (no extra task per connection, so no extra wake-ups).
// ---------------------------------------------------------------------------

struct Conn {
    sender: client_http1::SendRequest<Full<Bytes>>,
    driver: Pin<Box<client_http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, driver) = client_http1::handshake(TokioIo::new(stream)).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
        })
    }

    /// Runs `work` while driving the connection's I/O in the same task.
    async fn drive<F: Future>(
        driver: &mut Pin<Box<client_http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>,
        work: F,
    ) -> Result<F::Output> {
        tokio::select! {
            biased;
            out = work => Ok(out),
            end = driver.as_mut() => Err(anyhow!("connection closed: {end:?}")),
        }
    }

    /// Sends `request` and reads the whole reply.
    async fn call(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        let Conn { sender, driver } = self;
        Self::drive(driver, async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await?
        .map_err(Into::into)
    }

    /// Sends `request` and returns the response head; read the body with
    /// [`Conn::frame`].
    async fn start(&mut self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        let Conn { sender, driver } = self;
        Self::drive(driver, async {
            sender.ready().await?;
            sender.send_request(request).await
        })
        .await?
        .map_err(Into::into)
    }

    /// The next data bytes of `body`, `None` at its end.
    async fn frame(&mut self, body: &mut Incoming) -> Result<Option<Bytes>> {
        loop {
            let frame = Self::drive(&mut self.driver, body.frame()).await?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Phase: closed-loop throughput
// ---------------------------------------------------------------------------

struct Throughput {
    rps: f64,
    ok: u64,
    errors: u64,
    /// CPU time per request over the measured window: the hop's (proxy or
    /// relay), and this process's (load client + mock upstream).
    hop_cpu_us: f64,
    bench_cpu_us: f64,
}

/// User + system CPU seconds of a whole process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // After the `(comm)`: utime and stime are the 12th and 13th fields.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

async fn throughput(
    endpoint: Arc<Endpoint>,
    plan: &Plan,
    hop_pid: Option<u32>,
) -> Result<Throughput> {
    let barrier = Arc::new(Barrier::new(plan.concurrency + 1));
    let mut workers = Vec::new();
    let (warmup, measure) = (plan.warmup, plan.measure);
    for _ in 0..plan.concurrency {
        let endpoint = endpoint.clone();
        let barrier = barrier.clone();
        let mut conn = Conn::open(endpoint.addr).await?;
        workers.push(tokio::spawn(async move {
            barrier.wait().await;
            let begin = Instant::now() + warmup;
            let end = begin + measure;
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < end {
                match conn.call(endpoint.request()).await {
                    Ok((StatusCode::OK, body)) if body.len() > 64 => {
                        if Instant::now() >= begin {
                            ok += 1;
                        }
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match Conn::open(endpoint.addr).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            (ok, errors)
        }));
    }
    barrier.wait().await;
    tokio::time::sleep(warmup).await;
    let me = std::process::id();
    let hop_cpu_now = || hop_pid.map_or(0.0, cpu_seconds);
    let (hop_cpu, bench_cpu) = (hop_cpu_now(), cpu_seconds(me));
    tokio::time::sleep(measure).await;
    let (hop_cpu, bench_cpu) = (hop_cpu_now() - hop_cpu, cpu_seconds(me) - bench_cpu);
    let (mut ok, mut errors) = (0, 0);
    for worker in workers {
        let (o, e) = worker.await?;
        ok += o;
        errors += e;
    }
    let per_request = |cpu: f64| cpu * 1e6 / ok.max(1) as f64;
    Ok(Throughput {
        rps: ok as f64 / measure.as_secs_f64(),
        ok,
        errors,
        hop_cpu_us: per_request(hop_cpu),
        bench_cpu_us: per_request(bench_cpu),
    })
}

// ---------------------------------------------------------------------------
// Phase: latency at a fixed open-loop rate
// ---------------------------------------------------------------------------

struct Latency {
    /// Sorted, in nanoseconds.
    samples: Vec<u64>,
    errors: u64,
    achieved_rps: f64,
}

/// Sends `plan.rate` requests a second on schedule, whether or not earlier
/// ones have finished. A request's latency runs from when the scheduler
/// released it (so time spent queued for a free connection counts, and
/// timer lateness of the scheduler itself does not) to the end of its body.
async fn latency(endpoint: Arc<Endpoint>, plan: &Plan) -> Result<Latency> {
    let total = ((plan.warmup + plan.measure).as_secs_f64() * plan.rate as f64) as usize;
    let skip = (plan.warmup.as_secs_f64() * plan.rate as f64) as usize;
    let (tx, rx) = mpsc::channel::<(usize, u64)>(total);
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..plan.rate_connections {
        let endpoint = endpoint.clone();
        let rx = rx.clone();
        let mut conn = Conn::open(endpoint.addr).await?;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            loop {
                let job = rx.lock().await.recv().await;
                let Some((index, released)) = job else { break };
                match conn.call(endpoint.request()).await {
                    Ok((StatusCode::OK, body)) if body.len() > 64 => {
                        if index >= skip {
                            samples.push(now_ns() - released);
                        }
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        if let Ok(fresh) = Conn::open(endpoint.addr).await {
                            conn = fresh;
                        }
                    }
                }
            }
            (samples, errors)
        }));
    }
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / plan.rate as f64);
    let mut measured_from = 0;
    for index in 0..total {
        let due = start + period * index as u32;
        if tokio::time::Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        if index == skip {
            measured_from = now_ns();
        }
        tx.send((index, now_ns())).await?;
    }
    let measured_ns = now_ns().saturating_sub(measured_from).max(1);
    drop(tx);
    let mut samples = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (s, e) = worker.await?;
        samples.extend(s);
        errors += e;
    }
    samples.sort_unstable();
    Ok(Latency {
        achieved_rps: (total - skip) as f64 / (measured_ns as f64 / 1e9),
        samples,
        errors,
    })
}

// ---------------------------------------------------------------------------
// Phase: streams (time to first byte, per-chunk delay)
// ---------------------------------------------------------------------------

struct Streams {
    ttfb: Vec<u64>,
    delays: Vec<u64>,
    errors: u64,
}

/// Finds every complete stamp in `pending` (appended to as frames arrive),
/// records `now - stamp` for each, and keeps only what might be the start of
/// a stamp split across frames.
fn take_stamps(pending: &mut Vec<u8>, now: u64, delays: &mut Vec<u64>) -> usize {
    let mut found = 0;
    let mut consumed = 0;
    let mut from = 0;
    while let Some(at) = find(&pending[from..], STAMP).map(|p| p + from) {
        let digits = at + STAMP.len();
        if pending.len() < digits + STAMP_DIGITS {
            break;
        }
        let text = std::str::from_utf8(&pending[digits..digits + STAMP_DIGITS]).unwrap_or("");
        if let Ok(written) = text.parse::<u64>() {
            delays.push(now.saturating_sub(written));
            found += 1;
        }
        from = digits + STAMP_DIGITS;
        consumed = from;
    }
    let keep_from = consumed.max(pending.len().saturating_sub(STAMP.len() + STAMP_DIGITS));
    pending.drain(..keep_from);
    found
}

/// `count` concurrent streams (one connection each, opened beforehand),
/// started `stagger` apart, each read to its end.
async fn streams(
    endpoint: Arc<Endpoint>,
    count: usize,
    chunks: usize,
    stagger: Duration,
    offset: Duration,
) -> Result<Streams> {
    let barrier = Arc::new(Barrier::new(count + 1));
    let mut tasks = Vec::new();
    for i in 0..count {
        let endpoint = endpoint.clone();
        let barrier = barrier.clone();
        let mut conn = Conn::open(endpoint.addr).await?;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tokio::time::sleep(offset + stagger * i as u32).await;
            let sent = now_ns();
            let mut ttfb = None;
            let mut delays = Vec::with_capacity(chunks);
            let mut pending = Vec::new();
            let mut stamps = 0;
            let outcome: Result<()> = async {
                let response = conn.start(endpoint.request()).await?;
                if response.status() != StatusCode::OK {
                    bail!("status {}", response.status());
                }
                let mut body = response.into_body();
                while let Some(data) = conn.frame(&mut body).await? {
                    let now = now_ns();
                    ttfb.get_or_insert(now - sent);
                    pending.extend_from_slice(&data);
                    stamps += take_stamps(&mut pending, now, &mut delays);
                }
                if stamps != chunks {
                    bail!("{stamps} of {chunks} chunks arrived");
                }
                Ok(())
            }
            .await;
            (ttfb, delays, outcome.is_err())
        }));
    }
    barrier.wait().await;
    let mut result = Streams {
        ttfb: Vec::new(),
        delays: Vec::new(),
        errors: 0,
    };
    for task in tasks {
        let (ttfb, delays, failed) = task.await?;
        result.ttfb.extend(ttfb);
        result.delays.extend(delays);
        result.errors += failed as u64;
    }
    result.ttfb.sort_unstable();
    result.delays.sort_unstable();
    Ok(result)
}

// ---------------------------------------------------------------------------
// Phase: many open streams (proxy memory)
// ---------------------------------------------------------------------------

struct Held {
    rss_kib: u64,
    opened: usize,
    seconds_to_open: f64,
}

/// Opens `count` slow streams through the proxy, waits until each has its
/// first chunk, samples the proxy's RSS while they are all open, then
/// closes them.
async fn hold_streams(endpoint: Arc<Endpoint>, count: usize, pid: u32) -> Result<Held> {
    let ready = Arc::new(AtomicUsize::new(0));
    let ready_signal = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..count {
        let endpoint = endpoint.clone();
        let (ready, ready_signal, release) = (ready.clone(), ready_signal.clone(), release.clone());
        let connecting = connecting.clone();
        tasks.push(tokio::spawn(async move {
            let released = release.notified();
            let mut released = std::pin::pin!(released);
            released.as_mut().enable();
            let permit = connecting.acquire_owned().await;
            let opened = || {
                drop(permit);
                ready.fetch_add(1, Ordering::AcqRel);
                ready_signal.notify_one();
            };
            let outcome = hold_stream(&endpoint, opened, released.as_mut()).await;
            if outcome.is_err() {
                ready_signal.notify_one();
            }
            outcome.is_ok()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::Acquire) < count && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), ready_signal.notified()).await;
        if tasks.iter().all(|t| !t.is_finished()) {
            continue;
        }
        // Some failed: stop waiting for them.
        let finished = tasks.iter().filter(|t| t.is_finished()).count();
        if ready.load(Ordering::Acquire) + finished >= count {
            break;
        }
    }
    let seconds_to_open = started.elapsed().as_secs_f64();
    let opened = ready.load(Ordering::Acquire);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rss_kib = 0;
    for _ in 0..5 {
        rss_kib = rss_kib.max(proc_status_kib(pid, "VmRSS:").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    release.notify_waiters();
    for task in tasks {
        let _ = task.await;
    }
    Ok(Held {
        rss_kib,
        opened,
        seconds_to_open,
    })
}

/// Opens one slow stream through the proxy, calls `opened` once its first
/// chunk has arrived, then keeps reading (a chunk a second) until `release`
/// resolves.
async fn hold_stream(
    endpoint: &Endpoint,
    opened: impl FnOnce(),
    release: impl Future<Output = ()>,
) -> Result<()> {
    let mut conn = Conn::open(endpoint.addr).await?;
    let response = conn.start(endpoint.request()).await?;
    if response.status() != StatusCode::OK {
        bail!("status {}", response.status());
    }
    let mut body = response.into_body();
    conn.frame(&mut body).await?.context("no first chunk")?;
    opened();
    let mut release = std::pin::pin!(release);
    loop {
        tokio::select! {
            _ = release.as_mut() => return Ok(()),
            frame = conn.frame(&mut body) => if frame?.is_none() { bail!("stream ended early") },
        }
    }
}

/// Holds one stream open until `release` fires, so that the proxy is never
/// idle in between (and never runs its idle trim).
async fn hold_one_stream(
    endpoint: Arc<Endpoint>,
    opened: tokio::sync::oneshot::Sender<()>,
    release: tokio::sync::oneshot::Receiver<()>,
) -> Result<()> {
    let opened = || {
        let _ = opened.send(());
    };
    let release = async {
        let _ = release.await;
    };
    hold_stream(&endpoint, opened, release).await
}

// ---------------------------------------------------------------------------
// The proxy process
// ---------------------------------------------------------------------------

struct Proxy {
    child: Child,
    addr: SocketAddr,
    startup: Duration,
}

impl Proxy {
    fn binary() -> PathBuf {
        let path = std::env::var_os("BENCH_PROXY_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_llmproxy")));
        // The proxy runs in another directory.
        std::fs::canonicalize(&path).unwrap_or(path)
    }

    /// Starts `llmproxy serve` and times process start to the first 200
    /// from `/healthz`.
    fn start(mock: SocketAddr) -> Result<Proxy> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = match std::env::var_os("BENCH_PROXY_LOG") {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::null(),
        };
        let mut command = Command::new(Self::binary());
        command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            // No `.env` from the checkout: only what is set here counts.
            .current_dir(std::env::temp_dir())
            .env("OPENAI_BASE_URL", format!("http://{mock}/v1"))
            .env("ANTHROPIC_BASE_URL", format!("http://{mock}"))
            .envs(PROXY_ENV)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(filter) = std::env::var_os("BENCH_RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("could not start {}", Self::binary().display()))?;
        loop {
            if healthz(addr) {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("llmproxy exited during start-up: {status}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("llmproxy was not healthy within 10 s");
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(Proxy {
            startup: started.elapsed(),
            child,
            addr,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:").unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM (graceful), then SIGKILL if it lingers (a profiler wrapping
        // it, see BENCH_PROXY_BIN, may need a while to write its data).
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A byte relay in its own process (this executable with `--relay`): what
/// any proxy hop costs on this machine at the least, with no HTTP work.
struct Relay {
    child: Child,
    addr: SocketAddr,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Result<Relay> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--relay", &upstream.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("could not start the relay")?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().context("relay stdout")?),
            &mut line,
        )?;
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("relay said {line:?}"))?;
        Ok(Relay { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay process: accepts on a free port (printed on stdout), copies
/// bytes both ways to `upstream`, one upstream connection per client
/// connection; exits when its stdin closes (the benchmark ended).
fn relay_main(upstream: &str) -> ! {
    let upstream: SocketAddr = upstream.parse().expect("an upstream address");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        println!("{}", listener.local_addr().expect("an address"));
        tokio::spawn(async {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
            std::process::exit(0);
        });
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = inbound.set_nodelay(true);
                let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    })
}

/// One blocking `GET /healthz`; true on a 200.
fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// Statistics and the report
// ---------------------------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// KiB (as /proc reports them) to MB (10^6 bytes, the targets' unit).
fn mb(kib: f64) -> f64 {
    kib * 1024.0 / 1e6
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// One row of the table.
struct Row {
    /// figure, direct, relay, llmproxy, vs direct, target, verdict
    cells: [String; 7],
}

impl Row {
    fn new(
        figure: impl Into<String>,
        direct: impl Into<String>,
        relay: impl Into<String>,
        proxied: impl Into<String>,
        versus: impl Into<String>,
        target: impl Into<String>,
        verdict: impl Into<String>,
    ) -> Row {
        Row {
            cells: [
                figure.into(),
                direct.into(),
                relay.into(),
                proxied.into(),
                versus.into(),
                target.into(),
                verdict.into(),
            ],
        }
    }
}

fn verdict(met: bool, detail: String) -> String {
    format!("{} {detail}", if met { "MET" } else { "MISSED" })
}

fn print_table(rows: &[Row]) {
    let headers = [
        "figure",
        "direct",
        "L4 relay",
        "llmproxy",
        "llmproxy vs direct",
        "target",
        "verdict",
    ]
    .map(String::from);
    let mut widths = headers.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, c) in widths.iter_mut().zip(&row.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 7]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in rows {
        line(&row.cells);
    }
}

struct Machine {
    cores: usize,
    cpu: String,
    kernel: String,
    memory_gib: f64,
    date: String,
    commit: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!("Linux {}", k.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.into());
    let memory_gib =
        proc_status_like("/proc/meminfo", "MemTotal:").unwrap_or(0) as f64 / (1024.0 * 1024.0);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu,
        kernel,
        memory_gib,
        date: utc_now(),
        commit,
    }
}

fn proc_status_like(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `YYYY-MM-DD HH:MM UTC` without a date crate.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// Raises the soft open-file limit to the hard limit: 1,000 open streams
/// need ~2,000 descriptors here and ~2,000 in the proxy, which inherits it.
fn raise_fd_limit() -> u64 {
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
        let current = limit.rlim_cur as u64;
        current
    }
}

fn target_dir() -> PathBuf {
    // <target>/<profile>/deps/proxy-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

const PHASES: [&str; 5] = ["startup", "throughput", "latency", "streams", "memory"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, upstream] = args.as_slice() {
        if flag == "--relay" {
            relay_main(upstream);
        }
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`.
        println!("proxy benchmark: run it with `cargo bench --bench proxy`");
        return;
    }
    let mut plan = Plan::full();
    let mut only: Vec<String> = PHASES.iter().map(|p| p.to_string()).collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--quick" => plan = Plan::quick(),
            "--only" => {
                only = args
                    .next()
                    .map(|v| v.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
            }
            "--reps" => {
                plan.reps = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(plan.reps)
            }
            "--seconds" => {
                if let Some(s) = args.next().and_then(|v| v.parse::<f64>().ok()) {
                    plan.measure = Duration::from_secs_f64(s);
                }
            }
            other => {
                eprintln!(
                    "unknown argument {other:?}; use --quick, --only {}, --reps N, --seconds S",
                    PHASES.join(",")
                );
                std::process::exit(2);
            }
        }
    }
    if let Some(bad) = only.iter().find(|p| !PHASES.contains(&p.as_str())) {
        eprintln!("unknown phase {bad:?}; phases: {}", PHASES.join(","));
        std::process::exit(2);
    }
    if let Err(error) = run(&plan, &only) {
        eprintln!("benchmark failed: {error:#}");
        std::process::exit(1);
    }
}

/// `perf record` of the proxy while the phases run, when `BENCH_PERF=file`.
struct Profiler(Option<Child>);

impl Profiler {
    fn attach(pid: u32) -> Result<Profiler> {
        let Some(out) = std::env::var_os("BENCH_PERF") else {
            return Ok(Profiler(None));
        };
        let child = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "2000",
                "-g",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("BENCH_PERF is set but perf could not be started")?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(Profiler(Some(child)))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn run(plan: &Plan, only: &[String]) -> Result<()> {
    let wall = Instant::now();
    let phase = |name: &str| only.iter().any(|p| p == name);
    now_ns();
    let fd_limit = raise_fd_limit();
    let needed = 2 * plan.open_streams as u64 + 256;
    if fd_limit < needed {
        bail!("the open-file limit is {fd_limit}; the benchmark needs {needed} (ulimit -n)");
    }
    let machine = machine();
    let load_before = loadavg();
    println!(
        "llmproxy benchmark, {}: {} x {}, {:.0} GiB, {}, commit {}, load average {}",
        machine.date,
        machine.cores,
        machine.cpu,
        machine.memory_gib,
        machine.kernel,
        machine.commit,
        load_before
    );
    println!("proxy binary: {}", Proxy::binary().display());
    // One worker per core, whatever TOKIO_WORKER_THREADS says: that
    // variable is passed on to the proxy only (tokio reads it there).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(machine.cores)
        .enable_all()
        .build()?;
    let mock = runtime.block_on(start_mock())?;
    let reps = plan.reps;
    let mut json_runs = serde_json::Map::new();
    let mut rows = Vec::new();

    // 5. Start-up and idle memory: fresh processes.
    if phase("startup") {
        eprintln!("[start-up] {reps} fresh processes");
        let mut startup_ms = Vec::new();
        let mut idle_kib = Vec::new();
        for _ in 0..reps {
            let proxy = Proxy::start(mock)?;
            startup_ms.push(proxy.startup.as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(300));
            idle_kib.push(proxy.rss_kib() as f64);
        }
        json_runs.insert(
            "startup".into(),
            json!({"startup_ms": startup_ms, "idle_rss_kib": idle_kib}),
        );
        let idle = mb(median(&idle_kib));
        rows.push(Row::new(
            "proxy RSS idle (fresh process)",
            "-",
            "-",
            format!("{idle:.1} MB"),
            "",
            "<= 10 MB",
            verdict(idle <= 10.0, format!("({:+.1} MB)", idle - 10.0)),
        ));
        let startup = median(&startup_ms);
        rows.push(Row::new(
            "start-up to first healthy 200",
            "-",
            "-",
            format!("{startup:.1} ms"),
            "",
            "<= 20 ms",
            verdict(startup <= 20.0, format!("({:+.1} ms)", startup - 20.0)),
        ));
    }

    let proxy = Proxy::start(mock)?;
    let relay = Relay::start(mock)?;
    let addrs = Addrs {
        mock,
        proxy: proxy.addr,
        relay: relay.addr,
    };
    let endpoint = |side, provider, stream| Arc::new(Endpoint::new(side, provider, &addrs, stream));
    runtime.block_on(sanity_check(&addrs))?;
    let idle_before_load = proxy.rss_kib();
    let profiler = Profiler::attach(proxy.pid())?;

    // 1. Non-stream throughput, closed loop. The relay (a floor for any
    // proxy hop on this machine) only for OpenAI, to save time.
    if phase("throughput") {
        let mut runs = Vec::new();
        for provider in [Provider::OpenAi, Provider::Anthropic] {
            let sides: &[Side] = if provider == Provider::OpenAi {
                &[Side::Direct, Side::Relay, Side::Proxied]
            } else {
                &[Side::Direct, Side::Proxied]
            };
            let mut f = Figures::default();
            let mut errors = 0;
            for rep in 0..reps {
                eprintln!(
                    "[throughput] {} c={} rep {}/{reps}",
                    provider.name(),
                    plan.concurrency,
                    rep + 1
                );
                let mut run = serde_json::Map::new();
                run.insert("provider".into(), json!(provider.name()));
                run.insert("rep".into(), json!(rep));
                let mut direct_rps = f64::NAN;
                for &side in sides {
                    let hop = match side {
                        Side::Direct => None,
                        Side::Relay => Some(relay.pid()),
                        Side::Proxied => Some(proxy.pid()),
                    };
                    let t =
                        runtime.block_on(throughput(endpoint(side, provider, None), plan, hop))?;
                    errors += t.errors;
                    if side == Side::Direct {
                        direct_rps = t.rps;
                    }
                    let name = side.name();
                    f.put(&mut run, format!("{name}_rps"), t.rps);
                    f.put(&mut run, format!("{name}_ratio"), t.rps / direct_rps);
                    f.put(&mut run, format!("{name}_ok"), t.ok as f64);
                    f.put(&mut run, format!("{name}_errors"), t.errors as f64);
                    f.put(&mut run, format!("{name}_hop_cpu_us"), t.hop_cpu_us);
                    f.put(&mut run, format!("{name}_bench_cpu_us"), t.bench_cpu_us);
                }
                runs.push(Value::Object(run));
            }
            let ratio = f.median("proxied_ratio");
            let relay_cell = |key: &str, unit: &str| {
                if sides.contains(&Side::Relay) {
                    format!("{:.0}{unit}", f.median(key))
                } else {
                    "-".to_owned()
                }
            };
            rows.push(Row::new(
                format!(
                    "non-stream throughput, {}, c={}",
                    provider.name(),
                    plan.concurrency
                ),
                format!("{:.0} req/s", f.median("direct_rps")),
                if sides.contains(&Side::Relay) {
                    format!(
                        "{:.0} req/s ({:.2}x)",
                        f.median("relay_rps"),
                        f.median("relay_ratio")
                    )
                } else {
                    "-".to_owned()
                },
                format!("{:.0} req/s", f.median("proxied_rps")),
                format!("{ratio:.2}x"),
                ">= 0.40x, 0 errors",
                verdict(
                    ratio >= 0.4 && errors == 0,
                    format!("({ratio:.2}x, {errors} errors)"),
                ),
            ));
            rows.push(Row::new(
                format!("  CPU µs per request, {}", provider.name()),
                format!("client+mock {:.0}", f.median("direct_bench_cpu_us")),
                relay_cell("relay_hop_cpu_us", ""),
                format!("{:.0}", f.median("proxied_hop_cpu_us")),
                format!("client+mock {:.0}", f.median("proxied_bench_cpu_us")),
                "(reported)",
                String::new(),
            ));
        }
        json_runs.insert("throughput".into(), Value::Array(runs));
    }

    // 2. Latency at a fixed rate, open loop.
    if phase("latency") {
        let mut runs = Vec::new();
        let mut f = Figures::default();
        let mut errors = 0;
        for rep in 0..reps {
            eprintln!(
                "[latency] openai {} req/s rep {}/{reps}",
                plan.rate,
                rep + 1
            );
            let mut run = serde_json::Map::new();
            run.insert("rep".into(), json!(rep));
            run.insert("rate".into(), json!(plan.rate));
            let mut direct = (0.0, 0.0);
            let mut achieved = f64::INFINITY;
            for side in [Side::Direct, Side::Relay, Side::Proxied] {
                let l = runtime.block_on(latency(endpoint(side, Provider::OpenAi, None), plan))?;
                errors += l.errors;
                achieved = achieved.min(l.achieved_rps);
                let (p50, p99) = (us(pct(&l.samples, 50.0)), us(pct(&l.samples, 99.0)));
                if side == Side::Direct {
                    direct = (p50, p99);
                }
                let name = side.name();
                f.put(&mut run, format!("{name}_p50_us"), p50);
                f.put(&mut run, format!("{name}_p99_us"), p99);
                f.put(
                    &mut run,
                    format!("{name}_max_us"),
                    us(pct(&l.samples, 100.0)),
                );
                f.put(&mut run, format!("{name}_added_p50_us"), p50 - direct.0);
                f.put(&mut run, format!("{name}_added_p99_us"), p99 - direct.1);
                f.put(&mut run, format!("{name}_samples"), l.samples.len() as f64);
                f.put(&mut run, format!("{name}_errors"), l.errors as f64);
            }
            f.put(&mut run, "achieved_rps".into(), achieved);
            runs.push(Value::Object(run));
        }
        json_runs.insert("latency".into(), Value::Array(runs));
        let rate = f.median("achieved_rps");
        for (label, limit) in [("p50", 100.0), ("p99", 1000.0)] {
            let added = f.median(&format!("proxied_added_{label}_us"));
            rows.push(Row::new(
                format!("latency {label} at {rate:.0} req/s, openai"),
                format!("{:.0} µs", f.median(&format!("direct_{label}_us"))),
                format!(
                    "{:.0} µs ({:+.0})",
                    f.median(&format!("relay_{label}_us")),
                    f.median(&format!("relay_added_{label}_us"))
                ),
                format!("{:.0} µs", f.median(&format!("proxied_{label}_us"))),
                format!("{added:+.0} µs"),
                format!("added <= {limit:.0} µs"),
                verdict(
                    added <= limit && errors == 0,
                    format!("({:+.0} µs, {errors} errors)", added - limit),
                ),
            ));
        }
    }

    // 3. Streams: half OpenAI, half Anthropic, starts spread evenly over
    // one chunk interval.
    if phase("streams") {
        let stream_plan = Some((plan.chunks, plan.chunk_interval));
        let stagger = plan.chunk_interval / plan.streams as u32;
        let run_streams = |side: Side| -> Result<Streams> {
            let half = plan.streams / 2;
            let a = endpoint(side, Provider::OpenAi, stream_plan);
            let b = endpoint(side, Provider::Anthropic, stream_plan);
            runtime.block_on(async {
                let (x, y) = tokio::join!(
                    streams(a, half, plan.chunks, stagger * 2, Duration::ZERO),
                    streams(b, plan.streams - half, plan.chunks, stagger * 2, stagger),
                );
                let (mut x, y) = (x?, y?);
                x.ttfb.extend(y.ttfb);
                x.delays.extend(y.delays);
                x.errors += y.errors;
                x.ttfb.sort_unstable();
                x.delays.sort_unstable();
                Ok(x)
            })
        };
        eprintln!("[streams] warm-up");
        for side in [Side::Direct, Side::Relay, Side::Proxied] {
            run_streams(side)?;
        }
        let mut runs = Vec::new();
        let mut f = Figures::default();
        let mut errors = 0;
        for rep in 0..reps {
            eprintln!(
                "[streams] {} x {} chunks {} ms apart, rep {}/{reps}",
                plan.streams,
                plan.chunks,
                plan.chunk_interval.as_millis(),
                rep + 1
            );
            let mut run = serde_json::Map::new();
            run.insert("rep".into(), json!(rep));
            let mut direct_ttfb = (0.0, 0.0);
            for side in [Side::Direct, Side::Relay, Side::Proxied] {
                let s = run_streams(side)?;
                errors += s.errors;
                let name = side.name();
                let (t50, t99) = (us(pct(&s.ttfb, 50.0)), us(pct(&s.ttfb, 99.0)));
                if side == Side::Direct {
                    direct_ttfb = (t50, t99);
                }
                f.put(&mut run, format!("{name}_ttfb_p50_us"), t50);
                f.put(&mut run, format!("{name}_ttfb_p99_us"), t99);
                f.put(
                    &mut run,
                    format!("{name}_added_ttfb_p50_us"),
                    t50 - direct_ttfb.0,
                );
                f.put(
                    &mut run,
                    format!("{name}_added_ttfb_p99_us"),
                    t99 - direct_ttfb.1,
                );
                for (key, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
                    f.put(
                        &mut run,
                        format!("{name}_chunk_{key}_us"),
                        us(pct(&s.delays, p)),
                    );
                }
                f.put(&mut run, format!("{name}_chunks"), s.delays.len() as f64);
                f.put(&mut run, format!("{name}_errors"), s.errors as f64);
            }
            runs.push(Value::Object(run));
        }
        json_runs.insert("streams".into(), Value::Array(runs));
        let added = f.median("proxied_added_ttfb_p50_us");
        rows.push(Row::new(
            format!("stream TTFB p50, {} streams", plan.streams),
            format!("{:.0} µs", f.median("direct_ttfb_p50_us")),
            format!(
                "{:.0} µs ({:+.0})",
                f.median("relay_ttfb_p50_us"),
                f.median("relay_added_ttfb_p50_us")
            ),
            format!("{:.0} µs", f.median("proxied_ttfb_p50_us")),
            format!("{added:+.0} µs"),
            "added <= 1000 µs",
            verdict(added <= 1000.0, format!("({:+.0} µs)", added - 1000.0)),
        ));
        rows.push(Row::new(
            "stream TTFB p99",
            format!("{:.0} µs", f.median("direct_ttfb_p99_us")),
            format!(
                "{:.0} µs ({:+.0})",
                f.median("relay_ttfb_p99_us"),
                f.median("relay_added_ttfb_p99_us")
            ),
            format!("{:.0} µs", f.median("proxied_ttfb_p99_us")),
            format!("{:+.0} µs", f.median("proxied_added_ttfb_p99_us")),
            "(reported)",
            String::new(),
        ));
        for key in ["p50", "p99", "max"] {
            let d = f.median(&format!("direct_chunk_{key}_us"));
            let r = f.median(&format!("relay_chunk_{key}_us"));
            let p = f.median(&format!("proxied_chunk_{key}_us"));
            let (target, verdict_text) = if key == "p99" {
                (
                    "<= 1000 µs mock->client",
                    verdict(
                        p <= 1000.0 && errors == 0,
                        format!("({:+.0} µs, {errors} errors)", p - 1000.0),
                    ),
                )
            } else {
                ("(reported)", String::new())
            };
            rows.push(Row::new(
                format!("chunk delay {key}, {}x{} chunks", plan.streams, plan.chunks),
                format!("{d:.0} µs"),
                format!("{r:.0} µs"),
                format!("{p:.0} µs"),
                format!("{:+.0} µs", p - d),
                target,
                verdict_text,
            ));
        }
    }

    // 4. Memory with many open streams.
    if phase("memory") {
        let hold_plan = Some((600, Duration::from_secs(1)));
        // `reps` rounds of streams; `also_open` more stay open throughout.
        let rounds = |label: &str, also_open: usize| -> Result<(Vec<f64>, Vec<Value>)> {
            let mut kib = Vec::new();
            let mut runs = Vec::new();
            for rep in 0..reps {
                eprintln!(
                    "[memory] {} open streams{label}, rep {}/{reps}",
                    plan.open_streams,
                    rep + 1
                );
                let held = runtime.block_on(hold_streams(
                    endpoint(Side::Proxied, Provider::OpenAi, hold_plan),
                    plan.open_streams,
                    proxy.pid(),
                ))?;
                if held.opened < plan.open_streams {
                    bail!(
                        "only {} of {} streams could be opened through the proxy",
                        held.opened,
                        plan.open_streams
                    );
                }
                runs.push(json!({
                    "rep": rep, "open_streams": held.opened, "rss_kib": held.rss_kib,
                    "seconds_to_open": held.seconds_to_open,
                }));
                kib.push(held.rss_kib as f64);
                // The proxy notices a closed client at its next chunk (a
                // second later at most): the next round starts once all of
                // this round's are gone.
                if !wait_for_open_streams_at_most(also_open, Duration::from_secs(10)) {
                    eprintln!("warning: the proxy still holds upstream streams after 10 s");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok((kib, runs))
        };
        let (held_kib, runs) = rounds("", 0)?;
        json_runs.insert("memory".into(), Value::Array(runs));

        // The same rounds while one more stream stays open throughout: the
        // proxy never has an idle moment, as under load that never pauses.
        let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel();
        let sentinel = runtime.spawn(hold_one_stream(
            endpoint(Side::Proxied, Provider::OpenAi, hold_plan),
            opened_tx,
            release_rx,
        ));
        runtime
            .block_on(opened_rx)
            .map_err(|_| anyhow!("the stream kept open across rounds could not be opened"))?;
        let (churn_kib, churn_runs) = rounds(", no idle moment between rounds", 1)?;
        let _ = release_tx.send(());
        runtime.block_on(sentinel)??;
        json_runs.insert("memory_no_idle".into(), Value::Array(churn_runs));

        let held = mb(median(&held_kib));
        rows.push(Row::new(
            format!("proxy RSS, {} open streams", plan.open_streams),
            "-",
            "-",
            format!("{held:.1} MB"),
            format!("first round {:.1} MB", mb(held_kib[0])),
            "<= 50 MB",
            verdict(held <= 50.0, format!("({:+.1} MB)", held - 50.0)),
        ));
        rows.push(Row::new(
            "  the same, no idle moment between rounds",
            "-",
            "-",
            format!("{:.1} MB", mb(median(&churn_kib))),
            format!(
                "rounds {}",
                churn_kib
                    .iter()
                    .map(|k| format!("{:.1}", mb(*k)))
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
            "(reported)",
            String::new(),
        ));
    }
    drop(profiler);
    wait_for_streams_to_close(Duration::from_secs(10));
    let peak_kib = proc_status_kib(proxy.pid(), "VmHWM:").unwrap_or(0);
    // The proxy checks once a second whether to give memory back after a
    // burst: wait long enough for that check to have run.
    std::thread::sleep(Duration::from_millis(1500));
    let idle_after_load = proxy.rss_kib();
    json_runs.insert(
        "proxy_memory".into(),
        json!({"before_load_kib": idle_before_load, "after_load_kib": idle_after_load,
               "peak_kib": peak_kib}),
    );
    rows.push(Row::new(
        "proxy RSS idle, before / after the load",
        "-",
        "-",
        format!(
            "{:.1} / {:.1} MB",
            mb(idle_before_load as f64),
            mb(idle_after_load as f64)
        ),
        format!("peak {:.1} MB", mb(peak_kib as f64)),
        "(reported)",
        String::new(),
    ));
    drop(proxy);
    drop(relay);

    let wall_seconds = wall.elapsed().as_secs_f64();
    let load_after = loadavg();
    println!();
    println!(
        "Medians of {reps} run(s). direct: client -> mock; L4 relay: client -> byte relay \
         process -> mock (the floor for any proxy hop here); llmproxy: client -> llmproxy -> mock. \
         Load average before/after: {load_before} / {load_after}."
    );
    print_table(&rows);
    let busy = |load: &str| {
        load.split_whitespace()
            .next()
            .and_then(|l| l.parse::<f64>().ok())
            .is_some_and(|l| l > 0.5)
    };
    // (The load after includes this benchmark's own.)
    if busy(&load_before) {
        println!(
            "note: the machine was busy before the run (1-minute load average above 0.5): \
             expect noisy figures."
        );
    }
    println!("wall time {wall_seconds:.0} s");

    let report = json!({
        "machine": {
            "date": machine.date, "cores": machine.cores, "cpu": machine.cpu,
            "kernel": machine.kernel, "memory_gib": machine.memory_gib, "commit": machine.commit,
            "load_average_before": load_before, "load_average_after": load_after,
        },
        "proxy_binary": Proxy::binary().display().to_string(),
        "proxy_env": PROXY_ENV.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>(),
        "plan": {
            "phases": only, "repetitions": reps, "warmup_s": plan.warmup.as_secs_f64(),
            "measure_s": plan.measure.as_secs_f64(), "concurrency": plan.concurrency,
            "rate": plan.rate, "rate_connections": plan.rate_connections,
            "streams": plan.streams, "chunks": plan.chunks,
            "chunk_interval_ms": plan.chunk_interval.as_millis() as u64,
            "open_streams": plan.open_streams,
        },
        "summary": rows.iter().map(|r| json!({
            "figure": r.cells[0], "direct": r.cells[1], "relay": r.cells[2], "llmproxy": r.cells[3],
            "vs_direct": r.cells[4], "target": r.cells[5], "verdict": r.cells[6],
        })).collect::<Vec<_>>(),
        "runs": json_runs,
        "wall_seconds": wall_seconds,
    });
    let out = target_dir().join("bench-results").join("proxy.json");
    std::fs::create_dir_all(out.parent().expect("a parent"))?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("results: {}", out.display());
    Ok(())
}

/// Per-repetition figures by name; the report shows their medians.
#[derive(Default)]
struct Figures(std::collections::BTreeMap<String, Vec<f64>>);

impl Figures {
    fn put(&mut self, run: &mut serde_json::Map<String, Value>, name: String, value: f64) {
        run.insert(name.clone(), json!(value));
        self.0.entry(name).or_default().push(value);
    }

    fn median(&self, name: &str) -> f64 {
        self.0.get(name).map_or(f64::NAN, |v| median(v))
    }
}

/// Before measuring anything: each kind of request gets the expected reply
/// through the proxy, so the figures are of working requests.
async fn sanity_check(addrs: &Addrs) -> Result<()> {
    let proxy = addrs.proxy;
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let endpoint = Endpoint::new(Side::Proxied, provider, addrs, None);
        let mut conn = Conn::open(proxy).await?;
        let (status, body) = conn.call(endpoint.request()).await?;
        let reply: Value = serde_json::from_slice(&body).context("proxy reply is not JSON")?;
        if status != StatusCode::OK
            || reply["content"] != "Hello! How can I help you today?"
            || reply["provider"] != provider.name()
        {
            bail!(
                "unexpected {} reply through the proxy: {status} {reply}",
                provider.name()
            );
        }
        let endpoint = Endpoint::new(
            Side::Proxied,
            provider,
            addrs,
            Some((3, Duration::from_millis(1))),
        );
        let response = conn.start(endpoint.request()).await?;
        let status = response.status();
        let mut body = response.into_body();
        let mut all = Vec::new();
        while let Some(data) = conn.frame(&mut body).await? {
            all.extend_from_slice(&data);
        }
        let text = String::from_utf8_lossy(&all);
        let end = match provider {
            Provider::OpenAi => "data: [DONE]\n\n",
            Provider::Anthropic => "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        };
        if status != StatusCode::OK || !text.ends_with(end) || text.matches("@T").count() != 3 {
            bail!(
                "unexpected {} stream through the proxy: {status} {text}",
                provider.name()
            );
        }
    }
    Ok(())
}
