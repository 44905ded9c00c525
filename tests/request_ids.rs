//! Request ids: every reply of the server carries `x-llmproxy-request-id`,
//! the client's `x-request-id` when it is a sane token, a generated one
//! otherwise; the upstream's own ids pass through, the proxy's is not sent
//! upstream.

mod common;

use common::*;
use serde_json::json;

const HEADER: &str = "x-llmproxy-request-id";

/// `req_` and 32 lowercase hex digits.
fn is_generated(id: &str) -> bool {
    id.len() == 36
        && id.starts_with("req_")
        && id[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn id_of(reply: &reqwest::Response) -> String {
    reply
        .headers()
        .get(HEADER)
        .unwrap_or_else(|| panic!("no {HEADER} on {}", reply.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

async fn chat(
    proxy: &Proxy,
    provider: &str,
    client_id: Option<&str>,
    body: serde_json::Value,
) -> reqwest::Response {
    let mut request = client()
        .post(proxy.chat_url(provider))
        .header("x-api-key", "sk-test-key")
        .json(&body);
    if let Some(id) = client_id {
        request = request.header("x-request-id", id);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_valid_client_id_is_kept_and_not_sent_upstream() {
    let mock = MockUpstream::always(
        Script::json(200, fixture("openai-chat.json")).header("x-request-id", "req_upstream"),
    )
    .await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let longest = "a".repeat(128);
    for id in ["trace-1", "a.b_c:d-E9", longest.as_str()] {
        let reply = chat(&proxy, "openai", Some(id), chat_body("m", false)).await;
        assert_eq!(reply.status(), 200);
        assert_eq!(id_of(&reply), id);
        // The upstream's own id passes through unchanged.
        assert_eq!(reply.headers()["x-request-id"], "req_upstream");
    }
    for request in mock.requests() {
        assert!(
            !request.headers.contains_key("x-request-id") && !request.headers.contains_key(HEADER),
            "an id was sent upstream: {:?}",
            request.headers
        );
    }
}

#[tokio::test]
async fn a_missing_or_invalid_client_id_is_replaced_by_a_generated_one() {
    let mock = MockUpstream::always(Script::json(200, fixture("openai-chat.json"))).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let too_long = "a".repeat(129);
    let mut seen = Vec::new();
    for id in [
        None,
        Some(""),
        Some(too_long.as_str()),
        Some("a b"),
        Some("a/b"),
        Some("x\"y"),
    ] {
        let reply = chat(&proxy, "openai", id, chat_body("m", false)).await;
        assert_eq!(reply.status(), 200, "{id:?}");
        let got = id_of(&reply);
        assert!(is_generated(&got), "{id:?} -> {got}");
        seen.push(got);
    }
    // A non-UTF-8 value too.
    let reply = client()
        .post(proxy.chat_url("openai"))
        .header("x-api-key", "k")
        .header(
            "x-request-id",
            reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        )
        .json(&chat_body("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    seen.push(id_of(&reply));
    assert!(is_generated(seen.last().unwrap()));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "generated ids repeat: {seen:?}");
}

#[tokio::test]
async fn errors_and_streams_carry_the_id() {
    let mock = MockUpstream::start(|request| {
        if request.json()["stream"] == true {
            Script::sse(sse_events(&fixture("openai-stream.sse")))
        } else {
            Script::json(429, fixture("openai-error-429.json")).header("retry-after", "3")
        }
    })
    .await;
    let proxy = Proxy::start(&mock.url(), &[]).await;

    // Unknown provider (404), invalid request (422), upstream error (429).
    let reply = chat(&proxy, "nope", Some("id-404"), chat_body("m", false)).await;
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (404, "id-404".into())
    );
    let reply = chat(
        &proxy,
        "openai",
        Some("id-422"),
        json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (422, "id-422".into())
    );
    let reply = chat(
        &proxy,
        "openai",
        None,
        json!({"model": "m", "messages": []}),
    )
    .await;
    assert!(is_generated(&id_of(&reply)));
    let reply = chat(&proxy, "openai", Some("id-429"), chat_body("m", false)).await;
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (429, "id-429".into())
    );
    assert_eq!(reply.headers()["retry-after"], "3");
    // Missing key (401) and malformed JSON (400).
    let reply = client()
        .post(proxy.chat_url("openai"))
        .header("x-request-id", "id-401")
        .json(&chat_body("m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (reply.status().as_u16(), id_of(&reply)),
        (401, "id-401".into())
    );
    let reply = client()
        .post(proxy.chat_url("openai"))
        .header("x-api-key", "k")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 400);
    assert!(is_generated(&id_of(&reply)));

    // A stream.
    let reply = chat(&proxy, "openai", Some("id-stream"), chat_body("m", true)).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "text/event-stream");
    assert_eq!(id_of(&reply), "id-stream");
    assert_eq!(reply.bytes().await.unwrap(), fixture("openai-stream.sse"));
}

#[tokio::test]
async fn every_other_route_and_rejection_carries_the_id() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    for (method, path, status) in [
        ("GET", "/healthz", 200),
        ("HEAD", "/healthz", 200),
        ("GET", "/metrics", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/docs", 200),
        ("GET", "/nowhere", 404),
        ("GET", "/v1/chat/openai", 405),
        ("POST", "/v1/chat/openai/extra", 404),
    ] {
        let url = format!("{}{path}", proxy.url);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let reply = client()
            .request(method.clone(), &url)
            .header("x-request-id", "mine")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), status, "{method} {path}");
        assert_eq!(id_of(&reply), "mine", "{method} {path}");
        let reply = client().request(method.clone(), &url).send().await.unwrap();
        assert!(is_generated(&id_of(&reply)), "{method} {path}");
    }
}
