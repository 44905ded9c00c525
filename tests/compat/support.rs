//! A mock that answers like each upstream, by path, and helpers to call
//! the route and read its streams.

use serde_json::{json, Value};

pub use crate::common::*;

/// The key the tests send.
pub const KEY: &str = "sk-test-key";

/// Answers by path like OpenAI (`/v1/chat/completions`), OpenRouter
/// (`/openrouter/v1/chat/completions`), Anthropic (`/v1/messages`) and
/// Gemini (`/v1beta/models/...`), with the recorded fixtures.
pub fn upstream(request: &Recorded) -> Script {
    let streamed = request.path.contains(":streamGenerateContent")
        || serde_json::from_slice::<Value>(&request.body)
            .map(|b| b["stream"] == true)
            .unwrap_or(false);
    let path = request.path.as_str();
    if path.ends_with("/chat/completions") {
        let script = if streamed {
            let usage = serde_json::from_slice::<Value>(&request.body)
                .map(|b| b["stream_options"]["include_usage"] == true)
                .unwrap_or(false);
            let file = if usage {
                "openai-stream-usage.sse"
            } else {
                "openai-stream.sse"
            };
            Script::sse(sse_events(&fixture(file)))
        } else {
            Script::json(200, fixture("openai-chat.json"))
        };
        return script
            .header("x-request-id", "req_5b1e9c0d4a7f4e2b9c3d8e6f1a2b7c40")
            .header("openai-processing-ms", "412");
    }
    if path == "/v1/messages" {
        let script = if streamed {
            Script::sse(sse_events(&fixture("anthropic-stream.sse")))
        } else {
            Script::json(200, fixture("anthropic-messages.json"))
        };
        return script.header("request-id", "req_011CVg6Pq2WmX8tLb4ZrK9Nd");
    }
    if path.starts_with("/v1beta/models/") {
        return if streamed {
            Script::sse(sse_events(&fixture("gemini-stream.sse")))
        } else if path.contains("blocked") {
            Script::json(200, fixture("gemini-blocked.json"))
        } else {
            Script::json(200, fixture("gemini-generate.json"))
        };
    }
    Script::json(404, &b"{\"error\":\"no such path in the mock\"}"[..])
}

/// The proxy in front of `mock`, Gemini and OpenRouter included.
pub async fn proxy(mock: &MockUpstream, vars: &[(&str, &str)]) -> Proxy {
    proxy_with_config(mock, vars, None).await
}

pub async fn proxy_with_config(
    mock: &MockUpstream,
    vars: &[(&str, &str)],
    config: Option<&str>,
) -> Proxy {
    let gemini = format!("{}/v1beta", mock.url());
    let openrouter = format!("{}/openrouter/v1", mock.url());
    let mut all = vec![
        ("GEMINI_BASE_URL", gemini.as_str()),
        ("OPENROUTER_BASE_URL", openrouter.as_str()),
    ];
    all.extend_from_slice(vars);
    Proxy::start_with_config(&mock.url(), &all, config).await
}

pub fn completions_url(proxy: &Proxy) -> String {
    format!("{}/v1/chat/completions", proxy.url)
}

/// POSTs `body` the way OpenAI's SDKs do: `Authorization: Bearer`.
pub async fn send(proxy: &Proxy, body: Value) -> reqwest::Response {
    send_with(proxy, &[("authorization", &format!("Bearer {KEY}"))], body).await
}

pub async fn send_with(proxy: &Proxy, headers: &[(&str, &str)], body: Value) -> reqwest::Response {
    let mut request = client()
        .post(completions_url(proxy))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

pub fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello!"}]})
}

pub fn streamed(model: &str, include_usage: bool) -> Value {
    let mut body = hello(model);
    body["stream"] = true.into();
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// The `data` of each event of an OpenAI-style stream, checking that it
/// has only `data:` lines; `[DONE]` as a string.
pub fn events(text: &str) -> Vec<Value> {
    assert!(text.ends_with("\n\n"), "{text}");
    text.split_terminator("\n\n")
        .map(|event| {
            assert!(
                !event.contains('\n'),
                "only one data line per event: {event:?}"
            );
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {event:?}"));
            if data == "[DONE]" {
                Value::from(data)
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

/// The deltas of the choice chunks.
pub fn deltas(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["choices"].as_array().is_some_and(|c| !c.is_empty()))
        .map(|e| e["choices"][0]["delta"].clone())
        .collect()
}

/// The error object of an OpenAI-shaped error reply, checked to hold the
/// four members.
pub async fn error_of(reply: reqwest::Response) -> Value {
    assert_eq!(reply.headers()["content-type"], "application/json");
    assert!(reply.headers().contains_key("x-llmproxy-request-id"));
    let body: Value = reply.json().await.unwrap();
    let error = body["error"].clone();
    for member in ["message", "type", "param", "code"] {
        assert!(error.get(member).is_some(), "{member} missing in {body}");
    }
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    error
}

pub async fn scrape(proxy: &Proxy) -> String {
    proxy.metrics().await
}
