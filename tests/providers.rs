//! The providers beyond OpenAI and Anthropic, through `POST /v1/chat/{name}`:
//! Gemini's native adapter, the built-in OpenAI-compatible hosts (pointed at
//! the mock with `<NAME>_BASE_URL`), and providers of each kind from a
//! config file.

mod common;

use common::*;
use serde_json::{json, Value};

const GEMINI_KEY: &str = "AIza-test-key";

/// A mock that answers like Gemini: replies, streams and errors by path.
fn gemini_mock(request: &Recorded) -> Script {
    let model = request.path.split("/models/").nth(1).unwrap_or_default();
    if model.starts_with("blocked") {
        return Script::json(200, fixture("gemini-blocked.json"));
    }
    if model.starts_with("bad-key") {
        return Script::json(400, fixture("gemini-error-400.json"));
    }
    if model.starts_with("quota") {
        return Script::json(429, fixture("gemini-error-429.json"));
    }
    if request.path.contains(":streamGenerateContent") {
        let mut steps = sse_events(&fixture("gemini-stream.sse"));
        if model.starts_with("cut") {
            steps.truncate(1);
        }
        return Script::sse(steps);
    }
    Script::json(200, fixture("gemini-generate.json"))
}

async fn gemini_proxy(mock: &MockUpstream) -> Proxy {
    let base = format!("{}/v1beta", mock.url());
    Proxy::start(&mock.url(), &[("GEMINI_BASE_URL", &base)]).await
}

async fn post_with_key(url: &str, key: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = client().post(url).json(&body);
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    request.send().await.unwrap()
}

fn conversation(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "max_tokens": 100,
        "temperature": 0.3,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Again"}
        ]
    })
}

#[tokio::test]
async fn gemini_gets_its_own_url_header_and_body_and_the_reply_is_normalized() {
    let mock = MockUpstream::start(gemini_mock).await;
    let proxy = gemini_proxy(&mock).await;
    let reply = post_with_key(
        &proxy.chat_url("gemini"),
        Some(GEMINI_KEY),
        conversation("gemini-2.5-flash", false),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(
        body,
        json!({"provider": "gemini", "model": "gemini-2.5-flash",
            "content": "Hello! How can I help you today?", "stop_reason": "stop",
            "usage": {"input_tokens": 11, "output_tokens": 36}, "id": "kT4mZq9RbXvLqtsPw2yN8Ac"})
    );
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent.headers["x-goog-api-key"], GEMINI_KEY);
    assert!(!sent.headers.contains_key("authorization"));
    assert!(!sent.headers.contains_key("x-api-key"));
    assert_eq!(
        sent.json(),
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Hello!"}]},
                {"role": "model", "parts": [{"text": "Hi."}]},
                {"role": "user", "parts": [{"text": "Again"}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"maxOutputTokens": 100, "temperature": 0.3}
        })
    );
}

#[tokio::test]
async fn a_gemini_blocked_prompt_is_an_empty_filtered_reply() {
    let mock = MockUpstream::start(gemini_mock).await;
    let proxy = gemini_proxy(&mock).await;
    let reply = post_with_key(
        &proxy.chat_url("gemini"),
        Some(GEMINI_KEY),
        chat_body("blocked-model", false),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["content"], "");
    assert_eq!(body["stop_reason"], "content_filter");
    assert_eq!(
        body["usage"],
        json!({"input_tokens": 8, "output_tokens": 0})
    );
}

