//! Google Gemini (`POST {base}/models/{model}:generateContent`, streams
//! `:streamGenerateContent?alt=sse`; base incl. the API version).
//!
//! The key travels in `x-goog-api-key`, never in the URL, where `?key=`
//! would write it into every access log on the way.

use bytes::Bytes;
use reqwest::header::HeaderName;
use serde::{Deserialize, Serialize};

use super::{
    AuthHeaders, ChatRequest, ChatResponse, Provider, Role, StreamEvent, StreamFault, StreamUsage,
    TailKind, UpstreamRequest, Usage, WireFormat,
};
use crate::config::Settings;
use crate::error::{Error, Result};

pub struct Gemini;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig,
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: [TextPart<'a>; 1],
}

#[derive(Serialize)]
struct TextPart<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct SystemInstruction {
    parts: [OwnedTextPart; 1],
}

#[derive(Serialize)]
struct OwnedTextPart {
    text: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none() && self.temperature.is_none()
    }
}

/// A `GenerateContentResponse`: a whole reply, or one stream event (also
/// read by the OpenAI-compatible route's translation).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Reply {
    #[serde(default)]
    candidates: Option<Vec<Candidate>>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
    /// Only in a stream: Gemini's error envelope after the 200.
    #[serde(default)]
    pub(super) error: Option<ReplyError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UsageMetadata {
    #[serde(default)]
    pub(super) prompt_token_count: u64,
    #[serde(default)]
    pub(super) candidates_token_count: u64,
    #[serde(default)]
    pub(super) thoughts_token_count: u64,
    #[serde(default)]
    pub(super) cached_content_token_count: u64,
}

#[derive(Deserialize)]
pub(super) struct ReplyError {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) status: Option<String>,
}

impl Reply {
    pub(super) fn first(&self) -> Option<&Candidate> {
        self.candidates.as_ref().and_then(|c| c.first())
    }

