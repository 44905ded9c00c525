//! Reading an OpenAI Chat Completions request from untrusted JSON: the
//! few fields every provider needs (`model`, `stream`, `messages`), and,
//! for the translations, typed access to the rest, where every refusal
//! names the field (it becomes the error's `param`).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A request as the client sent it, checked for what routing needs.
#[derive(Debug, Clone)]
pub struct CompatRequest {
    /// The body, exactly as received.
    raw: Bytes,
    /// As the client named it (an alias, `provider/model`, or a model).
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The members routing needs; the others are not parsed here.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(default)]
    model: Option<Value>,
    #[serde(default, borrow)]
    messages: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<Value>,
    #[serde(default)]
    stream_options: Option<Value>,
}

impl CompatRequest {
    /// Checks a body: a JSON object with a `model` string and a non-empty
    /// `messages` array. Not JSON is `MalformedJson`; the rest is
    /// `InvalidField` naming the field.
    pub fn parse(raw: Bytes) -> Result<Self> {
        // Serde would also read a struct from an array, by position.
        if raw.trim_ascii_start().first() != Some(&b'{') {
            serde_json::from_slice::<serde::de::IgnoredAny>(&raw).map_err(json_error)?;
            return Err(Error::invalid("body", "must be a JSON object"));
        }
        let head: Head<'_> = serde_json::from_slice(&raw).map_err(json_error)?;
        let model = match head.model {
            Some(Value::String(model)) if !model.trim().is_empty() => model,
            Some(Value::String(_)) => return Err(Error::invalid("model", "must not be empty")),
            None | Some(Value::Null) => return Err(Error::invalid("model", "field required")),
            Some(_) => return Err(Error::invalid("model", "must be a string")),
        };
        match head.messages {
            None => return Err(Error::invalid("messages", "field required")),
            Some(messages) => {
                let items: Vec<serde::de::IgnoredAny> = serde_json::from_str(messages.get())
                    .map_err(|_| Error::invalid("messages", "must be an array of messages"))?;
                if items.is_empty() {
                    return Err(Error::invalid(
                        "messages",
                        "must contain at least one message",
                    ));
                }
            }
        }
        let stream = match head.stream {
            None | Some(Value::Null) => false,
            Some(Value::Bool(stream)) => stream,
            Some(_) => return Err(Error::invalid("stream", "must be a boolean")),
        };
        let include_usage = head
            .stream_options
            .as_ref()
            .and_then(|options| options.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(CompatRequest {
            raw,
            model,
            stream,
            include_usage,
        })
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The whole body, for a translation.
    pub fn object(&self) -> Result<Map<String, Value>> {
        serde_json::from_slice(&self.raw).map_err(json_error)
    }
}

fn json_error(error: serde_json::Error) -> Error {
    match error.classify() {
        serde_json::error::Category::Data => Error::invalid("body", error.to_string()),
        _ => Error::MalformedJson(error.to_string()),
    }
}

/// Typed, checked access to a request's members. A member that is `null`
/// counts as absent, as in OpenAI's API.
pub struct Params<'a> {
    map: &'a Map<String, Value>,
}

/// Fields with no meaning to a translated provider. `null`, `false`, `0`,
/// `{}`, `[]` and `{"type": "text"}` ask for nothing (client libraries send
/// them by default) and are simply not sent.
const UNSUPPORTED: [&str; 7] = [
    "seed",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "response_format",
];

impl<'a> Params<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Self {
        Params { map }
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A whole number, 0 or more.
    pub fn count(&self, name: &str) -> Result<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| Error::invalid(name, "must be a whole number, 0 or more")),
        }
    }

    pub fn number(&self, name: &str) -> Result<Option<f64>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_f64()
                .map(Some)
                .ok_or_else(|| Error::invalid(name, "must be a number")),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<&'a str>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| Error::invalid(name, "must be a string")),
        }
    }

    /// `max_completion_tokens`, else `max_tokens`.
    pub fn max_tokens(&self) -> Result<Option<u64>> {
        match self.count("max_completion_tokens")? {
            Some(n) => Ok(Some(n)),
            None => self.count("max_tokens"),
        }
    }

    /// `stop` as a list: a string or an array of strings, none of them
    /// blank (no provider takes a whitespace-only stop sequence).
    pub fn stop(&self) -> Result<Vec<&'a str>> {
        let sequences: Vec<(&'a str, String)> = match self.get("stop") {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) => vec![(s.as_str(), "stop".to_owned())],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_str()
                        .map(|s| (s, format!("stop[{i}]")))
                        .ok_or_else(|| Error::invalid(format!("stop[{i}]"), "must be a string"))
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(Error::invalid(
                    "stop",
                    "must be a string or an array of strings",
                ))
            }
        };
        sequences
            .into_iter()
            .map(|(s, field)| {
                if s.trim().is_empty() {
                    Err(Error::invalid(
                        field,
                        "a stop sequence must contain non-whitespace text",
                    ))
                } else {
                    Ok(s)
                }
            })
            .collect()
    }

    /// `n` other than 1 cannot be honoured (one choice is all a translated
    /// reply has).
    pub fn check_n(&self) -> Result<()> {
        match self.get("n") {
            None => Ok(()),
            Some(n) if n.as_u64() == Some(1) => Ok(()),
            Some(_) => Err(Error::invalid(
                "n",
                "only n = 1 is supported for this provider",
            )),
        }
    }

    /// Refuses a field of [`UNSUPPORTED`] that asks for something, unless
    /// `drop` (`DROP_UNSUPPORTED_PARAMS`) says to leave it out.
    pub fn check_unsupported(&self, provider: &str, drop: bool) -> Result<()> {
        if drop {
            return Ok(());
        }
        for name in UNSUPPORTED {
            if let Some(value) = self.get(name) {
                if !asks_nothing(value) {
                    return Err(Error::invalid(
                        name,
                        format!(
                            "not supported by {provider}; leave it out, or set DROP_UNSUPPORTED_PARAMS=true to have it dropped"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// What client libraries send by default for an unsupported field.
fn asks_nothing(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Object(map) => {
            map.is_empty() || (map.len() == 1 && map.get("type") == Some(&Value::from("text")))
        }
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// A message's role; `developer` counts as `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One message of the request, with its position for error messages.
pub struct Message<'a> {
    pub index: usize,
    pub role: Role,
    pub fields: &'a Map<String, Value>,
}

impl<'a> Message<'a> {
    /// `messages[i].name`, for error messages.
    pub fn field(&self, name: &str) -> String {
        format!("messages[{}].{name}", self.index)
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.fields.get(name).filter(|v| !v.is_null())
    }

    /// A member that must be a string.
    pub fn string(&self, name: &str) -> Result<&'a str> {
        match self.get(name) {
            Some(Value::String(s)) => Ok(s),
            None => Err(Error::invalid(self.field(name), "field required")),
            Some(_) => Err(Error::invalid(self.field(name), "must be a string")),
        }
    }

    /// The content's parts: a string is one text part; text that is empty
    /// or only whitespace is left out (providers refuse empty blocks).
    /// Images are allowed in `user` messages only.
    pub fn parts(&self) -> Result<Vec<Part<'a>>> {
        let items = match self.get("content") {
            None => return Ok(Vec::new()),
            Some(Value::String(text)) => {
                return Ok(non_blank(text).map(Part::Text).into_iter().collect())
            }
            Some(Value::Array(items)) => items,
            Some(_) => {
                return Err(Error::invalid(
                    self.field("content"),
                    "must be a string or an array of content parts",
                ))
            }
        };
        let mut parts = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let at = |name: &str| format!("messages[{}].content[{j}]{name}", self.index);
            let kind = item.get("type").and_then(Value::as_str);
            let text_of = |member: &str| match item.get(member) {
                Some(Value::String(text)) => Ok(non_blank(text)),
                _ => Err(Error::invalid(
                    at(&format!(".{member}")),
                    "must be a string",
                )),
            };
            match (kind, self.role) {
                (Some("text"), _) => parts.extend(text_of("text")?.map(Part::Text)),
                (Some("refusal"), Role::Assistant) => {
                    parts.extend(text_of("refusal")?.map(Part::Text))
                }
                (Some("image_url"), Role::User) => {
                    let url = match item.get("image_url") {
                        Some(Value::String(url)) => url,
                        Some(Value::Object(image)) => match image.get("url") {
                            Some(Value::String(url)) => url,
                            _ => return Err(Error::invalid(at(".image_url.url"), "must be a string")),
                        },
                        _ => return Err(Error::invalid(at(".image_url"), "field required")),
                    };
                    parts.push(Part::Image(image(url, &at(".image_url.url"))?));
                }
                (Some(other), _) => {
                    return Err(Error::invalid(
                        at(".type"),
                        format!("content parts of type '{other}' are not supported in {} messages for this provider", self.role_name()),
                    ))
                }
                (None, _) => return Err(Error::invalid(at(".type"), "field required")),
            }
        }
        Ok(parts)
    }

    /// The text of a message that may only hold text, its parts joined
    /// with a blank line (empty when there is none).
    pub fn text(&self) -> Result<String> {
        let texts: Vec<&str> = self
            .parts()?
            .into_iter()
            .map(|part| match part {
                Part::Text(text) => text,
                Part::Image(_) => "",
            })
            .collect();
        Ok(texts.join("\n\n"))
    }

    fn role_name(&self) -> &'static str {
        match self.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

fn non_blank(text: &str) -> Option<&str> {
    (!text.trim().is_empty()).then_some(text)
}

/// A content part a translation can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part<'a> {
    Text(&'a str),
    Image(Image<'a>),
}

/// An `image_url`: inline (a base64 `data:` URL) or a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url(&'a str),
}

/// Reads `data:<media type>;base64,<data>` or an `http(s)://` URL.
fn image<'a>(url: &'a str, field: &str) -> Result<Image<'a>> {
    let (scheme, rest) = url.split_once(':').unwrap_or_default();
    match scheme.to_ascii_lowercase().as_str() {
        "data" => {
            let invalid =
                || Error::invalid(field, "a data: URL must be data:<media type>;base64,<data>");
            let (head, data) = rest.split_once(',').ok_or_else(invalid)?;
            let media_type = head.strip_suffix(";base64").ok_or_else(invalid)?;
            if media_type.is_empty() || data.is_empty() {
                return Err(invalid());
            }
            Ok(Image::Base64 { media_type, data })
        }
        "http" | "https" => Ok(Image::Url(url)),
        _ => Err(Error::invalid(
            field,
            "must be an http(s) URL or a base64 data: URL",
        )),
    }
}

/// The request's messages with their roles (`messages` was checked to be
/// a non-empty array by [`CompatRequest::parse`]).
pub fn messages(map: &Map<String, Value>) -> Result<Vec<Message<'_>>> {
    let Some(Value::Array(items)) = map.get("messages") else {
        return Err(Error::invalid("messages", "must be an array of messages"));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let Value::Object(fields) = item else {
                return Err(Error::invalid(
                    format!("messages[{index}]"),
                    "must be an object",
                ));
            };
            let role = match fields.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                Some("tool") => Role::Tool,
                _ => {
                    return Err(Error::invalid(
                        format!("messages[{index}].role"),
                        "must be one of system, developer, user, assistant, tool",
                    ))
                }
            };
            Ok(Message {
                index,
                role,
                fields,
            })
        })
        .collect()
}
