//! Logs: one line per request with method, path, provider, model, status and
//! duration; never the caller's key or message content, even at trace level.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

const CANARY_KEY: &str = "sk-canary-7f3a9c1e5b";
const SECRET_TEXT: &str = "the-secret-message-content";

async fn canary_post(url: &str, body: serde_json::Value) -> u16 {
    client()
        .post(url)
        .header("x-api-key", CANARY_KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn body(model: &str, stream: bool) -> serde_json::Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": SECRET_TEXT}]})
}

#[tokio::test]
async fn the_key_and_message_content_never_reach_the_logs_at_trace_level() {
    let mock = MockUpstream::start(|request| {
        if request.path == "/v1/messages" {
            Script::json(401, fixture("anthropic-error-401.json"))
        } else if request.json()["stream"] == true {
            Script::sse(sse_events(&fixture("openai-stream.sse")))
        } else {
            Script::json(200, fixture("openai-chat.json"))
        }
    })
    .await;
    let mut server = ServeProcess::start(&[
        ("OPENAI_BASE_URL", &format!("{}/v1", mock.url())),
        ("ANTHROPIC_BASE_URL", &mock.url()),
        ("RUST_LOG", "trace"),
    ])
    .await;
    let openai = format!("{}/v1/chat/openai", server.url);
    let anthropic = format!("{}/v1/chat/anthropic", server.url);
    assert_eq!(canary_post(&openai, body("gpt-4o-mini", false)).await, 200);
    assert_eq!(canary_post(&openai, body("gpt-4o-mini", true)).await, 200);
    assert_eq!(canary_post(&anthropic, body("claude-x", false)).await, 401);
    assert_eq!(
        canary_post(&openai, json!({"model": "m", "messages": []})).await,
        422
    );
    assert_eq!(
        canary_post(&format!("{}/v1/chat/nope", server.url), body("m", false)).await,
        404
    );
    assert_eq!(
        canary_post(&openai, body("x status=500\nforged", false)).await,
        200
    );
    assert_eq!(
        client()
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Every request has been handled by now; stop to flush the logs.
    server.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(5), server.child.wait()).await;
    let logs = server.logs();

    assert!(
        !logs.contains(CANARY_KEY),
        "the key is in the logs:\n{logs}"
    );
    assert!(
        !logs.contains("canary"),
        "part of the key is in the logs:\n{logs}"
    );
    assert!(
        !logs.contains(SECRET_TEXT),
        "message content is in the logs:\n{logs}"
    );

    let request_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" request ") || l.ends_with(" request"))
        .collect();
    let chat_lines: Vec<&str> = request_lines
        .iter()
        .copied()
        .filter(|l| l.contains("path=/v1/chat/"))
        .collect();
    assert_eq!(
        chat_lines.len(),
        6,
        "one line per chat request:\n{}",
        request_lines.join("\n")
    );
    let first = chat_lines[0];
    for field in [
        "method=\"POST\"",
        "path=/v1/chat/openai",
        "provider=openai",
        "model=gpt-4o-mini",
        "status=200",
        "duration_ms=",
    ] {
        assert!(first.contains(field), "{field} missing in {first}");
    }
    assert!(chat_lines
        .iter()
        .any(|l| l.contains("provider=anthropic") && l.contains("status=401")));
    assert!(request_lines
        .iter()
        .any(|l| l.contains("path=/healthz") && l.contains("status=200")));
    // A client-chosen model name is quoted: it cannot forge fields or lines.
    assert!(
        chat_lines
            .iter()
            .any(|l| l.contains(r#"model="x status=500\nforged" stream=false status=200"#)),
        "{}",
        chat_lines.join("\n")
    );
    assert!(!logs.lines().any(|l| l.starts_with("forged")));
}

#[tokio::test]
async fn the_cli_never_prints_the_key_even_at_trace_level() {
    let mock = MockUpstream::always(Script::json(401, fixture("openai-error-401.json"))).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"))
        .args(["chat", "openai", "-m", "m", "--no-stdin", SECRET_TEXT])
        .env_clear()
        .env("OPENAI_API_KEY", CANARY_KEY)
        .env("OPENAI_BASE_URL", format!("{}/v1", mock.url()))
        .env("RUST_LOG", "trace")
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("openai returned 401"), "{stderr}");
    assert!(!stderr.contains(CANARY_KEY), "{stderr}");
    assert_eq!(
        mock.requests()[0].headers["authorization"],
        format!("Bearer {CANARY_KEY}")
    );
}