    /// The visible text of the first candidate (thought summaries left out).
    pub(super) fn text(&self) -> String {
        self.first()
            .and_then(|c| c.content.as_ref())
            .map(|content| {
                content
                    .parts
                    .iter()
                    .filter(|p| !p.thought)
                    .filter_map(|p| p.text.as_deref())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn blocked(&self) -> bool {
        self.prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some())
    }
}

/// Gemini's finish reasons in the normalized vocabulary; unknown ones pass
/// through unchanged.
pub fn stop_reason(reason: &str) -> String {
    match reason {
        "STOP" => "stop",
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        other => other,
    }
    .to_owned()
}

/// The model as one URL path segment. Names that would change the path
/// (`/`, `..`) or end it (`?`, `#`) are refused rather than encoded.
fn model_segment(model: &str) -> Result<String> {
    if model.contains(['/', '?', '#']) || model.contains("..") {
        return Err(Error::invalid(
            "model",
            "must not contain '/', '?', '#' or '..' for gemini",
        ));
    }
    let mut segment = String::with_capacity(model.len());
    for byte in model.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            segment.push(byte as char);
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(segment)
}

impl WireFormat for Gemini {
    fn fixed_endpoint(&self, _base_url: &str) -> Option<String> {
        // The model is part of the path.
        None
    }

    fn request_url(&self, base_url: &str, model: &str, stream: bool) -> Result<String> {
        let model = model_segment(model)?;
        Ok(if stream {
            format!("{base_url}/models/{model}:streamGenerateContent?alt=sse")
        } else {
            format!("{base_url}/models/{model}:generateContent")
        })
    }

    fn build_request(
        &self,
        provider: &Provider,
        settings: &Settings,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<UpstreamRequest> {
        let contents = request
            .messages
            .iter()
            .filter_map(|m| {
                let role = match m.role {
                    Role::System => return None,
                    Role::User => "user",
                    Role::Assistant => "model",
                };
                Some(Content {
                    role,
                    parts: [TextPart { text: &m.content }],
                })
            })
            .collect();
        let body = Body {
            contents,
            system_instruction: request.system_prompt().map(|text| SystemInstruction {
                parts: [OwnedTextPart { text }],
            }),
            generation_config: GenerationConfig {
                max_output_tokens: request.max_tokens,
                temperature: request.temperature,
            },
        };
        provider.json_request(settings, api_key, &body)
    }

    fn auth_headers(&self, _settings: &Settings, api_key: Option<&str>) -> Result<AuthHeaders> {
        let key = api_key.map(|key| (HeaderName::from_static("x-goog-api-key"), key.to_owned()));
        Ok((Vec::new(), key))
    }

    fn normalize(
        &self,
        provider: &Provider,
        requested_model: &str,
        body: &[u8],
    ) -> std::result::Result<ChatResponse, String> {
        let reply: Reply = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if reply.candidates.is_none() && reply.prompt_feedback.is_none() {
            return Err("no candidates and no prompt feedback".to_owned());
        }
        let stop_reason = if reply.first().is_none() && reply.blocked() {
            // Blocked before any candidate: an empty, filtered reply.
            Some("content_filter".to_owned())
        } else {
            reply
                .first()
                .and_then(|c| c.finish_reason.as_deref())
                .map(stop_reason)
        };
        let usage = reply.usage_metadata.as_ref().map_or(
            Usage {
                input_tokens: 0,
                output_tokens: 0,
            },
            |u| Usage {
                input_tokens: u.prompt_token_count,
                output_tokens: u.candidates_token_count + u.thoughts_token_count,
            },
        );
        Ok(ChatResponse {
            provider: provider.name.to_owned(),
            content: reply.text(),
            model: reply
                .model_version
                .unwrap_or_else(|| requested_model.to_owned()),
            stop_reason,
            usage,
            id: reply.response_id.unwrap_or_default(),
        })
    }

    fn stream_event(&self, data: &str) -> StreamEvent {
        let reply: Reply = match serde_json::from_str(data) {
            Ok(reply) => reply,
            Err(e) => return StreamEvent::Failed(format!("invalid stream event: {e}")),
        };
        if let Some(error) = reply.error {
            let message = error
                .message
                .unwrap_or_else(|| "an error occurred during streaming".to_owned());
            return StreamEvent::Failed(match error.status {
                Some(status) => format!("{status}: {message}"),
                None => message,
            });
        }
        let text = reply.text();
        let last = reply.blocked() || reply.first().is_some_and(|c| c.finish_reason.is_some());
        match (last, text.is_empty()) {
            (true, _) => StreamEvent::Final(text),
            (false, false) => StreamEvent::Text(text),
            (false, true) => StreamEvent::Skip,
        }
    }

    fn error_event(&self, fault: StreamFault, message: &str) -> Bytes {
        let (code, status) = match fault {
            StreamFault::Timeout => (504, "DEADLINE_EXCEEDED"),
            StreamFault::Disconnected => (502, "UNAVAILABLE"),
            StreamFault::ShuttingDown => (503, "UNAVAILABLE"),
        };
        let error = serde_json::json!({
            "error": {"code": code, "message": message, "status": status}
        });
        // Gemini's own framing: each event ends with a blank CRLF line.
        Bytes::from(format!("data: {error}\r\n\r\n"))
    }

    fn stream_is_complete(&self, tail: &[u8]) -> bool {
        // The tail is the whole last event. It is complete when it ended
        // (a blank line) and either carried a finish reason (or a block
        // reason) or was an error. Keys are unescaped quotes only as keys:
        // text containing them arrives as \"finishReason\".
        let ended = tail.ends_with(b"\n\n") || tail.ends_with(b"\r\n\r\n");
        let data = tail.trim_ascii_start();
        let data = data
            .strip_prefix(b"data:")
            .unwrap_or(data)
            .trim_ascii_start();
        ended
            && (super::contains(tail, b"\"finishReason\"")
                || super::contains(tail, b"\"blockReason\"")
                || data.starts_with(b"{\"error\""))
    }

    fn tail_kind(&self) -> TailKind {
        TailKind::LastEvent
    }

    fn stream_usage(&self, data: &str) -> Option<StreamUsage> {
        // Every event repeats the cumulative counts; the last one wins.
        let reply: UsageOnly = serde_json::from_str(data).ok()?;
        let usage = reply.usage_metadata?;
        Some(StreamUsage {
            input_tokens: Some(usage.prompt_token_count),
            output_tokens: Some(usage.candidates_token_count + usage.thoughts_token_count),
        })
    }
}

/// Only the usage of a stream event (its text is not needed).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageOnly {
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_fixture as fixture;
    use crate::providers::test_support::{settings_with, stream_usages};
    use crate::providers::{Message, StreamTail};

    fn settings() -> Settings {
        settings_with("GEMINI_BASE_URL", "http://127.0.0.1:1/v1beta")
    }

    fn provider() -> &'static Provider {
        settings().providers.provider("gemini").unwrap()
    }

    fn request(model: &str, stream: bool) -> ChatRequest {
        let message = |role, content: &str| Message {
            role,
            content: content.into(),
        };
        ChatRequest {
            model: model.into(),
            messages: vec![
                message(Role::System, "one"),
                message(Role::User, "hi"),
                message(Role::Assistant, "hello"),
                message(Role::System, "two"),
                message(Role::User, "again"),
            ],
            stream,
            max_tokens: Some(64),
            temperature: Some(0.0),
        }
    }

    #[test]
    fn urls_name_the_model_and_the_method_and_never_the_key() {
        let base = &provider().base_url;
        assert_eq!(
            Gemini.request_url(base, "gemini-2.0-flash", false).unwrap(),
            "http://127.0.0.1:1/v1beta/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            Gemini.request_url(base, "gemini 2", true).unwrap(),
            "http://127.0.0.1:1/v1beta/models/gemini%202:streamGenerateContent?alt=sse"
        );
        for bad in ["a/b", "a?b", "a#b", "..", "x..y"] {
            let err = Gemini.request_url(base, bad, false).unwrap_err();
            assert!(
                matches!(err, Error::InvalidField { ref field, .. } if field == "model"),
                "{bad}"
            );
        }
    }

    #[test]
    fn builds_contents_system_instruction_and_generation_config() {
        let req = Gemini
            .build_request(
                provider(),
                &settings(),
                &request("m", false),
                Some("AIza-k"),
            )
            .unwrap();
        assert_eq!(req.headers[1].0, "x-goog-api-key");
        assert_eq!(req.headers[1].1, "AIza-k");
        assert!(req.headers[1].1.is_sensitive());
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "hi"}]},
                    {"role": "model", "parts": [{"text": "hello"}]},
                    {"role": "user", "parts": [{"text": "again"}]}
                ],
                "systemInstruction": {"parts": [{"text": "one\n\ntwo"}]},
                "generationConfig": {"maxOutputTokens": 64, "temperature": 0.0}
            })
        );
        let mut plain = request("m", false);
        plain.messages.retain(|m| m.role == Role::User);
        plain.max_tokens = None;
        plain.temperature = None;
        let req = Gemini
            .build_request(provider(), &settings(), &plain, None)
            .unwrap();
        assert_eq!(req.headers.len(), 1);
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["contents"]);
    }

    #[test]
    fn normalizes_the_fixture() {
        let r = Gemini
            .normalize(provider(), "asked", &fixture("gemini-generate.json"))
            .unwrap();
        assert_eq!(r.provider, "gemini");
        assert_eq!(r.content, "Hello! How can I help you today?");
        assert_eq!(r.model, "gemini-2.5-flash");
        assert_eq!(r.stop_reason.as_deref(), Some("stop"));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 11,
                output_tokens: 36
            }
        );
        assert_eq!(r.id.len(), 23);
    }

    #[test]
    fn a_blocked_prompt_is_an_empty_filtered_reply() {
        let r = Gemini
            .normalize(provider(), "asked", &fixture("gemini-blocked.json"))
            .unwrap();
        assert_eq!(r.content, "");
        assert_eq!(r.stop_reason.as_deref(), Some("content_filter"));
        assert_eq!(r.usage.input_tokens, 8);
        assert_eq!(r.usage.output_tokens, 0);
    }

    #[test]
    fn thoughts_are_left_out_and_absent_fields_have_defaults() {
        let r = Gemini
            .normalize(
                provider(),
                "asked",
                br#"{"candidates":[{"content":{"parts":[{"text":"plan","thought":true},{"text":"A"},{"functionCall":{}},{"text":"B"}]},"finishReason":"MAX_TOKENS"}],"usageMetadata":{"thoughtsTokenCount":5}}"#,
            )
            .unwrap();
        assert_eq!(r.content, "AB");
        assert_eq!(r.model, "asked");
        assert_eq!(r.id, "");
        assert_eq!(r.stop_reason.as_deref(), Some("length"));
        assert_eq!(r.usage.output_tokens, 5);
        let r = Gemini
            .normalize(
                provider(),
                "asked",
                br#"{"candidates":[{"finishReason":"SAFETY"}]}"#,
            )
            .unwrap();
        assert_eq!(
            (r.content.as_str(), r.stop_reason.as_deref()),
            ("", Some("content_filter"))
        );
        assert!(Gemini.normalize(provider(), "m", b"{}").is_err());
        assert!(Gemini.normalize(provider(), "m", b"<html>").is_err());
    }

    #[test]
    fn every_finish_reason_maps() {
        for (from, to) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("IMAGE_SAFETY", "content_filter"),
            ("MALFORMED_FUNCTION_CALL", "MALFORMED_FUNCTION_CALL"),
            ("OTHER", "OTHER"),
        ] {
            assert_eq!(stop_reason(from), to, "{from}");
        }
    }

    #[test]
    fn stream_events() {
        assert_eq!(
            Gemini.stream_event(r#"{"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}]}"#),
            StreamEvent::Text("Hi".into())
        );
        assert_eq!(
            Gemini.stream_event(r#"{"candidates": [{"content": {"parts": [{"text": "!"}]},"finishReason": "STOP"}]}"#),
            StreamEvent::Final("!".into())
        );
        assert_eq!(
            Gemini.stream_event(r#"{"promptFeedback": {"blockReason": "SAFETY"}}"#),
            StreamEvent::Final(String::new())
        );
        assert_eq!(
            Gemini.stream_event(
                r#"{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}"#
            ),
            StreamEvent::Failed("UNAVAILABLE: overloaded".into())
        );
    }

    #[test]
    fn stream_usage_is_the_cumulative_count_of_each_event() {
        let found = stream_usages(&Gemini, "gemini-stream.sse");
        let outputs: Vec<_> = found.iter().map(|u| u.output_tokens).collect();
        assert_eq!(outputs, [Some(30), Some(33), Some(36)]);
        assert!(found.iter().all(|u| u.input_tokens == Some(11)));
    }

    fn complete(stream: &[u8]) -> bool {
        let mut tail = StreamTail::new(Gemini.tail_kind());
        for chunk in stream.chunks(37) {
            tail.push(chunk);
        }
        Gemini.stream_is_complete(tail.bytes())
    }

    #[test]
    fn a_stream_is_complete_when_its_last_event_has_a_finish_reason_or_is_an_error() {
        let full = fixture("gemini-stream.sse");
        assert!(complete(&full));
        let cut_at = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(
            !complete(&full[..cut_at]),
            "the first event has no finishReason"
        );
        assert!(
            !complete(&full[..full.len() - 2]),
            "the last event never ended"
        );
        let error = Gemini.error_event(StreamFault::Disconnected, "cut");
        let mut with_error = full[..cut_at].to_vec();
        with_error.extend_from_slice(&error);
        assert!(complete(&with_error));
        let text = std::str::from_utf8(&error).unwrap();
        assert!(text.ends_with("\r\n\r\n"));
        let data = text.trim_end().strip_prefix("data: ").unwrap();
        let value: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"error": {"code": 502, "message": "cut", "status": "UNAVAILABLE"}})
        );
        // Text that merely mentions the key does not end the stream.
        assert!(!complete(
            b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"say \\\"finishReason\\\"\"}]}}]}\r\n\r\n"
        ));
    }
}
