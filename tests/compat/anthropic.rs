//! Anthropic behind the OpenAI protocol: the request as Anthropic gets it,
//! the reply and the stream as OpenAI clients read them, and errors.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn the_request_is_translated() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let body = json!({
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
            {"role": "tool", "tool_call_id": "call_2", "content": "a hat"},
            {"role": "user", "content": "And?"}
        ],
        "max_tokens": 300, "temperature": 0.3, "top_p": 0.8, "stop": ["\n\nHuman:", "END"],
        "user": "user-7", "tools": [{"type": "function", "function": {"name": "lookup",
            "description": "Looks things up", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}}, "parallel_tool_calls": false,
        "seed": null, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": false, "n": 1,
        "response_format": {"type": "text"}, "store": false, "metadata": {"k": "v"}, "service_tier": "auto"
    });
    let reply = send(&proxy, body).await;
    assert_eq!(reply.status(), 200);
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.headers["x-api-key"], KEY);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(
        sent.json(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 300,
            "system": "Be terse.\n\nUse tools.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}},
                    {"type": "tool_use", "id": "call_2", "name": "lookup", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "a hat"}
                ]},
                {"role": "user", "content": "And?"}
            ],
            "temperature": 0.3,
            "top_p": 0.8,
            "stop_sequences": ["\n\nHuman:", "END"],
            "metadata": {"user_id": "user-7"},
            "tools": [{"name": "lookup", "description": "Looks things up",
                "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "lookup", "disable_parallel_tool_use": true}
        })
    );
}

#[tokio::test]
async fn max_tokens_precedence_and_unsupported_parameters() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[("ANTHROPIC_DEFAULT_MAX_TOKENS", "99")]).await;
    let max_tokens = |extra: Value| {
        let proxy = &proxy;
        let mock = &mock;
        async move {
            let mut body = hello("anthropic/c");
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            assert_eq!(send(proxy, body).await.status(), 200);
            mock.requests().pop().unwrap().json()["max_tokens"].clone()
        }
    };
    assert_eq!(max_tokens(json!({})).await, 99);
    assert_eq!(max_tokens(json!({"max_tokens": 10})).await, 10);
    assert_eq!(
        max_tokens(json!({"max_tokens": 10, "max_completion_tokens": 20})).await,
        20
    );
    let before = mock.requests().len();
    for (field, value) in [
        ("seed", json!(1)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(2)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(0.5)),
        ("logit_bias", json!({"42": 1})),
        (
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "x"}}),
        ),
    ] {
        let mut body = hello("anthropic/c");
        body[field] = value;
        let reply = send(&proxy, body).await;
        assert_eq!(reply.status(), 400, "{field}");
        let error = error_of(reply).await;
        assert_eq!(error["param"], field);
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("DROP_UNSUPPORTED_PARAMS"));
    }
    assert_eq!(mock.requests().len(), before);
    let dropping = self::proxy(&mock, &[("DROP_UNSUPPORTED_PARAMS", "true")]).await;
    let mut body = hello("anthropic/c");
    body["seed"] = 1.into();
    body["response_format"] = json!({"type": "json_object"});
    assert_eq!(send(&dropping, body).await.status(), 200);
    let sent = mock.requests().pop().unwrap().json();
    assert!(
        sent.get("seed").is_none() && sent.get("response_format").is_none(),
        "{sent}"
    );
}

#[tokio::test]
async fn the_reply_is_a_chat_completion() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, hello("anthropic/claude-sonnet-4-5")).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/json");
    assert_eq!(
        reply.headers()["request-id"],
        "req_011CVg6Pq2WmX8tLb4ZrK9Nd"
    );
    assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
    let mut body: Value = reply.json().await.unwrap();
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    body["created"] = 0.into();
    assert_eq!(
        body,
        json!({"id": "msg_01HkR7mQ2vXsT9bLpWd4cYzN", "object": "chat.completion", "created": 0,
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": null},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26,
                "prompt_tokens_details": {"cached_tokens": 0}}})
    );
}

