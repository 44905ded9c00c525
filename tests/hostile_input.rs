//! Hostile or broken input: always a clean 4xx (JSON `detail` where the
//! proxy writes the reply), never a 5xx or a panic, and the server keeps
//! serving. A property test throws generated bodies, headers and paths at
//! the request parsing and validation code.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

/// After each abuse the server still answers on a fresh connection.
async fn still_serving(url: &str) {
    let reply = client().get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(reply.status(), 200);
}

async fn send_raw(url: &str, bytes: &[u8]) -> RawResponse {
    let mut connection = RawConnection::open(url).await.unwrap();
    connection.send_raw(bytes).await;
    tokio::time::timeout(Duration::from_secs(5), connection.read_response())
        .await
        .expect("an answer within 5 s")
}

fn post_head(extra: &str) -> String {
    format!("POST /v1/chat/openai HTTP/1.1\r\nhost: t\r\nx-api-key: k\r\n{extra}\r\n")
}

#[tokio::test]
async fn declared_oversized_body_is_refused_without_reading_it() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[("MAX_BODY_BYTES", "1024")]).await;
    // Declares 100 MB, sends 10 bytes, and waits: the answer must not wait
    // for the rest.
    let mut request = post_head("content-length: 100000000\r\n").into_bytes();
    request.extend_from_slice(b"{\"model\":");
    let reply = send_raw(&proxy.url, &request).await;
    assert_eq!(reply.status, 413);
    assert!(serde_json::from_slice::<Value>(&reply.body).unwrap()["detail"].is_string());
    still_serving(&proxy.url).await;
}

#[tokio::test]
async fn broken_bodies_are_400_with_detail() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let cases: Vec<Vec<u8>> = vec![
        b"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(),
        deep.into_bytes(),
        format!(
            "{{\"model\":{}}}",
            "{\"a\":".repeat(5000) + "1" + &"}".repeat(5000)
        )
        .into_bytes(),
        b"\0\0\0".to_vec(),
        b"model=m&messages=hi".to_vec(),
    ];
    for body in cases {
        let mut request = post_head(&format!("content-length: {}\r\n", body.len())).into_bytes();
        request.extend_from_slice(&body);
        let reply = send_raw(&proxy.url, &request).await;
        assert_eq!(
            reply.status,
            400,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        );
        let detail: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(
            detail["detail"]
                .as_str()
                .unwrap()
                .starts_with("malformed JSON"),
            "{detail}"
        );
    }
    still_serving(&proxy.url).await;
}

#[tokio::test]
async fn transfer_encoding_tricks_and_oversized_headers_get_a_clean_4xx() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[("MAX_BODY_BYTES", "1024")]).await;
    let big_header = format!("x-big: {}\r\n", "a".repeat(1024 * 1024));
    let many_headers: String = (0..200).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "both TE and CL",
            format!(
                "{}5\r\n{{\"a\":\r\n0\r\n\r\n",
                post_head("transfer-encoding: chunked\r\ncontent-length: 3\r\n")
            )
            .into_bytes(),
        ),
        (
            "bad chunk size",
            format!(
                "{}zz\r\nabc\r\n0\r\n\r\n",
                post_head("transfer-encoding: chunked\r\n")
            )
            .into_bytes(),
        ),
        (
            "gzip then chunked",
            format!(
                "{}0\r\n\r\n",
                post_head("transfer-encoding: gzip, chunked\r\n")
            )
            .into_bytes(),
        ),
        (
            "chunked not last",
            post_head("transfer-encoding: chunked, gzip\r\n").into_bytes(),
        ),
        (
            "duplicate CL",
            format!(
                "{}{{}}",
                post_head("content-length: 2\r\ncontent-length: 5\r\n")
            )
            .into_bytes(),
        ),
        (
            "huge chunk past the limit",
            format!(
                "{}100000\r\n{}",
                post_head("transfer-encoding: chunked\r\n"),
                "x".repeat(4096)
            )
            .into_bytes(),
        ),
        ("oversized header", post_head(&big_header).into_bytes()),
        ("too many headers", post_head(&many_headers).into_bytes()),
    ];
    for (name, request) in cases {
        let reply = send_raw(&proxy.url, &request).await;
        assert!(
            (400..500).contains(&reply.status),
            "{name}: {}",
            reply.status
        );
        if let Ok(body) = serde_json::from_slice::<Value>(&reply.body) {
            assert!(body["detail"].is_string(), "{name}: {body}");
        }
        still_serving(&proxy.url).await;
    }
}

