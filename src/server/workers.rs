//! Thread per core: each worker thread runs its own single-threaded tokio
//! runtime with its own upstream connection pools, and serves the
//! connections handed to it from start to end.
//!
//! Why not tokio's work-stealing runtime: there, a request's server
//! connection task and the upstream connection task that reqwest spawns
//! often sit on different threads, and every hand-over between them (and
//! every wake-up of an idle thread that might steal) is a futex wake-up and
//! a context switch; memory allocated on one thread and freed on the other
//! also contends on glibc's arena locks. Here a proxied request never
//! leaves its thread. The cost is that a thread cannot take work from a
//! busy neighbour, so new connections go to the thread serving the fewest.

use std::net::TcpStream as StdTcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{mpsc, oneshot, watch};

use super::state::AppState;
use super::{routes, write_timeout, FINAL_FLUSH};

/// The running worker threads.
pub struct Workers {
    workers: Vec<Worker>,
    /// Turns `true` once the drain is over: close every connection.
    close: watch::Sender<bool>,
    /// Rotates the starting point of the fewest-connections search, so
    /// that ties are shared out.
    next: usize,
}

struct Worker {
    /// `None` once the server stopped accepting.
    inbox: Option<mpsc::UnboundedSender<StdTcpStream>>,
    /// Connections handed to it that have not ended yet.
    open: Arc<AtomicUsize>,
    done: oneshot::Receiver<()>,
}

impl Workers {
    /// Starts `count` threads serving `state`'s routes: the first through
    /// `state`'s upstream client, the others each through a sibling.
    pub fn start(
        state: &AppState,
        count: usize,
        write_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let (close, closing) = watch::channel(false);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let state = match index {
                0 => state.clone(),
                _ => state.with_upstream(state.upstream().sibling()?),
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (inbox, connections) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let (finished, done) = oneshot::channel();
            let serving = Serving {
                state,
                connections,
                open: open.clone(),
                closing: closing.clone(),
                write_timeout,
            };
            std::thread::Builder::new()
                .name(format!("llmproxy-worker-{index}"))
                .spawn(move || {
                    runtime.block_on(serving.run());
                    // Dropping the runtime ends what is still open.
                    drop(runtime);
                    let _ = finished.send(());
                })?;
            workers.push(Worker {
                inbox: Some(inbox),
                open,
                done,
            });
        }
        Ok(Workers {
            workers,
            close,
            next: 0,
        })
    }

    /// Hands an accepted connection to the worker serving the fewest.
    pub fn dispatch(&mut self, stream: tokio::net::TcpStream) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%error, "could not hand over a connection");
                return;
            }
        };
        let open: Vec<usize> = self
            .workers
            .iter()
            .map(|worker| worker.open.load(Ordering::Relaxed))
            .collect();
        let Some(worker) = fewest(&open, self.next).map(|index| &self.workers[index]) else {
            return;
        };
        self.next = (self.next + 1) % open.len();
        if let Some(inbox) = &worker.inbox {
            worker.open.fetch_add(1, Ordering::Relaxed);
            if inbox.send(stream).is_err() {
                worker.open.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// No more connections will come: each worker keeps serving the ones
    /// it has.
    pub fn stop_accepting(&mut self) {
        for worker in &mut self.workers {
            worker.inbox = None;
        }
    }

    /// Lets finished responses reach their clients, closes idle keep-alive
    /// connections, and resolves once every worker has ended (or after
    /// [`FINAL_FLUSH`], when connections were cut).
    pub async fn close(self) {
        self.close.send_replace(true);
        for worker in self.workers {
            let _ = worker.done.await;
        }
    }
}

/// What one worker thread runs.
struct Serving {
    state: AppState,
    connections: mpsc::UnboundedReceiver<StdTcpStream>,
    open: Arc<AtomicUsize>,
    closing: watch::Receiver<bool>,
    write_timeout: std::time::Duration,
}

impl Serving {
    async fn run(mut self) {
        let service = warp::service(routes::routes(self.state.clone()));
        // HTTP/1.1 only: no protocol sniffing on each new connection.
        let builder = http1::Builder::new();
        let connections = GracefulShutdown::new();
        // With no timer pending, each request's first timer (the upstream
        // read timeout) is the earliest, and tokio then wakes its own
        // driver through an eventfd write to re-arm: a syscall per request
        // at low rates. A timer that always fires within a second keeps
        // every 60 s timeout later than the next wake.
        // (Ended with the runtime.)
        tokio::spawn(async {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
            }
        });
        while let Some(stream) = self.connections.recv().await {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%error, "could not take over a connection");
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
            };
            let service = TowerToHyperService::new(service.clone());
            let connection = builder.serve_connection(
                TokioIo::new(write_timeout::WriteTimeout::new(stream, self.write_timeout)),
                service,
            );
            let connection = connections.watch(connection);
            let open = self.open.clone();
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "connection ended with an error");
                }
                open.fetch_sub(1, Ordering::Relaxed);
            });
        }
        let _ = self.closing.wait_for(|close| *close).await;
        let _ = tokio::time::timeout(FINAL_FLUSH, connections.shutdown()).await;
    }
}

/// The index of the smallest count, the first one found from `start` on
/// (wrapping) when several are smallest.
fn fewest(open: &[usize], start: usize) -> Option<usize> {
    let count = open.len();
    (0..count)
        .map(|offset| (start + offset) % count)
        .min_by_key(|&index| open[index])
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::{fewest, Workers};
    use crate::config::Settings;
    use crate::providers::Upstream;
    use crate::server::state::AppState;

    #[tokio::test]
    async fn each_worker_serves_the_connections_handed_to_it() {
        let settings = Arc::new(Settings::from_lookup(|_| None).unwrap());
        let upstream = Upstream::for_workers(settings, 3).unwrap();
        let state = AppState::with_metrics(upstream, false);
        let mut workers = Workers::start(&state, 3, Duration::from_secs(5)).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            let client = TcpStream::connect(address).await.unwrap();
            let (accepted, _) = listener.accept().await.unwrap();
            workers.dispatch(accepted);
            clients.push(client);
        }
        let open: Vec<usize> = workers
            .workers
            .iter()
            .map(|worker| worker.open.load(Ordering::Relaxed))
            .collect();
        assert_eq!(open, [1, 1, 1], "one connection each");

        for mut client in clients {
            client
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut reply = String::new();
            client.read_to_string(&mut reply).await.unwrap();
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(reply.ends_with(r#"{"status":"ok"}"#), "{reply}");
        }
        workers.stop_accepting();
        // Resolves only once every worker thread has ended its runtime.
        workers.close().await;
    }

    #[test]
    fn connections_go_to_the_worker_serving_the_fewest() {
        assert_eq!(fewest(&[3, 1, 2], 0), Some(1));
        assert_eq!(fewest(&[0, 5], 1), Some(0));
        assert_eq!(fewest(&[], 0), None);
    }

    #[test]
    fn ties_are_shared_out_from_the_rotating_start() {
        assert_eq!(fewest(&[2, 2, 2], 0), Some(0));
        assert_eq!(fewest(&[2, 2, 2], 1), Some(1));
        assert_eq!(fewest(&[2, 2, 2], 2), Some(2));
        assert_eq!(fewest(&[1, 2, 1], 1), Some(2));
    }
}
