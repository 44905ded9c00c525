//! `serve`: the exact upstream request each adapter sends, normalization,
//! and every documented error reply. The upstream is wiremock where request
//! matching is enough, the scripted mock where timing matters.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn wiremock_with(route: &str, response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

fn fixture_json(name: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(fixture(name), "application/json")
}

#[tokio::test]
async fn openai_request_is_exact_and_reply_is_normalized() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test-key"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be terse"}, {"role": "user", "content": "Hello!"}],
            "max_completion_tokens": 50,
            "temperature": 0.3
        })))
        .respond_with(fixture_json("openai-chat.json").insert_header("x-request-id", "req_5b1e"))
        .expect(1)
        .mount(&upstream)
        .await;
    let proxy = Proxy::start(
        &upstream.uri(),
        &[("OPENAI_MAX_TOKENS_FIELD", "max_completion_tokens")],
    )
    .await;

    let reply = client()
        .post(proxy.chat_url("openai"))
        .header("x-api-key", "sk-test-key")
        .header("x-custom", "not forwarded")
        .header("cookie", "session=1")
        .json(&json!({
            "model": "gpt-4o-mini",
            "messages": [{"role": "system", "content": "Be terse"}, {"role": "user", "content": "Hello!"}],
            "max_tokens": 50, "temperature": 0.3, "unknown_field": true
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-request-id"], "req_5b1e");
    assert_eq!(reply.headers()["content-type"], "application/json");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body,
        json!({"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "content": "Hello! How can I help you today?",
               "stop_reason": "stop", "usage": {"input_tokens": 19, "output_tokens": 9},
               "id": "chatcmpl-CgT4kq8ZbN2xWv7LmR5sYd1JpFa9E"})
    );
    let received = &upstream.received_requests().await.unwrap()[0];
    for forbidden in ["x-custom", "cookie", "x-api-key"] {
        assert!(
            !received.headers.contains_key(forbidden),
            "{forbidden} was forwarded"
        );
    }
}

#[tokio::test]
async fn openai_max_tokens_field_defaults_to_max_tokens_for_other_base_urls() {
    let upstream = wiremock_with("/v1/chat/completions", fixture_json("openai-chat.json")).await;
    let proxy = Proxy::start(&upstream.uri(), &[]).await;
    let mut body = chat_body("gpt-4o-mini", false);
    body["max_tokens"] = json!(7);
    assert_eq!(post(&proxy.chat_url("openai"), body).await.status(), 200);
    let sent: Value = upstream.received_requests().await.unwrap()[0]
        .body_json()
        .unwrap();
    assert_eq!(sent["max_tokens"], 7);
    assert!(sent.get("max_completion_tokens").is_none());
    assert!(
        sent.get("temperature").is_none(),
        "temperature only when given"
    );
    assert!(sent.get("stream").is_none());
}

#[tokio::test]
async fn anthropic_request_joins_system_messages_and_sends_default_max_tokens() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-test-key"))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 1024,
            "system": "First rule\n\nSecond rule",
            "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                         {"role": "user", "content": "Again"}]
        })))
        .respond_with(fixture_json("anthropic-messages.json").insert_header("request-id", "req_011C"))
        .expect(1)
        .mount(&upstream)
        .await;
    let proxy = Proxy::start(&upstream.uri(), &[]).await;
    let reply = post(
        &proxy.chat_url("anthropic"),
        json!({"model": "claude-sonnet-4-5-20250929", "messages": [
            {"role": "system", "content": "First rule"}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"}, {"role": "system", "content": "Second rule"},
            {"role": "user", "content": "Again"}]}),
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["request-id"], "req_011C");
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body,
        json!({"provider": "anthropic", "model": "claude-sonnet-4-5-20250929",
               "content": "Hello! How can I help you today?", "stop_reason": "stop",
               "usage": {"input_tokens": 14, "output_tokens": 12}, "id": "msg_01HkR7mQ2vXsT9bLpWd4cYzN"})
    );
}

#[tokio::test]
async fn anthropic_version_and_default_max_tokens_come_from_settings() {
    let upstream = wiremock_with("/v1/messages", fixture_json("anthropic-messages.json")).await;
    let proxy = Proxy::start(
        &upstream.uri(),
        &[
            ("ANTHROPIC_VERSION", "2023-01-01"),
            ("ANTHROPIC_DEFAULT_MAX_TOKENS", "77"),
        ],
    )
    .await;
    assert_eq!(
        post(&proxy.chat_url("anthropic"), chat_body("c", false))
            .await
            .status(),
        200
    );
    let mut body = chat_body("c", false);
    body["max_tokens"] = json!(5);
    assert_eq!(post(&proxy.chat_url("anthropic"), body).await.status(), 200);
    let received = upstream.received_requests().await.unwrap();
    assert_eq!(received[0].headers["anthropic-version"], "2023-01-01");
    assert_eq!(received[0].body_json::<Value>().unwrap()["max_tokens"], 77);
    assert_eq!(received[1].body_json::<Value>().unwrap()["max_tokens"], 5);
}

