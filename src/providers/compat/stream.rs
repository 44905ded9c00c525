//! A translated stream: the upstream's SSE bytes are read as events (the
//! same `eventsource-stream` reader as everywhere else) and each event
//! becomes zero or more `chat.completion.chunk` events, handed out as soon
//! as it arrives. Only `data:` lines are written: no `event:`, no `id:`.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use eventsource_stream::{EventStream, EventStreamError, Eventsource};
use futures::Stream;

use super::{anthropic_reply, gemini};
use crate::error::Error;
use crate::providers::{Kind, Provider, StreamUsage, UpstreamResponse};

/// What one upstream event becomes.
pub enum Step {
    /// Nothing for the client (pings, block stops, thinking).
    Skip,
    Chunk(Bytes),
    /// The end marker: the last chunks, `[DONE]` included.
    Finish(Bytes),
    /// An error event: the error chunk that ends the stream.
    Fail(Bytes),
}

enum Translator {
    Anthropic(anthropic_reply::StreamState),
    Gemini(gemini::StreamState),
}

impl Translator {
    fn event(&mut self, data: &str) -> Step {
        match self {
            Translator::Anthropic(state) => state.event(data),
            Translator::Gemini(state) => state.event(data),
        }
    }

    /// The stream's end when the upstream closes it, if that is a proper
    /// end (Gemini has no end marker but its last event's finish reason).
    fn close(&mut self) -> Option<Bytes> {
        match self {
            Translator::Anthropic(_) => None,
            Translator::Gemini(state) => state.close(),
        }
    }

    fn usage(&self) -> StreamUsage {
        match self {
            Translator::Anthropic(state) => state.usage(),
            Translator::Gemini(state) => state.usage(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    /// The end marker was translated: the rest of the upstream body is
    /// read (so its connection can be reused) and dropped.
    Draining,
    Done,
}

/// The chunks of a translated stream. A transport failure (timeout, reset)
/// and a close before the end are returned as `Err` once, and end it; an
/// upstream error event is an error chunk, and ends it.
pub struct ChunkStream<S> {
    provider: &'static Provider,
    events: Pin<Box<EventStream<S>>>,
    translator: Translator,
    state: State,
    upstream_error: bool,
    /// The end marker was translated.
    complete: bool,
}

impl ChunkStream<()> {
    /// The chunks of `upstream`'s stream (a translated provider's).
    pub fn new(
        upstream: UpstreamResponse,
        requested_model: &str,
        include_usage: bool,
    ) -> ChunkStream<impl Stream<Item = Result<Bytes, Error>> + Send + Sync + 'static> {
        let provider = upstream.provider();
        ChunkStream::from_bytes(
            provider,
            upstream.into_bytes(),
            requested_model,
            include_usage,
        )
    }
}

impl<S> ChunkStream<S>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    /// The chunks of any byte stream from `provider`.
    pub fn from_bytes(
        provider: &'static Provider,
        bytes: S,
        requested_model: &str,
        include_usage: bool,
    ) -> Self {
        let translator = match provider.kind {
            Kind::Gemini => {
                Translator::Gemini(gemini::StreamState::new(requested_model, include_usage))
            }
            // OpenAI-format streams pass through untranslated, never here.
            Kind::Anthropic | Kind::OpenAi => Translator::Anthropic(
                anthropic_reply::StreamState::new(requested_model, include_usage),
            ),
        };
        ChunkStream {
            provider,
            events: Box::pin(bytes.eventsource()),
            translator,
            state: State::Reading,
            upstream_error: false,
            complete: false,
        }
    }
}

impl<S> ChunkStream<S> {
    /// The token usage the stream reported so far.
    pub fn usage(&self) -> StreamUsage {
        self.translator.usage()
    }

    /// Whether the upstream sent an error event.
    pub fn upstream_error(&self) -> bool {
        self.upstream_error
    }

    /// Whether the stream's end (`[DONE]`) has been handed out: the client
    /// has it all, even while the rest of the upstream body is read.
    pub fn finished(&self) -> bool {
        self.state == State::Draining || (self.state == State::Done && self.complete)
    }
}

impl<S> Stream for ChunkStream<S>
where
    S: Stream<Item = Result<Bytes, Error>>,
{
    type Item = Result<Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.state {
                State::Done => return Poll::Ready(None),
                State::Draining => match ready!(this.events.as_mut().poll_next(cx)) {
                    Some(Ok(_)) => continue,
                    _ => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                },
                State::Reading => {}
            }
            let event = ready!(this.events.as_mut().poll_next(cx));
            let provider = this.provider.name();
            let item = match event {
                Some(Ok(event)) => match this.translator.event(&event.data) {
                    Step::Skip => continue,
                    Step::Chunk(chunk) => return Poll::Ready(Some(Ok(chunk))),
                    Step::Finish(chunk) => {
                        this.state = State::Draining;
                        this.complete = true;
                        return Poll::Ready(Some(Ok(chunk)));
                    }
                    Step::Fail(chunk) => {
                        this.upstream_error = true;
                        Ok(chunk)
                    }
                },
                Some(Err(EventStreamError::Transport(error))) => Err(error),
                Some(Err(error)) => Err(Error::InvalidReply {
                    provider,
                    reason: format!("not a valid event stream: {error}"),
                }),
                None => match this.translator.close() {
                    Some(chunk) => {
                        this.complete = true;
                        Ok(chunk)
                    }
                    None => Err(Error::StreamTruncated { provider }),
                },
            };
            this.state = State::Done;
            return Poll::Ready(Some(item));
        }
    }
}
