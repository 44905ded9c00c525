//! The one place that turns errors and warp rejections into HTTP replies:
//! always JSON `{"detail": ...}`, never an HTML or empty body.

use std::convert::Infallible;

use bytes::Bytes;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Rejection;

use crate::error::{upstream_message, Error, PASSTHROUGH_HEADERS};
use crate::providers::compat;

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

/// The OpenAI-compatible route's reply for `error`, in OpenAI's shape
/// `{"error": {"message", "type", "param", "code"}}` with the statuses of
/// [`status_of`], but 400 for an invalid field (`param` names it). An
/// upstream's error body passes through as it is when it is JSON (the
/// translated providers' were rewritten in OpenAI's shape before), and
/// is wrapped in OpenAI's shape when it is not.
pub fn openai_error_reply(error: &Error) -> Response {
    let status = match error {
        Error::InvalidField { .. } => StatusCode::BAD_REQUEST,
        other => status_of(other),
    };
    if let Error::UpstreamStatus { body, headers, .. } = error {
        let body = if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
            body.clone()
        } else {
            compat::error_json(&upstream_message(body), "api_error", None, None).into()
        };
        let mut reply = json_reply(status, body);
        insert_passthrough(reply.headers_mut(), headers);
        return reply;
    }
    let (kind, param, code) = match error {
        Error::InvalidField { field, .. } => ("invalid_request_error", Some(field.as_str()), None),
        Error::MissingApiKey => ("invalid_request_error", None, Some("invalid_api_key")),
        Error::MalformedJson(_) | Error::BodyTooLarge { .. } | Error::UnknownProvider { .. } => {
            ("invalid_request_error", None, None)
        }
        Error::Saturated | Error::ShuttingDown => ("server_error", None, None),
        _ => ("api_error", None, None),
    };
    let message = match error {
        Error::MissingApiKey => {
            "missing API key: send it as `Authorization: Bearer <key>` or in the X-API-Key header"
                .to_owned()
        }
        other => other.to_string(),
    };
    let mut reply = openai_error(status, &message, kind, param, code);
    if matches!(error, Error::Saturated | Error::ShuttingDown) {
        reply
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    reply
}

/// An error in OpenAI's shape with `status`.
pub fn openai_error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    json_reply(status, compat::error_json(message, kind, param, code))
}

/// Adds the upstream's request-id and retry headers to a reply.
pub fn insert_passthrough(map: &mut HeaderMap, headers: &[(&'static str, String)]) {
    for (name, value) in headers {
        let known = PASSTHROUGH_HEADERS
            .iter()
            .find(|known| known.as_str() == *name);
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
