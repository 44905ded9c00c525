//! Logs: one line per request with its id, method, path, provider, model,
//! status, upstream status, timings, tokens and how it failed or ended, as
//! text or JSON (`LOG_FORMAT`); never the caller's key or message content,
//! even at trace level.

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

/// Sends every kind of request with the canary key and content to a server
/// started with `vars` (at `RUST_LOG=trace`), stops it, and returns its
/// logs, checked to hold neither.
async fn canary_logs(vars: &[(&str, &str)]) -> String {
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
    let openai_base = format!("{}/v1", mock.url());
    let anthropic_base = mock.url();
    let mut all = vec![
        ("OPENAI_BASE_URL", openai_base.as_str()),
        ("ANTHROPIC_BASE_URL", anthropic_base.as_str()),
        ("RUST_LOG", "trace"),
    ];
    all.extend_from_slice(vars);
    let mut server = ServeProcess::start(&all).await;
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
    logs
}

#[tokio::test]
async fn the_key_and_message_content_never_reach_the_logs_at_trace_level() {
    let logs = canary_logs(&[]).await;
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

#[tokio::test]
async fn json_lines_never_hold_the_key_either_and_every_line_is_an_object() {
    let logs = canary_logs(&[("LOG_FORMAT", "json")]).await;
    let mut requests = 0;
    for line in logs.lines() {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"));
        for key in ["timestamp", "level", "message"] {
            assert!(object.contains_key(key), "{key} missing in {line}");
        }
        if object["message"] == "request" && object.contains_key("provider") {
            requests += 1;
        }
    }
    assert_eq!(requests, 6, "{logs}");
    // The start-up line is JSON too.
    assert!(logs
        .lines()
        .next()
        .unwrap()
        .contains(r#""message":"listening on http://"#));
    // A client-chosen model is a plain JSON string, escaped by the encoder.
    assert!(logs.contains(r#""model":"x status=500\nforged""#), "{logs}");
}

/// The request line's fields, parsed: text `key=value` pairs (quoted values
/// unquoted) or a JSON object's members, all as JSON values.
fn fields(line: &str) -> serde_json::Map<String, serde_json::Value> {
    if line.starts_with('{') {
        return serde_json::from_str(line).unwrap();
    }
    let mut map = serde_json::Map::new();
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].rsplit(' ').next().unwrap().to_owned();
        let after = &rest[eq + 1..];
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut end = 0;
            let bytes = quoted.as_bytes();
            while bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            let raw = &after[..end + 2];
            (
                serde_json::from_str::<String>(raw).unwrap(),
                &quoted[end + 1..],
            )
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        map.insert(key, serde_json::Value::String(value));
        rest = next;
    }
    map
}

/// Runs one request of each kind, with `x-request-id` naming it, against a
/// server logging in `format`; returns each request's fields by id.
async fn request_lines(
    format: &str,
) -> std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>> {
    let mock = MockUpstream::start(|request| {
        if request.path == "/v1/messages" {
            return Script::json(529, fixture("anthropic-error-529.json"));
        }
        let body = request.json();
        let stream = fixture("openai-stream-usage.sse");
        match body["model"].as_str().unwrap() {
            "slow" => Script::never_answer(),
            "left" => Script::sse([sse_events(&stream)[..1].to_vec(), vec![Step::Stall]].concat()),
            "cut" => Script::sse([sse_events(&stream)[..3].to_vec(), vec![Step::Close]].concat()),
            _ if body["stream"] == true => Script::sse(sse_events(&stream)),
            _ => Script::json(200, fixture("openai-chat.json")),
        }
    })
    .await;
    let openai_base = format!("{}/v1", mock.url());
    let anthropic_base = mock.url();
    let mut server = ServeProcess::start(&[
        ("OPENAI_BASE_URL", openai_base.as_str()),
        ("ANTHROPIC_BASE_URL", anthropic_base.as_str()),
        ("HTTP_TIMEOUT_SECONDS", "0.5"),
        ("LOG_FORMAT", format),
    ])
    .await;
    let send = |id: &str, provider: &str, body: serde_json::Value| {
        client()
            .post(format!("{}/v1/chat/{provider}", server.url))
            .header("x-api-key", "sk-test")
            .header("x-request-id", id)
            .json(&body)
            .send()
    };
    // First, while it is the only upstream connection: a client that leaves
    // mid-stream. Its line is written before the upstream connection closes.
    let reply = send("t-left", "openai", chat_body("left", true))
        .await
        .unwrap();
    let mut body = reply.bytes_stream();
    futures::StreamExt::next(&mut body).await.unwrap().unwrap();
    drop(body);
    mock.wait_closed(1, Duration::from_secs(5))
        .await
        .expect("upstream closed");

    for (id, provider, body, status) in [
        ("t-whole", "openai", chat_body("gpt-4o-mini", false), 200),
        ("t-stream", "openai", chat_body("gpt-4o-mini", true), 200),
        ("t-cut", "openai", chat_body("cut", true), 200),
        ("t-529", "anthropic", chat_body("claude-x", false), 529),
        (
            "t-422",
            "openai",
            json!({"model": "m", "messages": []}),
            422,
        ),
        ("t-404", "nope", chat_body("m", false), 404),
        ("t-timeout", "openai", chat_body("slow", false), 504),
    ] {
        let reply = send(id, provider, body).await.unwrap();
        assert_eq!(reply.status(), status, "{id}");
        reply.bytes().await.unwrap();
    }
    server.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(5), server.child.wait()).await;
    let logs = server.logs();
    let mut lines = std::collections::HashMap::new();
    for line in logs.lines().filter(|l| l.contains("t-")) {
        let fields = fields(line);
        let id = fields["request_id"].as_str().unwrap().to_owned();
        assert!(
            lines.insert(id, fields).is_none(),
            "two lines for one id:\n{logs}"
        );
    }
    assert_eq!(lines.len(), 8, "{logs}");
    lines
}

#[tokio::test]
async fn every_field_of_the_request_line_in_both_formats() {
    use serde_json::Value;
    const ALL: [&str; 15] = [
        "request_id",
        "method",
        "path",
        "provider",
        "model",
        "stream",
        "status",
        "upstream_status",
        "attempts",
        "duration_ms",
        "ttfb_ms",
        "input_tokens",
        "output_tokens",
        "error",
        "stream_end",
    ];
    // `null`: the field is absent; "*": a number of milliseconds.
    let expected = json!({
        "t-whole": {"path": "/v1/chat/openai", "provider": "openai", "model": "gpt-4o-mini",
            "stream": false, "status": 200, "upstream_status": 200, "attempts": 1,
            "ttfb_ms": "*", "input_tokens": 19, "output_tokens": 9, "error": null, "stream_end": null},
        "t-stream": {"provider": "openai", "stream": true, "status": 200, "upstream_status": 200,
            "attempts": 1, "ttfb_ms": "*", "input_tokens": 19, "output_tokens": 9,
            "error": null, "stream_end": "complete"},
        "t-cut": {"stream": true, "status": 200, "upstream_status": 200, "attempts": 1,
            "ttfb_ms": "*", "input_tokens": null, "output_tokens": null,
            "error": "connect", "stream_end": "truncated"},
        "t-left": {"model": "left", "stream": true, "status": 200, "attempts": 1, "ttfb_ms": "*",
            "error": "client_closed", "stream_end": "client_closed"},
        "t-529": {"path": "/v1/chat/anthropic", "provider": "anthropic", "model": "claude-x",
            "status": 529, "upstream_status": 529, "attempts": 1, "input_tokens": null,
            "error": "upstream_5xx", "stream_end": null},
        "t-422": {"provider": "openai", "model": null, "stream": false, "status": 422,
            "upstream_status": null, "attempts": 0, "error": "invalid_request"},
        "t-404": {"path": "/v1/chat/nope", "provider": "unknown", "status": 404, "attempts": 0,
            "upstream_status": null, "error": "invalid_request"},
        "t-timeout": {"status": 504, "upstream_status": null, "attempts": 1, "error": "timeout",
            "input_tokens": null},
    });
    for format in ["text", "json"] {
        let lines = request_lines(format).await;
        for (id, want) in expected.as_object().unwrap() {
            let got = &lines[id];
            for (key, want) in want.as_object().unwrap() {
                let found = got.get(key);
                match (want, found) {
                    (Value::Null, None) => {}
                    (Value::Null, Some(v)) => panic!("{format} {id}: {key}={v} should be absent"),
                    (_, None) => panic!("{format} {id}: {key} missing in {got:?}"),
                    (Value::String(s), Some(v)) if s == "*" => {
                        let n = match v {
                            Value::String(s) if format == "text" => s.parse::<f64>().ok(),
                            v => v.as_f64(),
                        };
                        assert!(n.is_some_and(|n| n >= 0.0), "{format} {id}: {key}={v}");
                    }
                    (want, Some(v)) if format == "json" => {
                        assert_eq!(v, want, "{format} {id}: {key}")
                    }
                    (want, Some(v)) => {
                        let want = match want {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        assert_eq!(v.as_str().unwrap(), want, "{format} {id}: {key}");
                    }
                }
            }
            // The fields every line has, and nothing else.
            for key in [
                "request_id",
                "method",
                "path",
                "provider",
                "stream",
                "status",
                "attempts",
                "duration_ms",
            ] {
                assert!(
                    got.contains_key(key),
                    "{format} {id}: {key} missing in {got:?}"
                );
            }
            for key in got.keys() {
                assert!(
                    ALL.contains(&key.as_str())
                        || ["timestamp", "level", "message", "target"].contains(&key.as_str()),
                    "{format} {id}: unexpected field {key}"
                );
            }
            assert_eq!(got["method"], "POST");
            if format == "json" {
                assert!(got["duration_ms"].is_f64(), "{got:?}");
                assert_eq!(got["message"], "request");
                assert_eq!(got["level"], "INFO");
            }
        }
    }
}
