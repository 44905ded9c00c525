//! OpenAI Chat Completions → Anthropic Messages: the request (the replies
//! are `anthropic_reply.rs`'s).

use serde_json::{json, Map, Value};

use super::request::{messages, Image, Message, Params, Part, Role};
use super::Target;
use crate::config::Settings;
use crate::error::{Error, Result};

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
