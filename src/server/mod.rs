//! `llmproxy serve`: the HTTP front-end of the provider adapters.
//!
//! The accept loop is ours rather than warp's so that accepted sockets get
//! `TCP_NODELAY` (stream events must not wait for Nagle), go to the worker
//! thread serving the fewest connections (`workers.rs`: one thread per
//! core, each with its own runtime), and so that shutdown can drain: stop
//! accepting, answer 503 on connections still open, let in-flight work
//! finish for the grace period, then end what is left.

mod completions;
mod errors;
mod handlers;
mod idle_trim;
mod log_fields;
mod log_line;
mod metrics;
mod openapi;
mod passthrough;
mod request_id;
mod request_log;
mod routes;
mod state;
mod stream_scan;
mod translated;
mod workers;
mod write_timeout;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use completions::PROVIDER_HEADER;
pub use errors::status_of;
pub use log_fields::set_format as set_log_format;
pub use request_id::HEADER as REQUEST_ID_HEADER;
pub use routes::{routes, ROUTES};
pub use state::AppState;

use crate::config::{Observability, Settings};
use crate::providers::Upstream;
use workers::Workers;

/// How long open streams get to flush their final error event after the
/// grace period ends.
const FINAL_FLUSH: Duration = Duration::from_millis(500);

/// Serves on `listener` until `shutdown` resolves, then drains (with the
/// default [`Observability`]: metrics on).
pub async fn serve(
    settings: Arc<Settings>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    serve_with(settings, Observability::default(), listener, shutdown).await
}

/// [`serve`] with `LOG_FORMAT`/`METRICS` settings. This task accepts
/// connections and hands each to one of the worker threads
/// ([`workers`]), which serve it to the end.
pub async fn serve_with(
    settings: Arc<Settings>,
    observability: Observability,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let threads = settings.worker_threads();
    let upstream = Upstream::for_workers(settings.clone(), threads)?;
    let state = AppState::with_metrics(upstream, observability.metrics);
    let mut workers = Workers::start(&state, threads, settings.timeout)?;
    let trimmer = idle_trim::spawn_idle_trim(state.clone());
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        workers.dispatch(stream);
    }

    drop(listener);
    workers.stop_accepting();
    state.start_draining();
    tracing::info!(
        in_flight = state.in_flight(),
        grace_seconds = settings.shutdown_grace.as_secs_f64(),
        "draining"
    );
    if tokio::time::timeout(settings.shutdown_grace, state.idle())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = state.in_flight(),
            "grace period over; ending open requests"
        );
        state.abort();
        let _ = tokio::time::timeout(FINAL_FLUSH, state.idle()).await;
    }
    workers.close().await;
    trimmer.abort();
    tracing::info!("stopped");
    Ok(())
}