#[tokio::test]
async fn a_gemini_stream_passes_through_byte_for_byte() {
    let mock = MockUpstream::start(gemini_mock).await;
    let proxy = gemini_proxy(&mock).await;
    let reply = post_with_key(
        &proxy.chat_url("gemini"),
        Some(GEMINI_KEY),
        chat_body("gemini-2.5-flash", true),
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "text/event-stream");
    let bytes = reply.bytes().await.unwrap();
    assert!(bytes == fixture("gemini-stream.sse"), "{bytes:?}");
    assert_eq!(
        mock.requests()[0].path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn a_gemini_stream_cut_before_its_finish_reason_ends_with_one_gemini_error_event() {
    let mock = MockUpstream::start(gemini_mock).await;
    let proxy = gemini_proxy(&mock).await;
    let reply = post_with_key(
        &proxy.chat_url("gemini"),
        Some(GEMINI_KEY),
        chat_body("cut-model", true),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let text = String::from_utf8(reply.bytes().await.unwrap().to_vec()).unwrap();
    let events: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
    assert_eq!(events.len(), 2, "{text}");
    assert!(events[0].contains("Hello! How"));
    let error: Value = serde_json::from_str(events[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], 502);
    assert_eq!(error["error"]["status"], "UNAVAILABLE");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gemini"));
}

#[tokio::test]
async fn gemini_errors_keep_their_status_and_body() {
    let mock = MockUpstream::start(gemini_mock).await;
    let proxy = gemini_proxy(&mock).await;
    for (model, status, file) in [
        ("bad-key", 400, "gemini-error-400.json"),
        ("quota", 429, "gemini-error-429.json"),
    ] {
        for stream in [false, true] {
            let reply = post_with_key(
                &proxy.chat_url("gemini"),
                Some(GEMINI_KEY),
                chat_body(model, stream),
            )
            .await;
            assert_eq!(reply.status(), status, "{model}");
            let body: Value = reply.json().await.unwrap();
            let upstream: Value = serde_json::from_slice(&fixture(file)).unwrap();
            assert_eq!(body["detail"], upstream, "{model}");
        }
    }
}

#[tokio::test]
async fn gemini_refuses_model_names_that_would_change_the_path() {
    let mock = MockUpstream::start(gemini_mock).await;
    let proxy = gemini_proxy(&mock).await;
    for model in ["a/b", "x?key=1", "a#b", "../v1/files"] {
        let reply = post_with_key(
            &proxy.chat_url("gemini"),
            Some(GEMINI_KEY),
            chat_body(model, false),
        )
        .await;
        assert_eq!(reply.status(), 422, "{model}");
        let body: Value = reply.json().await.unwrap();
        assert!(
            body["detail"].as_str().unwrap().starts_with("model:"),
            "{body}"
        );
    }
    assert!(mock.requests().is_empty());
}

/// An OpenAI-shaped mock that records what it was sent.
fn openai_mock(request: &Recorded) -> Script {
    if request.json()["stream"] == true {
        Script::sse(sse_events(&fixture("openai-stream.sse")))
    } else {
        Script::json(200, fixture("openai-chat.json"))
    }
}

#[tokio::test]
async fn ollama_needs_no_key_and_forwards_one_when_given() {
    let mock = MockUpstream::start(openai_mock).await;
    let base = format!("{}/v1", mock.url());
    let proxy = Proxy::start(&mock.url(), &[("OLLAMA_BASE_URL", &base)]).await;
    let reply = post_with_key(
        &proxy.chat_url("ollama"),
        None,
        chat_body("llama3.2", false),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["provider"], "ollama");
    assert_eq!(body["content"], "Hello! How can I help you today?");
    let reply = post_with_key(
        &proxy.chat_url("ollama"),
        Some("local-key"),
        chat_body("llama3.2", true),
    )
    .await;
    assert_eq!(reply.status(), 200);
    assert!(reply.bytes().await.unwrap() == fixture("openai-stream.sse"));
    let sent = mock.requests();
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert!(!sent[0].headers.contains_key("authorization"));
    assert_eq!(sent[1].headers["authorization"], "Bearer local-key");
}

#[tokio::test]
async fn hosted_openai_compatible_providers_need_a_key_and_get_max_tokens() {
    let mock = MockUpstream::start(openai_mock).await;
    let base = format!("{}/v1", mock.url());
    let mut vars = Vec::new();
    for name in ["GROQ", "OPENROUTER", "DEEPSEEK", "MISTRAL"] {
        vars.push((format!("{name}_BASE_URL"), base.clone()));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let proxy = Proxy::start(&mock.url(), &vars).await;
    let mut body = chat_body("m", false);
    body["max_tokens"] = json!(7);
    for name in ["groq", "openrouter", "deepseek", "mistral"] {
        let reply = post_with_key(&proxy.chat_url(name), None, body.clone()).await;
        assert_eq!(reply.status(), 401, "{name}");
        let reply = post_with_key(&proxy.chat_url(name), Some("hosted-key"), body.clone()).await;
        assert_eq!(reply.status(), 200, "{name}");
        let sent = mock.requests().pop().unwrap();
        assert_eq!(sent.path, "/v1/chat/completions", "{name}");
        assert_eq!(sent.headers["authorization"], "Bearer hosted-key", "{name}");
        assert_eq!(sent.json()["max_tokens"], 7, "{name}");
        assert!(sent.json().get("max_completion_tokens").is_none(), "{name}");
    }
    assert_eq!(
        mock.requests().len(),
        4,
        "the 401s never reached the upstream"
    );
}

#[tokio::test]
async fn configured_providers_of_each_kind_work_on_the_native_route() {
    let mock = MockUpstream::start(|request| {
        if request.path == "/v1/messages" {
            Script::json(200, fixture("anthropic-messages.json"))
        } else if request.path.starts_with("/gem/models/") {
            gemini_mock(request)
        } else {
            openai_mock(request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("llmproxy.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[providers.vllm]
kind = "openai"
base_url = "{url}/v1"
key = "none"
headers = {{ "HTTP-Referer" = "https://example.com" }}

[providers.claude]
kind = "anthropic"
base_url = "{url}"

[providers.gem]
kind = "gemini"
base_url = "{url}/gem"
"#,
            url = mock.url()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let server = ServeProcess::start_with(&["--config", &config, "--port", "0"], &[]).await;
    let url = |name: &str| format!("{}/v1/chat/{name}", server.url);

    // key = "none": nothing is sent even when the caller sends a key.
    let reply = post_with_key(&url("vllm"), Some("caller-key"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 200);
    let reply = post_with_key(&url("vllm"), None, chat_body("m", true)).await;
    assert!(reply.bytes().await.unwrap() == fixture("openai-stream.sse"));
    let reply = post_with_key(&url("claude"), Some("ant-key"), chat_body("c", false)).await;
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["provider"], "claude");
    let reply = post_with_key(&url("gem"), Some(GEMINI_KEY), chat_body("g", false)).await;
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["provider"], "gem");
    assert_eq!(body["usage"]["output_tokens"], 36);

    let sent = mock.requests();
    assert_eq!(sent.len(), 4);
    assert!(!sent[0].headers.contains_key("authorization"));
    assert_eq!(sent[0].headers["http-referer"], "https://example.com");
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(sent[2].path, "/v1/messages");
    assert_eq!(sent[2].headers["x-api-key"], "ant-key");
    assert_eq!(sent[3].path, "/gem/models/g:generateContent");
    assert_eq!(sent[3].headers["x-goog-api-key"], GEMINI_KEY);

    let reply = post_with_key(&url("nope"), Some("k"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 404);
    let body: Value = reply.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .ends_with("mistral, claude, gem, vllm"),
        "{body}"
    );
}

#[tokio::test]
async fn a_configured_timeout_applies_to_that_provider_only() {
    let mock = MockUpstream::start(|request| {
        if request.path.starts_with("/slow/") {
            Script::never_answer()
        } else {
            openai_mock(request)
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("llmproxy.toml");
    std::fs::write(
        &config,
        format!(
            "[providers.slow]\nkind = \"openai\"\nbase_url = \"{url}/slow/v1\"\nkey = \"none\"\ntimeout_seconds = 0.3\n",
            url = mock.url()
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let server = ServeProcess::start_with(
        &["--config", &config, "--port", "0"],
        &[("OPENAI_BASE_URL", &format!("{}/v1", mock.url()))],
    )
    .await;
    let reply = post_with_key(
        &format!("{}/v1/chat/slow", server.url),
        None,
        chat_body("m", false),
    )
    .await;
    assert_eq!(reply.status(), 504);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["detail"], "slow did not answer within 1s");
    // The default (60 s) still applies to the others.
    let reply = post_with_key(
        &format!("{}/v1/chat/openai", server.url),
        Some("k"),
        chat_body("m", false),
    )
    .await;
    assert_eq!(reply.status(), 200);
}
