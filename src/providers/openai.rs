//! OpenAI Chat Completions (`POST {base}/chat/completions`, base incl.
//! `/v1`): OpenAI itself and every OpenAI-compatible host.

use bytes::Bytes;
use reqwest::header::AUTHORIZATION;
use serde::{Deserialize, Serialize};

use super::{
    contains, normalize_stop_reason, AuthHeaders, ChatRequest, ChatResponse, MaxTokensField,
    Message, Provider, StreamEvent, StreamFault, StreamUsage, UpstreamRequest, Usage, WireFormat,
};
use crate::config::Settings;
use crate::error::Result;

pub struct OpenAi;

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

#[derive(Deserialize)]
struct Completion {
    id: String,
    model: String,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<CompletionUsage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct CompletionUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

/// The last chunk of a stream asked with `stream_options.include_usage`.
#[derive(Deserialize)]
struct UsageChunk {
    #[serde(default)]
    usage: Option<CompletionUsage>,
}

impl WireFormat for OpenAi {
    fn fixed_endpoint(&self, base_url: &str) -> Option<String> {
        Some(format!("{base_url}/chat/completions"))
    }

    fn build_request(
        &self,
        provider: &Provider,
        settings: &Settings,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest> {
        let (max_tokens, max_completion_tokens) = match provider.max_tokens_field {
            MaxTokensField::MaxTokens => (request.max_tokens, None),
            MaxTokensField::MaxCompletionTokens => (None, request.max_tokens),
        };
        let body = Body {
            model: &request.model,
            messages: &request.messages,
            stream: request.stream,
            max_tokens,
            max_completion_tokens,
            temperature: request.temperature,
        };
        provider.json_request(settings, api_key, &body)
    }

    fn auth_headers(&self, _settings: &Settings, api_key: Option<&str>) -> Result<AuthHeaders> {
        let key = api_key.map(|key| (AUTHORIZATION, format!("Bearer {key}")));
        Ok((Vec::new(), key))
    }

    fn normalize(
        &self,
        provider: &Provider,
        _requested_model: &str,
        body: &[u8],
    ) -> std::result::Result<ChatResponse, String> {
        let completion: Completion = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let first = completion.choices.into_iter().next();
        let (content, stop_reason) = match first {
            Some(choice) => (
                choice.message.content.unwrap_or_default(),
                choice.finish_reason.as_deref().map(normalize_stop_reason),
            ),
            None => (String::new(), None),
        };
        let usage = completion.usage.map_or(
            Usage {
                input_tokens: 0,
                output_tokens: 0,
            },
            |u| Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            },
        );
        Ok(ChatResponse {
            provider: provider.name.to_owned(),
            model: completion.model,
            content,
            stop_reason,
            usage,
            id: completion.id,
        })
    }

    fn stream_event(&self, data: &str) -> StreamEvent {
        if data.trim() == "[DONE]" {
            return StreamEvent::Done;
        }
        match serde_json::from_str::<Chunk>(data) {
            Ok(Chunk {
                error: Some(error), ..
            }) if !error.is_null() => StreamEvent::Failed(
                error
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("an error occurred during streaming")
                    .to_owned(),
            ),
            Ok(chunk) => match chunk
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.delta)
                .and_then(|d| d.content)
            {
                Some(text) if !text.is_empty() => StreamEvent::Text(text),
                _ => StreamEvent::Skip,
            },
            Err(e) => StreamEvent::Failed(format!("invalid stream chunk: {e}")),
        }
    }

    fn error_event(&self, fault: StreamFault, message: &str) -> Bytes {
        let kind = match fault {
            StreamFault::Timeout => "timeout",
            StreamFault::Disconnected => "server_error",
            StreamFault::ShuttingDown => "service_unavailable_error",
        };
        let error = serde_json::json!({
            "error": {"message": message, "type": kind, "param": null, "code": null}
        });
        Bytes::from(format!("data: {error}\n\n"))
    }

    fn stream_is_complete(&self, tail: &[u8]) -> bool {
        contains(tail, b"data: [DONE]")
            || contains(tail, b"data:[DONE]")
            || contains(tail, b"{\"error\":")
    }

