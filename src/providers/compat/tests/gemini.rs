//! OpenAI requests to Gemini, and Gemini replies back.

use super::*;
use crate::providers::test_fixture as fixture;

#[test]
fn text_images_and_generation_config_are_translated() {
    let settings = settings(&[("GEMINI_BASE_URL", "http://127.0.0.1:1/v1beta")]);
    let body = json!({
        "model": "gemini/gemini-2.0-flash",
        "messages": [
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}]},
            {"role": "assistant", "content": "A cat."},
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "Sure?"},
            {"role": "user", "content": " "}
        ],
        "max_tokens": 50, "temperature": 0, "top_p": 0.5, "stop": ["x", "y"], "user": "u",
        "tool_choice": "none", "tools": [], "stream": true
    });
    let request = request(body);
    let target = resolve(&settings.providers, &request.model).unwrap();
    let prepared = prepare(&target, &request, &settings, Some("AIza")).unwrap();
    assert_eq!(
        prepared.url.as_str(),
        "http://127.0.0.1:1/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert!(prepared
        .wire
        .headers
        .iter()
        .any(|(n, v)| n == "x-goog-api-key" && v == "AIza"));
    assert_eq!(
        serde_json::from_slice::<Value>(&prepared.wire.body).unwrap(),
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "What is this?"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}}]},
                {"role": "model", "parts": [{"text": "A cat."}]},
                {"role": "user", "parts": [{"text": "Sure?"}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be terse.\n\nAnswer in French."}]},
            "generationConfig": {"maxOutputTokens": 50, "temperature": 0.0, "topP": 0.5, "stopSequences": ["x", "y"]}
        })
    );
}

#[test]
fn image_links_and_tools_are_refused() {
    let settings = settings(&[]);
    let refused = |extra: Value, messages: Value| {
        let mut body = json!({"model": "gemini/g", "messages": messages});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        param(sent(&settings, body))
    };
    let hi = json!([{"role": "user", "content": "Hi"}]);
    assert_eq!(
        refused(
            json!({}),
            json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}])
        ),
        "messages[0].content[0].image_url.url"
    );
    assert_eq!(
        refused(
            json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
            hi.clone()
        ),
        "tools"
    );
    assert_eq!(
        refused(json!({"tool_choice": "required"}), hi.clone()),
        "tool_choice"
    );
    assert_eq!(
        refused(
            json!({}),
            json!([{"role": "tool", "tool_call_id": "c", "content": "x"}])
        ),
        "messages[0].role"
    );
    assert_eq!(
        refused(
            json!({}),
            json!([{"role": "assistant", "tool_calls": [{"id": "c"}]}])
        ),
        "messages[0].tool_calls"
    );
    assert_eq!(refused(json!({"n": 2}), hi.clone()), "n");
    assert_eq!(
        refused(json!({"presence_penalty": 1}), hi.clone()),
        "presence_penalty"
    );
    // Models Gemini's path cannot carry.
    let body = json!({"model": "gemini/a/../b", "messages": hi});
    assert_eq!(param(sent(&settings, body)), "model");
}

#[test]
fn replies_usage_and_the_blocked_prompt() {
    let settings = settings(&[]);
    let gemini = settings.providers.provider("gemini").unwrap();
    let (body, usage) =
        translate_reply(gemini, "gemini-2.5-flash", &fixture("gemini-generate.json")).unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["id"], "kT4mZq9RbXvLqtsPw2yN8Ac");
    assert_eq!(reply["model"], "gemini-2.5-flash");
    assert_eq!(
        reply["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": null},
            "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 36, "total_tokens": 47, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (Some(11), Some(36))
    );

    let (body, _) = translate_reply(gemini, "g", &fixture("gemini-blocked.json")).unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(reply["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(reply["usage"]["prompt_tokens"], 8);

    let cached = br#"{"candidates": [{"content": {"parts": [{"text": "a", "thought": true}, {"text": "b"}]}, "finishReason": "MAX_TOKENS"}],
        "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 64, "candidatesTokenCount": 1}}"#;
    let (body, _) = translate_reply(gemini, "requested", cached).unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["model"], "requested");
    assert_eq!(reply["choices"][0]["message"]["content"], "b");
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
    assert_eq!(reply["usage"]["prompt_tokens_details"]["cached_tokens"], 64);
    for (reason, expected) in [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ] {
        assert_eq!(super::super::gemini::finish_reason(Some(reason)), expected);
    }
    assert!(matches!(
        translate_reply(gemini, "g", b"{}"),
        Err(Error::InvalidReply { .. })
    ));
}
