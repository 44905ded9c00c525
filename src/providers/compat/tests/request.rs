//! Reading requests: the routing fields, typed members, content parts.

use bytes::Bytes;
use serde_json::{json, Value};

use super::super::request::*;
use crate::error::{Error, Result};

fn field_of(result: Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

fn parse(body: &str) -> Result<CompatRequest> {
    CompatRequest::parse(Bytes::from(body.to_owned()))
}

#[test]
fn routing_fields_are_checked() {
    let ok = parse(
        r#"{"model":"m","messages":[{}],"stream":true,"stream_options":{"include_usage":true}}"#,
    )
    .unwrap();
    assert_eq!(
        (ok.model.as_str(), ok.stream, ok.include_usage),
        ("m", true, true)
    );
    let plain = parse(r#"{"model":"m","messages":[{}],"stream":null}"#).unwrap();
    assert!(!plain.stream && !plain.include_usage);
    assert!(matches!(parse("{\"model\":"), Err(Error::MalformedJson(_))));
    assert!(matches!(parse(""), Err(Error::MalformedJson(_))));
    assert_eq!(field_of(parse("[1]")), "body");
    assert_eq!(field_of(parse(r#"{"messages":[{}]}"#)), "model");
    assert_eq!(field_of(parse(r#"{"model":" ","messages":[{}]}"#)), "model");
    assert_eq!(field_of(parse(r#"{"model":1,"messages":[{}]}"#)), "model");
    assert_eq!(field_of(parse(r#"{"model":"m"}"#)), "messages");
    assert_eq!(
        field_of(parse(r#"{"model":"m","messages":null}"#)),
        "messages"
    );
    assert_eq!(
        field_of(parse(r#"{"model":"m","messages":[]}"#)),
        "messages"
    );
    assert_eq!(
        field_of(parse(r#"{"model":"m","messages":{}}"#)),
        "messages"
    );
    assert_eq!(
        field_of(parse(r#"{"model":"m","messages":[{}],"stream":"yes"}"#)),
        "stream"
    );
}

#[test]
fn unsupported_fields_are_refused_only_when_they_ask_for_something() {
    let defaults = json!({"seed": 0, "logprobs": false, "top_logprobs": 0, "presence_penalty": 0.0,
        "frequency_penalty": null, "logit_bias": {}, "response_format": {"type": "text"}, "n": 1});
    let map = defaults.as_object().unwrap();
    Params::new(map)
        .check_unsupported("anthropic", false)
        .unwrap();
    Params::new(map).check_n().unwrap();
    for (name, value) in [
        ("seed", json!(42)),
        ("logprobs", json!(true)),
        ("top_logprobs", json!(3)),
        ("presence_penalty", json!(0.5)),
        ("frequency_penalty", json!(-1)),
        ("logit_bias", json!({"50256": -100})),
        ("response_format", json!({"type": "json_object"})),
    ] {
        let mut map = map.clone();
        map.insert(name.to_owned(), value);
        let error = Params::new(&map).check_unsupported("anthropic", false);
        assert_eq!(field_of(error), name);
        Params::new(&map)
            .check_unsupported("anthropic", true)
            .unwrap();
    }
    let n = json!({"n": 2});
    assert_eq!(field_of(Params::new(n.as_object().unwrap()).check_n()), "n");
}

#[test]
fn stop_and_max_tokens() {
    let params = |v: Value| v.as_object().unwrap().clone();
    let map = params(json!({"stop": "END", "max_tokens": 5, "max_completion_tokens": 9}));
    assert_eq!(Params::new(&map).stop().unwrap(), ["END"]);
    assert_eq!(Params::new(&map).max_tokens().unwrap(), Some(9));
    let map = params(json!({"stop": ["a", "b"], "max_tokens": 5, "max_completion_tokens": null}));
    assert_eq!(Params::new(&map).stop().unwrap(), ["a", "b"]);
    assert_eq!(Params::new(&map).max_tokens().unwrap(), Some(5));
    let map = params(json!({"stop": ["a", " \n"]}));
    assert_eq!(field_of(Params::new(&map).stop()), "stop[1]");
    let map = params(json!({"stop": 3, "max_tokens": -1}));
    assert_eq!(field_of(Params::new(&map).stop()), "stop");
    assert_eq!(field_of(Params::new(&map).max_tokens()), "max_tokens");
}

#[test]
fn content_parts() {
    let body = json!({"messages": [
        {"role": "developer", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": " "}]},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg", "detail": "low"}}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}]},
        {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]},
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "https://x"}}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]},
        {"role": "robot", "content": "x"}
    ]});
    let map = body.as_object().unwrap();
    assert_eq!(field_of(messages(map).map(|_| ())), "messages[7].role");
    let mut trimmed = map.clone();
    trimmed["messages"].as_array_mut().unwrap().pop();
    let all = messages(&trimmed).unwrap();
    assert_eq!(all[0].role, Role::System);
    assert_eq!(all[0].text().unwrap(), "a");
    assert_eq!(
        all[1].parts().unwrap(),
        [
            Part::Text("look"),
            Part::Image(Image::Base64 {
                media_type: "image/png",
                data: "iVBO"
            }),
            Part::Image(Image::Url("https://x.test/cat.jpg"))
        ]
    );
    assert_eq!(all[2].parts().unwrap(), [Part::Text("no")]);
    assert_eq!(field_of(all[3].parts()), "messages[3].content[0].type");
    assert_eq!(field_of(all[4].parts()), "messages[4].content[0].type");
    assert_eq!(
        field_of(all[5].parts()),
        "messages[5].content[0].image_url.url"
    );
    assert_eq!(
        field_of(all[6].parts()),
        "messages[6].content[0].image_url.url"
    );
}