    fn stream_usage(&self, data: &str) -> Option<StreamUsage> {
        let usage = serde_json::from_str::<UsageChunk>(data).ok()?.usage?;
        Some(StreamUsage {
            input_tokens: Some(usage.prompt_tokens),
            output_tokens: Some(usage.completion_tokens),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_support::{settings_with, stream_usages};
    use crate::providers::Role;

    fn settings() -> Settings {
        settings_with("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    }

    fn provider(field: MaxTokensField) -> Provider {
        let mut provider = settings().providers.provider("openai").unwrap().clone();
        provider.max_tokens_field = field;
        provider
    }

    fn build(field: MaxTokensField, request: &ChatRequest, key: Option<&str>) -> UpstreamRequest {
        OpenAi
            .build_request(&provider(field), &settings(), request, key)
            .unwrap()
    }

    fn request(max_tokens: Option<u64>, temperature: Option<f64>, stream: bool) -> ChatRequest {
        ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                Message {
                    role: Role::System,
                    content: "Be terse".into(),
                },
                Message {
                    role: Role::User,
                    content: "Hi".into(),
                },
            ],
            stream,
            max_tokens,
            temperature,
        }
    }

    fn body_of(req: &UpstreamRequest) -> serde_json::Value {
        serde_json::from_slice(&req.body).unwrap()
    }

    #[test]
    fn builds_url_auth_and_body() {
        let req = build(
            MaxTokensField::MaxCompletionTokens,
            &request(Some(9), Some(0.2), true),
            Some("sk-x"),
        );
        assert_eq!(
            provider(MaxTokensField::MaxTokens)
                .endpoint
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert_eq!(req.headers[1].0, AUTHORIZATION);
        assert_eq!(req.headers[1].1, "Bearer sk-x");
        assert!(req.headers[1].1.is_sensitive());
        assert_eq!(
            body_of(&req),
            serde_json::json!({"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be terse"},{"role":"user","content":"Hi"}],
                "stream":true,"max_completion_tokens":9,"temperature":0.2})
        );
    }

    #[test]
    fn optional_fields_are_left_out_and_field_name_follows_settings() {
        let req = build(MaxTokensField::MaxTokens, &request(None, None, false), None);
        assert_eq!(req.headers.len(), 1, "no key, no Authorization header");
        let body = body_of(&req);
        let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["messages", "model"]);
        let req = build(
            MaxTokensField::MaxTokens,
            &request(Some(3), None, false),
            Some("k"),
        );
        assert_eq!(body_of(&req)["max_tokens"], 3);
    }

    #[test]
    fn normalizes_the_fixture() {
        let body = crate::providers::test_fixture("openai-chat.json");
        let r = OpenAi
            .normalize(&provider(MaxTokensField::MaxTokens), "m", &body)
            .unwrap();
        assert_eq!(r.provider, "openai");
        assert_eq!(r.model, "gpt-4o-mini-2024-07-18");
        assert_eq!(r.content, "Hello! How can I help you today?");
        assert_eq!(r.stop_reason.as_deref(), Some("stop"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 19,
                output_tokens: 9
            }
        );
        assert_eq!(r.id, "chatcmpl-CgT4kq8ZbN2xWv7LmR5sYd1JpFa9E");
    }

    #[test]
    fn null_content_becomes_empty() {
        let r = OpenAi
            .normalize(&provider(MaxTokensField::MaxTokens), "m", br#"{"id":"c","model":"m","choices":[{"message":{"content":null},"finish_reason":"tool_calls"}]}"#)
            .unwrap();
        assert_eq!(r.content, "");
        assert_eq!(r.stop_reason.as_deref(), Some("tool_calls"));
    }

    #[test]
    fn stream_events() {
        assert_eq!(
            OpenAi.stream_event(r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#),
            StreamEvent::Text("Hi".into())
        );
        assert_eq!(OpenAi.stream_event(r#"{"choices":[]}"#), StreamEvent::Skip);
        assert_eq!(OpenAi.stream_event("[DONE]"), StreamEvent::Done);
        assert_eq!(
            OpenAi.stream_event(r#"{"error":{"message":"boom","type":"server_error"}}"#),
            StreamEvent::Failed("boom".into())
        );
    }

    #[test]
    fn stream_usage_comes_from_the_usage_chunk_only() {
        let found = stream_usages(&OpenAi, "openai-stream-usage.sse");
        assert_eq!(
            found,
            [StreamUsage {
                input_tokens: Some(19),
                output_tokens: Some(9)
            }]
        );
        assert_eq!(OpenAi.stream_usage("[DONE]"), None);
    }

    #[test]
    fn error_event_is_an_openai_error_chunk() {
        let event = OpenAi.error_event(StreamFault::Timeout, "upstream stalled");
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("data: ") && text.ends_with("\n\n"));
        assert_eq!(
            OpenAi.stream_event(&text[6..]),
            StreamEvent::Failed("upstream stalled".into())
        );
        assert!(OpenAi.stream_is_complete(&event));
        assert!(OpenAi.stream_is_complete(b"data: {}\n\ndata: [DONE]\n\n"));
        assert!(!OpenAi.stream_is_complete(b"data: {\"choices\":[]}\n\n"));
    }
}
