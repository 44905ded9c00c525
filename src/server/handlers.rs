//! Request handlers: each returns a finished reply, errors included.

use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Rejection;

use super::errors::{detail_reply, error_reply, insert_passthrough, json_reply};
use super::metrics;
use super::openapi::{DOCS, OPENAPI};
use super::passthrough::{open_stream, OpenStream};
use super::request_id::{RequestId, HEADER as REQUEST_ID_HEADER};
use super::request_log::RequestLog;
use super::state::{AppState, InFlight};
use crate::error::{Error, Result};
use crate::providers::{
    ChatRequest, Prepared, Provider, RetryNotice, StreamUsage, UpstreamResponse,
};

pub async fn healthz(state: AppState) -> Response {
    if state.is_draining() {
        let mut reply = json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &b"{\"status\":\"draining\"}"[..],
        );
        reply
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        reply
    } else {
        json_reply(StatusCode::OK, &b"{\"status\":\"ok\"}"[..])
    }
}

/// `POST /v1/chat/{provider}`. Every reply carries the request id; the
/// request's log record is written here, or by a stream's body when the
/// stream ends.
pub async fn chat<S, B>(
    provider_name: String,
    client_id: Option<String>,
    api_key: Option<String>,
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
    let mut log = RequestLog::start(id, &provider_name, state.metrics());
    let started = chat_reply(
        &provider_name,
        api_key,
        content_length,
        body,
        &state,
        &mut log,
    )
    .await;
    let attempts = log.attempts();
    let mut reply = match started {
        Ok((Started::Stream(open), in_flight)) => open.into_reply(&state, in_flight, log),
        Ok((Started::Whole(reply), _)) => whole(reply, log),
        Err(error) => {
            log.failed(&error);
            whole(error_reply(&error), log)
        }
    };
    if state.is_draining() {
        reply
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    reply.headers_mut().insert(REQUEST_ID_HEADER, id_header);
    mark_attempts(&mut reply, attempts);
    reply
}

/// Sends `prepared` (with its retries), noting in `log` how long the
/// upstream took, how many attempts were made and what it answered, and
/// counting retries in the metrics. Both chat routes send through here.
pub(super) async fn send_upstream(
    state: &AppState,
    provider: &'static Provider,
    prepared: Prepared,
    log: &mut RequestLog,
) -> Result<UpstreamResponse> {
    let sending = Instant::now();
    let metrics = state.metrics();
    let mut count_retry = |notice: &RetryNotice| {
        if let Some(metrics) = &metrics {
            metrics.retried(notice.provider, notice.reason);
        }
    };
    let sent = state
        .upstream()
        .send_observed(provider, prepared, &mut count_retry)
        .await;
    log.waited(sending);
    match &sent.result {
        Ok(upstream) => {
            log.attempted(sent.attempts);
            log.upstream_status(upstream.status());
        }
        Err(error) if reached_upstream(error) => {
            log.attempted(sent.attempts);
            if let Error::UpstreamStatus { status, .. } = error {
                log.upstream_status(*status);
            }
        }
        // Refused before it left (no free slot, say); earlier attempts
        // may still have reached the upstream.
        Err(_) if sent.attempts > 1 => log.attempted(sent.attempts - 1),
        Err(_) => {}
    }
    sent.result
}

/// After more than one attempt, says how many; on an error reply also that
/// the client should not retry in its turn (attempts would multiply).
pub(super) fn mark_attempts(reply: &mut Response, attempts: u32) {
    if attempts <= 1 {
        return;
    }
    let is_error = reply.status().is_client_error() || reply.status().is_server_error();
    let headers = reply.headers_mut();
    headers.insert("x-llmproxy-attempts", HeaderValue::from(attempts));
    if is_error {
        headers.insert("x-should-retry", HeaderValue::from_static("false"));
    }
}

/// A reply that is ready as a whole: its record is written now.
pub(super) fn whole(reply: Response, mut log: RequestLog) -> Response {
    log.head_ready();
    log.first_byte();
    log.finish(reply.status().as_u16());
    reply
}

/// How a request that got past the checks is answered.
enum Started<S> {
    /// Ready as a whole.
    Whole(Response),
    /// Streamed: its first chunk has arrived.
    Stream(OpenStream<S>),
}

type UpstreamBytes = Result<Bytes>;

/// The reply, with what the request turned out to be noted in `log`.
async fn chat_reply<S, B>(
    provider_name: &str,
    api_key: Option<String>,
    content_length: Option<u64>,
    body: S,
    state: &AppState,
    log: &mut RequestLog,
) -> Result<(
    Started<impl Stream<Item = UpstreamBytes> + Send + Sync + 'static>,
    InFlight,
)>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let provider = state
        .upstream()
        .settings()
        .providers
        .provider(provider_name);
    if let Ok(provider) = &provider {
        log.provider(provider.name());
    }
    if state.is_draining() {
        return Err(Error::ShuttingDown);
    }
    let provider = provider?;
    let api_key = provider.key_to_send(api_key.as_deref())?;
    let limit = state.upstream().settings().max_body_bytes;
    let body = read_body(body, content_length, limit).await?;
    let request = ChatRequest::from_json(&body)?;
    log.requested(&request.model, request.stream);
    forward(provider, &request, api_key, state, log).await
}

