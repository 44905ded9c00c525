//! What the request log needs from a stream passing through (token usage,
//! an upstream error event) without parsing every event: the bytes are
//! searched for `"usage` and `"error` (SIMD `memmem`), and only a `data:`
//! line where such a name is a member holding an object (`"usage": {`,
//! `"usageMetadata":{`, `"error": {`) is looked at. So `"usage":null`,
//! which OpenAI puts in every chunk, costs no parse, and neither does a
//! quote in generated text (it is escaped there: `\"usage\"`).
//!
//! Usage is parsed at most twice per stream: the first event that carries
//! it when it passes (Anthropic's `message_start` holds the input count),
//! and the last one when the stream ends (the others are only copied into
//! one reused buffer; every provider's counts are cumulative, so the last
//! one wins). Gemini repeats `usageMetadata` in every event; that is still
//! two parses.
//!
//! Chunks may split lines anywhere. A line cut by a chunk boundary is
//! carried over (up to [`MAX_LINE`] bytes) and looked at once complete, so
//! usage split across chunks is still found; a longer line is skipped. A
//! count is only ever taken from a whole line that parsed: missing tokens
//! are possible (a cut-off stream, a usage line over 64 KiB), wrong ones
//! are not.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::providers::{Provider, StreamEvent, StreamUsage};

/// The longest line carried across a chunk boundary.
pub const MAX_LINE: usize = 64 * 1024;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage"));
static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error"));

#[derive(Clone, Copy)]
enum Marker {
    Usage,
    Error,
}

#[derive(Default)]
pub struct StreamScan {
    /// The start of a line the last chunk did not finish.
    carry: Vec<u8>,
    /// The unfinished line was too long to carry: skip to its end.
    skipping: bool,
    /// Whether a usage line has been parsed already.
    first_usage_seen: bool,
    /// The latest usage line after the first, parsed at the end.
    last_usage: Vec<u8>,
    usage: StreamUsage,
    upstream_error: bool,
}

impl StreamScan {
    /// Looks at the next chunk of the stream.
    pub fn push(&mut self, provider: &Provider, chunk: &[u8]) {
        let mut rest = chunk;
        if self.skipping || !self.carry.is_empty() {
            let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) else {
                self.keep(chunk);
                return;
            };
            if !self.skipping {
                let mut line = std::mem::take(&mut self.carry);
                line.extend_from_slice(&chunk[..end]);
                self.scan(provider, &line);
                line.clear();
                self.carry = line;
            }
            self.skipping = false;
            rest = &chunk[end + 1..];
        }
        let (whole, partial) = match memchr::memrchr2(b'\n', b'\r', rest) {
            Some(last) => rest.split_at(last + 1),
            None => rest.split_at(0),
        };
        self.scan(provider, whole);
        self.keep(partial);
    }

    /// Whether the upstream sent an error event.
    pub fn upstream_error(&self) -> bool {
        self.upstream_error
    }

    /// The usage reported so far, the last usage line included.
    pub fn finish(&mut self, provider: &Provider) -> StreamUsage {
        if !self.last_usage.is_empty() {
            let line = std::mem::take(&mut self.last_usage);
            if let Some(usage) = std::str::from_utf8(&line)
                .ok()
                .and_then(|data| provider.stream_usage(data))
            {
                self.merge(usage);
            }
        }
        self.usage
    }

    fn keep(&mut self, partial: &[u8]) {
        if self.skipping || partial.is_empty() {
            return;
        }
        if self.carry.len() + partial.len() > MAX_LINE {
            self.carry.clear();
            self.skipping = true;
        } else {
            self.carry.extend_from_slice(partial);
        }
    }

    /// Looks at the lines of `text` (whole lines: it ends at a line end or
    /// is one line) that hold a marker.
    fn scan(&mut self, provider: &Provider, text: &[u8]) {
        for (finder, marker) in [(&*USAGE, Marker::Usage), (&*ERROR, Marker::Error)] {
            let mut from = 0;
            while let Some(found) = finder.find(&text[from..]) {
                let at = from + found;
                let start = memchr::memrchr2(b'\n', b'\r', &text[..at]).map_or(0, |i| i + 1);
                let end = memchr::memchr2(b'\n', b'\r', &text[at..]).map_or(text.len(), |i| at + i);
                if holds_object(text, at + finder.needle().len()) {
                    self.line(provider, &text[start..end], marker);
                    from = end;
                } else {
                    from = at + 1;
                }
            }
        }
    }

    fn line(&mut self, provider: &Provider, line: &[u8], marker: Marker) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        match marker {
            Marker::Usage if self.first_usage_seen => {
                self.last_usage.clear();
                self.last_usage.extend_from_slice(data);
            }
            Marker::Usage => {
                self.first_usage_seen = true;
                if let Some(usage) = std::str::from_utf8(data)
                    .ok()
                    .and_then(|data| provider.stream_usage(data))
                {
                    self.merge(usage);
                }
            }
            Marker::Error => {
                if let Ok(data) = std::str::from_utf8(data) {
                    if let StreamEvent::Failed(_) = provider.stream_event(data) {
                        self.upstream_error = true;
                    }
                }
            }
        }
    }

    fn merge(&mut self, usage: StreamUsage) {
        if usage.input_tokens.is_some() {
            self.usage.input_tokens = usage.input_tokens;
        }
        if usage.output_tokens.is_some() {
            self.usage.output_tokens = usage.output_tokens;
        }
    }
}

