//! Gemini behind the OpenAI protocol.

use serde_json::{json, Value};

use crate::support::*;

#[tokio::test]
async fn the_request_is_translated() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let body = json!({
        "model": "gemini/gemini-2.0-flash",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": "A cat."},
            {"role": "developer", "content": "In French."},
            {"role": "user", "content": "Sure?"}
        ],
        "max_completion_tokens": 80, "temperature": 0.4, "top_p": 0.9, "stop": "END", "seed": 0
    });
    let reply = send(&proxy, body).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["x-llmproxy-provider"], "gemini");
    let sent = mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1beta/models/gemini-2.0-flash:generateContent");
    assert_eq!(sent.headers["x-goog-api-key"], KEY);
    assert!(!sent.headers.contains_key("authorization"));
    assert_eq!(
        sent.json(),
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "What is this?"}, {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}]},
                {"role": "model", "parts": [{"text": "A cat."}]},
                {"role": "user", "parts": [{"text": "Sure?"}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be terse.\n\nIn French."}]},
            "generationConfig": {"maxOutputTokens": 80, "temperature": 0.4, "topP": 0.9, "stopSequences": ["END"]}
        })
    );
}

#[tokio::test]
async fn the_reply_and_a_blocked_prompt() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let mut body: Value = send(&proxy, hello("gemini/gemini-2.5-flash"))
        .await
        .json()
        .await
        .unwrap();
    body["created"] = 0.into();
    assert_eq!(
        body,
        json!({"id": "kT4mZq9RbXvLqtsPw2yN8Ac", "object": "chat.completion", "created": 0, "model": "gemini-2.5-flash",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": null},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 36, "total_tokens": 47, "prompt_tokens_details": {"cached_tokens": 0}}})
    );
    let body: Value = send(&proxy, hello("gemini/blocked-model"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["id"], "bQ9rTk3VmZhYqtsPz6LwJ0e");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": null, "refusal": null})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn the_stream_is_chat_completion_chunks() {
    let mock = MockUpstream::start(upstream).await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, streamed("gemini/gemini-2.5-flash", true)).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "text/event-stream");
    let text = reply.text().await.unwrap();
    assert_eq!(
        mock.requests().pop().unwrap().path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    let events = events(&text);
    assert_eq!(
        deltas(&events),
        [
            json!({"role": "assistant", "content": ""}),
            json!({"content": "Hello! How"}),
            json!({"content": " can I help"}),
            json!({"content": " you today?"}),
            json!({}),
        ]
    );
    let n = events.len();
    assert_eq!(events[n - 1], "[DONE]");
    assert_eq!(events[n - 3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[n - 2]["usage"]["completion_tokens"], 36);
    for chunk in &events[..n - 1] {
        assert_eq!(chunk["id"], "pL7xWd2NcQeRqtsP5vHm1Ku");
        assert_eq!(chunk["model"], "gemini-2.5-flash");
    }
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_chunk() {
    let mut steps = sse_events(&fixture("gemini-stream.sse"));
    steps.truncate(1);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let proxy = proxy(&mock, &[]).await;
    let text = send(&proxy, streamed("gemini/g", false))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert!(!events.contains(&Value::from("[DONE]")));
    assert_eq!(
        events.last().unwrap()["error"]["message"],
        "gemini stream ended before its end marker"
    );
}

#[tokio::test]
async fn errors_take_openai_shape() {
    let mock = MockUpstream::start(|request| {
        if request.path.contains("quota") {
            Script::json(429, fixture("gemini-error-429.json"))
        } else {
            Script::json(400, fixture("gemini-error-400.json"))
        }
    })
    .await;
    let proxy = proxy(&mock, &[]).await;
    let reply = send(&proxy, hello("gemini/quota")).await;
    assert_eq!(reply.status(), 429);
    let error = error_of(reply).await;
    assert_eq!(error["type"], "RESOURCE_EXHAUSTED");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("Please retry in 17.482913016s."));
    let reply = send(&proxy, streamed("gemini/bad-key", false)).await;
    assert_eq!(reply.status(), 400);
    let error = error_of(reply).await;
    assert_eq!(error["type"], "INVALID_ARGUMENT");
    assert_eq!(
        error["message"],
        "API key not valid. Please pass a valid API key."
    );
    // Refused before anything is sent.
    let requests = mock.requests().len();
    let mut body = hello("gemini/g");
    body["messages"] = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]}]);
    let error = error_of(send(&proxy, body).await).await;
    assert_eq!(error["param"], "messages[0].content[0].image_url.url");
    let mut body = hello("gemini/g");
    body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    let error = error_of(send(&proxy, body).await).await;
    assert_eq!(error["param"], "tools");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("not supported yet"));
    assert_eq!(mock.requests().len(), requests);
}
