//! Where a request goes (alias, provider prefix, default provider), which
//! key goes with it, the route's own errors, `/v1/models`, and what the
//! request log and the metrics say.

use serde_json::{json, Value};

use crate::support::*;

const CONFIG: &str = r#"
[providers.vllm]
kind = "openai"
base_url = "BASE/vllm/v1"
key = "none"

[models.fast]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
max_tokens = 512
temperature = 0.2

[models.mini]
provider = "openai"
model = "gpt-4o-mini"
max_tokens = 64
"#;

async fn configured(mock: &MockUpstream, vars: &[(&str, &str)]) -> Proxy {
    let config = CONFIG.replace("BASE", &mock.url());
    proxy_with_config(mock, vars, Some(&config)).await
}

fn last(mock: &MockUpstream) -> Recorded {
    mock.requests().pop().expect("a request upstream")
}

#[tokio::test]
async fn an_alias_picks_its_provider_model_and_defaults() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = configured(&mock, &[]).await;
    let reply = send(&proxy, hello("fast")).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
    assert!(reply.headers().contains_key("x-llmproxy-request-id"));
    let sent = last(&mock);
    assert_eq!(sent.path, "/v1/messages");
    let body = sent.json();
    assert_eq!(body["model"], "claude-3-5-haiku-20241022");
    assert_eq!(
        (body["max_tokens"].as_u64(), body["temperature"].as_f64()),
        (Some(512), Some(0.2))
    );
    // What the client sends wins over the alias's defaults.
    let mut request = hello("fast");
    request["max_completion_tokens"] = 7.into();
    request["temperature"] = 0.9.into();
    send(&proxy, request).await;
    let body = last(&mock).json();
    assert_eq!(
        (body["max_tokens"].as_u64(), body["temperature"].as_f64()),
        (Some(7), Some(0.9))
    );
    // An alias of an OpenAI-format provider: its field, only when not sent.
    send(&proxy, hello("mini")).await;
    let sent = last(&mock);
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.json(),
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 64})
    );
}

#[tokio::test]
async fn a_provider_prefix_is_split_at_the_first_slash() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, hello("openrouter/meta-llama/llama-3.3-70b")).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-llmproxy-provider"], "openrouter");
    let sent = last(&mock);
    assert_eq!(sent.path, "/openrouter/v1/chat/completions");
    assert_eq!(sent.json()["model"], "meta-llama/llama-3.3-70b");
    let reply = send(&proxy, hello("anthropic/claude-sonnet-4-5")).await;
    assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
    assert_eq!(last(&mock).json()["model"], "claude-sonnet-4-5");
}

#[tokio::test]
async fn other_models_go_to_the_default_provider_unchanged() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    for model in ["gpt-4o-mini", "meta-llama/llama-3.3-70b", "ft:gpt-4o:org/x"] {
        let reply = send(&proxy, hello(model)).await;
        assert_eq!(reply.status(), 200, "{model}");
        assert_eq!(reply.headers()["x-llmproxy-provider"], "openai");
        let sent = last(&mock);
        assert_eq!(sent.path, "/v1/chat/completions");
        assert_eq!(sent.json()["model"], model);
    }
    let proxy = self::proxy(&mock, &[("DEFAULT_PROVIDER", "anthropic")]).await;
    let reply = send(&proxy, hello("claude-sonnet-4-5")).await;
    assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
    assert_eq!(last(&mock).path, "/v1/messages");
}

#[tokio::test]
async fn the_key_goes_to_the_selected_provider_only_as_it_expects_it() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = configured(&mock, &[]).await;
    send(&proxy, hello("gpt-4o-mini")).await;
    let sent = last(&mock);
    assert_eq!(sent.headers["authorization"], format!("Bearer {KEY}"));
    assert!(!sent.headers.contains_key("x-api-key"));
    send(&proxy, hello("anthropic/c")).await;
    let sent = last(&mock);
    assert_eq!(sent.headers["x-api-key"], KEY);
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert!(!sent.headers.contains_key("authorization"));
    // X-API-Key wins when both are sent.
    send_with(
        &proxy,
        &[
            ("authorization", "Bearer sk-bearer"),
            ("x-api-key", "sk-header"),
        ],
        hello("gpt-4o-mini"),
    )
    .await;
    assert_eq!(last(&mock).headers["authorization"], "Bearer sk-header");
    send_with(
        &proxy,
        &[("x-api-key", "sk-header")],
        hello("gemini/gemini-2.0-flash"),
    )
    .await;
    let sent = last(&mock);
    assert_eq!(sent.headers["x-goog-api-key"], "sk-header");
    assert!(!sent.headers.contains_key("x-api-key") && !sent.headers.contains_key("authorization"));
    // key = "none": nothing, even when the client sends one.
    let reply = send(&proxy, hello("vllm/qwen")).await;
    assert_eq!(reply.status(), 200);
    let sent = last(&mock);
    assert_eq!(sent.path, "/vllm/v1/chat/completions");
    assert!(!sent.headers.contains_key("authorization"));
    // The proxy's own headers never go upstream.
    assert!(!sent.headers.contains_key("x-request-id"));
}

