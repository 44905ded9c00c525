//! OpenAI requests to Anthropic Messages, and Anthropic replies back.

use super::*;
use crate::providers::test_fixture as fixture;

#[test]
fn a_whole_conversation_is_translated() {
    let settings = settings(&[]);
    let body = json!({
        "model": "anthropic/claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Weather in Paris and Tokyo? Also this:"},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}, {"type": "text", "text": ""}]},
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "text", "text": "  "},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": ""},
            {"role": "tool", "tool_call_id": "call_3", "content": ""}
        ],
        "max_tokens": 100, "max_completion_tokens": 200, "temperature": 0.5, "top_p": 0.9,
        "stop": "END", "user": "user-42", "stream": true,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "now"}}],
        "tool_choice": "required", "parallel_tool_calls": false,
        "store": true, "metadata": {"a": "b"}, "service_tier": "auto", "reasoning_effort": "low",
        "seed": null, "logprobs": false, "n": 1, "response_format": {"type": "text"},
        "stream_options": {"include_usage": true}
    });
    assert_eq!(
        sent(&settings, body).unwrap(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 200,
            "system": "Be terse.\n\nUse tools.",
            "messages": [
                {"role": "user", "content": "Weather in Paris and Tokyo? Also this:"},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "noon"}]}
                ]},
                {"role": "user", "content": "Thanks"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_3"}]}
            ],
            "stream": true,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "user-42"},
            "tools": [
                {"name": "get_weather", "description": "Weather",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        })
    );
}

#[test]
fn headers_url_and_max_tokens_precedence() {
    let settings = settings(&[("ANTHROPIC_DEFAULT_MAX_TOKENS", "333")]);
    let user = json!([{"role": "user", "content": "Hi"}]);
    let request = request(json!({"model": "anthropic/c", "messages": user}));
    let target = resolve(&settings.providers, &request.model).unwrap();
    let prepared = prepare(&target, &request, &settings, Some("sk-ant")).unwrap();
    assert_eq!(
        prepared.url.as_str(),
        "https://api.anthropic.com/v1/messages"
    );
    let header = |name: &str| {
        prepared
            .wire
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("x-api-key").as_deref(), Some("sk-ant"));
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header("authorization"), None);
    let body: Value = serde_json::from_slice(&prepared.wire.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "c", "max_tokens": 333, "messages": [{"role": "user", "content": "Hi"}]})
    );
    let with = |extra: Value| {
        let mut body = json!({"model": "fast", "messages": user});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        sent(&settings, body).unwrap()
    };
    // The alias's defaults fill in only what the client did not send.
    let body = with(json!({}));
    assert_eq!(
        (body["max_tokens"].as_u64(), body["temperature"].as_f64()),
        (Some(512), Some(0.2))
    );
    let body = with(json!({"max_tokens": 7, "temperature": 1}));
    assert_eq!(
        (body["max_tokens"].as_u64(), body["temperature"].as_f64()),
        (Some(7), Some(1.0))
    );
    assert_eq!(
        with(json!({"max_completion_tokens": 9, "max_tokens": 7}))["max_tokens"],
        9
    );
    assert_eq!(body["model"], "claude-3-5-haiku-20241022");
}

#[test]
fn tool_choice_variants() {
    let settings = settings(&[]);
    let tools = json!([{"type": "function", "function": {"name": "f"}}]);
    let choice = |extra: Value| {
        let mut body = json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "Hi"}], "tools": tools});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        sent(&settings, body).map(|b| b["tool_choice"].clone())
    };
    assert_eq!(choice(json!({})).unwrap(), json!({"type": "auto"}));
    assert_eq!(
        choice(json!({"tool_choice": "auto"})).unwrap(),
        json!({"type": "auto"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "none"})).unwrap(),
        json!({"type": "none"})
    );
    assert_eq!(
        choice(json!({"tool_choice": "required"})).unwrap(),
        json!({"type": "any"})
    );
    assert_eq!(
        choice(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}})).unwrap(),
        json!({"type": "tool", "name": "f"})
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": false})).unwrap(),
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        choice(json!({"tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": false})).unwrap(),
        json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true})
    );
    assert_eq!(
        choice(json!({"tool_choice": "none", "parallel_tool_calls": false})).unwrap(),
        json!({"type": "none"})
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": true})).unwrap(),
        json!({"type": "auto"})
    );
    assert_eq!(
        param(choice(json!({"tool_choice": "sometimes"}))),
        "tool_choice"
    );
    assert_eq!(
        param(choice(json!({"tool_choice": {"type": "function"}}))),
        "tool_choice"
    );
    // No tools, no tool_choice.
    let body = sent(
        &settings,
        json!({"model": "anthropic/c", "messages": [{"role": "user", "content": "Hi"}],
        "tools": [], "parallel_tool_calls": false}),
    )
    .unwrap();
    assert!(
        body.get("tools").is_none() && body.get("tool_choice").is_none(),
        "{body}"
    );
}

