//! Unit tests of the translations, against the recorded payloads of
//! `tests/fixtures` (the integration tests run them through the server).

mod anthropic;
mod gemini;
mod request;
mod stream;

use std::path::Path;

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::config::ConfigFile;

const CONFIG: &str = r#"
[providers.vllm]
kind = "openai"
base_url = "http://127.0.0.1:1/v1"
key = "none"

[models.fast]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
max_tokens = 512
temperature = 0.2
"#;

/// Settings with the built-in providers, `vllm` and the alias `fast`.
fn settings(vars: &[(&str, &str)]) -> Settings {
    let file = ConfigFile::parse(Path::new("c.toml"), CONFIG.to_owned()).unwrap();
    let lookup = |name: &str| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    Settings::resolve(&lookup, Some(&file)).unwrap()
}

fn request(body: Value) -> CompatRequest {
    CompatRequest::parse(Bytes::from(body.to_string())).unwrap()
}

/// The JSON body `prepare` builds for `body`.
fn sent(settings: &Settings, body: Value) -> Result<Value> {
    let request = request(body);
    let target = resolve(&settings.providers, &request.model)?;
    let prepared = prepare(&target, &request, settings, Some("k"))?;
    Ok(serde_json::from_slice(&prepared.wire.body).unwrap())
}

/// The `param` of a refused request.
fn param(result: Result<Value>) -> String {
    match result {
        Err(Error::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

#[test]
fn routing_alias_then_provider_prefix_then_default() {
    let settings = settings(&[("DEFAULT_PROVIDER", "anthropic")]);
    let registry = &settings.providers;
    let target = resolve(registry, "fast").unwrap();
    assert_eq!(
        (target.provider.name, target.model.as_str()),
        ("anthropic", "claude-3-5-haiku-20241022")
    );
    assert_eq!(
        target.defaults,
        Defaults {
            max_tokens: Some(512),
            temperature: Some(0.2)
        }
    );
    let target = resolve(registry, "openrouter/meta-llama/llama-3.3-70b").unwrap();
    assert_eq!(
        (target.provider.name, target.model.as_str()),
        ("openrouter", "meta-llama/llama-3.3-70b")
    );
    assert_eq!(target.defaults, Defaults::default());
    let target = resolve(registry, "gemini/gemini-2.0-flash").unwrap();
    assert_eq!(target.provider.name, "gemini");
    // No provider prefix: the default provider, the model unchanged.
    for model in ["claude-sonnet-4-5", "meta-llama/llama-3.3-70b", "/x"] {
        let target = resolve(registry, model).unwrap();
        assert_eq!(
            (target.provider.name, target.model.as_str()),
            ("anthropic", model)
        );
    }
    assert!(matches!(
        resolve(registry, "openai/"),
        Err(Error::InvalidField { .. })
    ));
    let plain = Settings::from_lookup(|_| None).unwrap();
    assert_eq!(
        resolve(&plain.providers, "gpt-4o-mini")
            .unwrap()
            .provider
            .name,
        "openai"
    );
}

#[test]
fn openai_format_providers_get_the_body_as_sent_with_the_resolved_model() {
    let settings = settings(&[]);
    let body = json!({"model": "vllm/qwen", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}], "seed": 7, "n": 3,
        "max_tokens": 10, "response_format": {"type": "json_object"}});
    let request = request(body.clone());
    let target = resolve(&settings.providers, &request.model).unwrap();
    let prepared = prepare(&target, &request, &settings, Some("key")).unwrap();
    assert_eq!(
        prepared.url.as_str(),
        "http://127.0.0.1:1/v1/chat/completions"
    );
    assert_eq!(prepared.model, "qwen");
    let mut expected = body;
    expected["model"] = "qwen".into();
    assert_eq!(
        serde_json::from_slice::<Value>(&prepared.wire.body).unwrap(),
        expected
    );
    let auth: Vec<_> = prepared
        .wire
        .headers
        .iter()
        .filter(|(name, _)| name == "authorization")
        .collect();
    assert_eq!(auth.len(), 1);
    assert_eq!(auth[0].1, "Bearer key");
}

#[test]
fn upstream_errors_of_translated_providers_take_openai_shape() {
    let settings = settings(&[]);
    let error = |provider: &str, status: u16, body: Vec<u8>| {
        let provider = settings.providers.provider(provider).unwrap();
        let error = upstream_error(
            provider,
            Error::UpstreamStatus {
                provider: provider.name,
                status,
                body: body.into(),
                headers: vec![("retry-after", "7".to_owned())],
            },
        );
        match error {
            Error::UpstreamStatus {
                status,
                body,
                headers,
                ..
            } => (status, body, headers),
            other => panic!("{other:?}"),
        }
    };
    let (status, body, headers) = error(
        "anthropic",
        529,
        crate::providers::test_fixture("anthropic-error-529.json"),
    );
    assert_eq!(status, 529);
    assert_eq!(headers, [("retry-after", "7".to_owned())]);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": null}})
    );
    let (status, body, _) = error(
        "gemini",
        429,
        crate::providers::test_fixture("gemini-error-429.json"),
    );
    assert_eq!(status, 429);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["type"], "RESOURCE_EXHAUSTED");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("You exceeded your current quota"));
    let (_, body, _) = error("anthropic", 502, b"<html>Bad gateway</html>".to_vec());
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"],
        json!({"message": "<html>Bad gateway</html>", "type": "api_error", "param": null, "code": null})
    );
    // OpenAI-format providers' bodies are left as they are.
    let original = crate::providers::test_fixture("openai-error-429.json");
    let (_, body, _) = error("openai", 429, original.clone());
    assert_eq!(body, original);
}