#[tokio::test]
async fn a_tool_use_reply_has_tool_calls() {
    let reply = r#"{"id":"msg_01A","type":"message","role":"assistant","model":"claude-x","content":[
        {"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"city":"Paris"}}],
        "stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":5,"cache_read_input_tokens":7,"output_tokens":9}}"#;
    let mock = MockUpstream::always(Script::json(200, reply)).await;
    let proxy = proxy(&mock, &[]).await;
    let body: Value = send(&proxy, hello("anthropic/c"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["choices"][0],
        json!({"index": 0, "message": {"role": "assistant", "content": "Checking.", "refusal": null,
            "tool_calls": [{"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            "logprobs": null, "finish_reason": "tool_calls"})
    );
    assert_eq!(body["usage"]["prompt_tokens"], 12);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 7);
}

#[tokio::test]
async fn the_stream_is_chat_completion_chunks() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    for include_usage in [false, true] {
        let reply = send(
            &proxy,
            streamed("anthropic/claude-sonnet-4-5", include_usage),
        )
        .await;
        assert_eq!(reply.status(), 200);
        assert_eq!(reply.headers()["content-type"], "text/event-stream");
        assert_eq!(reply.headers()["cache-control"], "no-cache");
        assert_eq!(
            reply.headers()["request-id"],
            "req_011CVg6Pq2WmX8tLb4ZrK9Nd"
        );
        assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
        let text = reply.text().await.unwrap();
        assert!(
            !text.contains("event:") && !text.contains("\nid:"),
            "{text}"
        );
        let events = events(&text);
        assert_eq!(
            deltas(&events),
            [
                json!({"role": "assistant", "content": ""}),
                json!({"content": "Hello"}),
                json!({"content": "! How can I help"}),
                json!({"content": " you today?"}),
                json!({}),
            ]
        );
        let n = events.len();
        assert_eq!(events[n - 1], "[DONE]");
        let chunks = &events[..n - 1];
        for chunk in chunks {
            assert_eq!(chunk["id"], "msg_01Fq8ZtVn3RkL5xWb2YpHs7J");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], events[0]["created"]);
            assert_eq!(chunk["model"], "claude-sonnet-4-5-20250929");
        }
        let finish = &chunks[4];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        if include_usage {
            assert_eq!(n, 7);
            assert_eq!(chunks[5]["choices"], json!([]));
            assert_eq!(
                chunks[5]["usage"],
                json!({"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26, "prompt_tokens_details": {"cached_tokens": 0}})
            );
            assert!(chunks[..5]
                .iter()
                .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
        } else {
            assert_eq!(n, 6);
            assert!(chunks.iter().all(|c| c.get("usage").is_none()));
        }
        assert!(chunks[..4]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null()));
    }
}

#[tokio::test]
async fn a_tool_use_stream_counts_tool_calls_from_zero() {
    let mock = MockUpstream::always(Script::sse(sse_events(&fixture(
        "anthropic-stream-tool-use.sse",
    ))))
    .await;
    let proxy = proxy(&mock, &[]).await;
    let text = send(&proxy, streamed("anthropic/c", false))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let calls: Vec<Value> = deltas(&events)
        .into_iter()
        .filter_map(|d| d.get("tool_calls").cloned())
        .collect();
    assert_eq!(
        calls,
        [
            json!([{"index": 0, "id": "toolu_01VpX4mQ8sLk2RbT9wYc3NdE", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]),
            json!([{"index": 0, "function": {"arguments": "{\"city\": \"Par"}}]),
            json!([{"index": 0, "function": {"arguments": "is\"}"}}]),
            json!([{"index": 1, "id": "toolu_01Hq7ZcR2nWx5KtB8mLp4VsJ", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]),
            json!([{"index": 1, "function": {"arguments": "{\"city\": \"Tokyo\"}"}}]),
        ]
    );
    assert_eq!(
        events[events.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );
    assert_eq!(events[events.len() - 1], "[DONE]");
}

/// A stream's text, and whether it ended with an error chunk without
/// `[DONE]`; the error's type.
async fn failed_stream(steps: Vec<Step>, vars: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(&mock, vars).await;
    let text = send(&proxy, streamed("anthropic/c", true))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert!(!events.contains(&Value::from("[DONE]")), "{text}");
    let last = events.last().unwrap();
    assert_eq!(last["error"]["param"], Value::Null);
    assert_eq!(last["error"]["code"], Value::Null);
    let kind = last["error"]["type"].as_str().unwrap().to_owned();
    (events, kind)
}

#[tokio::test]
async fn an_error_event_midstream_ends_with_an_error_chunk() {
    let (events, kind) =
        failed_stream(sse_events(&fixture("anthropic-stream-error.sse")), &[]).await;
    assert_eq!(kind, "overloaded_error");
    assert_eq!(events.last().unwrap()["error"]["message"], "Overloaded");
    assert_eq!(deltas(&events).len(), 4);
}

#[tokio::test]
async fn an_early_close_or_a_timeout_ends_with_an_error_chunk() {
    let mut cut = sse_events(&fixture("anthropic-stream.sse"))[..5].to_vec();
    cut.push(Step::Close);
    let (events, kind) = failed_stream(cut, &[]).await;
    assert_eq!(kind, "api_error");
    assert!(events.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic"));
    let mut stalled = sse_events(&fixture("anthropic-stream.sse"))[..5].to_vec();
    stalled.push(Step::Stall);
    let (events, _) = failed_stream(stalled, &[("HTTP_TIMEOUT_SECONDS", "1")]).await;
    assert!(events.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("did not answer within 1s"));
}

#[tokio::test]
async fn each_chunk_is_sent_as_soon_as_its_event_arrives() {
    let mut steps = sse_events(&fixture("anthropic-stream.sse"))[..4].to_vec();
    steps.push(Step::Stall);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, streamed("anthropic/c", false)).await;
    let mut body = reply.bytes_stream();
    let mut text = String::new();
    // The upstream now stalls: what it sent must already be here.
    while !text.contains("\"content\":\"Hello\"") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the chunks before the stall arrive")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(text.starts_with("data: {"), "{text}");
}

#[tokio::test]
async fn upstream_errors_take_openai_shape_with_status_and_headers() {
    let mock = MockUpstream::start(|request| {
        if request.json()["model"] == "bad-key" {
            return Script::json(401, fixture("anthropic-error-401.json"))
                .header("request-id", "req_011CVg7TzQ4mK2xNbR8pLw3Y");
        }
        Script::json(529, fixture("anthropic-error-529.json"))
            .header("retry-after", "3")
            .header("request-id", "req_011CVg8Hs5DnW9qTc1FyJk6A")
    })
    .await;
    let proxy = proxy(&mock, &[]).await;
    for body in [hello("anthropic/c"), streamed("anthropic/c", true)] {
        let reply = send(&proxy, body).await;
        assert_eq!(reply.status(), 529);
        assert_eq!(reply.headers()["retry-after"], "3");
        assert_eq!(
            reply.headers()["request-id"],
            "req_011CVg8Hs5DnW9qTc1FyJk6A"
        );
        assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
        let error = error_of(reply).await;
        assert_eq!(
            error,
            json!({"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null})
        );
    }
    let reply = send(&proxy, hello("anthropic/bad-key")).await;
    assert_eq!(reply.status(), 401);
    let error = error_of(reply).await;
    assert_eq!(error["type"], "authentication_error");
    assert_eq!(error["message"], "invalid x-api-key");
}

#[tokio::test]
async fn a_client_that_hangs_up_after_done_got_a_complete_stream() {
    // The upstream keeps its connection open after message_stop.
    let mut steps = sse_events(&fixture("anthropic-stream.sse"));
    steps.push(Step::Stall);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, streamed("anthropic/c", false)).await;
    let mut body = reply.bytes_stream();
    let mut text = String::new();
    while !text.ends_with("data: [DONE]\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("[DONE] arrives while the upstream stays open")
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    drop(body);
    let complete = r#"llmproxy_stream_ends_total{provider="anthropic",how="complete"} 1"#;
    proxy
        .wait_for_metric(complete, Duration::from_secs(5))
        .await;
    assert!(scrape(&proxy)
        .await
        .contains(r#"llmproxy_stream_ends_total{provider="anthropic",how="client_closed"} 0"#));
}