/// Whether the name whose first letters end at `at` is a JSON member
/// holding an object: more letters, `"`, `:` and `{` (blanks allowed).
fn holds_object(text: &[u8], mut at: usize) -> bool {
    while text.get(at).is_some_and(u8::is_ascii_alphabetic) {
        at += 1;
    }
    if text.get(at) != Some(&b'"') {
        return false;
    }
    at += 1;
    let blanks = |at: &mut usize| {
        while matches!(text.get(*at), Some(b' ' | b'\t')) {
            *at += 1;
        }
    };
    blanks(&mut at);
    if text.get(at) != Some(&b':') {
        return false;
    }
    at += 1;
    blanks(&mut at);
    text.get(at) == Some(&b'{')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_fixture as fixture;

    use crate::providers::test_support::provider;

    fn scan(name: &str, bytes: &[u8], size: usize) -> (StreamUsage, bool) {
        let provider = provider(name).unwrap();
        let mut scan = StreamScan::default();
        for chunk in bytes.chunks(size) {
            scan.push(provider, chunk);
        }
        let usage = scan.finish(provider);
        (usage, scan.upstream_error())
    }

    fn usage(input: u64, output: u64) -> StreamUsage {
        StreamUsage {
            input_tokens: Some(input),
            output_tokens: Some(output),
        }
    }

    #[test]
    fn usage_is_found_whatever_the_chunking() {
        let openai = fixture("openai-stream-usage.sse");
        let crlf = String::from_utf8(openai.clone())
            .unwrap()
            .replace('\n', "\r\n");
        let anthropic = fixture("anthropic-stream.sse");
        for size in [1, 2, 3, 7, 64, 100, 333, 100_000] {
            assert_eq!(
                scan("openai", &openai, size),
                (usage(19, 9), false),
                "{size}"
            );
            assert_eq!(scan("openai", crlf.as_bytes(), size), (usage(19, 9), false));
            assert_eq!(scan("anthropic", &anthropic, size), (usage(14, 12), false));
        }
    }

    #[test]
    fn no_usage_without_a_usage_object() {
        for size in [1, 50, 100_000] {
            let (found, error) = scan("openai", &fixture("openai-stream.sse"), size);
            assert_eq!(found, StreamUsage::default());
            assert!(!error);
        }
        // `"usage":null` in every chunk, text that names it: nothing.
        let text =
            br#"data: {"choices":[{"delta":{"content":"\"usage\": {\"x\":1}"}}],"usage":null}

"#;
        assert_eq!(scan("openai", text, 9), (StreamUsage::default(), false));
    }

    #[test]
    fn the_last_usage_wins_and_the_first_is_kept_for_what_it_alone_says() {
        let text = concat!(
            "event: message_start\n",
            r#"data: {"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}"#,
            "\n\nevent: message_delta\n",
            r#"data: {"type":"message_delta","usage":{"output_tokens":3}}"#,
            "\n\nevent: message_delta\n",
            r#"data: {"type":"message_delta","usage":{"output_tokens":8}}"#,
            "\n\n"
        );
        for size in [1, 10, 1000] {
            assert_eq!(
                scan("anthropic", text.as_bytes(), size),
                (usage(5, 8), false)
            );
        }
    }

    #[test]
    fn error_events_are_noticed() {
        for size in [1, 13, 100_000] {
            let (found, error) = scan("anthropic", &fixture("anthropic-stream-error.sse"), size);
            assert!(error, "{size}");
            assert_eq!(found.input_tokens, Some(31), "{size}");
        }
        let openai = br#"data: {"error": {"message":"boom","type":"server_error"}}

"#;
        assert!(scan("openai", openai, 5).1);
    }

    #[test]
    fn an_unfinished_stream_reports_no_usage_it_did_not_see_whole() {
        let full = fixture("openai-stream-usage.sse");
        let text = std::str::from_utf8(&full).unwrap();
        let cut = text.find("\"usage\":{").unwrap() + 30;
        assert_eq!(
            scan("openai", &full[..cut], 7),
            (StreamUsage::default(), false)
        );
    }

    #[test]
    fn overlong_lines_are_skipped_and_scanning_resumes_after_them() {
        let mut text = b"data: {\"x\":\"".to_vec();
        text.extend(std::iter::repeat_n(b'a', MAX_LINE + 10));
        text.extend_from_slice(b"\",\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n");
        text.extend_from_slice(
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\n\n",
        );
        assert_eq!(scan("openai", &text, 4096), (usage(3, 4), false));
    }
}
