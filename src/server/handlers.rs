//! Request handlers: each returns a finished reply, errors included.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::errors::{error_reply, insert_passthrough, json_reply};
use super::passthrough::stream_reply;
use super::request_log::RequestLog;
use super::state::AppState;
use crate::error::{Error, Result};
use crate::providers::{ChatRequest, Provider};

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

/// `POST /v1/chat/{provider}`.
pub async fn chat<S, B>(
    provider_name: String,
    api_key: Option<String>,
    content_length: Option<u64>,
    body: S,
    state: AppState,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let (log, reply) = chat_reply(provider_name, api_key, content_length, body, &state).await;
    let mut reply = reply.unwrap_or_else(|error| error_reply(&error));
    if state.is_draining() {
        reply
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    log.write(reply.status().as_u16());
    reply
}

/// The reply, and the log record of what the request turned out to be.
async fn chat_reply<S, B>(
    provider_name: String,
    api_key: Option<String>,
    content_length: Option<u64>,
    body: S,
    state: &AppState,
) -> (RequestLog, Result<Response>)
where
    S: Stream<Item = Result<B, warp::Error>> + Send + Unpin,
    B: Buf,
{
    let mut log = RequestLog::start(&provider_name);
    let reply = async {
        if state.is_draining() {
            return Err(Error::ShuttingDown);
        }
        let provider = state
            .upstream
            .settings()
            .providers
            .provider(&provider_name)?;
        let api_key = provider.key_to_send(api_key.as_deref())?;
        let limit = state.upstream.settings().max_body_bytes;
        let body = read_body(body, content_length, limit).await?;
        let request = ChatRequest::from_json(&body)?;
        log.model = Some(request.model.clone());
        forward(provider, &request, api_key, state).await
    }
    .await;
    (log, reply)
}

/// Sends a valid request upstream and answers its reply (normalized, or
/// streamed through), unless the shutdown grace period runs out first.
async fn forward(
    provider: &'static Provider,
    request: &ChatRequest,
    api_key: Option<&str>,
    state: &AppState,
) -> Result<Response> {
    let in_flight = state.track();
    let aborted = state.aborted();
    let work = async {
        let upstream = state.upstream.send(provider, request, api_key).await?;
        if request.stream {
            return stream_reply(upstream, state, in_flight).await;
        }
        let headers = upstream.passthrough_headers();
        let response = upstream.into_chat_response().await?;
        let body = serde_json::to_vec(&response).map_err(|e| Error::InvalidReply {
            provider: provider.name(),
            reason: e.to_string(),
        })?;
        let mut reply = json_reply(StatusCode::OK, body);
        insert_passthrough(reply.headers_mut(), &headers);
        Ok(reply)
    };
    tokio::select! {
        reply = work => reply,
        _ = aborted => Err(Error::ShuttingDown),
    }
}

/// Reads the body, stopping as soon as it passes `limit` (a declared
/// `Content-Length` over the limit is refused before reading anything).
async fn read_body<S, B>(mut body: S, content_length: Option<u64>, limit: u64) -> Result<Bytes>
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
