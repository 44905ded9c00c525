//! The warp filters: which request goes to which handler, and what every
//! reply gets on the way out (the request id, and a log line for the
//! requests the chat handler does not log itself).

use std::convert::Infallible;
use std::time::Instant;

use warp::http::Method;
use warp::path::FullPath;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::errors::recover;
use super::log_fields::{self, ms, Escaped, Millis};
use super::request_id::{RequestId, CLIENT_HEADER, HEADER};
use super::state::AppState;
use super::{completions, handlers};

/// Every route of the server, as `(method, path)` in OpenAPI's notation
/// (the OpenAPI document's test compares its paths with this list).
/// `/metrics` answers 404 when `METRICS=false`.
pub const ROUTES: [(&str, &str); 8] = [
    ("post", "/v1/chat/completions"),
    ("get", "/v1/models"),
    ("post", "/v1/chat/{provider}"),
    ("get", "/healthz"),
    ("head", "/healthz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
];

pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());

    let healthz = warp::path!("healthz")
        .and(warp::get().or(warp::head()).unify())
        .and(with_state.clone())
        .then(handlers::healthz);

    // The OpenAI-compatible route: before `chat`, whose `{provider}` it
    // would otherwise be (`completions` is no provider's name). Any content
    // type is accepted, as on `chat`.
    let completions = warp::path!("v1" / "chat" / "completions")
        .and(warp::post())
        .and(client_request_id())
        .and(text_header("authorization"))
        .and(text_header("x-api-key"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_state.clone())
        .then(completions::chat_completions);
    let completions_other_methods =
        warp::path!("v1" / "chat" / "completions").then(completions::method_not_allowed);

    let models = warp::path!("v1" / "models")
        .and(warp::get())
        .and(with_state.clone())
        .then(completions::models);

    // Any content type is accepted: `curl -d` sends form-urlencoded.
    let chat = warp::path!("v1" / "chat" / String)
        .and(warp::post())
        .and(client_request_id())
        .and(warp::header::optional::<String>("x-api-key"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_state.clone())
        .then(handlers::chat);

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_state)
        .and_then(handlers::metrics);

    let openapi = warp::path!("openapi.json")
        .and(warp::get())
        .then(handlers::openapi);

    let docs = warp::path!("docs").and(warp::get()).then(handlers::docs);

    // The two chat routes first: they carry the traffic, and every filter
    // tried before the one that matches costs a little on each request.
    // `completions` must come before `chat`, whose `{provider}` would
    // match it (`completions` is reserved, not a provider).
    let api = completions
        .or(chat)
        .or(healthz)
        .or(completions_other_methods)
        .or(models)
        .or(metrics)
        .or(openapi)
        .or(docs)
        .recover(recover);

    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(client_request_id())
        .and(api)
        .map(finish)
}

/// The client's `x-request-id`, if it is text (whether it is a valid id is
/// decided by [`RequestId::from_client`]).
fn client_request_id() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>(CLIENT_HEADER)
        .or(warp::any().map(|| None))
        .unify()
}

/// A header that is text, else absent: a key that is not text is no key
/// (a 401 in the route's own error shape, rather than a rejection).
fn text_header(
    name: &'static str,
) -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::optional::<String>(name)
        .or(warp::any().map(|| None))
        .unify()
}

/// The chat handler gives its replies their request id and writes its own,
/// richer line (it knows the provider and model). Every other reply gets
/// both here.
fn finish(
    started: Instant,
    method: Method,
    path: FullPath,
    client_id: Option<String>,
    reply: impl Reply,
) -> Response {
    let mut reply = reply.into_response();
    if reply.headers().contains_key(HEADER) {
        return reply;
    }
    let id = RequestId::from_client(client_id.as_deref());
    reply.headers_mut().insert(HEADER, id.header_value());
    let status = reply.status().as_u16();
    if log_fields::json() {
        tracing::info!(
            request_id = id.as_str(),
            method = method.as_str(),
            path = path.as_str(),
            status,
            duration_ms = ms(started.elapsed()),
            "request"
        );
    } else {
        tracing::info!(
            request_id = %id.as_str(),
            method = %method,
            path = %Escaped(path.as_str()),
            status,
            duration_ms = %Millis(started.elapsed()),
            "request"
        );
    }
    reply
}
