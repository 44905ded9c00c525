//! Before measuring anything: each kind of request gets the expected reply
//! through the proxy (and through nginx), so the figures are of working
//! requests.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyper::StatusCode;
use serde_json::Value;

use crate::client::Conn;
use crate::endpoint::{Addrs, Endpoint, Provider, Side};
use crate::mock;

pub async fn check(addrs: &Addrs) -> Result<()> {
    let proxy = addrs.proxy;
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let endpoint = Endpoint::new(Side::Proxied, provider, addrs, None);
        let mut conn = Conn::open(proxy).await?;
        let (status, body) = conn.call(endpoint.request()).await?;
        let reply: Value = serde_json::from_slice(&body).context("proxy reply is not JSON")?;
        if status != StatusCode::OK
            || reply["content"] != "Hello! How can I help you today?"
            || reply["provider"] != provider.name()
        {
            bail!(
                "unexpected {} reply through the proxy: {status} {reply}",
                provider.name()
            );
        }
        let endpoint = Endpoint::new(
            Side::Proxied,
            provider,
            addrs,
            Some((3, Duration::from_millis(1))),
        );
        let response = conn.start(endpoint.request()).await?;
        let status = response.status();
        let mut body = response.into_body();
        let mut all = Vec::new();
        while let Some(data) = conn.frame(&mut body).await? {
            all.extend_from_slice(&data);
        }
        let text = String::from_utf8_lossy(&all);
        let end = mock::stream_end(provider);
        if status != StatusCode::OK || !text.ends_with(end) || text.matches("@T").count() != 3 {
            bail!(
                "unexpected {} stream through the proxy: {status} {text}",
                provider.name()
            );
        }
    }
    if addrs.nginx.is_some() {
        through_nginx(addrs).await?;
    }
    Ok(())
}

/// nginx passes the mock's replies on: the fixture byte for byte, and the
/// whole stream.
async fn through_nginx(addrs: &Addrs) -> Result<()> {
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let endpoint = Endpoint::new(Side::Nginx, provider, addrs, None);
        let mut conn = Conn::open(endpoint.addr).await?;
        let (status, body) = conn.call(endpoint.request()).await?;
        let direct = Endpoint::new(Side::Direct, provider, addrs, None);
        let (_, expected) = Conn::open(direct.addr)
            .await?
            .call(direct.request())
            .await?;
        if status != StatusCode::OK || body != expected {
            bail!(
                "unexpected {} reply through nginx: {status}",
                provider.name()
            );
        }
        let stream = Some((3, Duration::from_millis(1)));
        let endpoint = Endpoint::new(Side::Nginx, provider, addrs, stream);
        let response = conn.start(endpoint.request()).await?;
        let status = response.status();
        let mut body = response.into_body();
        let mut all = Vec::new();
        while let Some(data) = conn.frame(&mut body).await? {
            all.extend_from_slice(&data);
        }
        let text = String::from_utf8_lossy(&all);
        if status != StatusCode::OK
            || !text.ends_with(mock::stream_end(provider))
            || text.matches("@T").count() != 3
        {
            bail!(
                "unexpected {} stream through nginx: {status} {text}",
                provider.name()
            );
        }
    }
    Ok(())
}
