//! OpenAI Chat Completions ⇄ Anthropic Messages: the request, the whole
//! reply, and the stream's events.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::completion::{ChunkWriter, Delta, Reply, Tokens, ToolCall};
use super::request::{messages, Image, Message, Params, Part, Role};
use super::stream::Step;
use super::Target;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::providers::StreamUsage;

/// The Messages API body for an OpenAI request.
pub fn request_body(
    request: &Map<String, Value>,
    target: &Target,
    settings: &Settings,
    stream: bool,
) -> Result<Value> {
    let params = Params::new(request);
    params.check_n()?;
    params.check_unsupported("anthropic", settings.drop_unsupported_params)?;
    let (system, messages) = translate_messages(request)?;
    let mut body = Map::new();
    body.insert("model".into(), target.model.clone().into());
    let max_tokens = params
        .max_tokens()?
        .or(target.defaults.max_tokens)
        .unwrap_or(settings.anthropic_default_max_tokens);
    body.insert("max_tokens".into(), max_tokens.into());
    if !system.is_empty() {
        body.insert("system".into(), system.join("\n\n").into());
    }
    body.insert("messages".into(), messages.into());
    if stream {
        body.insert("stream".into(), true.into());
    }
    if let Some(t) = params
        .number("temperature")?
        .or(target.defaults.temperature)
    {
        body.insert("temperature".into(), t.into());
    }
    if let Some(p) = params.number("top_p")? {
        body.insert("top_p".into(), p.into());
    }
    let stop = params.stop()?;
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), stop.into());
    }
    if let Some(user) = params.string("user")? {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    let tools = tools(&params)?;
    let has_tools = !tools.is_empty();
    if has_tools {
        body.insert("tools".into(), tools.into());
    }
    if let Some(choice) = tool_choice(&params, has_tools)? {
        body.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(body))
}

/// `system`/`developer` texts (for the top-level `system`) and the
/// `messages`: strings as they are, parts as blocks, tool calls as
/// `tool_use` blocks, consecutive `tool` messages as one `user` message of
/// `tool_result` blocks. A message left without content is not sent.
fn translate_messages(request: &Map<String, Value>) -> Result<(Vec<String>, Vec<Value>)> {
    let mut system = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    let mut after_tool = false;
    for message in messages(request)? {
        let role = message.role;
        match role {
            Role::System => {
                let text = message.text()?;
                if !text.is_empty() {
                    system.push(text);
                }
            }
            Role::User | Role::Assistant => {
                let name = if role == Role::User {
                    "user"
                } else {
                    "assistant"
                };
                if let Some(content) = content(&message)? {
                    out.push(json!({ "role": name, "content": content }));
                }
            }
            Role::Tool => {
                let block = tool_result(&message)?;
                match out.last_mut() {
                    Some(last) if after_tool => {
                        if let Some(Value::Array(blocks)) = last.get_mut("content") {
                            blocks.push(block);
                        }
                    }
                    _ => out.push(json!({ "role": "user", "content": [block] })),
                }
            }
        }
        after_tool = role == Role::Tool;
    }
    Ok((system, out))
}

/// A user or assistant message's content: its string as is, otherwise
/// blocks; `None` when nothing is left to send.
fn content(message: &Message<'_>) -> Result<Option<Value>> {
    let calls = match message.role {
        Role::Assistant => tool_uses(message)?,
        _ => Vec::new(),
    };
    if let (Some(Value::String(text)), true) = (message.get("content"), calls.is_empty()) {
        return Ok((!text.trim().is_empty()).then(|| text.clone().into()));
    }
    let mut blocks: Vec<Value> = message.parts()?.into_iter().map(block).collect();
    blocks.extend(calls);
    Ok((!blocks.is_empty()).then_some(Value::Array(blocks)))
}

fn block(part: Part<'_>) -> Value {
    match part {
        Part::Text(text) => json!({ "type": "text", "text": text }),
        Part::Image(Image::Base64 { media_type, data }) => json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data }
        }),
        Part::Image(Image::Url(url)) => json!({
            "type": "image",
            "source": { "type": "url", "url": url }
        }),
    }
}

