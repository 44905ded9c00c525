//! The OpenAI Chat Completions protocol in front of every provider (the
//! server's `POST /v1/chat/completions` and `GET /v1/models`): where a
//! request goes, what is sent, and what the client gets back.
//!
//! Routing: a model alias, else `<provider>/<model>` when the prefix is a
//! provider, else the default provider with the model unchanged.
//! OpenAI-format providers get the client's body as sent (only `model`
//! replaced) and their replies pass through byte for byte; Anthropic and
//! Gemini requests, replies, streams and errors are translated here.

mod anthropic;
mod anthropic_reply;
mod completion;
mod gemini;
mod openai;
mod request;
mod stream;

use bytes::Bytes;
use serde::Serialize;

use super::{Kind, Prepared, Provider, Registry, StreamUsage};
use crate::config::Settings;
use crate::error::{upstream_message, Error, Result};

pub use completion::{error_event, error_json};
pub use request::CompatRequest;
pub use stream::ChunkStream;

/// An alias's defaults: they fill in only what the client did not send.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Defaults {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
}

/// Where a request goes: the provider, the model it is sent as, and the
/// alias's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub provider: &'static Provider,
    pub model: String,
    pub defaults: Defaults,
}

/// Resolves `model`: (1) a configured alias; (2) `<provider>/<rest>` when
/// `<provider>` is a provider's name (split at the first `/` only); (3)
/// the default provider, `model` unchanged. A prefix that names no
/// provider is part of the model name.
pub fn resolve(registry: &Registry, model: &str) -> Result<Target> {
    if let Some(alias) = registry.alias(model) {
        return Ok(Target {
            provider: alias.provider,
            model: alias.model.clone(),
            defaults: Defaults {
                max_tokens: alias.max_tokens,
                temperature: alias.temperature,
            },
        });
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if let Ok(provider) = registry.provider(prefix) {
            if rest.trim().is_empty() {
                return Err(Error::invalid(
                    "model",
                    format!("'{prefix}/' names no model; write {prefix}/<model>"),
                ));
            }
            return Ok(Target {
                provider,
                model: rest.to_owned(),
                defaults: Defaults::default(),
            });
        }
    }
    Ok(Target {
        provider: registry.default_provider(),
        model: model.to_owned(),
        defaults: Defaults::default(),
    })
}

/// The upstream request for `request` to `target`, with the caller's key
/// (when there is one to send) under the provider's header.
pub fn prepare(
    target: &Target,
    request: &CompatRequest,
    settings: &Settings,
    api_key: Option<&str>,
) -> Result<Prepared> {
    let provider = target.provider;
    let url = provider.url(&target.model, request.stream)?;
    let wire = match provider.kind {
        Kind::OpenAi => {
            let body = openai::body(request.raw(), target)?;
            provider.json_request(settings, api_key, &body)?
        }
        Kind::Anthropic => {
            let body =
                anthropic::request_body(&request.object()?, target, settings, request.stream)?;
            provider.json_request(settings, api_key, &body)?
        }
        Kind::Gemini => {
            let body = gemini::request_body(&request.object()?, target, settings)?;
            provider.json_request(settings, api_key, &body)?
        }
    };
    Ok(Prepared {
        url,
        wire,
        model: target.model.clone(),
    })
}

/// Whether `provider`'s replies and streams pass through untranslated.
pub fn passes_through(provider: &Provider) -> bool {
    provider.kind == Kind::OpenAi
}

/// The token usage of a passed-through whole reply (its `usage`).
pub fn passthrough_usage(provider: &Provider, body: &[u8]) -> StreamUsage {
    std::str::from_utf8(body)
        .ok()
        .and_then(|body| provider.stream_usage(body))
        .unwrap_or_default()
}

/// A translated provider's whole 2xx reply as a `chat.completion`, and its
/// usage.
pub fn translate_reply(
    provider: &'static Provider,
    requested_model: &str,
    body: &[u8],
) -> Result<(Bytes, StreamUsage)> {
    let reply = match provider.kind {
        Kind::Gemini => gemini::reply(requested_model, body),
        Kind::Anthropic | Kind::OpenAi => anthropic_reply::reply(body),
    };
    let reply = reply.map_err(|reason| Error::InvalidReply {
        provider: provider.name(),
        reason: if body.is_empty() {
            "empty body".to_owned()
        } else {
            format!("not a {} reply ({reason})", provider.name())
        },
    })?;
    let usage = reply.tokens.stream_usage();
    Ok((reply.to_json(completion::now()).into(), usage))
}

/// A translated provider's error reply in OpenAI's shape: same status and
/// headers, `message` and `type` from the upstream's own error (Anthropic's
/// `error.type`, Gemini's `error.status`). Other errors are unchanged.
pub fn upstream_error(provider: &Provider, error: Error) -> Error {
    let Error::UpstreamStatus {
        provider: name,
        status,
        body,
        headers,
    } = error
    else {
        return error;
    };
    if passes_through(provider) {
        return Error::UpstreamStatus {
            provider: name,
            status,
            body,
            headers,
        };
    }
    let parsed = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = error
        .and_then(|e| e.get("type").or_else(|| e.get("status")))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("api_error");
    let message = upstream_message(&body);
    Error::UpstreamStatus {
        provider: name,
        status,
        body: error_json(&message, kind, None, None).into(),
        headers,
    }
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelOut<'a>>,
}

#[derive(Serialize)]
struct ModelOut<'a> {
    id: String,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
}

/// `GET /v1/models`: every alias, then `<provider>/` for each provider.
pub fn models(registry: &Registry) -> Vec<u8> {
    let model = |id: String, owned_by| ModelOut {
        id,
        object: "model",
        created: 0,
        owned_by,
    };
    let aliases = registry
        .aliases()
        .iter()
        .map(|alias| model(alias.name.to_owned(), alias.provider.name));
    let providers = registry
        .providers()
        .iter()
        .map(|provider| model(format!("{}/", provider.name), provider.name));
    let list = ModelList {
        object: "list",
        data: aliases.chain(providers).collect(),
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

#[cfg(test)]
mod tests;
