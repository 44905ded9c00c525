//! Soak: 20,000 requests at concurrency 256 through the real binary, mixed
//! stream and non-stream, against an upstream that injects 5% faults. Every
//! response must have the expected status, and the server's RSS and open
//! file descriptors must come back to within 10% of their level before.
//!
//! Loopback only, bounded in count and time. Run it with
//! `cargo test --test soak -- --ignored --nocapture`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 256;
/// Requests run before "before" is measured: connection pools, allocator
/// arenas and buffers reach their high-water mark under this same mix.
const WARM_UP: usize = 5_000;

/// The fault a request asks the mock for (carried in the model name), and
/// what the proxy must answer.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Ok,
    Status(u16),
    Garbage,
    CloseMidBody,
    NeverAnswer,
    StreamOk,
    StreamReset,
    StreamStall,
    Refused,
}

impl Kind {
    /// 95% healthy, 5% spread over the fault kinds.
    fn pick(i: usize) -> Kind {
        let faults = [
            Kind::Status(429),
            Kind::Status(500),
            Kind::Status(529),
            Kind::Garbage,
            Kind::CloseMidBody,
            Kind::NeverAnswer,
            Kind::StreamReset,
            Kind::StreamStall,
            Kind::Refused,
        ];
        if i % 20 == 7 {
            faults[(i / 20) % faults.len()]
        } else if i.is_multiple_of(2) {
            Kind::Ok
        } else {
            Kind::StreamOk
        }
    }

    fn model(self) -> String {
        format!("{self:?}")
    }

    fn stream(self) -> bool {
        matches!(self, Kind::StreamOk | Kind::StreamReset | Kind::StreamStall)
    }

    fn expected_status(self) -> u16 {
        match self {
            Kind::Ok | Kind::StreamOk | Kind::StreamReset | Kind::StreamStall => 200,
            Kind::Status(s) => s,
            Kind::Garbage | Kind::CloseMidBody | Kind::Refused => 502,
            Kind::NeverAnswer => 504,
        }
    }
}

fn script_for(model: &str) -> Script {
    let stream = fixture("openai-stream.sse");
    let events = sse_events(&stream);
    match model {
        "Ok" => Script::json(200, fixture("openai-chat.json")),
        "StreamOk" => Script::sse(events),
        "Status(429)" => {
            Script::json(429, fixture("openai-error-429.json")).header("retry-after", "1")
        }
        "Status(500)" => Script::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#),
        "Status(529)" => Script::json(529, fixture("anthropic-error-529.json")),
        "Garbage" => Script::full(200, "text/html", "<html>oops</html>"),
        "CloseMidBody" => {
            let mut s = Script::json(200, fixture("openai-chat.json"));
            s.steps = vec![Step::Send(b"{\"id\":".to_vec()), Step::Close];
            s
        }
        "NeverAnswer" => Script::never_answer(),
        "StreamReset" => Script::sse(vec![events[0].clone(), events[1].clone(), Step::Reset]),
        "StreamStall" => Script::sse(vec![events[0].clone(), Step::Stall]),
        other => panic!("unknown kind {other}"),
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Waits until neither the fd count (connections closing) nor RSS (the
/// server's once-a-second idle memory trim) has changed for 1.5 s.
async fn settle(pid: u32) -> (u64, usize) {
    let sample = || (rss_kb(pid), open_fds(pid));
    let mut last = sample();
    let mut stable_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && stable_since.elapsed() < Duration::from_millis(1_500) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = sample();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    last
}

async fn run_load(url: &str, range: std::ops::Range<usize>, failures: Arc<AtomicUsize>) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let next = Arc::new(AtomicUsize::new(range.start));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, failures, url) = (
                client.clone(),
                next.clone(),
                failures.clone(),
                url.to_owned(),
            );
            let end = range.end;
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= end {
                        break;
                    }
                    let kind = Kind::pick(i);
                    let provider = if matches!(kind, Kind::Refused) {
                        "anthropic"
                    } else {
                        "openai"
                    };
                    let reply = client
                        .post(format!("{url}/v1/chat/{provider}"))
                        .header("x-api-key", "sk-soak")
                        .json(&json!({"model": kind.model(), "stream": kind.stream(),
                                      "messages": [{"role": "user", "content": "hi"}]}))
                        .send()
                        .await;
                    let ok = match reply {
                        Ok(reply) if reply.status().as_u16() == kind.expected_status() => {
                            let body = reply.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                            let text = String::from_utf8_lossy(&body);
                            match kind {
                                Kind::StreamOk => text.ends_with("data: [DONE]\n\n"),
                                Kind::StreamReset | Kind::StreamStall => {
                                    text.contains("{\"error\":")
                                }
                                Kind::Ok => text.contains("\"content\""),
                                _ => text.contains("\"detail\""),
                            }
                        }
                        Ok(reply) => {
                            eprintln!("{kind:?}: got {}", reply.status());
                            false
                        }
                        Err(e) => {
                            eprintln!("{kind:?}: {e}");
                            false
                        }
                    };
                    if !ok {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: run with `cargo test --test soak -- --ignored --nocapture`"]
async fn soak_20000_requests_with_5_percent_faults() {
    let mock =
        MockUpstream::start(|request| script_for(request.json()["model"].as_str().unwrap())).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ServeProcess::start(&[
        ("OPENAI_BASE_URL", &format!("{}/v1", mock.url())),
        ("ANTHROPIC_BASE_URL", &format!("http://127.0.0.1:{dead}")),
        ("HTTP_TIMEOUT_SECONDS", "1"),
        ("HTTP_MAX_CONNECTIONS", "512"),
        ("RUST_LOG", "warn,llmproxy::cli=info"),
    ])
    .await;
    let pid = server.child.id().unwrap();
    let failures = Arc::new(AtomicUsize::new(0));

    // Warm-up: pools, allocator arenas and worker threads reach their
    // steady state; "before" is measured after it.
    run_load(&server.url, 0..WARM_UP, failures.clone()).await;
    let (rss_before, fds_before) = settle(pid).await;

    let started = Instant::now();
    run_load(&server.url, WARM_UP..WARM_UP + REQUESTS, failures.clone()).await;
    let elapsed = started.elapsed();
    let (rss_after, fds_after) = settle(pid).await;

    let failures = failures.load(Ordering::SeqCst);
    println!(
        "soak: {REQUESTS} requests at concurrency {CONCURRENCY} in {:.1} s ({:.0} req/s), {failures} unexpected; \
         RSS {rss_before} kB -> {rss_after} kB, fds {fds_before} -> {fds_after}",
        elapsed.as_secs_f64(),
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(failures, 0, "responses with an unexpected status or body");
    assert!(
        server.logs().lines().all(|l| !l.contains("panicked")),
        "{}",
        server.logs()
    );
    assert!(
        (rss_after as f64) <= rss_before as f64 * 1.10,
        "RSS grew: {rss_before} kB -> {rss_after} kB"
    );
    assert!(
        (fds_after as f64) <= (fds_before as f64 * 1.10).max(fds_before as f64 + 1.0),
        "fds grew: {fds_before} -> {fds_after}"
    );
    assert!(mock.requests().len() >= REQUESTS * 9 / 10);
}
