//! The one SSE reader: upstream byte chunks in, text deltas out, parsed
//! with `eventsource-stream` and interpreted by the provider's adapter.

use bytes::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use super::{ChatProvider, StreamEvent};
use crate::error::Error;

/// The text deltas of an upstream stream. It ends with an error when the
/// upstream reports one in the stream, or stops before its end marker.
///
/// Generic over the chunk stream's error so that a caller can thread its
/// own failures through (the CLI's `--raw` writes each chunk as it passes
/// and stops on a closed stdout).
pub fn text_deltas<S, E>(
    provider: &'static dyn ChatProvider,
    chunks: S,
) -> impl Stream<Item = Result<String, E>> + Send + 'static
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: From<Error> + Send + 'static,
{
    let events = chunks.eventsource();
    futures::stream::unfold(Some(Box::pin(events)), move |state| async move {
        let mut events = state?;
        loop {
            let failure = match events.next().await {
                None => Error::StreamTruncated {
                    provider: provider.name(),
                }
                .into(),
                Some(Err(EventStreamError::Transport(e))) => e,
                Some(Err(EventStreamError::Utf8(e))) => invalid(provider, e.to_string()),
                Some(Err(EventStreamError::Parser(e))) => invalid(provider, e.to_string()),
                Some(Ok(event)) => match provider.stream_event(&event.data) {
                    StreamEvent::Text(text) => return Some((Ok(text), Some(events))),
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

fn invalid<E: From<Error>>(provider: &dyn ChatProvider, reason: String) -> E {
    Error::InvalidReply {
        provider: provider.name(),
        reason: format!("not a valid event stream: {reason}"),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::provider;
    use crate::providers::test_fixture as fixture;

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
        let mut text = String::new();
        let mut deltas = std::pin::pin!(text_deltas(
            provider(name).unwrap(),
            chunks(&fixture(file), size)
        ));
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
}