#[test]
fn the_model_list_has_aliases_then_providers() {
    let settings = settings(&[]);
    let list: Value = serde_json::from_slice(&models(&settings.providers)).unwrap();
    assert_eq!(list["object"], "list");
    let data = list["data"].as_array().unwrap();
    assert_eq!(
        data[0],
        json!({"id": "fast", "object": "model", "created": 0, "owned_by": "anthropic"})
    );
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "fast",
            "openai/",
            "anthropic/",
            "gemini/",
            "ollama/",
            "groq/",
            "openrouter/",
            "deepseek/",
            "mistral/",
            "vllm/"
        ]
    );
    assert_eq!(data[9]["owned_by"], "vllm");
}

mod never_panics {
    use proptest::prelude::*;

    use super::*;

    /// JSON values made of the names and shapes the translations look at.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-3.0f64..3.0).prop_map(Value::from),
            prop_oneof![
                Just("user"),
                Just("assistant"),
                Just("system"),
                Just("developer"),
                Just("tool"),
                Just("text"),
                Just("image_url"),
                Just("function"),
                Just("auto"),
                Just("none"),
                Just("required"),
                Just("data:image/png;base64,AAAA"),
                Just("data:,"),
                Just("https://x/a.png"),
                Just("{\"a\":1}"),
                Just("[1]"),
                Just(""),
                Just(" "),
                Just("é"),
                Just("data:")
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::vec(
                    (
                        prop_oneof![
                            Just("role"),
                            Just("content"),
                            Just("type"),
                            Just("text"),
                            Just("image_url"),
                            Just("url"),
                            Just("tool_calls"),
                            Just("tool_call_id"),
                            Just("id"),
                            Just("function"),
                            Just("name"),
                            Just("arguments"),
                            Just("parameters"),
                            Just("refusal"),
                            Just("description")
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect(),
                    )
                }),
            ]
        })
    }

    fn top_level() -> impl Strategy<Value = Value> {
        (
            prop_oneof![
                Just("openai/m"),
                Just("anthropic/m"),
                Just("gemini/m"),
                Just("fast"),
                Just("gemini/a/b")
            ],
            prop::collection::vec(value(), 1..4),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("stream"),
                        Just("max_tokens"),
                        Just("max_completion_tokens"),
                        Just("temperature"),
                        Just("top_p"),
                        Just("stop"),
                        Just("user"),
                        Just("tools"),
                        Just("tool_choice"),
                        Just("parallel_tool_calls"),
                        Just("n"),
                        Just("seed"),
                        Just("response_format"),
                        Just("logit_bias"),
                        Just("stream_options")
                    ],
                    value(),
                ),
                0..5,
            ),
        )
            .prop_map(|(model, messages, members)| {
                let mut body = json!({"model": model, "messages": messages});
                for (name, value) in members {
                    body[name] = value;
                }
                body
            })
    }

    proptest! {
        /// Whatever the body, a translation gives a request or a client
        /// error naming a field: never a panic, never another error.
        #[test]
        fn any_request_is_translated_or_refused(body in top_level()) {
            let settings = settings(&[]);
            let raw = Bytes::from(body.to_string());
            let Ok(request) = CompatRequest::parse(raw) else { return Ok(()) };
            let target = match resolve(&settings.providers, &request.model) {
                Ok(target) => target,
                Err(error) => {
                    let named = matches!(error, Error::InvalidField { .. });
                    prop_assert!(named, "{:?}", error);
                    return Ok(());
                }
            };
            match prepare(&target, &request, &settings, Some("k")) {
                Ok(prepared) => {
                    prop_assert!(serde_json::from_slice::<Value>(&prepared.wire.body).is_ok());
                }
                Err(error) => {
                    let client = matches!(error, Error::InvalidField { .. } | Error::MalformedJson(_));
                    prop_assert!(client, "{:?}", error);
                }
            }
        }

        /// Any event text is translated or ends the stream with an error
        /// chunk, without a panic.
        #[test]
        fn any_stream_event_is_handled(event in value(), text in ".{0,40}") {
            for data in [event.to_string(), text.clone()] {
                let mut anthropic = super::super::anthropic_reply::StreamState::new("m", true);
                let _ = anthropic.event(&data);
                let _ = anthropic.event(r#"{"type":"message_stop"}"#);
                let mut gemini = super::super::gemini::StreamState::new("m", true);
                let _ = gemini.event(&data);
                let _ = gemini.close();
            }
        }
    }
}
