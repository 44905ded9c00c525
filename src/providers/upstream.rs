//! The one HTTP client of the process: pooled connections, the
//! `HTTP_MAX_CONNECTIONS` limit, timeouts, and the mapping of transport
//! failures to [`Error`]. Every front-end sends through [`Upstream::send`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{ChatRequest, ChatResponse, Provider, UpstreamRequest};
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
}

/// A request ready to send.
pub struct Prepared {
    pub url: reqwest::Url,
    pub wire: UpstreamRequest,
    /// The model it names (Gemini replies may not say which answered).
    pub model: String,
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
        let mut clients: Vec<(Duration, reqwest::Client)> = Vec::new();
        for provider in settings.providers.providers() {
            if !clients.iter().any(|(t, _)| *t == provider.timeout) {
                clients.push((provider.timeout, client(&settings, provider.timeout)?));
            }
        }
        let slots = Arc::new(Semaphore::new(settings.max_connections));
        Ok(Upstream {
            clients: Arc::new(clients),
            settings,
            slots,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Sends the native route's `request`; see [`Upstream::send_prepared`].
    pub async fn send(
        &self,
        provider: &'static Provider,
        request: &ChatRequest,
        api_key: Option<&str>,
    ) -> Result<UpstreamResponse> {
        let prepared = Prepared {
            url: provider.url(&request.model, request.stream)?,
            wire: provider.build_request(&self.settings, request, api_key)?,
            model: request.model.clone(),
        };
        self.send_prepared(provider, prepared).await
    }

    /// Sends a request built by any front-end (the provider's extra headers
    /// are added here) and waits for the status line. A non-2xx status is
    /// returned as [`Error::UpstreamStatus`] with the upstream body.
    pub async fn send_prepared(
        &self,
        provider: &'static Provider,
        prepared: Prepared,
    ) -> Result<UpstreamResponse> {
        let Prepared { url, wire, model } = prepared;
        let timeout = provider.timeout;
        let slot = tokio::time::timeout(timeout, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| Error::Saturated)?
            .map_err(|_| Error::ShuttingDown)?;
        let mut builder = self.client(timeout).post(url).body(wire.body);
        for (name, value) in wire.headers {
            builder = builder.header(name, value);
        }
        for (name, value) in &provider.headers {
            builder = builder.header(name, value);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| transport_error(provider, timeout, Phase::Request, e))?;
        let status = response.status();
        if !status.is_success() {
            let headers = passthrough_headers(&response);
            let body = response
                .bytes()
                .await
                .map_err(|e| transport_error(provider, timeout, Phase::Reply, e))?;
            return Err(Error::UpstreamStatus {
                provider: provider.name(),
                status: status.as_u16(),
                body,
                headers,
            });
        }
        Ok(UpstreamResponse {
            provider,
            model,
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

fn client(settings: &Settings, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        // `timeout()` would be a deadline for the whole body and cut long
        // streams; these two bound only the waits.
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .pool_max_idle_per_host(settings.max_keepalive_connections)
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
    pub async fn into_chat_response(self) -> Result<ChatResponse> {
        let provider = self.provider;
        let body = self
            .response
            .bytes()
            .await
            .map_err(|e| transport_error(provider, provider.timeout, Phase::Reply, e))?;
        drop(self.slot);
        provider
            .normalize(&self.model, &body)
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
        .filter_map(|&name| {
            let value = response.headers().get(name)?.to_str().ok()?;
            Some((name, value.to_owned()))
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
