//! What the client sends: which provider, along which path, and the
//! request itself, built once and sent many times.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn upstream_path(self) -> &'static str {
        match self {
            Provider::OpenAi => "/v1/chat/completions",
            Provider::Anthropic => "/v1/messages",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Client -> mock.
    Direct,
    /// Client -> byte relay process -> mock.
    Relay,
    /// Client -> nginx -> mock.
    Nginx,
    /// Client -> llmproxy -> mock.
    Proxied,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Direct => "direct",
            Side::Relay => "relay",
            Side::Nginx => "nginx",
            Side::Proxied => "proxied",
        }
    }
}

pub struct Addrs {
    pub mock: SocketAddr,
    pub proxy: SocketAddr,
    pub relay: SocketAddr,
    pub nginx: Option<SocketAddr>,
}

/// One kind of request, ready to send many times.
pub struct Endpoint {
    pub addr: SocketAddr,
    host: HeaderValue,
    path: &'static str,
    headers: Vec<(&'static str, HeaderValue)>,
    body: Bytes,
}

impl Endpoint {
    /// Direct requests are what llmproxy itself sends upstream (same body
    /// shape and headers), so all sides do the same work at the mock; the
    /// relay and nginx pass them on as they are. A
    /// stream's shape, `(chunks, interval)`, goes to the mock in the model
    /// name.
    pub fn new(
        side: Side,
        provider: Provider,
        addrs: &Addrs,
        stream: Option<(usize, Duration)>,
    ) -> Self {
        let (proxy, mock) = (addrs.proxy, addrs.mock);
        let upstream = match side {
            Side::Relay => addrs.relay,
            Side::Nginx => addrs.nginx.expect("nginx is running"),
            _ => mock,
        };
        let model = match (stream, provider) {
            (Some((chunks, interval)), _) => {
                format!("bench-c{chunks}-i{}", interval.as_millis())
            }
            (None, Provider::OpenAi) => "gpt-4o-mini".to_owned(),
            (None, Provider::Anthropic) => "claude-sonnet-4-5-20250929".to_owned(),
        };
        let system = "You are a helpful assistant.";
        let user = "Hello! Please answer in one short, friendly sentence.";
        let stream_field = if stream.is_some() {
            ",\"stream\":true"
        } else {
            ""
        };
        let (addr, path, headers, body) = match (side, provider) {
            (Side::Proxied, _) => (
                proxy,
                match provider {
                    Provider::OpenAi => "/v1/chat/openai",
                    Provider::Anthropic => "/v1/chat/anthropic",
                },
                vec![
                    ("x-api-key", HeaderValue::from_static("sk-bench-0123456789abcdef")),
                    (CONTENT_TYPE.as_str(), HeaderValue::from_static("application/json")),
                ],
                format!(
                    "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"system\",\"content\":\"{system}\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}]{stream_field},\"max_tokens\":256,\"temperature\":0.7}}"
                ),
            ),
            (_, Provider::OpenAi) => (
                upstream,
                provider.upstream_path(),
                vec![
                    ("authorization", HeaderValue::from_static("Bearer sk-bench-0123456789abcdef")),
                    (CONTENT_TYPE.as_str(), HeaderValue::from_static("application/json")),
                ],
                format!(
                    "{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"system\",\"content\":\"{system}\"}},{{\"role\":\"user\",\"content\":\"{user}\"}}]{stream_field},\"max_tokens\":256,\"temperature\":0.7}}"
                ),
            ),
            (_, Provider::Anthropic) => (
                upstream,
                provider.upstream_path(),
                vec![
                    ("x-api-key", HeaderValue::from_static("sk-bench-0123456789abcdef")),
                    ("anthropic-version", HeaderValue::from_static("2023-06-01")),
                    (CONTENT_TYPE.as_str(), HeaderValue::from_static("application/json")),
                ],
                format!(
                    "{{\"model\":\"{model}\",\"max_tokens\":256,\"system\":\"{system}\",\"messages\":[{{\"role\":\"user\",\"content\":\"{user}\"}}]{stream_field},\"temperature\":0.7}}"
                ),
            ),
        };
        Endpoint {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a header value"),
            path,
            headers,
            body: Bytes::from(body),
        }
    }

    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_static(self.path);
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        for (name, value) in &self.headers {
            headers.insert(*name, value.clone());
        }
        request
    }
}
