//! What the OpenAI-compatible route writes for a translated provider:
//! `chat.completion` replies, `chat.completion.chunk` events, and the one
//! error shape of the route (`{"error": {"message", "type", "param",
//! "code"}}`), each written in one place.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;

use crate::providers::StreamUsage;

/// Token counts in OpenAI's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Every input token, cached or not.
    pub prompt: u64,
    /// Generated tokens, reasoning included.
    pub completion: u64,
    /// The input tokens read from a cache.
    pub cached: u64,
}

impl Tokens {
    pub fn stream_usage(self) -> StreamUsage {
        StreamUsage {
            input_tokens: Some(self.prompt),
            output_tokens: Some(self.completion),
        }
    }

    fn out(self) -> UsageOut {
        UsageOut {
            prompt_tokens: self.prompt,
            completion_tokens: self.completion,
            total_tokens: self.prompt + self.completion,
            prompt_tokens_details: CachedOut {
                cached_tokens: self.cached,
            },
        }
    }
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedOut,
}

#[derive(Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

/// One tool call of a whole reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The input, as a JSON string.
    pub arguments: String,
}

/// A whole reply, translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub id: String,
    pub model: String,
    /// `None` when the reply has no text.
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: &'static str,
    pub tokens: Tokens,
}

impl Reply {
    /// The `chat.completion` object.
    pub fn to_json(&self, created: u64) -> Vec<u8> {
        let tool_calls: Vec<ToolCallOut<'_>> = self
            .tool_calls
            .iter()
            .map(|call| ToolCallOut {
                id: &call.id,
                kind: "function",
                function: FunctionOut {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            })
            .collect();
        let completion = CompletionOut {
            id: &self.id,
            object: "chat.completion",
            created,
            model: &self.model,
            choices: [ChoiceOut {
                index: 0,
                message: MessageOut {
                    role: "assistant",
                    content: self.content.as_deref(),
                    refusal: None,
                    tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                },
                logprobs: None,
                finish_reason: self.finish_reason,
            }],
            usage: self.tokens.out(),
        };
        serde_json::to_vec(&completion).unwrap_or_default()
    }
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    /// Required by OpenAI's schema; never set by a translation.
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallOut<'a>>>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionOut<'a>,
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

/// Seconds since the Unix epoch, for `created`.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What one chunk's `delta` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta<'a> {
    /// The first chunk: `{"role": "assistant", "content": ""}`.
    Role,
    Content(&'a str),
    /// A tool call begins: its index in this reply, id and name.
    ToolStart {
        index: usize,
        id: &'a str,
        name: &'a str,
    },
    /// More of a tool call's arguments.
    ToolArguments {
        index: usize,
        arguments: &'a str,
    },
}

/// Writes a stream's `chat.completion.chunk` events: the same `id`,
/// `created` and `model` in each, `"usage": null` in each when the client
/// asked for usage.
#[derive(Debug, Clone)]
pub struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
}

impl ChunkWriter {
    pub fn new(id: String, model: String, include_usage: bool) -> Self {
        ChunkWriter {
            id,
            created: now(),
            model,
            include_usage,
        }
    }

    /// Appends one `data:` event with `delta`.
    pub fn delta(&self, delta: Delta<'_>, out: &mut Vec<u8>) {
        let mut fields = DeltaOut::default();
        match delta {
            Delta::Role => {
                fields.role = Some("assistant");
                fields.content = Some("");
            }
            Delta::Content(text) => fields.content = Some(text),
            Delta::ToolStart { index, id, name } => {
                fields.tool_calls = Some([ToolDeltaOut {
                    index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDeltaOut {
                        name: Some(name),
                        arguments: "",
                    },
                }]);
            }
            Delta::ToolArguments { index, arguments } => {
                fields.tool_calls = Some([ToolDeltaOut {
                    index,
                    id: None,
                    kind: None,
                    function: FunctionDeltaOut {
                        name: None,
                        arguments,
                    },
                }]);
            }
        }
        self.write(&[ChunkChoiceOut::new(fields, None)], None, out);
    }