/// Sends a valid request upstream and answers its reply (normalized, or
/// the start of a stream), unless the shutdown grace period runs out first.
async fn forward(
    provider: &'static Provider,
    request: &ChatRequest,
    api_key: Option<&str>,
    state: &AppState,
    log: &mut RequestLog,
) -> Result<(
    Started<impl Stream<Item = UpstreamBytes> + Send + Sync + 'static>,
    InFlight,
)> {
    let in_flight = state.track();
    let aborted = state.aborted();
    let work = async {
        let prepared = Prepared::native(provider, state.upstream().settings(), request, api_key)?;
        let upstream = send_upstream(state, provider, prepared, log).await?;
        if request.stream {
            return Ok(Started::Stream(open_stream(upstream, log).await?));
        }
        let headers = upstream.passthrough_headers();
        let response = upstream.into_chat_response().await?;
        log.usage(StreamUsage {
            input_tokens: Some(response.usage.input_tokens),
            output_tokens: Some(response.usage.output_tokens),
        });
        let body = serde_json::to_vec(&response).map_err(|e| Error::InvalidReply {
            provider: provider.name(),
            reason: e.to_string(),
        })?;
        let mut reply = json_reply(StatusCode::OK, body);
        insert_passthrough(reply.headers_mut(), &headers);
        Ok(Started::Whole(reply))
    };
    let started = tokio::select! {
        started = work => started,
        _ = aborted => Err(Error::ShuttingDown),
    }?;
    Ok((started, in_flight))
}

/// Whether `error` means an upstream request was made (rather than refused
/// before it left: no free slot, a key that cannot be a header).
fn reached_upstream(error: &Error) -> bool {
    matches!(
        error,
        Error::UpstreamStatus { .. }
            | Error::Unreachable { .. }
            | Error::ConnectionLost { .. }
            | Error::Timeout { .. }
            | Error::InvalidReply { .. }
    )
}

/// `GET /metrics` (a 404 like any unknown path when `METRICS=false`).
pub async fn metrics(state: AppState) -> std::result::Result<Response, Rejection> {
    let Some(metrics) = state.metrics() else {
        return Err(warp::reject::not_found());
    };
    let mut reply = match metrics.encode() {
        Ok(text) => Response::new(text.into()),
        // Writing to a String does not fail; an encoder error is a bug.
        Err(_) => {
            return Ok(detail_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                b"\"could not encode the metrics\"",
            ))
        }
    };
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    Ok(reply)
}

/// `GET /openapi.json`.
pub async fn openapi() -> Response {
    json_reply(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()))
}

/// `GET /docs`: Swagger UI (from a CDN) rendering `/openapi.json`.
pub async fn docs() -> Response {
    let mut reply = Response::new(DOCS.into());
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    reply
}

/// Reads the body, stopping as soon as it passes `limit` (a declared
/// `Content-Length` over the limit is refused before reading anything).
pub(super) async fn read_body<S, B>(
    mut body: S,
    content_length: Option<u64>,
    limit: u64,
) -> Result<Bytes>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    if content_length.is_some_and(|n| n > limit) {
        return Err(Error::BodyTooLarge { limit });
    }
    let mut buffer = BytesMut::with_capacity(content_length.unwrap_or(1024).min(limit) as usize);
    while let Some(chunk) = body.next().await {
        let mut chunk =
            chunk.map_err(|e| Error::MalformedJson(format!("could not read the body: {e}")))?;
        if (buffer.len() + chunk.remaining()) as u64 > limit {
            return Err(Error::BodyTooLarge { limit });
        }
        buffer.put(&mut chunk);
    }
    Ok(buffer.freeze())
}