// ---- property test: 10,000 generated requests at the parsing and
// validation code (the warp filters and handlers, in-process) ----

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("system"),
            Just("user"),
            Just("assistant"),
            Just("tool")
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("stream".to_owned()),
                    Just("max_tokens".to_owned()),
                    Just("temperature".to_owned()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid request with one field replaced by an arbitrary value.
fn mutated_request() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just("model"),
            Just("messages"),
            Just("stream"),
            Just("max_tokens"),
            Just("temperature"),
            Just("x")
        ],
        json_value(),
    )
        .prop_map(|(field, value)| {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            body[field] = value;
            body.to_string().into_bytes()
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        mutated_request(),
    ]
}

fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("v1".to_owned()),
        Just("chat".to_owned()),
        Just("openai".to_owned()),
        Just("anthropic".to_owned()),
        Just("healthz".to_owned()),
        Just("..".to_owned()),
        Just("%2F".to_owned()),
        Just("%00".to_owned()),
        Just("%E2%82%AC".to_owned()),
        "[a-zA-Z0-9_.~-]{0,10}",
    ];
    prop::collection::vec(segment, 0..5).prop_map(|s| format!("/{}", s.join("/")))
}

fn header_value() -> impl Strategy<Value = String> {
    "[ -~]{0,40}"
}

#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    path: String,
    api_key: Option<String>,
    content_type: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just("GET"),
            Just("POST"),
            Just("POST"),
            Just("PUT"),
            Just("DELETE"),
            Just("OPTIONS"),
            Just("HEAD")
        ],
        prop_oneof![
            path(),
            Just("/v1/chat/openai".to_owned()),
            Just("/v1/chat/anthropic".to_owned())
        ],
        proptest::option::of(header_value()),
        proptest::option::of(prop_oneof![
            Just("application/json".to_owned()),
            header_value()
        ]),
        proptest::option::of(prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            header_value()
        ]),
        body(),
    )
        .prop_map(
            |(method, path, api_key, content_type, content_length, body)| Case {
                method,
                path,
                api_key,
                content_type,
                content_length,
                body,
            },
        )
}

#[test]
fn generated_requests_always_get_a_4xx_with_detail_or_a_success() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (routes, mock) = runtime.block_on(async {
        let mock = MockUpstream::start(|r| {
            if r.path == "/v1/messages" {
                Script::json(200, fixture("anthropic-messages.json"))
            } else {
                Script::json(200, fixture("openai-chat.json"))
            }
        })
        .await;
        let vars = std::collections::HashMap::from([
            ("OPENAI_BASE_URL".to_owned(), format!("{}/v1", mock.url())),
            ("ANTHROPIC_BASE_URL".to_owned(), mock.url()),
            ("MAX_BODY_BYTES".to_owned(), "200".to_owned()),
        ]);
        let settings = llmproxy::config::Settings::from_lookup(|n| vars.get(n).cloned()).unwrap();
        let upstream = llmproxy::providers::Upstream::new(Arc::new(settings)).unwrap();
        (
            llmproxy::server::routes(llmproxy::server::AppState::new(upstream)),
            mock,
        )
    });
    let config = ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case())| {
        let reply = runtime.block_on(async {
            let mut request = warp::test::request().method(case.method).path(&case.path).body(case.body.clone());
            if let Some(key) = &case.api_key {
                request = request.header("x-api-key", key.as_str());
            }
            if let Some(content_type) = &case.content_type {
                request = request.header("content-type", content_type.as_str());
            }
            if let Some(length) = &case.content_length {
                request = request.header("content-length", length.as_str());
            }
            request.reply(&routes).await
        });
        let status = reply.status().as_u16();
        prop_assert!(status < 500, "{} for {:?}", status, case);
        if status >= 400 && case.method != "HEAD" {
            let body: Value = serde_json::from_slice(reply.body())
                .map_err(|e| TestCaseError::fail(format!("{e}: {:?} for {:?}", reply.body(), case)))?;
            prop_assert!(body["detail"].is_string() || body["detail"].is_object(), "{} for {:?}", body, case);
        }
    });
    drop(mock);
}