    /// Appends the end of a stream: the chunk with `finish_reason`, the
    /// usage chunk when the client asked for it, and `data: [DONE]`.
    pub fn finish(&self, finish_reason: &str, tokens: Tokens, out: &mut Vec<u8>) {
        let choice = ChunkChoiceOut::new(DeltaOut::default(), Some(finish_reason));
        self.write(&[choice], None, out);
        if self.include_usage {
            self.write(&[], Some(tokens.out()), out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn write(&self, choices: &[ChunkChoiceOut<'_>], usage: Option<UsageOut>, out: &mut Vec<u8>) {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage: self.include_usage.then_some(usage),
        };
        out.extend_from_slice(b"data: ");
        // Serializing these types into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &chunk);
        out.extend_from_slice(b"\n\n");
    }
}

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoiceOut<'a>],
    /// Absent unless the client asked for usage; then `null` but in the
    /// usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

impl<'a> ChunkChoiceOut<'a> {
    fn new(delta: DeltaOut<'a>, finish_reason: Option<&'a str>) -> Self {
        ChunkChoiceOut {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        }
    }
}

#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolDeltaOut<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolDeltaOut<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`.
pub fn error_json(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    let error = ErrorOut {
        error: ErrorInner {
            message,
            kind,
            param,
            code,
        },
    };
    serde_json::to_vec(&error).unwrap_or_default()
}

/// The event that ends a stream which failed after it started: the error
/// object as one `data:` event (what OpenAI's SDKs raise on), no `[DONE]`.
pub fn error_event(message: &str, kind: &str) -> Bytes {
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(&error_json(message, kind, None, None));
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn events(bytes: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|event| {
                let data = event.strip_prefix("data: ").expect(event);
                if data == "[DONE]" {
                    Value::String(data.into())
                } else {
                    serde_json::from_str(data).unwrap()
                }
            })
            .collect()
    }

    #[test]
    fn a_reply_has_every_field_openai_requires() {
        let reply = Reply {
            id: "msg_1".into(),
            model: "claude".into(),
            content: None,
            tool_calls: vec![ToolCall {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            }],
            finish_reason: "tool_calls",
            tokens: Tokens {
                prompt: 10,
                completion: 5,
                cached: 3,
            },
        };
        let value: Value = serde_json::from_slice(&reply.to_json(7)).unwrap();
        assert_eq!(
            value,
            json!({"id": "msg_1", "object": "chat.completion", "created": 7, "model": "claude",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null,
                    "tool_calls": [{"id": "toolu_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                    "logprobs": null, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                    "prompt_tokens_details": {"cached_tokens": 3}}})
        );
        let text = Reply {
            content: Some("Hi".into()),
            tool_calls: Vec::new(),
            ..reply
        };
        let value: Value = serde_json::from_slice(&text.to_json(7)).unwrap();
        assert_eq!(value["choices"][0]["message"]["content"], "Hi");
        assert!(value["choices"][0]["message"].get("tool_calls").is_none());
    }

    #[test]
    fn chunks_carry_usage_null_only_when_usage_was_asked_for() {
        for include_usage in [false, true] {
            let writer = ChunkWriter::new("id".into(), "m".into(), include_usage);
            let mut out = Vec::new();
            writer.delta(Delta::Role, &mut out);
            writer.delta(Delta::Content("Hi"), &mut out);
            writer.finish("stop", Tokens::default(), &mut out);
            let events = events(&out);
            assert_eq!(events.len(), if include_usage { 5 } else { 4 });
            assert_eq!(
                events[0]["choices"][0]["delta"],
                json!({"role": "assistant", "content": ""})
            );
            assert_eq!(events[1]["choices"][0]["delta"], json!({"content": "Hi"}));
            assert_eq!(events[2]["choices"][0]["delta"], json!({}));
            assert_eq!(events[2]["choices"][0]["finish_reason"], "stop");
            for event in &events[..3] {
                assert_eq!(event["object"], "chat.completion.chunk");
                assert_eq!(event["id"], "id");
                assert_eq!(event["created"], events[0]["created"]);
                assert_eq!(event.get("usage").is_some(), include_usage);
                if include_usage {
                    assert!(event["usage"].is_null());
                }
            }
            if include_usage {
                assert_eq!(events[3]["choices"], json!([]));
                assert_eq!(events[3]["usage"]["total_tokens"], 0);
            }
            assert_eq!(events.last().unwrap(), "[DONE]");
        }
    }

    #[test]
    fn tool_call_deltas() {
        let writer = ChunkWriter::new("id".into(), "m".into(), false);
        let mut out = Vec::new();
        writer.delta(
            Delta::ToolStart {
                index: 0,
                id: "toolu_1",
                name: "f",
            },
            &mut out,
        );
        writer.delta(
            Delta::ToolArguments {
                index: 0,
                arguments: "{\"a\"",
            },
            &mut out,
        );
        let events = events(&out);
        assert_eq!(
            events[0]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function",
                "function": {"name": "f", "arguments": ""}}]})
        );
        assert_eq!(
            events[1]["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\""}}]})
        );
    }

    #[test]
    fn the_error_shape() {
        assert_eq!(
            serde_json::from_slice::<Value>(&error_json("m", "t", Some("p"), None)).unwrap(),
            json!({"error": {"message": "m", "type": "t", "param": "p", "code": null}})
        );
        assert_eq!(
            &error_event("boom", "overloaded_error")[..],
            br#"data: {"error":{"message":"boom","type":"overloaded_error","param":null,"code":null}}

"#
        );
    }
}
