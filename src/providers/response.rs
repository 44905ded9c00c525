//! The normalized reply: one shape and one stop-reason vocabulary for every
//! provider. The server answers it as JSON; `chat --json` prints the same.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Every input token, cached or not.
    pub input_tokens: u64,
    /// Generated tokens (reasoning included).
    pub output_tokens: u64,
}

/// The token counts one stream event reports, each when the event carries
/// it. Counts are cumulative: a later event's value replaces an earlier
/// one, never adds to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub provider: String,
    pub model: String,
    pub content: String,
    pub stop_reason: Option<String>,
    pub usage: Usage,
    pub id: String,
}

/// Maps both providers' stop reasons onto one vocabulary (OpenAI's words);
/// anything unknown passes through unchanged.
pub fn normalize_stop_reason(reason: &str) -> String {
    match reason {
        "stop" | "end_turn" | "stop_sequence" => "stop",
        "length" | "max_tokens" => "length",
        "tool_calls" | "tool_use" => "tool_calls",
        "content_filter" | "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_stop_reason_maps() {
        for (from, to) in [
            ("stop", "stop"),
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("length", "length"),
            ("max_tokens", "length"),
            ("tool_calls", "tool_calls"),
            ("tool_use", "tool_calls"),
            ("content_filter", "content_filter"),
            ("refusal", "content_filter"),
            ("pause_turn", "pause_turn"),
            ("function_call", "function_call"),
        ] {
            assert_eq!(normalize_stop_reason(from), to, "{from}");
        }
    }
}
