//! State shared by every request: the upstream client (one per worker
//! thread), the metrics, and the shutdown machinery (draining flag,
//! in-flight count, grace-expired signal).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

use super::metrics::Metrics;
use crate::providers::Upstream;

/// Cloned into every route and for every request (warp's service is
/// cloned per request), so a clone is one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    upstream: Upstream,
    /// `None` when `METRICS=false`.
    metrics: Option<Arc<Metrics>>,
    shutdown: Arc<Shutdown>,
}

struct Shutdown {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// Requests started so far (for the idle memory trim).
    started: AtomicUsize,
    idle: Notify,
    /// Flips to `true` when the grace period has run out.
    abort: watch::Sender<bool>,
}

/// Counts one chat request (or open stream) until dropped.
pub struct InFlight(Arc<Shutdown>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl AppState {
    /// With metrics.
    pub fn new(upstream: Upstream) -> Self {
        Self::with_metrics(upstream, true)
    }

    pub fn with_metrics(upstream: Upstream, metrics: bool) -> Self {
        let metrics =
            metrics.then(|| Arc::new(Metrics::new(upstream.settings().providers.provider_names())));
        AppState(Arc::new(Shared {
            upstream,
            metrics,
            shutdown: Arc::new(Shutdown {
                draining: AtomicBool::new(false),
                in_flight: AtomicUsize::new(0),
                started: AtomicUsize::new(0),
                idle: Notify::new(),
                abort: watch::channel(false).0,
            }),
        }))
    }

    /// The same metrics and shutdown machinery, with `upstream` (a worker
    /// thread's own pools) to send through.
    pub fn with_upstream(&self, upstream: Upstream) -> Self {
        AppState(Arc::new(Shared {
            upstream,
            metrics: self.0.metrics.clone(),
            shutdown: self.0.shutdown.clone(),
        }))
    }

    pub fn upstream(&self) -> &Upstream {
        &self.0.upstream
    }

    pub fn metrics(&self) -> Option<Arc<Metrics>> {
        self.0.metrics.clone()
    }

    pub fn is_draining(&self) -> bool {
        self.0.shutdown.draining.load(Ordering::Acquire)
    }

    pub fn start_draining(&self) {
        self.0.shutdown.draining.store(true, Ordering::Release);
    }

    pub fn track(&self) -> InFlight {
        self.0.shutdown.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.shutdown.started.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.shutdown.clone())
    }

    /// Requests started since the process began.
    pub fn started(&self) -> usize {
        self.0.shutdown.started.load(Ordering::Relaxed)
    }

    pub fn in_flight(&self) -> usize {
        self.0.shutdown.in_flight.load(Ordering::Acquire)
    }

    /// Resolves once no request or stream is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.0.shutdown.idle.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Tells every open request and stream to end now.
    pub fn abort(&self) {
        self.0.shutdown.abort.send_replace(true);
    }

    /// Resolves when [`AppState::abort`] has been called.
    pub fn aborted(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.0.shutdown.abort.subscribe();
        async move {
            let _ = rx.wait_for(|aborted| *aborted).await;
        }
    }
}