/// An assistant message's `tool_calls` as `tool_use` blocks.
fn tool_uses(message: &Message<'_>) -> Result<Vec<Value>> {
    let calls = match message.get("tool_calls") {
        None => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(Error::invalid(
                message.field("tool_calls"),
                "must be an array",
            ))
        }
    };
    calls
        .iter()
        .enumerate()
        .map(|(k, call)| {
            let at = |name: &str| message.field(&format!("tool_calls[{k}]{name}"));
            fn string(value: Option<&Value>, field: String) -> Result<&str> {
                match value {
                    Some(Value::String(s)) => Ok(s),
                    _ => Err(Error::invalid(field, "must be a string")),
                }
            }
            if let Some(kind) = call.get("type").filter(|t| !t.is_null()) {
                if kind != "function" {
                    return Err(Error::invalid(
                        at(".type"),
                        "only \"function\" is supported",
                    ));
                }
            }
            let function = call.get("function");
            let id = string(call.get("id"), at(".id"))?;
            let name = string(function.and_then(|f| f.get("name")), at(".function.name"))?;
            let arguments = string(
                function.and_then(|f| f.get("arguments")),
                at(".function.arguments"),
            )?;
            let input = if arguments.trim().is_empty() {
                json!({})
            } else {
                match serde_json::from_str::<Value>(arguments) {
                    Ok(object @ Value::Object(_)) => object,
                    _ => {
                        return Err(Error::invalid(
                            at(".function.arguments"),
                            "must be a JSON object",
                        ))
                    }
                }
            };
            Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
        })
        .collect()
}

/// A `tool` message as a `tool_result` block.
fn tool_result(message: &Message<'_>) -> Result<Value> {
    let id = message.string("tool_call_id")?;
    let mut result = json!({ "type": "tool_result", "tool_use_id": id });
    let content = match message.get("content") {
        Some(Value::String(text)) if text.trim().is_empty() => None,
        Some(Value::String(text)) => Some(Value::from(text.as_str())),
        _ => {
            let blocks: Vec<Value> = message.parts()?.into_iter().map(block).collect();
            (!blocks.is_empty()).then_some(Value::Array(blocks))
        }
    };
    if let Some(content) = content {
        result["content"] = content;
    }
    Ok(result)
}

/// `tools[].function` as Anthropic tools.
fn tools(params: &Params<'_>) -> Result<Vec<Value>> {
    let tools = match params.get("tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(Error::invalid("tools", "must be an array")),
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Error::invalid(
                    format!("tools[{i}].type"),
                    "only \"function\" tools are supported",
                ));
            }
            let function = tool.get("function");
            let Some(name) = function.and_then(|f| f.get("name")).and_then(Value::as_str) else {
                return Err(Error::invalid(
                    format!("tools[{i}].function.name"),
                    "must be a string",
                ));
            };
            let mut out = json!({ "name": name });
            if let Some(description) = function
                .and_then(|f| f.get("description"))
                .filter(|d| !d.is_null())
            {
                out["description"] = description.clone();
            }
            out["input_schema"] = function
                .and_then(|f| f.get("parameters"))
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
            Ok(out)
        })
        .collect()
}

/// `tool_choice` and `parallel_tool_calls: false` as Anthropic's
/// `tool_choice` (`disable_parallel_tool_use` lives inside it).
fn tool_choice(params: &Params<'_>, has_tools: bool) -> Result<Option<Value>> {
    let invalid = || {
        Error::invalid(
            "tool_choice",
            "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )
    };
    let mut choice = match params.get("tool_choice") {
        None if has_tools => json!({ "type": "auto" }),
        None => return Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => json!({ "type": "auto" }),
            "none" => json!({ "type": "none" }),
            "required" => json!({ "type": "any" }),
            _ => return Err(invalid()),
        },
        Some(Value::Object(choice)) => {
            let name = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str);
            match (choice.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => json!({ "type": "tool", "name": name }),
                _ => return Err(invalid()),
            }
        }
        Some(_) => return Err(invalid()),
    };
    let parallel = params.get("parallel_tool_calls");
    let serial = match parallel {
        None => false,
        Some(Value::Bool(parallel)) => !parallel,
        Some(_) => return Err(Error::invalid("parallel_tool_calls", "must be a boolean")),
    };
    if serial && choice["type"] != "none" {
        choice["disable_parallel_tool_use"] = true.into();
    }
    // Without tools only an explicit choice is sent (Anthropic judges it).
    let explicit = params.get("tool_choice").is_some();
    Ok((has_tools || explicit).then_some(choice))
}

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

#[derive(Deserialize, Default, Clone, Copy)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl Usage {
    /// Every input token: uncached, cache reads and cache writes.
    fn prompt(&self) -> Option<u64> {
        self.input_tokens.map(|n| {
            n + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0)
        })
    }
}

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
            prompt: usage.prompt().unwrap_or(0),
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
            prompt: self.usage.prompt().unwrap_or(0),
            completion: self.usage.output_tokens.unwrap_or(0),
            cached: self.usage.cache_read_input_tokens.unwrap_or(0),
        }
    }

    pub fn usage(&self) -> StreamUsage {
        StreamUsage {
            input_tokens: self.usage.prompt(),
            output_tokens: self.usage.output_tokens,
        }
    }
}
