//! The one HTTP client of the process: pooled connections, the
//! `HTTP_MAX_CONNECTIONS` limit, timeouts, and the mapping of transport
//! failures to [`Error`]. Every front-end sends through [`Upstream::send`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::retry::{self, Decision};
use super::{ChatRequest, ChatResponse, Provider, RetryNotice, UpstreamRequest};
use crate::config::Settings;
use crate::error::{Error, Result, PASSTHROUGH_HEADERS};

/// Cloning is cheap: clones share the pool and the in-flight limit.
#[derive(Clone)]
pub struct Upstream {
    /// One pooled client per distinct provider timeout (reqwest's read
    /// timeout is per client); nearly always exactly one.
    clients: Arc<Vec<(Duration, reqwest::Client)>>,
    settings: Arc<Settings>,
    slots: Arc<Semaphore>,
    /// Idle pooled connections kept per host by this client.
    idle_per_host: usize,
}

/// What [`Upstream::send_observed`] ended with, and after how many
/// attempts.
pub struct Sent {
    pub result: Result<UpstreamResponse>,
    pub attempts: u32,
}

/// A request ready to send.
#[derive(Clone)]
pub struct Prepared {
    pub url: reqwest::Url,
    pub wire: UpstreamRequest,
    /// The model it names (Gemini replies may not say which answered).
    pub model: String,
}

impl Prepared {
    /// The native route's (and the CLI's) `request` for `provider`.
    pub fn native(
        provider: &Provider,
        settings: &Settings,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<Self> {
        Ok(Prepared {
            url: provider.url(&request.model, request.stream)?,
            wire: provider.build_request(settings, request, api_key)?,
            model: request.model.clone(),
        })
    }
}

/// A 2xx upstream reply whose body has not been read yet. It holds one
/// in-flight slot until it is dropped.
pub struct UpstreamResponse {
    provider: &'static Provider,
    /// The model the request named (Gemini replies may not say).
    model: String,
    response: reqwest::Response,
    slot: OwnedSemaphorePermit,
}

impl Upstream {
    pub fn new(settings: Arc<Settings>) -> anyhow::Result<Self> {
        Self::for_workers(settings, 1)
    }

    /// The client of the first of `workers` server threads: the in-flight
    /// limit, and a share of the idle connections kept. The others get a
    /// [`Upstream::sibling`] each.
    pub fn for_workers(settings: Arc<Settings>, workers: usize) -> anyhow::Result<Self> {
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        let idle_per_host = settings.max_keepalive_connections.div_ceil(workers.max(1));
        Self::with_pools(settings, slots, idle_per_host)
    }

    /// Another worker thread's client: its own connection pools (a pooled
    /// connection belongs to the thread that opened it, so a request never
    /// wakes another thread), the same in-flight limit and the same share
    /// of idle connections.
    pub fn sibling(&self) -> anyhow::Result<Self> {
        Self::with_pools(
            self.settings.clone(),
            self.slots.clone(),
            self.idle_per_host,
        )
    }

