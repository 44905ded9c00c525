//! The common chat request every front-end builds and every adapter reads,
//! and its validation from untrusted JSON (the server body and the CLI's
//! `--messages` file share it).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
}

impl ChatRequest {
    /// Every `system` message, in order, joined with a blank line (for the
    /// formats that take the system prompt apart from the turns).
    pub fn system_prompt(&self) -> Option<String> {
        let parts: Vec<&str> = self
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        (!parts.is_empty()).then(|| parts.join("\n\n"))
    }

    /// Parses and validates a request body. Not JSON is `MalformedJson`
    /// (HTTP 400); JSON that breaks the schema is `InvalidField` naming the
    /// field (HTTP 422). Unknown fields are ignored.
    pub fn from_json(body: &[u8]) -> Result<Self> {
        // Fast path for well-formed requests: straight into typed fields.
        // Anything it refuses goes through the slow path below, which finds
        // the field to name; both accept exactly the same requests.
        if let Ok(typed) = serde_json::from_slice::<Typed>(body) {
            if let Some(request) = typed.validated() {
                return Ok(request);
            }
        }
        Self::from_json_checked(body)
    }

    /// The slow path: every check, with the field named on failure.
    fn from_json_checked(body: &[u8]) -> Result<Self> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| Error::MalformedJson(e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(Error::invalid("body", "must be a JSON object"));
        };
        let model = match object.remove("model") {
            Some(Value::String(model)) if !model.trim().is_empty() => model,
            Some(Value::String(_)) => return Err(Error::invalid("model", "must not be empty")),
            None | Some(Value::Null) => return Err(Error::invalid("model", "field required")),
            Some(_) => return Err(Error::invalid("model", "must be a string")),
        };
        let messages = match object.remove("messages") {
            None | Some(Value::Null) => return Err(Error::invalid("messages", "field required")),
            Some(value) => messages_from_value(value, "messages")?,
        };
        let stream = match object.remove("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(Error::invalid("stream", "must be a boolean")),
        };
        let max_tokens = match object.remove("max_tokens") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) if n > 0 => Some(n),
                _ => return Err(Error::invalid("max_tokens", "must be a positive integer")),
            },
            Some(_) => return Err(Error::invalid("max_tokens", "must be a positive integer")),
        };
        let temperature = match object.remove("temperature") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(t) if (0.0..=2.0).contains(&t) => Some(t),
                _ => {
                    return Err(Error::invalid(
                        "temperature",
                        "must be a number from 0 to 2",
                    ))
                }
            },
            Some(_) => {
                return Err(Error::invalid(
                    "temperature",
                    "must be a number from 0 to 2",
                ))
            }
        };
        Ok(ChatRequest {
            model,
            messages,
            stream,
            max_tokens,
            temperature,
        })
    }
}

/// The request as serde reads it, before the checks types cannot express.
#[derive(Deserialize)]
struct Typed {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
}

impl Typed {
    fn validated(self) -> Option<ChatRequest> {
        let valid = !self.model.trim().is_empty()
            && !self.messages.is_empty()
            && self.max_tokens != Some(0)
            && self.temperature.is_none_or(|t| (0.0..=2.0).contains(&t));
        valid.then_some(ChatRequest {
            model: self.model,
            messages: self.messages,
            stream: self.stream.unwrap_or(false),
            max_tokens: self.max_tokens,
            temperature: self.temperature,
        })
    }
}

