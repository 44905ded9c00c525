//! `serve` with `"stream": true`: byte-for-byte passthrough and no buffering.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;

#[tokio::test]
async fn fixture_streams_pass_through_byte_for_byte() {
    for (provider, file) in [
        ("openai", "openai-stream.sse"),
        ("openai", "openai-stream-usage.sse"),
        ("anthropic", "anthropic-stream.sse"),
        ("anthropic", "anthropic-stream-error.sse"),
    ] {
        let bytes = fixture(file);
        let mock =
            MockUpstream::always(Script::sse(sse_events(&bytes)).header("x-request-id", "req_s"))
                .await;
        let proxy = Proxy::start(&mock.url(), &[]).await;
        let reply = post(&proxy.chat_url(provider), chat_body("m", true)).await;
        assert_eq!(reply.status(), 200);
        let h = reply.headers().clone();
        assert_eq!(h["content-type"], "text/event-stream");
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["x-accel-buffering"], "no");
        assert_eq!(h["x-request-id"], "req_s");
        let body = reply.bytes().await.unwrap();
        assert!(
            body == bytes,
            "{file}: passthrough differs:\n{}",
            String::from_utf8_lossy(&body)
        );
        assert_eq!(mock.requests()[0].json()["stream"], true, "{file}");
    }
}

#[tokio::test]
async fn each_event_is_forwarded_before_the_next_exists() {
    let first = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n".to_vec();
    let second = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n".to_vec();
    let mock = MockUpstream::always(Script::sse(vec![
        Step::Send(first.clone()),
        Step::Sleep(Duration::from_millis(500)),
        Step::Send(second.clone()),
        Step::Send(b"data: [DONE]\n\n".to_vec()),
    ]))
    .await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", true)).await;
    let mut body = reply.bytes_stream();
    let mut received = Vec::new();
    let mut first_at = None;
    let mut second_at = None;
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
        if first_at.is_none() && received.len() >= first.len() {
            first_at = Some(Instant::now());
            assert_eq!(&received[..first.len()], &first[..]);
        }
        if second_at.is_none() && received.len() >= first.len() + second.len() {
            second_at = Some(Instant::now());
        }
    }
    let gap = second_at.unwrap() - first_at.unwrap();
    // The second event is written 500 ms after the first: had the proxy
    // held the first back, both would arrive together.
    assert!(
        gap >= Duration::from_millis(400),
        "first event arrived only {gap:?} before the second"
    );
}

#[tokio::test]
async fn a_stream_longer_than_the_timeout_is_not_cut() {
    let mut steps = Vec::new();
    for i in 0..12 {
        steps.push(Step::Send(format!("data: {{\"n\":{i}}}\n\n").into_bytes()));
        steps.push(Step::Sleep(Duration::from_millis(100)));
    }
    steps.push(Step::Send(b"data: [DONE]\n\n".to_vec()));
    let expected: Vec<u8> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Send(b) => Some(b.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let mock = MockUpstream::always(Script::sse(steps)).await;
    // 1.2 s of stream against a 0.4 s timeout: only gaps count.
    let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "0.4")]).await;
    let started = Instant::now();
    let body = post(&proxy.chat_url("openai"), chat_body("m", true))
        .await
        .bytes()
        .await
        .unwrap();
    assert!(started.elapsed() > Duration::from_millis(1100));
    assert_eq!(body, expected);
}
