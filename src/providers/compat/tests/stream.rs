//! Anthropic and Gemini streams as `chat.completion.chunk` events, whatever
//! the network's chunking.

use futures::StreamExt;

use super::*;
use crate::providers::test_fixture as fixture;

/// How a translated stream ended.
#[derive(Debug, PartialEq)]
enum End {
    Clean,
    UpstreamError,
    Failed(String),
}

/// The `data` of every event `bytes` (cut into pieces of `size`) became,
/// the usage, and how the stream ended.
async fn translate(
    provider: &str,
    bytes: &[u8],
    size: usize,
    include_usage: bool,
) -> (Vec<String>, StreamUsage, End) {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let provider = settings.providers.provider(provider).unwrap();
    let pieces: Vec<Result<Bytes>> = bytes
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut stream = ChunkStream::from_bytes(
        provider,
        futures::stream::iter(pieces),
        "requested",
        include_usage,
    );
    let mut out = Vec::new();
    let mut end = End::Clean;
    while let Some(item) = stream.next().await {
        match item {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(error) => end = End::Failed(error.to_string()),
        }
    }
    if stream.upstream_error() {
        end = End::UpstreamError;
    }
    let text = String::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    let events = text
        .split_terminator("\n\n")
        .map(|event| {
            assert!(!event.contains('\n'), "one data line per event: {event}");
            event.strip_prefix("data: ").expect(event).to_owned()
        })
        .collect();
    (events, stream.usage(), end)
}

fn json(event: &str) -> Value {
    serde_json::from_str(event).unwrap()
}

fn deltas(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| json(e))
        .filter(|e| !e["choices"].as_array().unwrap().is_empty())
        .map(|e| e["choices"][0]["delta"].clone())
        .collect()
}

#[tokio::test]
async fn the_anthropic_fixture_stream() {
    for size in [1, 7, 100, 100_000] {
        let (events, usage, end) =
            translate("anthropic", &fixture("anthropic-stream.sse"), size, false).await;
        assert_eq!(end, End::Clean);
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
        assert_eq!(events.last().unwrap(), "[DONE]");
        let first = json(&events[0]);
        for event in &events[..events.len() - 1] {
            let event = json(event);
            assert_eq!(event["id"], "msg_01Fq8ZtVn3RkL5xWb2YpHs7J");
            assert_eq!(event["model"], "claude-sonnet-4-5-20250929");
            assert_eq!(event["object"], "chat.completion.chunk");
            assert_eq!(event["created"], first["created"]);
            assert_eq!(event["choices"][0]["index"], 0);
            assert!(event.get("usage").is_none());
        }
        let last = json(&events[events.len() - 2]);
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (Some(14), Some(12))
        );
    }
}

#[tokio::test]
async fn include_usage_adds_the_usage_chunk_and_null_usage_everywhere_else() {
    let (events, _, end) = translate("anthropic", &fixture("anthropic-stream.sse"), 50, true).await;
    assert_eq!(end, End::Clean);
    let n = events.len();
    assert_eq!(events[n - 1], "[DONE]");
    let usage = json(&events[n - 2]);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    for event in &events[..n - 2] {
        assert!(json(event)["usage"].is_null());
        assert!(json(event).get("usage").is_some());
    }
}

#[tokio::test]
async fn tool_calls_are_counted_from_zero_in_the_reply() {
    for size in [3, 100_000] {
        let (events, usage, end) = translate(
            "anthropic",
            &fixture("anthropic-stream-tool-use.sse"),
            size,
            true,
        )
        .await;
        assert_eq!(end, End::Clean);
        assert_eq!(
            deltas(&events),
            [
                json!({"role": "assistant", "content": ""}),
                json!({"content": "I'll check the weather in both cities."}),
                json!({"tool_calls": [{"index": 0, "id": "toolu_01VpX4mQ8sLk2RbT9wYc3NdE", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Par"}}]}),
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "is\"}"}}]}),
                json!({"tool_calls": [{"index": 1, "id": "toolu_01Hq7ZcR2nWx5KtB8mLp4VsJ", "type": "function",
                    "function": {"name": "get_weather", "arguments": ""}}]}),
                json!({"tool_calls": [{"index": 1, "function": {"arguments": "{\"city\": \"Tokyo\"}"}}]}),
                json!({}),
            ]
        );
        let n = events.len();
        assert_eq!(
            json(&events[n - 3])["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(
            json(&events[n - 2])["usage"],
            json!({"prompt_tokens": 668, "completion_tokens": 97, "total_tokens": 765, "prompt_tokens_details": {"cached_tokens": 256}})
        );
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (Some(668), Some(97))
        );
    }
}