#[tokio::test]
async fn stop_reasons_and_usage_are_normalized_through_the_server() {
    for (reason, expected) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "pause_turn"),
    ] {
        let reply = format!(
            r#"{{"id":"msg_1","type":"message","role":"assistant","model":"c","content":[{{"type":"text","text":"a"}},{{"type":"text","text":"b"}}],"stop_reason":"{reason}","usage":{{"input_tokens":3,"cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":2}}}}"#
        );
        let upstream = wiremock_with(
            "/v1/messages",
            ResponseTemplate::new(200).set_body_raw(reply, "application/json"),
        )
        .await;
        let proxy = Proxy::start(&upstream.uri(), &[]).await;
        let body: Value = post(&proxy.chat_url("anthropic"), chat_body("c", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["stop_reason"], expected, "{reason}");
        assert_eq!(body["content"], "ab");
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 15, "output_tokens": 2})
        );
    }
    for (reason, expected) in [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "function_call"),
    ] {
        let reply = format!(
            r#"{{"id":"c1","model":"m","choices":[{{"index":0,"message":{{"role":"assistant","content":null}},"finish_reason":"{reason}"}}],"usage":{{"prompt_tokens":4,"completion_tokens":6,"total_tokens":10}}}}"#
        );
        let upstream = wiremock_with(
            "/v1/chat/completions",
            ResponseTemplate::new(200).set_body_raw(reply, "application/json"),
        )
        .await;
        let proxy = Proxy::start(&upstream.uri(), &[]).await;
        let body: Value = post(&proxy.chat_url("openai"), chat_body("m", false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["stop_reason"], expected, "{reason}");
        assert_eq!(body["content"], "", "null content becomes empty");
        assert_eq!(
            body["usage"],
            json!({"input_tokens": 4, "output_tokens": 6})
        );
    }
}

#[tokio::test]
async fn works_without_a_json_content_type() {
    let upstream = wiremock_with("/v1/chat/completions", fixture_json("openai-chat.json")).await;
    let proxy = Proxy::start(&upstream.uri(), &[]).await;
    // What plain `curl -d` sends.
    let reply = client()
        .post(proxy.chat_url("openai"))
        .header("x-api-key", "k")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(chat_body("m", false).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn healthz() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let reply = client()
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/json");
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
}

// ---- upstream errors keep their status and body ----

#[tokio::test]
async fn upstream_errors_keep_status_body_and_headers() {
    let cases = [
        (
            "openai",
            "/v1/chat/completions",
            401,
            "openai-error-401.json",
            ("x-request-id", "req_0d6c"),
        ),
        (
            "openai",
            "/v1/chat/completions",
            429,
            "openai-error-429.json",
            ("retry-after", "7"),
        ),
        (
            "anthropic",
            "/v1/messages",
            401,
            "anthropic-error-401.json",
            ("request-id", "req_011CVg7"),
        ),
        (
            "anthropic",
            "/v1/messages",
            529,
            "anthropic-error-529.json",
            ("x-should-retry", "true"),
        ),
    ];
    for (provider, route, status, file, (header_name, header_value)) in cases {
        let fixture_body: Value = serde_json::from_slice(&fixture(file)).unwrap();
        let response = ResponseTemplate::new(status)
            .set_body_raw(fixture(file), "application/json")
            .insert_header(header_name, header_value);
        let upstream = wiremock_with(route, response).await;
        let proxy = Proxy::start(&upstream.uri(), &[]).await;
        for stream in [false, true] {
            let reply = post(&proxy.chat_url(provider), chat_body("m", stream)).await;
            assert_eq!(
                reply.status(),
                status,
                "{provider} {status} stream={stream}"
            );
            // x-should-retry too: the SDK in front decides on retrying.
            assert_eq!(reply.headers()[header_name], header_value);
            let body: Value = reply.json().await.unwrap();
            assert_eq!(body, json!({ "detail": fixture_body }));
        }
    }
}

#[tokio::test]
async fn non_json_upstream_error_becomes_a_text_detail() {
    let upstream = wiremock_with(
        "/v1/chat/completions",
        ResponseTemplate::new(503).set_body_raw("<html>upstream down</html>", "text/html"),
    )
    .await;
    let proxy = Proxy::start(&upstream.uri(), &[]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 503);
    assert_eq!(
        reply.json::<Value>().await.unwrap(),
        json!({"detail": "<html>upstream down</html>"})
    );
}

#[tokio::test]
async fn unreachable_upstream_is_502_without_the_key() {
    // Bind then drop: a port on which nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = Proxy::start(&format!("http://127.0.0.1:{port}"), &[]).await;
    for provider in ["openai", "anthropic"] {
        let reply = post(&proxy.chat_url(provider), chat_body("m", false)).await;
        assert_eq!(reply.status(), 502);
        let detail = reply.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            detail.contains(&format!("could not reach {provider}")),
            "{detail}"
        );
        assert!(!detail.contains("sk-test-key"), "{detail}");
    }
}