    fn with_pools(
        settings: Arc<Settings>,
        slots: Arc<Semaphore>,
        idle_per_host: usize,
    ) -> anyhow::Result<Self> {
        let mut clients: Vec<(Duration, reqwest::Client)> = Vec::new();
        for provider in settings.providers.providers() {
            if !clients.iter().any(|(t, _)| *t == provider.timeout) {
                clients.push((provider.timeout, client(provider.timeout, idle_per_host)?));
            }
        }
        Ok(Upstream {
            clients: Arc::new(clients),
            settings,
            slots,
            idle_per_host,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Sends `prepared`, up to [`Settings::retries_for`] more times when an
    /// attempt fails in a way worth retrying; `observer` hears of each
    /// retry before its delay. Dropping the future (the client left)
    /// cancels a pending retry.
    pub async fn send_observed(
        &self,
        provider: &'static Provider,
        prepared: Prepared,
        observer: &mut (dyn FnMut(&RetryNotice) + Send),
    ) -> Sent {
        let retries = self.settings.retries_for(provider);
        let mut attempt = 0;
        loop {
            let (error, connection) = match self.attempt(provider, &prepared).await {
                Ok(response) => {
                    return Sent {
                        result: Ok(response),
                        attempts: attempt + 1,
                    }
                }
                Err(failed) => failed,
            };
            let decision = if attempt < retries {
                retry::decide(&error, connection, attempt, retry::jitter())
            } else {
                Decision::GiveUp
            };
            match decision {
                Decision::GiveUp => {
                    return Sent {
                        result: Err(error),
                        attempts: attempt + 1,
                    }
                }
                Decision::Retry { reason, delay } => {
                    attempt += 1;
                    observer(&RetryNotice {
                        provider: provider.name(),
                        reason,
                        message: error.to_string(),
                        delay,
                        retry: attempt,
                        of: retries,
                    });
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One attempt: waits for a free slot, sends, and reads the status
    /// line. A non-2xx status is [`Error::UpstreamStatus`] with the body.
    /// The flag says the connection failed before the reply started.
    async fn attempt(
        &self,
        provider: &'static Provider,
        prepared: &Prepared,
    ) -> std::result::Result<UpstreamResponse, (Error, bool)> {
        let timeout = provider.timeout;
        let slot = tokio::time::timeout(timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| (Error::Saturated, false))?
            .map_err(|_| (Error::ShuttingDown, false))?;
        let mut builder = self
            .client(timeout)
            .post(prepared.url.clone())
            .body(prepared.wire.body.clone());
        for (name, value) in &prepared.wire.headers {
            builder = builder.header(name, value);
        }
        for (name, value) in &provider.headers {
            builder = builder.header(name, value);
        }
        let response = builder.send().await.map_err(|e| {
            // A timeout once connected may mean the upstream is working
            // (and billing): only connection failures are worth retrying.
            let connection = e.is_connect() || !e.is_timeout();
            (
                transport_error(provider, timeout, Phase::Request, e),
                connection,
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let headers = passthrough_headers(&response);
            let body = response
                .bytes()
                .await
                .map_err(|e| (transport_error(provider, timeout, Phase::Reply, e), false))?;
            return Err((
                Error::UpstreamStatus {
                    provider: provider.name(),
                    status: status.as_u16(),
                    body,
                    headers,
                },
                false,
            ));
        }
        Ok(UpstreamResponse {
            provider,
            model: prepared.model.clone(),
            response,
            slot,
        })
    }

    fn client(&self, timeout: Duration) -> &reqwest::Client {
        self.clients
            .iter()
            .find(|(t, _)| *t == timeout)
            .or_else(|| self.clients.first())
            .map(|(_, client)| client)
            .unwrap_or_else(|| unreachable!("the registry always has providers"))
    }
}

fn client(timeout: Duration, idle_per_host: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        // `timeout()` would be a deadline for the whole body and cut long
        // streams; these two bound only the waits.
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .pool_max_idle_per_host(idle_per_host)
        .pool_idle_timeout(Duration::from_secs(90))
        // The key must only ever reach the configured base URL: no
        // redirects (x-api-key would follow them), no proxies.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // reqwest retries only HTTP/2 refusals, which an HTTP/1 pool
        // never sees; its policy still cloned every request to be ready.
        .retry(reqwest::retry::never().max_retries_per_request(0))
        .tcp_nodelay(true)
        .build()?)
}

impl UpstreamResponse {
    pub fn provider(&self) -> &'static Provider {
        self.provider
    }

    /// The upstream's (2xx) status, for the request log.
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// Request-id and retry headers worth handing to the caller.
    pub fn passthrough_headers(&self) -> Vec<(&'static str, String)> {
        passthrough_headers(&self.response)
    }

    /// Reads the whole body and normalizes it.
    pub async fn into_chat_response(mut self) -> Result<ChatResponse> {
        let provider = self.provider;
        let model = std::mem::take(&mut self.model);
        let body = self.into_body().await?;
        provider
            .normalize(&model, &body)
            .map_err(|reason| Error::InvalidReply {
                provider: provider.name(),
                reason: if body.is_empty() {
                    "empty body".to_owned()
                } else {
                    format!("not a {} chat reply ({reason})", provider.name())
                },
            })
    }

    /// Reads the whole body, as received (the OpenAI-compatible route
    /// passes it through or translates it).
    pub async fn into_body(self) -> Result<Bytes> {
        let provider = self.provider;
        let body = self
            .response
            .bytes()
            .await
            .map_err(|e| transport_error(provider, provider.timeout, Phase::Reply, e))?;
        drop(self.slot);
        Ok(body)
    }

    /// The upstream bytes exactly as received, chunk by chunk, no parsing.
    /// The in-flight slot is released when the stream is dropped.
    pub fn into_bytes(self) -> impl Stream<Item = Result<Bytes>> + Send + 'static {
        let provider = self.provider;
        let slot = self.slot;
        self.response.bytes_stream().map(move |chunk| {
            let _held_until_the_stream_is_dropped = &slot;
            chunk.map_err(|e| transport_error(provider, provider.timeout, Phase::Reply, e))
        })
    }

    /// The text deltas of the stream (see [`super::text_deltas`]).
    pub fn into_text_deltas(self) -> impl Stream<Item = Result<String>> + Send + 'static {
        super::text_deltas(self.provider, self.into_bytes())
    }
}

fn passthrough_headers(response: &reqwest::Response) -> Vec<(&'static str, String)> {
    PASSTHROUGH_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some((name.as_str(), value.to_owned()))
        })
        .collect()
}

/// Where in the exchange a transport error happened.
#[derive(Clone, Copy)]
enum Phase {
    /// Before the status line: the upstream was not reached.
    Request,
    /// While reading a reply that had started.
    Reply,
}

fn transport_error(
    provider: &'static Provider,
    timeout: Duration,
    phase: Phase,
    error: reqwest::Error,
) -> Error {
    let provider = provider.name();
    if error.is_timeout() {
        return Error::Timeout {
            provider,
            seconds: timeout.as_secs_f64().ceil() as u64,
        };
    }
    let reason = describe(&error);
    match phase {
        Phase::Request => Error::Unreachable { provider, reason },
        Phase::Reply => Error::ConnectionLost { provider, reason },
    }
}

/// The innermost causes of a transport error, without the URL: reqwest's own
/// message repeats it and the causes say what actually happened.
fn describe(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    match causes.last() {
        Some(last) if causes.len() > 1 => format!("{}: {last}", causes[0]),
        Some(only) => only.clone(),
        None => error.to_string(),
    }
}
