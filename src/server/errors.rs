//! The one place that turns errors and warp rejections into HTTP replies:
//! always JSON `{"detail": ...}`, never an HTML or empty body.

use std::convert::Infallible;

use bytes::Bytes;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Rejection;

use crate::error::{Error, PASSTHROUGH_HEADERS};

/// The HTTP status for each library error.
pub fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::MalformedJson(_) => StatusCode::BAD_REQUEST,
        Error::InvalidField { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnknownProvider { .. } => StatusCode::NOT_FOUND,
        Error::MissingApiKey => StatusCode::UNAUTHORIZED,
        Error::UpstreamStatus { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        Error::Unreachable { .. }
        | Error::ConnectionLost { .. }
        | Error::InvalidReply { .. }
        | Error::StreamFailed { .. }
        | Error::StreamTruncated { .. } => StatusCode::BAD_GATEWAY,
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        Error::Saturated | Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The reply for `error`. Upstream error bodies become `detail` verbatim
/// when they are JSON (no re-serialisation), as a string otherwise.
pub fn error_reply(error: &Error) -> Response {
    let status = status_of(error);
    let mut reply = match error {
        Error::UpstreamStatus { body, headers, .. } => {
            let detail = if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
                body.clone()
            } else {
                Bytes::from(json_string(&String::from_utf8_lossy(body)))
            };
            let mut reply = detail_reply(status, &detail);
            insert_passthrough(reply.headers_mut(), headers);
            reply
        }
        Error::MissingApiKey => detail_reply(
            status,
            json_string("missing API key: send it in the X-API-Key header").as_bytes(),
        ),
        other => detail_reply(status, json_string(&other.to_string()).as_bytes()),
    };
    if matches!(error, Error::Saturated | Error::ShuttingDown) {
        reply
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    reply
}

/// Adds the upstream's request-id and retry headers to a reply.
pub fn insert_passthrough(map: &mut HeaderMap, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        let known = PASSTHROUGH_HEADERS.iter().find(|known| known.as_str() == *name);
        if let (Some(name), Ok(value)) = (known, HeaderValue::from_str(value)) {
            map.insert(name.clone(), value);
        }
    }
}

/// `{"detail": <json>}` with the given status.
pub fn detail_reply(status: StatusCode, detail_json: &[u8]) -> Response {
    let mut body = Vec::with_capacity(detail_json.len() + 12);
    body.extend_from_slice(b"{\"detail\":");
    body.extend_from_slice(detail_json);
    body.push(b'}');
    json_reply(status, body)
}

pub fn json_reply(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let body: Bytes = body.into();
    let mut reply = Response::new(body.into());
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
}

fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

/// Turns every rejection warp can produce into a JSON error: unknown paths
/// 404, wrong methods 405, anything else about the request 400.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_owned(),
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body is too large".to_owned(),
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        (StatusCode::BAD_REQUEST, e.to_string())
    } else {
        (
            StatusCode::BAD_REQUEST,
            format!("bad request: {rejection:?}"),
        )
    };
    Ok(detail_reply(status, json_string(&message).as_bytes()))
}
