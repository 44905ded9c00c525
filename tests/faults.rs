//! Fault injection against `serve`: a real loopback upstream that stalls,
//! resets, closes early or answers garbage, and clients that vanish or stop
//! reading. Each bracketed outcome of the failure table (docs/failure-behaviour.md) is here.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn detail(reply: reqwest::Response) -> String {
    let body: Value = reply.json().await.unwrap();
    match &body["detail"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[tokio::test]
async fn headers_then_stall_is_504_before_any_byte() {
    for stream in [false, true] {
        let mock = MockUpstream::always(Script::sse(vec![Step::Stall])).await;
        let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "0.3")]).await;
        let reply = post(&proxy.chat_url("anthropic"), chat_body("m", stream)).await;
        assert_eq!(reply.status(), 504, "stream={stream}");
        assert!(detail(reply)
            .await
            .contains("anthropic did not answer within 1s"));
    }
}

#[tokio::test]
async fn connection_closed_mid_body_is_502() {
    let mut script = Script::json(200, fixture("openai-chat.json"));
    let Step::Send(body) = &script.steps[0] else {
        unreachable!()
    };
    script.steps = vec![Step::Send(body[..100].to_vec()), Step::Close];
    let mock = MockUpstream::always(script).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 502);
    let detail = detail(reply).await;
    assert!(
        detail.contains("openai connection broke mid-reply"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_200_that_is_not_the_providers_json_is_502_invalid_reply() {
    let full = fixture("anthropic-messages.json");
    for body in [
        b"<html><body>Bad gateway</body></html>".to_vec(),
        full[..full.len() / 2].to_vec(),
        Vec::new(),
    ] {
        let mock = MockUpstream::always(Script::json(200, body.clone())).await;
        let proxy = Proxy::start(&mock.url(), &[]).await;
        let reply = post(&proxy.chat_url("anthropic"), chat_body("m", false)).await;
        assert_eq!(reply.status(), 502, "{}", String::from_utf8_lossy(&body));
        let detail = detail(reply).await;
        assert!(
            detail.contains("anthropic sent an invalid reply"),
            "{detail}"
        );
    }
}

#[tokio::test]
async fn upstream_5xx_keep_status_and_body() {
    for (status, body) in [
        (
            500,
            json!({"error": {"message": "The server had an error", "type": "server_error", "param": null, "code": null}}),
        ),
        (
            503,
            json!({"error": {"message": "overloaded", "type": "service_unavailable_error"}}),
        ),
        (
            529,
            serde_json::from_slice(&fixture("anthropic-error-529.json")).unwrap(),
        ),
    ] {
        let mock = MockUpstream::always(Script::json(status, body.to_string())).await;
        let proxy = Proxy::start(&mock.url(), &[]).await;
        let reply = post(&proxy.chat_url("anthropic"), chat_body("m", false)).await;
        assert_eq!(reply.status(), status);
        assert_eq!(
            reply.json::<Value>().await.unwrap(),
            json!({ "detail": body })
        );
    }
}

/// The events before the fault, then exactly one error event in the
/// provider's format, then the end.
async fn assert_stream_fault(provider: &str, fixture_name: &str, fault: Step, expected_kind: &str) {
    let events = sse_events(&fixture(fixture_name));
    let mut steps: Vec<Step> = events[..3].to_vec();
    steps.push(fault);
    let sent: Vec<u8> = events[..3]
        .iter()
        .flat_map(|s| match s {
            Step::Send(b) => b.clone(),
            _ => vec![],
        })
        .collect();
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "0.3")]).await;
    let reply = post(&proxy.chat_url(provider), chat_body("m", true)).await;
    assert_eq!(reply.status(), 200);
    let body = reply
        .bytes()
        .await
        .expect("the proxy ends the response cleanly");
    assert!(body.starts_with(&sent), "events already sent stay");
    let rest = std::str::from_utf8(&body[sent.len()..]).unwrap();
    let data = match provider {
        "anthropic" => rest.strip_prefix("event: error\ndata: ").expect(rest),
        _ => rest.strip_prefix("data: ").expect(rest),
    };
    let data = data.strip_suffix("\n\n").expect("one complete event");
    assert!(!data.contains('\n'), "exactly one event: {rest}");
    let event: Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["error"]["type"], expected_kind, "{rest}");
    assert!(
        event["error"]["message"]
            .as_str()
            .unwrap()
            .contains(provider),
        "{rest}"
    );
    if provider == "anthropic" {
        assert_eq!(event["type"], "error");
    }
}

#[tokio::test]
async fn mid_stream_stall_ends_with_a_provider_error_event() {
    assert_stream_fault(
        "anthropic",
        "anthropic-stream.sse",
        Step::Stall,
        "timeout_error",
    )
    .await;
    assert_stream_fault("openai", "openai-stream.sse", Step::Stall, "timeout").await;
}

#[tokio::test]
async fn mid_stream_reset_ends_with_a_provider_error_event() {
    assert_stream_fault(
        "anthropic",
        "anthropic-stream.sse",
        Step::Reset,
        "api_error",
    )
    .await;
    assert_stream_fault("openai", "openai-stream.sse", Step::Reset, "server_error").await;
}

#[tokio::test]
async fn clean_close_before_the_end_marker_is_not_a_silent_truncation() {
    for (provider, file, kind) in [
        ("anthropic", "anthropic-stream.sse", "api_error"),
        ("openai", "openai-stream.sse", "server_error"),
    ] {
        let events = sse_events(&fixture(file));
        let mock = MockUpstream::always(Script::sse(events[..3].to_vec())).await;
        let proxy = Proxy::start(&mock.url(), &[]).await;
        let body = post(&proxy.chat_url(provider), chat_body("m", true))
            .await
            .bytes()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&body);
        assert!(
            text.contains("closed the stream before its end marker"),
            "{text}"
        );
        assert!(text.contains(kind), "{text}");
    }
}

