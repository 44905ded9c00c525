//! OpenAI Chat Completions ⇄ Gemini `generateContent`: the request (text
//! and inline images; tools are not translated yet), the whole reply, and
//! the stream's events (each one a whole `GenerateContentResponse`).

use serde_json::{json, Map, Value};

use super::completion::{ChunkWriter, Delta, Reply, Tokens};
use super::request::{messages, Image, Params, Part, Role};
use super::stream::Step;
use super::Target;
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::providers::gemini::{Reply as GeminiReply, UsageMetadata};
use crate::providers::StreamUsage;

const NOT_YET: &str = "tools are not supported yet for gemini";

/// The `generateContent` body for an OpenAI request.
pub fn request_body(
    request: &Map<String, Value>,
    target: &Target,
    settings: &Settings,
) -> Result<Value> {
    let params = Params::new(request);
    params.check_n()?;
    params.check_unsupported("gemini", settings.drop_unsupported_params)?;
    if matches!(params.get("tools"), Some(Value::Array(tools)) if !tools.is_empty()) {
        return Err(Error::invalid("tools", NOT_YET));
    }
    if let Some(choice) = params.get("tool_choice") {
        if choice != "none" && choice != "auto" {
            return Err(Error::invalid("tool_choice", NOT_YET));
        }
    }
    let mut system = Vec::new();
    let mut contents = Vec::new();
    for message in messages(request)? {
        let role = match message.role {
            Role::System => {
                let text = message.text()?;
                if !text.is_empty() {
                    system.push(text);
                }
                continue;
            }
            Role::Tool => return Err(Error::invalid(message.field("role"), NOT_YET)),
            Role::User => "user",
            Role::Assistant => {
                if matches!(message.get("tool_calls"), Some(Value::Array(calls)) if !calls.is_empty())
                {
                    return Err(Error::invalid(message.field("tool_calls"), NOT_YET));
                }
                "model"
            }
        };
        let mut parts = Vec::new();
        for (j, part) in message.parts()?.into_iter().enumerate() {
            parts.push(match part {
                Part::Text(text) => json!({ "text": text }),
                Part::Image(Image::Base64 { media_type, data }) => {
                    json!({ "inlineData": { "mimeType": media_type, "data": data } })
                }
                Part::Image(Image::Url(_)) => return Err(Error::invalid(
                    format!("messages[{}].content[{j}].image_url.url", message.index),
                    "image URLs are not supported for gemini; send the image as a base64 data: URL",
                )),
            });
        }
        if !parts.is_empty() {
            contents.push(json!({ "role": role, "parts": parts }));
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), contents.into());
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": system.join("\n\n") }] }),
        );
    }
    let mut config = Map::new();
    if let Some(n) = params.max_tokens()?.or(target.defaults.max_tokens) {
        config.insert("maxOutputTokens".into(), n.into());
    }
    if let Some(t) = params
        .number("temperature")?
        .or(target.defaults.temperature)
    {
        config.insert("temperature".into(), t.into());
    }
    if let Some(p) = params.number("top_p")? {
        config.insert("topP".into(), p.into());
    }
    let stop = params.stop()?;
    if !stop.is_empty() {
        config.insert("stopSequences".into(), stop.into());
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), config.into());
    }
    Ok(Value::Object(body))
}

/// Gemini's finish reasons in OpenAI's words; never missing.
pub fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ => "stop",
    }
}

fn tokens(usage: &UsageMetadata) -> Tokens {
    Tokens {
        prompt: usage.prompt_token_count,
        completion: usage.candidates_token_count + usage.thoughts_token_count,
        cached: usage.cached_content_token_count,
    }
}

/// The finish reason a reply or event carries, if any: its candidate's,
/// or `content_filter` for a prompt blocked before any candidate.
fn finish_of(reply: &GeminiReply) -> Option<&'static str> {
    match reply.first() {
        None if reply.blocked() => Some("content_filter"),
        Some(candidate) => candidate
            .finish_reason
            .as_deref()
            .map(|reason| finish_reason(Some(reason))),
        None => None,
    }
}

/// A whole `generateContent` reply as a `chat.completion`.
pub fn reply(requested_model: &str, body: &[u8]) -> std::result::Result<Reply, String> {
    let reply: GeminiReply = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if reply.first().is_none() && !reply.blocked() {
        return Err("no candidates and no prompt feedback".to_owned());
    }
    let text = reply.text();
    Ok(Reply {
        id: reply.response_id.clone().unwrap_or_default(),
        model: reply
            .model_version
            .clone()
            .unwrap_or_else(|| requested_model.to_owned()),
        finish_reason: finish_of(&reply).unwrap_or("stop"),
        content: (!text.is_empty()).then_some(text),
        tool_calls: Vec::new(),
        tokens: reply
            .usage_metadata
            .as_ref()
            .map(tokens)
            .unwrap_or_default(),
    })
}

/// A Gemini stream, event by event, as chunks. Its end is the upstream's
/// close after an event with a finish reason (older models put one on
/// every event, so the last one counts).
pub struct StreamState {
    writer: Option<ChunkWriter>,
    model: String,
    include_usage: bool,
    finish: Option<&'static str>,
    tokens: Option<Tokens>,
}

impl StreamState {
    pub fn new(requested_model: &str, include_usage: bool) -> Self {
        StreamState {
            writer: None,
            model: requested_model.to_owned(),
            include_usage,
            finish: None,
            tokens: None,
        }
    }

    pub fn event(&mut self, data: &str) -> Step {
        let reply: GeminiReply = match serde_json::from_str(data) {
            Ok(reply) => reply,
            Err(e) => {
                return Step::Fail(super::completion::error_event(
                    &format!("gemini sent an invalid stream event: {e}"),
                    "api_error",
                ))
            }
        };
        if let Some(error) = reply.error {
            let message = error
                .message
                .unwrap_or_else(|| "an error occurred during streaming".to_owned());
            let kind = error.status.unwrap_or_else(|| "api_error".to_owned());
            return Step::Fail(super::completion::error_event(&message, &kind));
        }
        let mut out = Vec::new();
        if self.writer.is_none() {
            let model = reply.model_version.clone().unwrap_or(self.model.clone());
            let id = reply.response_id.clone().unwrap_or_default();
            let writer = ChunkWriter::new(id, model, self.include_usage);
            writer.delta(Delta::Role, &mut out);
            self.writer = Some(writer);
        }
        if let Some(usage) = &reply.usage_metadata {
            self.tokens = Some(tokens(usage));
        }
        // Only the last event's reason counts: one without a reason after
        // it means the stream was not over.
        self.finish = finish_of(&reply);
        let text = reply.text();
        if let (false, Some(writer)) = (text.is_empty(), &self.writer) {
            writer.delta(Delta::Content(&text), &mut out);
        }
        if out.is_empty() {
            Step::Skip
        } else {
            Step::Chunk(out.into())
        }
    }

    /// The end of the stream when the upstream closed it: `None` when the
    /// last event had no finish reason (the stream was cut).
    pub fn close(&mut self) -> Option<bytes::Bytes> {
        let finish = self.finish?;
        let writer = self.writer.as_ref()?;
        let mut out = Vec::new();
        writer.finish(finish, self.tokens.unwrap_or_default(), &mut out);
        Some(out.into())
    }

    pub fn usage(&self) -> StreamUsage {
        self.tokens.map(Tokens::stream_usage).unwrap_or_default()
    }
}