#[test]
fn what_cannot_be_translated_is_refused_naming_the_field() {
    let settings = settings(&[]);
    let refused = |extra: Value, messages: Value| {
        let mut body = json!({"model": "anthropic/c", "messages": messages});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        param(sent(&settings, body))
    };
    let hi = json!([{"role": "user", "content": "Hi"}]);
    assert_eq!(refused(json!({"n": 2}), hi.clone()), "n");
    assert_eq!(refused(json!({"stop": ["ok", " "]}), hi.clone()), "stop[1]");
    assert_eq!(refused(json!({"stop": "\n"}), hi.clone()), "stop");
    assert_eq!(refused(json!({"seed": 1}), hi.clone()), "seed");
    assert_eq!(
        refused(
            json!({"response_format": {"type": "json_object"}}),
            hi.clone()
        ),
        "response_format"
    );
    assert_eq!(
        refused(json!({"logit_bias": {"1": 2}}), hi.clone()),
        "logit_bias"
    );
    assert_eq!(
        refused(json!({"max_tokens": "many"}), hi.clone()),
        "max_tokens"
    );
    assert_eq!(
        refused(json!({"tools": [{"type": "web_search"}]}), hi.clone()),
        "tools[0].type"
    );
    assert_eq!(
        refused(
            json!({}),
            json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}])
        ),
        "messages[0].content[0].type"
    );
    let call = |arguments: &str| {
        json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}]}])
    };
    assert_eq!(
        refused(json!({}), call("[1, 2]")),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        refused(json!({}), call("{nope")),
        "messages[1].tool_calls[0].function.arguments"
    );
    assert_eq!(
        refused(json!({}), json!([{"role": "tool", "content": "x"}])),
        "messages[0].tool_call_id"
    );
    // Dropped instead with DROP_UNSUPPORTED_PARAMS; n and the rest stay refused.
    let dropping = self::settings(&[("DROP_UNSUPPORTED_PARAMS", "true")]);
    let body = sent(
        &dropping,
        json!({"model": "anthropic/c", "messages": hi, "seed": 1, "logprobs": true,
        "top_logprobs": 2, "presence_penalty": 1, "frequency_penalty": 1, "logit_bias": {"1": 2},
        "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    assert_eq!(
        body,
        json!({"model": "c", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hi"}]})
    );
    assert_eq!(
        param(sent(
            &dropping,
            json!({"model": "anthropic/c", "messages": hi, "n": 3})
        )),
        "n"
    );
}

#[test]
fn replies_and_their_finish_reasons() {
    let settings = settings(&[]);
    let anthropic = settings.providers.provider("anthropic").unwrap();
    let (body, usage) =
        translate_reply(anthropic, "c", &fixture("anthropic-messages.json")).unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(reply["id"], "msg_01HkR7mQ2vXsT9bLpWd4cYzN");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["model"], "claude-sonnet-4-5-20250929");
    assert!(reply["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(
        reply["choices"],
        json!([{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?", "refusal": null},
            "logprobs": null, "finish_reason": "stop"}])
    );
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (Some(14), Some(12))
    );

    let tool_use = br#"{"id":"msg_2","type":"message","role":"assistant","model":"claude-x","content":[
        {"type":"thinking","thinking":"hmm","signature":"s"},
        {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":10,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":5}}"#;
    let (body, _) = translate_reply(anthropic, "c", tool_use).unwrap();
    let reply: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        reply["choices"][0]["message"],
        json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [{"id": "toolu_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]})
    );
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        reply["usage"],
        json!({"prompt_tokens": 330, "completion_tokens": 5, "total_tokens": 335, "prompt_tokens_details": {"cached_tokens": 300}})
    );
    for (reason, expected) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ] {
        assert_eq!(
            super::super::anthropic_reply::finish_reason(Some(reason)),
            expected
        );
    }
    assert_eq!(super::super::anthropic_reply::finish_reason(None), "stop");
    assert!(matches!(
        translate_reply(anthropic, "c", b"<html>"),
        Err(Error::InvalidReply { .. })
    ));
}
