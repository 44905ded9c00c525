//! `llmproxy serve`: the HTTP front-end of the provider adapters.
//!
//! The accept loop is ours rather than warp's so that accepted sockets get
//! `TCP_NODELAY` (stream events must not wait for Nagle) and so that
//! shutdown can drain: stop accepting, answer 503 on connections still open,
//! let in-flight work finish for the grace period, then end what is left.

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
mod write_timeout;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

pub use completions::PROVIDER_HEADER;
pub use errors::status_of;
pub use log_fields::set_format as set_log_format;
pub use request_id::HEADER as REQUEST_ID_HEADER;
pub use routes::{routes, ROUTES};
pub use state::AppState;

use crate::config::{Observability, Settings};
use crate::providers::Upstream;

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

/// [`serve`] with `LOG_FORMAT`/`METRICS` settings.
pub async fn serve_with(
    settings: Arc<Settings>,
    observability: Observability,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let upstream = Upstream::new(settings.clone())?;
    let state = AppState::with_metrics(upstream, observability.metrics);
    let trimmer = idle_trim::spawn_idle_trim(state.clone());
    let service = warp::service(routes::routes(state.clone()));
    let mut shutdown = std::pin::pin!(shutdown);
    // HTTP/1.1 only: no protocol sniffing on each new connection.
    let builder = http1::Builder::new();
    let connections = GracefulShutdown::new();

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
        let service = TowerToHyperService::new(service.clone());
        let connection = builder.serve_connection(
            TokioIo::new(write_timeout::WriteTimeout::new(stream, settings.timeout)),
            service,
        );
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }

    drop(listener);
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
    // Lets finished responses reach their clients and closes idle
    // keep-alive connections.
    let _ = tokio::time::timeout(FINAL_FLUSH, connections.shutdown()).await;
    trimmer.abort();
    tracing::info!("stopped");
    Ok(())
}
