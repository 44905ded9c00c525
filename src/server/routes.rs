//! The warp filters: which request goes to which handler.

use warp::{Filter, Reply};

use super::errors::recover;
use super::handlers;
use super::log_fields::{Escaped, Millis};
use super::state::AppState;

pub fn routes(
    state: AppState,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let with_state = warp::any().map(move || state.clone());

    let healthz = warp::path!("healthz")
        .and(warp::get().or(warp::head()).unify())
        .and(with_state.clone())
        .then(handlers::healthz);

    // Any content type is accepted: `curl -d` sends form-urlencoded.
    let chat = warp::path!("v1" / "chat" / String)
        .and(warp::post())
        .and(warp::header::optional::<String>("x-api-key"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and(with_state)
        .then(handlers::chat);

    healthz.or(chat).recover(recover).with(access_log())
}

/// Logs requests the chat handler does not log itself (it knows the
/// provider and model, so it writes the richer line).
fn access_log() -> warp::log::Log<impl Fn(warp::log::Info<'_>) + Clone> {
    warp::log::custom(|info| {
        if info.method() == warp::http::Method::POST && info.path().starts_with("/v1/chat/") {
            return;
        }
        tracing::info!(
            method = %info.method(),
            path = %Escaped(info.path()),
            status = info.status().as_u16(),
            duration_ms = %Millis(info.elapsed()),
            "request"
        );
    })
}
