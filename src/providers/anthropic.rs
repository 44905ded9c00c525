//! Anthropic Messages (`POST {base}/v1/messages`, base without `/v1`).

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::{
    contains, normalize_stop_reason, AuthHeaders, ChatRequest, ChatResponse, Message, Provider,
    Role, StreamEvent, StreamFault, StreamUsage, UpstreamRequest, Usage, WireFormat,
};
use crate::config::Settings;
use crate::error::{Error, Result};

pub struct Anthropic;

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<&'a Message>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

/// A non-streamed Messages API reply.
#[derive(Deserialize)]
struct Reply {
    id: String,
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    stop_reason: Option<String>,
    usage: MessageUsage,
}

#[derive(Deserialize)]
struct Block {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct MessageUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    delta: Option<EventDelta>,
    #[serde(default)]
    error: Option<EventError>,
}

#[derive(Deserialize)]
struct EventDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct EventError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The usage of `message_start` (in `message`) and `message_delta`.
#[derive(Deserialize)]
struct UsageEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<UsageMessage>,
    #[serde(default)]
    usage: Option<EventUsage>,
}

#[derive(Deserialize)]
struct UsageMessage {
    #[serde(default)]
    usage: Option<EventUsage>,
}

/// Anthropic's `usage` object (replies, `message_start`, `message_delta`);
/// the OpenAI-compatible route's translation reads it too.
#[derive(Deserialize, Default, Clone, Copy)]
pub(super) struct EventUsage {
    #[serde(default)]
    pub(super) input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) output_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub(super) cache_read_input_tokens: Option<u64>,
}

impl EventUsage {
    /// Every input token, cached or not (as in [`Anthropic::normalize`]).
    pub(super) fn input(&self) -> Option<u64> {
        self.input_tokens.map(|n| {
            n + self.cache_creation_input_tokens.unwrap_or(0)
                + self.cache_read_input_tokens.unwrap_or(0)
        })
    }
}

impl WireFormat for Anthropic {
    fn fixed_endpoint(&self, base_url: &str) -> Option<String> {
        Some(format!("{base_url}/v1/messages"))
    }

    fn build_request(
        &self,
        provider: &Provider,
        settings: &Settings,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest> {
        let body = Body {
            model: &request.model,
            max_tokens: request
                .max_tokens
                .unwrap_or(settings.anthropic_default_max_tokens),
            // Anthropic has no system role: the system messages become the
            // top-level `system` field.
            system: request.system_prompt(),
            messages: request
                .messages
                .iter()
                .filter(|m| m.role != Role::System)
                .collect(),
            stream: request.stream,
            temperature: request.temperature,
        };
        provider.json_request(settings, api_key, &body)
    }

    fn auth_headers(&self, settings: &Settings, api_key: Option<&str>) -> Result<AuthHeaders> {
        let version = HeaderValue::try_from(settings.anthropic_version.as_str())
            .map_err(|_| Error::invalid("ANTHROPIC_VERSION", "not a valid header value"))?;
        let key = api_key.map(|key| (HeaderName::from_static("x-api-key"), key.to_owned()));
        Ok((
            vec![(HeaderName::from_static("anthropic-version"), version)],
            key,
        ))
    }

    fn normalize(
        &self,
        provider: &Provider,
        _requested_model: &str,
        body: &[u8],
    ) -> std::result::Result<ChatResponse, String> {
        let message: Reply = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let content = message
            .content
            .into_iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text)
            .collect::<String>();
        let usage = &message.usage;
        Ok(ChatResponse {
            provider: provider.name.to_owned(),
            model: message.model,
            content,
            stop_reason: message.stop_reason.as_deref().map(normalize_stop_reason),
            usage: Usage {
                input_tokens: usage.input_tokens
                    + usage.cache_creation_input_tokens.unwrap_or(0)
                    + usage.cache_read_input_tokens.unwrap_or(0),
                output_tokens: usage.output_tokens,
            },
            id: message.id,
        })
    }

    fn stream_event(&self, data: &str) -> StreamEvent {
        match serde_json::from_str::<Event>(data) {
            Ok(event) => match event.kind.as_str() {
                "content_block_delta" => match event.delta {
                    Some(EventDelta {
                        kind: Some(kind),
                        text: Some(text),
                    }) if kind == "text_delta" => StreamEvent::Text(text),
                    _ => StreamEvent::Skip,
                },
                "message_stop" => StreamEvent::Done,
                "error" => {
                    let error = event.error.unwrap_or(EventError {
                        kind: None,
                        message: None,
                    });
                    let message = error
                        .message
                        .unwrap_or_else(|| "an error occurred during streaming".into());
                    StreamEvent::Failed(match error.kind {
                        Some(kind) => format!("{kind}: {message}"),
                        None => message,
                    })
                }
                _ => StreamEvent::Skip,
            },
            Err(e) => StreamEvent::Failed(format!("invalid stream event: {e}")),
        }
    }

    fn error_event(&self, fault: StreamFault, message: &str) -> Bytes {
        let kind = match fault {
            StreamFault::Timeout => "timeout_error",
            StreamFault::Disconnected => "api_error",
            StreamFault::ShuttingDown => "overloaded_error",
        };
        let error =
            serde_json::json!({"type": "error", "error": {"type": kind, "message": message}});
        Bytes::from(format!("event: error\ndata: {error}\n\n"))
    }

    fn stream_is_complete(&self, tail: &[u8]) -> bool {
        // Event lines start a line; JSON strings in `data` cannot hold a raw
        // newline, so these cannot be faked by generated text.
        contains(tail, b"\nevent: message_stop") || contains(tail, b"\nevent: error")
    }