/// Validates a non-empty JSON array of `{role, content}` messages; errors
/// name the offending element, e.g. `messages[2].role`.
pub fn messages_from_value(value: Value, field: &str) -> Result<Vec<Message>> {
    let Value::Array(items) = value else {
        return Err(Error::invalid(field, "must be an array of messages"));
    };
    if items.is_empty() {
        return Err(Error::invalid(field, "must contain at least one message"));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut message) = item else {
                return Err(Error::invalid(
                    format!("{field}[{i}]"),
                    "must be an object with role and content",
                ));
            };
            let role = match message.remove("role") {
                Some(Value::String(role)) => match role.as_str() {
                    "system" => Role::System,
                    "user" => Role::User,
                    "assistant" => Role::Assistant,
                    _ => {
                        return Err(Error::invalid(
                            format!("{field}[{i}].role"),
                            "must be one of system, user, assistant",
                        ))
                    }
                },
                None | Some(Value::Null) => {
                    return Err(Error::invalid(
                        format!("{field}[{i}].role"),
                        "field required",
                    ))
                }
                Some(_) => {
                    return Err(Error::invalid(
                        format!("{field}[{i}].role"),
                        "must be one of system, user, assistant",
                    ))
                }
            };
            let content = match message.remove("content") {
                Some(Value::String(content)) => content,
                None | Some(Value::Null) => {
                    return Err(Error::invalid(
                        format!("{field}[{i}].content"),
                        "field required",
                    ))
                }
                Some(_) => {
                    return Err(Error::invalid(
                        format!("{field}[{i}].content"),
                        "must be a string",
                    ))
                }
            };
            Ok(Message { role, content })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the fast path accepts, the checked path accepts as the
        /// same request: the fast path can never let through what the
        /// validation would refuse.
        #[test]
        fn fast_path_agrees_with_the_checked_path(
            model in prop_oneof![Just("\"m\"".to_owned()), Just("\" \"".to_owned()), Just("null".to_owned()), Just("1".to_owned())],
            role in prop_oneof![Just("user"), Just("system"), Just("assistant"), Just("User"), Just("tool")],
            content in prop_oneof![Just("\"hi\"".to_owned()), Just("null".to_owned()), Just("[]".to_owned())],
            stream in prop_oneof![Just("true"), Just("null"), Just("0"), Just("\"x\"")],
            max_tokens in prop_oneof![Just("5"), Just("0"), Just("-1"), Just("1.5"), Just("null"), Just("1e2"), Just("18446744073709551616")],
            temperature in prop_oneof![Just("0"), Just("2"), Just("2.5"), Just("-0.1"), Just("null"), Just("\"1\"")],
            empty in any::<bool>(),
        ) {
            let messages = if empty { String::new() } else { format!(r#"{{"role":"{role}","content":{content}}}"#) };
            let body = format!(
                r#"{{"model":{model},"messages":[{messages}],"stream":{stream},"max_tokens":{max_tokens},"temperature":{temperature}}}"#
            );
            if let Some(fast) = serde_json::from_slice::<Typed>(body.as_bytes()).ok().and_then(Typed::validated) {
                let checked = ChatRequest::from_json_checked(body.as_bytes());
                prop_assert_eq!(checked.ok(), Some(fast), "{}", body);
            }
        }
    }

    fn field_of(body: &str) -> String {
        match ChatRequest::from_json(body.as_bytes()) {
            Err(Error::InvalidField { field, .. }) => field,
            other => panic!("expected InvalidField for {body}, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_request_and_ignores_unknown_fields() {
        let req = ChatRequest::from_json(
            br#"{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}],
                "stream":true,"max_tokens":5,"temperature":0.5,"top_k":3}"#,
        )
        .unwrap();
        assert_eq!(req.model, "m");
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[0].role, Role::System);
        assert!(req.stream);
        assert_eq!(req.max_tokens, Some(5));
        assert_eq!(req.temperature, Some(0.5));
    }

    #[test]
    fn defaults() {
        let req =
            ChatRequest::from_json(br#"{"model":"m","messages":[{"role":"user","content":"u"}]}"#)
                .unwrap();
        assert!(!req.stream);
        assert_eq!(req.max_tokens, None);
        assert_eq!(req.temperature, None);
    }

    #[test]
    fn malformed_json_is_distinguished_from_invalid_fields() {
        assert!(matches!(
            ChatRequest::from_json(b"{\"model\":"),
            Err(Error::MalformedJson(_))
        ));
        assert!(matches!(
            ChatRequest::from_json(b"\xff\xfe"),
            Err(Error::MalformedJson(_))
        ));
        assert!(matches!(
            ChatRequest::from_json(b""),
            Err(Error::MalformedJson(_))
        ));
    }

    #[test]
    fn invalid_fields_are_named() {
        assert_eq!(field_of("[]"), "body");
        assert_eq!(
            field_of(r#"{"messages":[{"role":"user","content":"u"}]}"#),
            "model"
        );
        assert_eq!(field_of(r#"{"model":7,"messages":[]}"#), "model");
        assert_eq!(field_of(r#"{"model":"m","messages":[]}"#), "messages");
        assert_eq!(field_of(r#"{"model":"m"}"#), "messages");
        assert_eq!(
            field_of(r#"{"model":"m","messages":[{"role":"robot","content":"u"}]}"#),
            "messages[0].role"
        );
        assert_eq!(
            field_of(
                r#"{"model":"m","messages":[{"role":"user","content":"u"},{"role":"user","content":1}]}"#
            ),
            "messages[1].content"
        );
        let ok = r#""messages":[{"role":"user","content":"u"}]"#;
        assert_eq!(
            field_of(&format!(r#"{{"model":"m",{ok},"stream":"yes"}}"#)),
            "stream"
        );
        assert_eq!(
            field_of(&format!(r#"{{"model":"m",{ok},"max_tokens":0}}"#)),
            "max_tokens"
        );
        assert_eq!(
            field_of(&format!(r#"{{"model":"m",{ok},"max_tokens":-4}}"#)),
            "max_tokens"
        );
        assert_eq!(
            field_of(&format!(r#"{{"model":"m",{ok},"max_tokens":1.5}}"#)),
            "max_tokens"
        );
        assert_eq!(
            field_of(&format!(r#"{{"model":"m",{ok},"temperature":"hot"}}"#)),
            "temperature"
        );
        assert_eq!(
            field_of(&format!(r#"{{"model":"m",{ok},"temperature":3}}"#)),
            "temperature"
        );
    }
}
