//! Upstream retries through `serve`: which failures are retried, how long
//! between attempts, what the reply says about them, and what is never
//! retried (a timeout after the request went out, a stream that started).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// A mock that answers the n-th request (0-based) with `script(n)` and
/// notes when each arrived.
async fn counting(
    script: impl Fn(usize) -> Script + Send + Sync + 'static,
) -> (MockUpstream, Arc<Mutex<Vec<Instant>>>) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = times.clone();
    let count = AtomicUsize::new(0);
    let mock = MockUpstream::start(move |_| {
        seen.lock().unwrap().push(Instant::now());
        script(count.fetch_add(1, Ordering::SeqCst))
    })
    .await;
    (mock, times)
}

fn error(status: u16) -> Script {
    Script::json(status, fixture("anthropic-error-529.json"))
}

#[tokio::test]
async fn a_429_is_retried_after_the_upstreams_retry_after_ms_and_the_reply_says_so() {
    let (mock, times) = counting(|n| match n {
        0 => error(429)
            .header("retry-after-ms", "200")
            .header("retry-after", "30"),
        _ => Script::json(200, fixture("openai-chat.json")),
    })
    .await;
    let proxy = Proxy::start(&mock.url(), &[("UPSTREAM_MAX_RETRIES", "2")]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-llmproxy-attempts"], "2");
    assert!(reply.headers().get("x-should-retry").is_none());
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 2);
    let waited = times[1] - times[0];
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(5),
        "{waited:?}: retry-after-ms wins over retry-after"
    );
    let text = proxy.metrics().await;
    assert!(
        text.contains(r#"llmproxy_upstream_retries_total{provider="openai",reason="429"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn retries_back_off_exponentially_and_a_last_error_says_do_not_retry() {
    let (mock, times) = counting(|_| error(503)).await;
    let proxy = Proxy::start(&mock.url(), &[("UPSTREAM_MAX_RETRIES", "2")]).await;
    let reply = post(&proxy.chat_url("anthropic"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 503);
    assert_eq!(reply.headers()["x-llmproxy-attempts"], "3");
    assert_eq!(reply.headers()["x-should-retry"], "false");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["detail"]["error"]["type"], "overloaded_error");
    let times = times.lock().unwrap().clone();
    assert_eq!(times.len(), 3);
    // 0.5 s and 1 s, each times a factor in (0.75, 1].
    let first = times[1] - times[0];
    let second = times[2] - times[1];
    assert!(
        first >= Duration::from_millis(375) && first < Duration::from_millis(900),
        "{first:?}"
    );
    assert!(
        second >= Duration::from_millis(750) && second < Duration::from_millis(1500),
        "{second:?}"
    );
}

#[tokio::test]
async fn serve_does_not_retry_by_default() {
    let (mock, times) = counting(|_| error(529)).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let reply = post(&proxy.chat_url("anthropic"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 529);
    assert!(reply.headers().get("x-llmproxy-attempts").is_none());
    assert_eq!(times.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn x_should_retry_and_long_retry_afters_are_obeyed() {
    for (script, attempts, status) in [
        (error(503).header("x-should-retry", "false"), 1, 503),
        (error(400).header("x-should-retry", "true"), 3, 400),
        (error(401), 1, 401),
        (error(429).header("retry-after", "61"), 1, 429),
    ] {
        let (mock, times) = counting(move |_| script.clone()).await;
        let proxy = Proxy::start(&mock.url(), &[("UPSTREAM_MAX_RETRIES", "2")]).await;
        let started = Instant::now();
        let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
        assert_eq!(reply.status(), status);
        assert_eq!(times.lock().unwrap().len(), attempts, "{status}");
        if status == 429 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "answered at once"
            );
            assert_eq!(reply.headers()["retry-after"], "61");
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let proxy = Proxy::start(
        "http://127.0.0.1:9",
        &[("OPENAI_BASE_URL", &base), ("UPSTREAM_MAX_RETRIES", "1")],
    )
    .await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 502);
    assert_eq!(reply.headers()["x-llmproxy-attempts"], "2");
    let text = proxy.metrics().await;
    assert!(
        text.contains(
            r#"llmproxy_upstream_retries_total{provider="openai",reason="connection"} 1"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_timeout_after_sending_and_a_started_stream_are_never_retried() {
    let (mock, times) = counting(|_| Script::never_answer()).await;
    let proxy = Proxy::start(
        &mock.url(),
        &[
            ("UPSTREAM_MAX_RETRIES", "2"),
            ("HTTP_TIMEOUT_SECONDS", "0.3"),
        ],
    )
    .await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 504);
    assert_eq!(times.lock().unwrap().len(), 1);

    let events = sse_events(&fixture("openai-stream.sse"));
    let cut = [events[..2].to_vec(), vec![Step::Close]].concat();
    let (mock, times) = counting(move |_| Script::sse(cut.clone())).await;
    let proxy = Proxy::start(&mock.url(), &[("UPSTREAM_MAX_RETRIES", "2")]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", true)).await;
    assert_eq!(reply.status(), 200);
    let text = reply.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let last: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "server_error", "{text}");
    assert_eq!(times.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_client_that_leaves_during_a_backoff_cancels_the_retry() {
    let (mock, times) = counting(|_| error(429).header("retry-after", "3")).await;
    let proxy = Proxy::start(&mock.url(), &[("UPSTREAM_MAX_RETRIES", "2")]).await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let left = impatient
        .post(proxy.chat_url("openai"))
        .header("x-api-key", "k")
        .json(&chat_body("m", false))
        .send()
        .await;
    assert!(left.is_err(), "the client gave up first");
    // The request leaves the in-flight gauge once its handler is dropped,
    // well before the 3 s backoff would have ended.
    proxy
        .wait_for_metric("llmproxy_in_flight_requests 0", Duration::from_secs(2))
        .await;
    assert_eq!(times.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn the_log_line_counts_the_attempts() {
    let (mock, _) = counting(|n| match n {
        0 => error(500),
        _ => Script::json(200, fixture("openai-chat.json")),
    })
    .await;
    let base = format!("{}/v1", mock.url());
    let server =
        ServeProcess::start(&[("OPENAI_BASE_URL", &base), ("UPSTREAM_MAX_RETRIES", "1")]).await;
    let reply = post(
        &format!("{}/v1/chat/openai", server.url),
        chat_body("m", false),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let id = reply.headers()["x-llmproxy-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    wait_until(|| server.logs().contains(&id), Duration::from_secs(5)).await;
    let line = server
        .logs()
        .lines()
        .find(|l| l.contains(&id))
        .unwrap()
        .to_owned();
    assert!(line.contains(" attempts=2 "), "{line}");
    assert!(line.contains(" upstream_status=200 "), "{line}");
}

#[tokio::test]
async fn the_openai_compatible_route_retries_too() {
    let (mock, times) = counting(|_| error(529)).await;
    let proxy = Proxy::start(&mock.url(), &[("UPSTREAM_MAX_RETRIES", "1")]).await;
    let reply = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .bearer_auth("sk-ant-test")
        .json(&serde_json::json!({"model": "anthropic/claude-x",
            "messages": [{"role": "user", "content": "Hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 529);
    assert_eq!(reply.headers()["x-llmproxy-attempts"], "2");
    assert_eq!(reply.headers()["x-should-retry"], "false");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert_eq!(times.lock().unwrap().len(), 2);
}
