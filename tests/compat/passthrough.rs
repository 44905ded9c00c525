//! OpenAI-format providers: the body goes as sent (only `model`
//! replaced), and replies, streams and errors come back byte for byte with
//! their status and headers.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[tokio::test]
async fn the_request_keeps_every_field_and_its_bytes() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let body = r#"{"model": "openai/gpt-4o-mini",   "messages": [{"role": "user", "content": [{"type": "text", "text": "Caf\u00e9?"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],
        "max_tokens": 1e2, "temperature": 0.70, "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": "auto", "response_format": {"type": "json_object"}, "stream_options": null, "seed": 7, "n": 2, "store": true, "user": "u"}"#;
    let reply = client()
        .post(completions_url(&proxy))
        .header("authorization", format!("Bearer {KEY}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(
        String::from_utf8(sent.body).unwrap(),
        r#"{"model":"gpt-4o-mini","messages":[{"role": "user", "content": [{"type": "text", "text": "Caf\u00e9?"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}],"max_tokens":1e2,"temperature":0.70,"tools":[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],"tool_choice":"auto","response_format":{"type": "json_object"},"stream_options":null,"seed":7,"n":2,"store":true,"user":"u"}"#
    );
}

#[tokio::test]
async fn a_whole_reply_passes_through_byte_for_byte() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, hello("gpt-4o-mini")).await;
    assert_eq!(reply.status(), 200);
    let headers = reply.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["x-request-id"],
        "req_5b1e9c0d4a7f4e2b9c3d8e6f1a2b7c40"
    );
    assert_eq!(headers["x-llmproxy-provider"], "openai");
    assert!(headers.contains_key("x-llmproxy-request-id"));
    // Only the request-id and retry headers pass, as on the native route.
    assert!(!headers.contains_key("openai-processing-ms"));
    assert_eq!(reply.bytes().await.unwrap(), fixture("openai-chat.json"));
}

#[tokio::test]
async fn a_stream_passes_through_byte_for_byte() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    for (usage, file) in [
        (false, "openai-stream.sse"),
        (true, "openai-stream-usage.sse"),
    ] {
        let reply = send(&proxy, streamed("gpt-4o-mini", usage)).await;
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["content-type"], "text/event-stream");
        assert_eq!(
            reply.headers()["x-request-id"],
            "req_5b1e9c0d4a7f4e2b9c3d8e6f1a2b7c40"
        );
        assert_eq!(reply.headers()["x-llmproxy-provider"], "openai");
        assert_eq!(reply.bytes().await.unwrap(), fixture(file));
        let sent = mock.requests().pop().unwrap().json();
        assert_eq!(
            sent["stream_options"]["include_usage"].as_bool(),
            usage.then_some(true)
        );
    }
    // Usage is counted only when the client asked for it.
    let text = scrape(&proxy).await;
    assert!(
        text.contains(r#"llmproxy_tokens_total{provider="openai",type="input"} 19"#),
        "{text}"
    );
}

#[tokio::test]
async fn upstream_errors_pass_through_with_status_and_headers() {
    let mock = MockUpstream::start(|request| {
        if request.json()["model"] == "broken" {
            return Script::full(502, "text/html", &b"<html>502 Bad Gateway</html>"[..]);
        }
        Script::json(429, fixture("openai-error-429.json"))
            .header("retry-after", "20")
            .header("x-request-id", "req_9e8d7c6b5a4f43e2a1b0c9d8e7f6a5b4")
    })
    .await;
    let proxy = proxy(&mock, &[]).await;
    for body in [hello("gpt-4o-mini"), streamed("gpt-4o-mini", false)] {
        let reply = send(&proxy, body).await;
        assert_eq!(reply.status(), 429);
        assert_eq!(reply.headers()["retry-after"], "20");
        assert_eq!(
            reply.headers()["x-request-id"],
            "req_9e8d7c6b5a4f43e2a1b0c9d8e7f6a5b4"
        );
        assert_eq!(reply.headers()["x-llmproxy-provider"], "openai");
        assert_eq!(
            reply.bytes().await.unwrap(),
            fixture("openai-error-429.json")
        );
    }
    // A body that is not JSON is put in OpenAI's shape.
    let reply = send(&proxy, hello("broken")).await;
    assert_eq!(reply.status(), 502);
    let error = error_of(reply).await;
    assert_eq!(error["message"], "<html>502 Bad Gateway</html>");
}

#[tokio::test]
async fn the_proxys_own_upstream_failures_are_openai_shaped() {
    // Nothing listens on port 9.
    let proxy = Proxy::start("http://127.0.0.1:9", &[("HTTP_TIMEOUT_SECONDS", "1")]).await;
    let reply = send(&proxy, hello("gpt-4o-mini")).await;
    assert_eq!(reply.status(), 502);
    let error = error_of(reply).await;
    assert_eq!(error["type"], "api_error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("could not reach openai"));
    let mock = MockUpstream::always(Script::never_answer()).await;
    let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "1")]).await;
    for model in ["gpt-4o-mini", "anthropic/c"] {
        let reply = send(&proxy, hello(model)).await;
        assert_eq!(reply.status(), 504, "{model}");
        let error = error_of(reply).await;
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("did not answer within 1s"));
    }
}

#[tokio::test]
async fn a_passthrough_stream_cut_midway_ends_with_an_error_event() {
    let recorded = sse_events(&fixture("openai-stream.sse"));
    let mut steps = recorded[..2].to_vec();
    steps.push(Step::Sleep(Duration::from_millis(20)));
    steps.push(Step::Close);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(&mock, &[]).await;
    let text = send(&proxy, streamed("gpt-4o-mini", false))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let last = events.last().unwrap();
    assert_eq!(last["error"]["type"], "server_error");
    assert!(!events.contains(&Value::from("[DONE]")));
}

#[tokio::test]
async fn a_client_that_hangs_up_after_done_got_a_complete_stream() {
    use futures::StreamExt;
    // The upstream keeps its connection open after [DONE].
    let mut steps = sse_events(&fixture("openai-stream.sse"));
    steps.push(Step::Stall);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, streamed("gpt-4o-mini", false)).await;
    let mut body = reply.bytes_stream();
    let mut received = Vec::new();
    while !received.ends_with(b"data: [DONE]\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("[DONE] arrives while the upstream stays open")
            .unwrap()
            .unwrap();
        received.extend_from_slice(&chunk);
    }
    drop(body);
    let complete = r#"llmproxy_stream_ends_total{provider="openai",how="complete"} 1"#;
    proxy
        .wait_for_metric(complete, Duration::from_secs(5))
        .await;
}
