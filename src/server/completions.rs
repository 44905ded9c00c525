//! `POST /v1/chat/completions` and `GET /v1/models`: the OpenAI Chat
//! Completions protocol in front of every provider, so that an OpenAI
//! client library pointed at `http://host:port/v1` reaches them all.
//!
//! Where a request goes, what is sent and how replies are translated is
//! the adapter module's (`providers::compat`); this file reads the
//! request, sends it, and answers, every error in OpenAI's shape.

use bytes::{Buf, Bytes};
use futures::Stream;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::errors::{insert_passthrough, json_reply, openai_error, openai_error_reply};
use super::handlers::{mark_attempts, read_body, send_upstream, whole};
use super::metrics::ROUTE_CHAT_COMPLETIONS;
use super::passthrough::{open_stream, OpenStream};
use super::request_id::{RequestId, HEADER as REQUEST_ID_HEADER};
use super::request_log::RequestLog;
use super::state::{AppState, InFlight};
use super::translated::{open_translated, OpenTranslated};
use crate::error::{Error, Result};
use crate::providers::compat::{self, CompatRequest, Target};
use crate::providers::{Provider, StreamUsage};

/// The provider a request of this route went to.
pub const PROVIDER_HEADER: &str = "x-llmproxy-provider";

/// `POST /v1/chat/completions`. The key comes from `X-API-Key` or, when
/// that is absent or blank, `Authorization: Bearer`.
pub async fn chat_completions<S, B>(
    client_id: Option<String>,
    authorization: Option<String>,
    x_api_key: Option<String>,
    content_length: Option<u64>,
    body: S,
    state: AppState,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let id = RequestId::from_client(client_id.as_deref());
    let id_header = id.header_value();
    // `completions` as the path's provider: the line's path is
    // `/v1/chat/completions`.
    let mut log = RequestLog::start(id, "completions", state.metrics());
    log.route(ROUTE_CHAT_COMPLETIONS);
    let key = caller_key(x_api_key, authorization);
    let mut provider = None;
    let started = reply(
        key.as_deref(),
        content_length,
        body,
        &state,
        &mut log,
        &mut provider,
    )
    .await;
    let attempts = log.attempts();
    let mut reply = match started {
        Ok((Started::Passthrough(open), in_flight)) => open.into_reply(&state, in_flight, log),
        Ok((Started::Translated(open), in_flight)) => open.into_reply(&state, in_flight, log),
        Ok((Started::Whole(reply), _)) => whole(reply, log),
        Err(error) => {
            log.failed(&error);
            whole(openai_error_reply(&error), log)
        }
    };
    mark_attempts(&mut reply, attempts);
    let headers = reply.headers_mut();
    if state.is_draining() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Some(Ok(name)) = provider.map(HeaderValue::from_str) {
        headers.insert(PROVIDER_HEADER, name);
    }
    headers.insert(REQUEST_ID_HEADER, id_header);
    reply
}

/// Any other method on `/v1/chat/completions`, in OpenAI's shape.
pub async fn method_not_allowed() -> Response {
    openai_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed: use POST",
        "invalid_request_error",
        None,
        None,
    )
}

/// `GET /v1/models`: the aliases and `<provider>/` of every provider; no
/// upstream call.
pub async fn models(state: AppState) -> Response {
    json_reply(
        StatusCode::OK,
        compat::models(&state.upstream().settings().providers),
    )
}

/// `X-API-Key` wins when both are sent; a blank header counts as absent.
fn caller_key(x_api_key: Option<String>, authorization: Option<String>) -> Option<String> {
    let blank = |key: &String| key.trim().is_empty();
    x_api_key.filter(|k| !blank(k)).or_else(|| {
        let value = authorization?;
        let (scheme, key) = value.trim().split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_owned())
            .filter(|k| !blank(k))
    })
}

/// How a request that got past the checks is answered.
enum Started<P, T> {
    Whole(Response),
    /// An OpenAI-format stream, passed through.
    Passthrough(OpenStream<P>),
    /// An Anthropic or Gemini stream, translated.
    Translated(OpenTranslated<T>),
}

type Chunks = Result<Bytes>;

/// The reply, with what the request turned out to be noted in `log` and
/// the resolved provider in `provider`.
async fn reply<S, B>(
    key: Option<&str>,
    content_length: Option<u64>,
    body: S,
    state: &AppState,
    log: &mut RequestLog,
    provider: &mut Option<&'static str>,
) -> Result<(
    Started<
        impl Stream<Item = Chunks> + Send + Sync + 'static,
        impl Stream<Item = Chunks> + Send + Sync + 'static,
    >,
    InFlight,
)>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    if state.is_draining() {
        return Err(Error::ShuttingDown);
    }
    let settings = state.upstream().settings();
    let body = read_body(body, content_length, settings.max_body_bytes).await?;
    let request = CompatRequest::parse(body)?;
    let target = compat::resolve(&settings.providers, &request.model)?;
    *provider = Some(target.provider.name());
    log.provider(target.provider.name());
    log.requested(&target.model, request.stream);
    let api_key = target.provider.key_to_send(key)?;
    let prepared = compat::prepare(&target, &request, settings, api_key)?;
    let in_flight = state.track();
    let aborted = state.aborted();
    let work = forward(&target, &request, prepared, state, log);
    let started = tokio::select! {
        started = work => started,
        _ = aborted => Err(Error::ShuttingDown),
    }?;
    Ok((started, in_flight))
}

/// Sends the request and starts the reply: passed through for an
/// OpenAI-format provider, translated for the others.
async fn forward(
    target: &Target,
    request: &CompatRequest,
    prepared: crate::providers::Prepared,
    state: &AppState,
    log: &mut RequestLog,
) -> Result<
    Started<
        impl Stream<Item = Chunks> + Send + Sync + 'static,
        impl Stream<Item = Chunks> + Send + Sync + 'static,
    >,
> {
    let provider: &'static Provider = target.provider;
    let upstream = send_upstream(state, provider, prepared, log)
        .await
        .map_err(|error| compat::upstream_error(provider, error))?;
    let passthrough = compat::passes_through(provider);
    if request.stream {
        return Ok(if passthrough {
            Started::Passthrough(open_stream(upstream, log).await?)
        } else {
            Started::Translated(
                open_translated(upstream, &target.model, request.include_usage, log).await?,
            )
        });
    }
    let headers = upstream.passthrough_headers();
    let status = StatusCode::from_u16(upstream.status()).unwrap_or(StatusCode::OK);
    let body = upstream.into_body().await?;
    let (body, usage, status): (Bytes, StreamUsage, StatusCode) = if passthrough {
        let usage = compat::passthrough_usage(provider, &body);
        (body, usage, status)
    } else {
        let (body, usage) = compat::translate_reply(provider, &target.model, &body)?;
        (body, usage, StatusCode::OK)
    };
    log.usage(usage);
    let mut reply = json_reply(status, body);
    insert_passthrough(reply.headers_mut(), &headers);
    Ok(Started::Whole(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_comes_from_x_api_key_then_bearer() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(caller_key(s("a"), s("Bearer b")), s("a"));
        assert_eq!(caller_key(None, s("Bearer b")), s("b"));
        assert_eq!(caller_key(s(" "), s("bearer  b ")), s("b"));
        assert_eq!(caller_key(None, s("Basic dXNlcg==")), None);
        assert_eq!(caller_key(None, s("Bearer ")), None);
        assert_eq!(caller_key(None, None), None);
    }
}
