//! Anthropic Messages → OpenAI Chat Completions: the whole reply, and the
//! stream's events as chunks.

use serde::Deserialize;
use serde_json::Value;

use super::completion::{ChunkWriter, Delta, Reply, Tokens, ToolCall};
use super::stream::Step;
use crate::providers::StreamUsage;

/// Anthropic's stop reasons in OpenAI's words; never missing.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[derive(Deserialize)]
struct WholeReply {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    usage: Usage,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

// Every input token is uncached + cache reads + cache writes (`input()`).
use crate::providers::anthropic::EventUsage as Usage;

/// A whole Messages reply as a `chat.completion`.
pub fn reply(body: &[u8]) -> std::result::Result<Reply, String> {
    let message: WholeReply = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut has_text = false;
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block.kind.as_str() {
            "text" => {
                has_text = true;
                text.push_str(block.text.as_deref().unwrap_or_default());
            }
            "tool_use" => tool_calls.push(ToolCall {
                id: block.id.unwrap_or_default(),
                name: block.name.unwrap_or_default(),
                arguments: block
                    .input
                    .map_or_else(|| "{}".to_owned(), |input| input.to_string()),
            }),
            _ => {}
        }
    }
    let usage = message.usage;
    Ok(Reply {
        id: message.id,
        model: message.model,
        content: (has_text && !text.is_empty()).then_some(text),
        tool_calls,
        finish_reason: finish_reason(message.stop_reason.as_deref()),
        tokens: Tokens {
            prompt: usage.input().unwrap_or(0),
            completion: usage.output_tokens.unwrap_or(0),
            cached: usage.cache_read_input_tokens.unwrap_or(0),
        },
    })
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<StartMessage>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content_block: Option<Block>,
    #[serde(default)]
    delta: Option<EventDelta>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<EventError>,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct EventDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct EventError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// A Messages stream, event by event, as chunks.
pub struct StreamState {
    writer: Option<ChunkWriter>,
    model: String,
    include_usage: bool,
    /// Anthropic's block index of each tool call, by OpenAI index.
    tool_blocks: Vec<u64>,
    stop_reason: Option<String>,
    usage: Usage,
}

impl StreamState {
    pub fn new(requested_model: &str, include_usage: bool) -> Self {
        StreamState {
            writer: None,
            model: requested_model.to_owned(),
            include_usage,
            tool_blocks: Vec::new(),
            stop_reason: None,
            usage: Usage::default(),
        }
    }

    /// The writer, made from `message_start` (or, should an event come
    /// before it, from what is known).
    fn writer(&mut self) -> &ChunkWriter {
        let (model, include_usage) = (&self.model, self.include_usage);
        self.writer
            .get_or_insert_with(|| ChunkWriter::new(String::new(), model.clone(), include_usage))
    }

    pub fn event(&mut self, data: &str) -> Step {
        let event: Event = match serde_json::from_str(data) {
            Ok(event) => event,
            Err(e) => {
                return Step::Fail(super::completion::error_event(
                    &format!("anthropic sent an invalid stream event: {e}"),
                    "api_error",
                ))
            }
        };
        let mut out = Vec::new();
        match event.kind.as_str() {
            "message_start" => {
                let message = event.message.unwrap_or(StartMessage {
                    id: String::new(),
                    model: String::new(),
                    usage: None,
                });
                if let Some(usage) = message.usage {
                    self.usage.input_tokens = usage.input_tokens;
                    self.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                    self.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
                }
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                let writer = ChunkWriter::new(message.id, self.model.clone(), self.include_usage);
                writer.delta(Delta::Role, &mut out);
                self.writer = Some(writer);
            }
            "content_block_start" => match event.content_block {
                Some(block) if block.kind == "tool_use" => {
                    let index = self.tool_blocks.len();
                    self.tool_blocks.push(event.index.unwrap_or(u64::MAX));
                    let (id, name) = (block.id.unwrap_or_default(), block.name.unwrap_or_default());
                    self.writer().delta(
                        Delta::ToolStart {
                            index,
                            id: &id,
                            name: &name,
                        },
                        &mut out,
                    );
                }
                Some(Block {
                    text: Some(text), ..
                }) if !text.is_empty() => self.writer().delta(Delta::Content(&text), &mut out),
                _ => return Step::Skip,
            },
            "content_block_delta" => {
                let Some(delta) = event.delta else {
                    return Step::Skip;
                };
                match delta.kind.as_deref() {
                    Some("text_delta") => match delta.text {
                        Some(text) if !text.is_empty() => {
                            self.writer().delta(Delta::Content(&text), &mut out)
                        }
                        _ => return Step::Skip,
                    },
                    Some("input_json_delta") => {
                        let block = event.index.unwrap_or(u64::MAX);
                        let index = self.tool_blocks.iter().position(|&b| b == block);
                        match (index, delta.partial_json) {
                            (Some(index), Some(arguments)) if !arguments.is_empty() => {
                                self.writer().delta(
                                    Delta::ToolArguments {
                                        index,
                                        arguments: &arguments,
                                    },
                                    &mut out,
                                )
                            }
                            _ => return Step::Skip,
                        }
                    }
                    // Thinking, signatures, citations: nothing to send.
                    _ => return Step::Skip,
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason);
                }
                if let Some(usage) = event.usage {
                    // Cumulative: the latest counts replace the earlier ones.
                    if usage.output_tokens.is_some() {
                        self.usage.output_tokens = usage.output_tokens;
                    }
                    if usage.input_tokens.is_some() {
                        self.usage.input_tokens = usage.input_tokens;
                        self.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                        self.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
                    }
                }
                return Step::Skip;
            }
            "message_stop" => {
                let reason = finish_reason(self.stop_reason.as_deref());
                let tokens = self.tokens();
                self.writer().finish(reason, tokens, &mut out);
                return Step::Finish(out.into());
            }
            "error" => {
                let error = event.error.unwrap_or(EventError {
                    kind: None,
                    message: None,
                });
                let message = error
                    .message
                    .unwrap_or_else(|| "an error occurred during streaming".to_owned());
                let kind = error.kind.unwrap_or_else(|| "api_error".to_owned());
                return Step::Fail(super::completion::error_event(&message, &kind));
            }
            // `ping`, `content_block_stop`, and event types added later.
            _ => return Step::Skip,
        }
        Step::Chunk(out.into())
    }

    fn tokens(&self) -> Tokens {
        Tokens {
            prompt: self.usage.input().unwrap_or(0),
            completion: self.usage.output_tokens.unwrap_or(0),
            cached: self.usage.cache_read_input_tokens.unwrap_or(0),
        }
    }

    pub fn usage(&self) -> StreamUsage {
        StreamUsage {
            input_tokens: self.usage.input(),
            output_tokens: self.usage.output_tokens,
        }
    }
}