#[tokio::test]
async fn client_disconnect_mid_stream_closes_the_upstream_quickly() {
    let mut steps = sse_events(&fixture("openai-stream.sse"))[..2].to_vec();
    steps.push(Step::Sleep(Duration::from_secs(30)));
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", true)).await;
    let mut body = reply.bytes_stream();
    use futures::StreamExt;
    body.next().await.unwrap().unwrap();
    let dropped_at = std::time::Instant::now();
    drop(body);
    // The mock is in its 30 s pause, watching for EOF: it records the
    // moment the proxy closes the upstream socket.
    let closed = mock_observes_close(&mock, dropped_at).await;
    assert!(
        closed < Duration::from_millis(100),
        "upstream closed {closed:?} after the client left"
    );
}

#[tokio::test]
async fn client_disconnect_before_the_upstream_answers_closes_it_quickly() {
    let mock = MockUpstream::always(Script::never_answer()).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let url = proxy.chat_url("anthropic");
    let request = tokio::spawn(async move { post(&url, chat_body("m", false)).await });
    wait_until(|| mock.requests().len() == 1, Duration::from_secs(5)).await;
    let dropped_at = std::time::Instant::now();
    request.abort();
    let closed = mock_observes_close(&mock, dropped_at).await;
    assert!(
        closed < Duration::from_millis(100),
        "upstream closed {closed:?} after the client left"
    );
}

async fn mock_observes_close(mock: &MockUpstream, since: std::time::Instant) -> Duration {
    let at = mock
        .wait_closed(1, Duration::from_secs(5))
        .await
        .expect("upstream connection was closed");
    at.saturating_duration_since(since)
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_hold_the_upstream() {
    // 16 MiB of events, far more than the proxy's buffer and the sockets'.
    let event = format!(
        "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n",
        "x".repeat(16 * 1024)
    );
    let steps: Vec<Step> = (0..1024)
        .map(|_| Step::Send(event.clone().into_bytes()))
        .collect();
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "0.5")]).await;

    // A raw client that sends the request and then never reads.
    let address = proxy.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let body = chat_body("m", true).to_string();
    let request = format!(
        "POST /v1/chat/openai HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    // The proxy gives up on the client and drops the upstream connection.
    let closed = mock.wait_closed(1, Duration::from_secs(10)).await;
    assert!(
        closed.is_some(),
        "the upstream was held while the client did not read"
    );
    // And the client gets a response that ends, not one that hangs forever.
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the client's response never ended");
    assert!(
        sink.len() < 16 * 1024 * 1024,
        "everything was buffered: {} bytes",
        sink.len()
    );
    // The stream had started, and it is cut rather than ended: no final
    // chunk, so the client can tell it is truncated.
    assert!(
        sink.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &sink[..sink.len().min(64)]
    );
    assert!(
        !sink.ends_with(b"0\r\n\r\n"),
        "the cut stream looks complete"
    );
}

#[tokio::test]
async fn in_flight_upstream_requests_never_exceed_the_limit() {
    let mock =
        MockUpstream::always(Script::json(200, fixture("openai-chat.json")).delay_ms(100)).await;
    let proxy = Proxy::start(
        &mock.url(),
        &[
            ("HTTP_MAX_CONNECTIONS", "3"),
            ("HTTP_TIMEOUT_SECONDS", "10"),
        ],
    )
    .await;
    let requests: Vec<_> = (0..12)
        .map(|_| {
            let url = proxy.chat_url("openai");
            tokio::spawn(async move { post(&url, chat_body("m", false)).await.status().as_u16() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    assert_eq!(mock.requests().len(), 12);
    assert_eq!(mock.max_concurrent(), 3);
}

#[tokio::test]
async fn nothing_in_a_request_can_redirect_the_upstream() {
    let upstream = MockUpstream::always(Script::json(200, fixture("openai-chat.json"))).await;
    let elsewhere = MockUpstream::always(Script::json(200, fixture("openai-chat.json"))).await;
    let proxy = Proxy::start(&upstream.url(), &[]).await;
    let evil = elsewhere.url();
    let c = client();
    for (path, model) in [
        ("/v1/chat/openai", evil.clone()),
        ("/v1/chat/openai", format!("../../{evil}")),
        ("/v1/chat/openai", "gpt?x=@127.0.0.1".to_owned()),
        ("/v1/chat/openai@127.0.0.1", "m".to_owned()),
        ("/v1/chat/openai%2F..%2F..", "m".to_owned()),
        ("/v1/chat/..%2Fanthropic", "m".to_owned()),
    ] {
        let _ = c
            .post(format!("{}{path}", proxy.url))
            .header("x-api-key", "k")
            .header("host", elsewhere.addr.to_string())
            .header("x-forwarded-host", elsewhere.addr.to_string())
            .header("forwarded", format!("host={}", elsewhere.addr))
            .json(&json!({"model": model, "messages": [{"role": "user", "content": evil}]}))
            .send()
            .await
            .unwrap();
    }
    assert!(elsewhere.requests().is_empty(), "another host was called");
    for request in upstream.requests() {
        assert_eq!(request.path, "/v1/chat/completions");
    }
    // A redirect from the upstream is not followed (the key would go along).
    let redirecting = MockUpstream::always(
        Script::json(307, "{}").header("location", &format!("{evil}/v1/chat/completions")),
    )
    .await;
    let proxy = Proxy::start(&redirecting.url(), &[]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 307);
    assert!(elsewhere.requests().is_empty(), "the redirect was followed");
}