#[tokio::test]
async fn upstream_that_never_answers_is_504() {
    let mock = MockUpstream::always(Script::never_answer()).await;
    let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "0.3")]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 504);
    let detail = reply.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("openai did not answer"), "{detail}");
}

// ---- the caller's mistakes ----

async fn raw_post(url: &str, key: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let mut request = client().post(url).body(body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let reply = request.send().await.unwrap();
    let status = reply.status().as_u16();
    assert_eq!(reply.headers()["content-type"], "application/json");
    (status, reply.json().await.unwrap())
}

#[tokio::test]
async fn client_errors_are_json_with_the_right_status() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let url = proxy.chat_url("openai");
    let good = chat_body("m", false).to_string();

    let (status, body) = raw_post(&proxy.chat_url("nope"), Some("k"), good.clone()).await;
    assert_eq!(status, 404);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("openai, anthropic, gemini, ollama, groq, openrouter, deepseek, mistral"),
        "{body}"
    );

    assert_eq!(raw_post(&url, None, good.clone()).await.0, 401);
    assert_eq!(raw_post(&url, Some(""), good.clone()).await.0, 401);
    assert_eq!(raw_post(&url, Some("   "), good.clone()).await.0, 401);

    let (status, body) = raw_post(&url, Some("k"), "{not json").await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{body}"
    );

    for (payload, field) in [
        (
            json!({"messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            json!({"model": 5, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}),
            "stream",
        ),
    ] {
        let (status, body) = raw_post(&url, Some("k"), payload.to_string()).await;
        assert_eq!(status, 422, "{payload}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}:")),
            "{payload} -> {body}"
        );
    }
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_or_without_content_length() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[("MAX_BODY_BYTES", "1000")]).await;
    let url = proxy.chat_url("openai");
    let big = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2000)
    );
    assert_eq!(raw_post(&url, Some("k"), big.clone()).await.0, 413);

    // Chunked, no Content-Length: reading stops at the limit.
    let chunks: Vec<Result<String, std::io::Error>> = big
        .as_bytes()
        .chunks(100)
        .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
        .collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let (status, body) = raw_post(&url, Some("k"), body).await;
    assert_eq!(status, 413);
    assert!(
        body["detail"].as_str().unwrap().contains("1000 bytes"),
        "{body}"
    );

    // Just under the limit is read and validated as usual.
    let small = chat_body("m", false).to_string();
    assert_ne!(raw_post(&url, Some("k"), small).await.0, 413);
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let c = client();
    for (request, status) in [
        (c.get(format!("{}/nope", proxy.url)), 404),
        (c.post(format!("{}/v1/chat/openai/extra", proxy.url)), 404),
        (c.get(proxy.chat_url("openai")), 405),
        (c.delete(format!("{}/healthz", proxy.url)), 405),
    ] {
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), status);
        assert_eq!(reply.headers()["content-type"], "application/json");
        assert!(reply.json::<Value>().await.unwrap()["detail"].is_string());
    }
}

#[tokio::test]
async fn too_many_in_flight_requests_wait_then_get_503_with_retry_after() {
    // A stream that keeps producing bytes for a second holds the only slot
    // without ever hitting the (shorter) timeout.
    let mut steps = Vec::new();
    for _ in 0..10 {
        steps.push(Step::Send(b"data: {\"choices\":[]}\n\n".to_vec()));
        steps.push(Step::Sleep(Duration::from_millis(100)));
    }
    steps.push(Step::Send(b"data: [DONE]\n\n".to_vec()));
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = Proxy::start(
        &mock.url(),
        &[
            ("HTTP_MAX_CONNECTIONS", "1"),
            ("HTTP_TIMEOUT_SECONDS", "0.3"),
        ],
    )
    .await;
    let first = post(&proxy.chat_url("openai"), chat_body("m", true)).await;
    assert_eq!(first.status(), 200);

    let second = post(&proxy.chat_url("openai"), chat_body("m", false)).await;
    assert_eq!(second.status(), 503);
    assert_eq!(second.headers()["retry-after"], "1");
    assert!(second.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("in flight"));

    // The stream that held the slot finishes intact.
    let bytes = first.bytes().await.unwrap();
    assert!(bytes.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(
        mock.requests().len(),
        1,
        "the refused request never reached the upstream"
    );
    assert_eq!(mock.max_concurrent(), 1);
}