#[tokio::test]
async fn thinking_and_unknown_events_send_nothing() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"s\"}}\n\n",
        "event: something_new\ndata: {\"type\":\"something_new\"}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":3}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let (events, usage, end) = translate("anthropic", stream.as_bytes(), 10, false).await;
    assert_eq!(end, End::Clean);
    assert_eq!(
        deltas(&events),
        [json!({"role": "assistant", "content": ""}), json!({})]
    );
    assert_eq!(json(&events[1])["choices"][0]["finish_reason"], "length");
    assert_eq!(
        (usage.input_tokens, usage.output_tokens),
        (Some(1), Some(3))
    );
}

#[tokio::test]
async fn an_error_event_becomes_an_error_chunk_without_done() {
    let (events, usage, end) = translate(
        "anthropic",
        &fixture("anthropic-stream-error.sse"),
        13,
        true,
    )
    .await;
    assert_eq!(end, End::UpstreamError);
    assert_eq!(
        json(events.last().unwrap()),
        json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null}})
    );
    assert!(!events.contains(&"[DONE]".to_owned()));
    assert_eq!(deltas(&events[..events.len() - 1]).len(), 4);
    assert_eq!(usage.input_tokens, Some(31));
}

#[tokio::test]
async fn a_stream_cut_before_its_end_fails() {
    let full = fixture("anthropic-stream.sse");
    let cut =
        &full[..full.len() - "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".len()];
    let (events, _, end) = translate("anthropic", cut, 64, false).await;
    assert!(!events.contains(&"[DONE]".to_owned()));
    assert_eq!(
        end,
        End::Failed("anthropic stream ended before its end marker".to_owned())
    );
    let (events, _, end) = translate("anthropic", b"", 64, false).await;
    assert!(events.is_empty());
    assert!(matches!(end, End::Failed(_)));
}

#[tokio::test]
async fn the_gemini_fixture_stream() {
    for size in [1, 5, 100_000] {
        let (events, usage, end) =
            translate("gemini", &fixture("gemini-stream.sse"), size, true).await;
        assert_eq!(end, End::Clean);
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
        assert_eq!(json(&events[0])["id"], "pL7xWd2NcQeRqtsP5vHm1Ku");
        assert_eq!(json(&events[0])["model"], "gemini-2.5-flash");
        assert_eq!(json(&events[n - 3])["choices"][0]["finish_reason"], "stop");
        assert_eq!(
            json(&events[n - 2])["usage"],
            json!({"prompt_tokens": 11, "completion_tokens": 36, "total_tokens": 47, "prompt_tokens_details": {"cached_tokens": 0}})
        );
        assert_eq!(events[n - 1], "[DONE]");
        assert_eq!(
            (usage.input_tokens, usage.output_tokens),
            (Some(11), Some(36))
        );
    }
}

#[tokio::test]
async fn gemini_streams_cut_blocked_and_failed() {
    let full = fixture("gemini-stream.sse");
    let first_end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let (events, _, end) = translate("gemini", &full[..first_end], 7, false).await;
    assert_eq!(deltas(&events).len(), 2);
    assert_eq!(
        end,
        End::Failed("gemini stream ended before its end marker".to_owned())
    );
    let blocked = b"data: {\"promptFeedback\": {\"blockReason\": \"SAFETY\"},\"usageMetadata\": {\"promptTokenCount\": 8},\"responseId\": \"r\"}\r\n\r\n";
    let (events, _, end) = translate("gemini", blocked, 9, false).await;
    assert_eq!(end, End::Clean);
    assert_eq!(
        deltas(&events),
        [json!({"role": "assistant", "content": ""}), json!({})]
    );
    assert_eq!(
        json(&events[1])["choices"][0]["finish_reason"],
        "content_filter"
    );
    let failed = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]}}]}\r\n\r\ndata: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n";
    let (events, _, end) = translate("gemini", failed, 9, false).await;
    assert_eq!(end, End::UpstreamError);
    assert_eq!(
        json(events.last().unwrap())["error"],
        json!({"message": "The model is overloaded.", "type": "UNAVAILABLE", "param": null, "code": null})
    );
}