    fn stream_usage(&self, data: &str) -> Option<StreamUsage> {
        let event: UsageEvent = serde_json::from_str(data).ok()?;
        match event.kind.as_str() {
            // Its `output_tokens` is a placeholder (1): not reported.
            "message_start" => {
                let usage = event.message?.usage?;
                Some(StreamUsage {
                    input_tokens: usage.input(),
                    output_tokens: None,
                })
            }
            // Cumulative counts; `input_tokens` only in newer versions.
            "message_delta" => {
                let usage = event.usage?;
                Some(StreamUsage {
                    input_tokens: usage.input(),
                    output_tokens: usage.output_tokens,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_fixture as fixture;
    use crate::providers::test_support::{settings_with, stream_usages};

    fn settings() -> Settings {
        settings_with("ANTHROPIC_BASE_URL", "http://127.0.0.1:1")
    }

    fn provider() -> &'static Provider {
        settings().providers.provider("anthropic").unwrap()
    }

    fn msg(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }

    #[test]
    fn system_messages_are_joined_and_default_max_tokens_is_sent() {
        let request = ChatRequest {
            model: "claude".into(),
            messages: vec![
                msg(Role::System, "one"),
                msg(Role::User, "hi"),
                msg(Role::System, "two"),
                msg(Role::Assistant, "hello"),
            ],
            stream: false,
            max_tokens: None,
            temperature: Some(0.5),
        };
        let req = Anthropic
            .build_request(provider(), &settings(), &request, Some("sk-ant"))
            .unwrap();
        assert_eq!(
            provider().endpoint.as_ref().unwrap().as_str(),
            "http://127.0.0.1:1/v1/messages"
        );
        assert_eq!(req.headers[2].0, "x-api-key");
        assert_eq!(req.headers[2].1, "sk-ant");
        assert!(req.headers[2].1.is_sensitive());
        assert_eq!(req.headers[0].1, "2023-06-01");
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"model":"claude","max_tokens":1024,"system":"one\n\ntwo",
                "messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}],"temperature":0.5})
        );
    }

    #[test]
    fn normalizes_the_fixture_and_counts_cache_tokens_as_input() {
        let r = Anthropic
            .normalize(provider(), "m", &fixture("anthropic-messages.json"))
            .unwrap();
        assert_eq!(r.content, "Hello! How can I help you today?");
        assert_eq!(r.stop_reason.as_deref(), Some("stop"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 14,
                output_tokens: 12
            }
        );
        let r = Anthropic
            .normalize(
                provider(),
                "m",
                br#"{"id":"m","model":"c","content":[{"type":"text","text":"a"},{"type":"tool_use","id":"t"},{"type":"text","text":"b"}],
                "stop_reason":"max_tokens","usage":{"input_tokens":1,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":4}}"#,
            )
            .unwrap();
        assert_eq!(r.content, "ab");
        assert_eq!(r.stop_reason.as_deref(), Some("length"));
        assert_eq!(r.usage.input_tokens, 321);
    }

    #[test]
    fn stream_events() {
        assert_eq!(
            Anthropic.stream_event(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#),
            StreamEvent::Text("Hi".into())
        );
        assert_eq!(
            Anthropic.stream_event(r#"{"type": "ping"}"#),
            StreamEvent::Skip
        );
        assert_eq!(
            Anthropic.stream_event(r#"{"type":"message_stop"}"#),
            StreamEvent::Done
        );
        assert_eq!(
            Anthropic.stream_event(r#"{"type":"error","error":{"details":null,"type":"overloaded_error","message":"Overloaded"}}"#),
            StreamEvent::Failed("overloaded_error: Overloaded".into())
        );
    }

    #[test]
    fn stream_usage_of_message_start_and_message_delta() {
        let found = stream_usages(&Anthropic, "anthropic-stream.sse");
        assert_eq!(
            found,
            [
                StreamUsage {
                    input_tokens: Some(14),
                    output_tokens: None
                },
                StreamUsage {
                    input_tokens: Some(14),
                    output_tokens: Some(12)
                }
            ]
        );
        // An older message_delta without input_tokens, cache tokens counted.
        assert_eq!(
            Anthropic.stream_usage(
                r#"{"type":"message_delta","delta":{},"usage":{"output_tokens":15}}"#
            ),
            Some(StreamUsage {
                input_tokens: None,
                output_tokens: Some(15)
            })
        );
        assert_eq!(
            Anthropic.stream_usage(r#"{"type":"message_start","message":{"usage":{"input_tokens":1,"cache_read_input_tokens":300,"output_tokens":1}}}"#),
            Some(StreamUsage {
                input_tokens: Some(301),
                output_tokens: None
            })
        );
    }

    #[test]
    fn completeness_of_fixture_streams() {
        let full = fixture("anthropic-stream.sse");
        assert!(Anthropic.stream_is_complete(&full[full.len() - 64..]));
        assert!(Anthropic.stream_is_complete(&fixture("anthropic-stream-error.sse")));
        assert!(!Anthropic.stream_is_complete(&full[..full.len() / 2]));
        let event = Anthropic.error_event(StreamFault::Disconnected, "reset");
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: error\ndata: "));
        let data = text.lines().nth(1).unwrap().trim_start_matches("data: ");
        assert_eq!(
            Anthropic.stream_event(data),
            StreamEvent::Failed("api_error: reset".into())
        );
    }
}