#[tokio::test]
async fn no_key_is_a_401_in_openai_shape_and_nothing_is_sent() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("x-api-key", " ")],
    ] {
        let reply = send_with(&proxy, &headers, hello("anthropic/c")).await;
        assert_eq!(reply.status(), 401, "{headers:?}");
        assert_eq!(reply.headers()["x-llmproxy-provider"], "anthropic");
        let error = error_of(reply).await;
        assert_eq!(error["type"], "invalid_request_error");
        assert_eq!(error["code"], "invalid_api_key");
        assert!(error["message"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer"));
    }
    assert!(mock.requests().is_empty());
    // A provider whose key is optional answers without one.
    let reply = send_with(&proxy, &[], hello("ollama/llama3.2")).await;
    assert_eq!(reply.headers()["x-llmproxy-provider"], "ollama");
}

#[tokio::test]
async fn invalid_bodies_are_400_naming_the_field() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[("MAX_BODY_BYTES", "2000")]).await;
    let raw = |body: &'static str| {
        let url = completions_url(&proxy);
        async move {
            client()
                .post(url)
                .header("authorization", format!("Bearer {KEY}"))
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let reply = raw("{\"model\": ").await;
    assert_eq!(reply.status(), 400);
    let error = error_of(reply).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("malformed JSON body"));
    for (body, param) in [
        (
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
            "model",
        ),
        (r#"{"model": "gpt-4o-mini"}"#, "messages"),
        (r#"{"model": "gpt-4o-mini", "messages": []}"#, "messages"),
        (r#"{"model": 4, "messages": [{}]}"#, "model"),
        (
            r#"{"model": "m", "messages": [{}], "stream": "yes"}"#,
            "stream",
        ),
        (r#"[{"model": "m"}]"#, "body"),
        (
            r#"{"model": "anthropic/c", "messages": [{"role": "user", "content": "hi"}], "n": 2}"#,
            "n",
        ),
        (
            r#"{"model": "anthropic/c", "messages": [{"role": "robot", "content": "hi"}]}"#,
            "messages[0].role",
        ),
        (r#"{"model": "openai/", "messages": [{}]}"#, "model"),
    ] {
        let reply = raw(body).await;
        assert_eq!(reply.status(), 400, "{body}");
        let error = error_of(reply).await;
        assert_eq!(error["param"], param, "{body}");
        assert_eq!(error["type"], "invalid_request_error");
    }
    let big = format!(
        r#"{{"model": "gpt-4o-mini", "messages": [{{"role": "user", "content": "{}"}}]}}"#,
        "x".repeat(3000)
    );
    let reply = client()
        .post(completions_url(&proxy))
        .header("authorization", format!("Bearer {KEY}"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 413);
    let error = error_of(reply).await;
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["message"], "request body is larger than 2000 bytes");
    assert!(mock.requests().is_empty());
    // Another method: 405, in the same shape.
    let reply = client().get(completions_url(&proxy)).send().await.unwrap();
    assert_eq!(reply.status(), 405);
    error_of(reply).await;
}

#[tokio::test]
async fn the_model_list_names_every_alias_and_provider() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = configured(&mock, &[]).await;
    let reply = client()
        .get(format!("{}/v1/models", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert!(reply.headers().contains_key("x-llmproxy-request-id"));
    let list: Value = reply.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(
        data[..2],
        [
            json!({"id": "fast", "object": "model", "created": 0, "owned_by": "anthropic"}),
            json!({"id": "mini", "object": "model", "created": 0, "owned_by": "openai"}),
        ]
    );
    let ids: Vec<&str> = data[2..]
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "openai/",
            "anthropic/",
            "gemini/",
            "ollama/",
            "groq/",
            "openrouter/",
            "deepseek/",
            "mistral/",
            "vllm/"
        ]
    );
    assert!(data[2..]
        .iter()
        .all(|m| m["owned_by"].as_str().unwrap().to_owned() + "/" == m["id"]));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn metrics_count_the_route_with_its_provider_and_tokens() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    assert_eq!(send(&proxy, hello("anthropic/c")).await.status(), 200);
    let reply = send(&proxy, streamed("gpt-4o-mini", true)).await;
    reply.text().await.unwrap();
    let reply = send(&proxy, streamed("gemini/gemini-2.5-flash", false)).await;
    reply.text().await.unwrap();
    send_with(&proxy, &[], hello("anthropic/c")).await;
    let text = scrape(&proxy).await;
    for line in [
        r#"llmproxy_requests_total{route="chat_completions",provider="anthropic",status="200"} 1"#,
        r#"llmproxy_requests_total{route="chat_completions",provider="anthropic",status="401"} 1"#,
        r#"llmproxy_requests_total{route="chat_completions",provider="openai",status="200"} 1"#,
        r#"llmproxy_requests_total{route="chat_completions",provider="gemini",status="200"} 1"#,
        r#"llmproxy_tokens_total{provider="anthropic",type="input"} 14"#,
        r#"llmproxy_tokens_total{provider="anthropic",type="output"} 12"#,
        r#"llmproxy_tokens_total{provider="openai",type="input"} 19"#,
        r#"llmproxy_tokens_total{provider="gemini",type="output"} 36"#,
        r#"llmproxy_stream_ends_total{provider="gemini",how="complete"} 1"#,
        r#"llmproxy_request_duration_seconds_count{route="chat_completions",provider="openai",stream="true"} 1"#,
    ] {
        assert!(text.contains(line), "{line} missing in\n{text}");
    }
}

#[tokio::test]
async fn the_log_line_names_the_route_and_the_resolved_provider_never_the_key() {
    let mock = MockUpstream::start(upstream).await;
    let base = format!("{}/v1", mock.url());
    let server = ServeProcess::start(&[
        ("OPENAI_BASE_URL", &base),
        ("ANTHROPIC_BASE_URL", &mock.url()),
        ("RUST_LOG", "trace"),
    ])
    .await;
    let url = format!("{}/v1/chat/completions", server.url);
    let canary = "sk-canary-compat-81d2";
    for (model, stream) in [
        ("anthropic/claude-x", false),
        ("anthropic/claude-x", true),
        ("gpt-4o-mini", false),
    ] {
        let mut body = hello(model);
        body["stream"] = stream.into();
        let reply = client()
            .post(&url)
            .header("authorization", format!("Bearer {canary}"))
            .header("x-request-id", format!("compat-{stream}-{}", model.len()))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        reply.text().await.unwrap();
    }
    wait_until(
        || server.logs().matches("path=/v1/chat/completions").count() == 3,
        std::time::Duration::from_secs(5),
    )
    .await;
    let logs = server.logs();
    assert!(!logs.contains(canary), "{logs}");
    let line = logs
        .lines()
        .find(|l| l.contains("request_id=compat-true-18"))
        .expect(&logs);
    for field in [
        "path=/v1/chat/completions",
        "provider=anthropic",
        "model=claude-x",
        "stream=true",
        "status=200",
        "upstream_status=200",
        "input_tokens=14",
        "output_tokens=12",
        "stream_end=complete",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
}

#[tokio::test]
async fn over_capacity_is_a_503_with_retry_after() {
    // A stream that keeps producing bytes holds the only slot without
    // ever hitting the (shorter) timeout.
    let mut steps = Vec::new();
    for _ in 0..10 {
        steps.push(Step::Send(b"data: {\"choices\":[]}\n\n".to_vec()));
        steps.push(Step::Sleep(std::time::Duration::from_millis(100)));
    }
    steps.push(Step::Send(b"data: [DONE]\n\n".to_vec()));
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(
        &mock,
        &[
            ("HTTP_MAX_CONNECTIONS", "1"),
            ("HTTP_TIMEOUT_SECONDS", "0.3"),
        ],
    )
    .await;
    let first = send(&proxy, streamed("gpt-4o-mini", false)).await;
    assert_eq!(first.status(), 200);
    let reply = send(&proxy, hello("anthropic/c")).await;
    assert_eq!(reply.status(), 503);
    assert_eq!(reply.headers()["retry-after"], "1");
    let error = error_of(reply).await;
    assert_eq!(error["type"], "server_error");
    assert!(first.bytes().await.unwrap().ends_with(b"data: [DONE]\n\n"));
    assert_eq!(mock.requests().len(), 1);
}
