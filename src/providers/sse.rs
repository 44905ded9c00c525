//! The one SSE reader: upstream byte chunks in, text deltas out, parsed
//! with `eventsource-stream` and interpreted by the provider's adapter.

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use super::{Provider, StreamEvent};
use crate::error::Error;

/// The text deltas of an upstream stream. It ends with an error when the
/// upstream reports one in the stream, or stops before its end marker.
///
/// Generic over the chunk stream's error so that a caller can thread its
/// own failures through (the CLI's `--raw` writes each chunk as it passes
/// and stops on a closed stdout).
pub fn text_deltas<S, E>(
    provider: &'static Provider,
    chunks: S,
) -> impl Stream<Item = Result<String, E>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: From<Error> + Send + 'static,
{
    let events = chunks.eventsource();
    // `complete`: the last event was a final one (Gemini marks its last
    // event rather than sending an end marker; older models mark every
    // one, so reading goes on until the upstream closes).
    let start = Some((Box::pin(events), false));
    futures::stream::unfold(start, move |state| async move {
        let (mut events, mut complete) = state?;
        loop {
            let failure = match events.next().await {
                None if complete => return None,
                None => Error::StreamTruncated {
                    provider: provider.name(),
                }
                .into(),
                Some(Err(EventStreamError::Transport(e))) => e,
                Some(Err(EventStreamError::Utf8(e))) => invalid(provider, e.to_string()),
                Some(Err(EventStreamError::Parser(e))) => invalid(provider, e.to_string()),
                Some(Ok(event)) => match provider.stream_event(&event.data) {
                    StreamEvent::Text(text) => return Some((Ok(text), Some((events, false)))),
                    StreamEvent::Final(text) if text.is_empty() => {
                        complete = true;
                        continue;
                    }
                    StreamEvent::Final(text) => return Some((Ok(text), Some((events, true)))),
                    StreamEvent::Skip => continue,
                    StreamEvent::Done => return None,
                    StreamEvent::Failed(message) => Error::StreamFailed {
                        provider: provider.name(),
                        message,
                    }
                    .into(),
                },
            };
            // An error ends the stream.
            return Some((Err(failure), None));
        }
    })
}

fn invalid<E: From<Error>>(provider: &Provider, reason: String) -> E {
    Error::InvalidReply {
        provider: provider.name(),
        reason: format!("not a valid event stream: {reason}"),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::test_fixture as fixture;

    use crate::providers::test_support::provider;

    /// Splits `bytes` into chunks of `size`, as a network might.
    fn chunks(
        bytes: &[u8],
        size: usize,
    ) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static {
        let parts: Vec<Result<Bytes, Error>> = bytes
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(parts)
    }

    async fn collect(name: &str, file: &str, size: usize) -> (String, Option<Error>) {
        text_of(name, &fixture(file), size).await
    }

    /// The text of `stream`, cut into chunks of `size`, and how it ended.
    async fn text_of(name: &str, stream: &[u8], size: usize) -> (String, Option<Error>) {
        let mut text = String::new();
        let mut deltas = std::pin::pin!(text_deltas(provider(name).unwrap(), chunks(stream, size)));
        while let Some(delta) = deltas.next().await {
            match delta {
                Ok(t) => text.push_str(&t),
                Err(e) => return (text, Some(e)),
            }
        }
        (text, None)
    }

    #[tokio::test]
    async fn fixture_streams_give_their_text_whatever_the_chunking() {
        for size in [1, 7, 64, 100_000] {
            let (text, error) = collect("openai", "openai-stream.sse", size).await;
            assert!(error.is_none(), "{error:?}");
            assert!(text.starts_with("Hello"), "{text}");
            let (text, error) = collect("anthropic", "anthropic-stream.sse", size).await;
            assert!(error.is_none(), "{error:?}");
            let (gemini, error) = collect("gemini", "gemini-stream.sse", size).await;
            assert!(error.is_none(), "{error:?}");
            assert_eq!(gemini, "Hello! How can I help you today?");
            assert!(!text.is_empty());
        }
    }

    #[tokio::test]
    async fn an_error_event_ends_the_stream_after_the_text_before_it() {
        let (text, error) = collect("anthropic", "anthropic-stream-error.sse", 13).await;
        assert_eq!(
            text,
            "Here is a short overview of the three main options:\n\n1."
        );
        assert!(
            matches!(error, Some(Error::StreamFailed { .. })),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_stream_cut_before_its_end_marker_is_truncated() {
        let full = fixture("openai-stream.sse");
        let cut = &full[..full.len() - "data: [DONE]\n\n".len()];
        let mut deltas = std::pin::pin!(text_deltas(provider("openai").unwrap(), chunks(cut, 50)));
        let mut last = None;
        while let Some(delta) = deltas.next().await {
            last = Some(delta);
        }
        assert!(
            matches!(last, Some(Err(Error::StreamTruncated { .. }))),
            "{last:?}"
        );
    }

    #[tokio::test]
    async fn comments_and_keep_alives_are_skipped_and_in_band_errors_fail() {
        let stream = b": OPENROUTER PROCESSING\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n: keep-alive\n\ndata: [DONE]\n\n";
        let (text, error) = text_of("openrouter", stream, 5).await;
        assert_eq!(text, "Hi");
        assert!(error.is_none(), "{error:?}");
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"upstream overloaded\",\"code\":502}}\n\n";
        let (text, error) = text_of("groq", stream, 5).await;
        assert_eq!(text, "Hi");
        assert!(
            matches!(&error, Some(Error::StreamFailed { message, .. }) if message == "upstream overloaded"),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_gemini_stream_ends_well_only_after_a_final_event() {
        let full = fixture("gemini-stream.sse");
        let first_end = full.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (text, error) = text_of("gemini", &full[..first_end], 5).await;
        assert_eq!(text, "Hello! How");
        assert!(
            matches!(error, Some(Error::StreamTruncated { .. })),
            "{error:?}"
        );
        // Older models mark every event as final: all of them are read.
        let every = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"a\"}]},\"finishReason\": \"STOP\"}]}\r\n\r\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"b\"}]},\"finishReason\": \"STOP\"}]}\r\n\r\n";
        let (text, error) = text_of("gemini", every, 5).await;
        assert_eq!(text, "ab");
        assert!(error.is_none(), "{error:?}");
    }
}
