//! `GET /metrics`: the series move as requests are answered, streams
//! included; `METRICS=false` turns the route off.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::json;

async fn scrape(proxy: &Proxy) -> String {
    let reply = client()
        .get(format!("{}/metrics", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    reply.text().await.unwrap()
}

/// The value of one series, e.g. `llmproxy_in_flight_requests` or
/// `llmproxy_tokens_total{provider="openai",type="input"}`; 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

/// The sum of every series of `metric`.
fn total(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn requests(provider: &str, status: u16) -> String {
    format!(r#"llmproxy_requests_total{{route="chat",provider="{provider}",status="{status}"}}"#)
}

fn tokens(provider: &str, kind: &str) -> String {
    format!(r#"llmproxy_tokens_total{{provider="{provider}",type="{kind}"}}"#)
}

fn stream_ends(provider: &str, how: &str) -> String {
    format!(r#"llmproxy_stream_ends_total{{provider="{provider}",how="{how}"}}"#)
}

#[tokio::test]
async fn whole_replies_count_requests_tokens_and_durations() {
    let mock = MockUpstream::start(|request| {
        if request.path == "/v1/messages" {
            Script::json(200, fixture("anthropic-messages.json"))
        } else {
            Script::json(200, fixture("openai-chat.json"))
        }
    })
    .await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let fresh = scrape(&proxy).await;
    assert_eq!(total(&fresh, "llmproxy_requests_total"), 0.0);
    assert_eq!(value(&fresh, &tokens("openai", "input")), 0.0);

    for _ in 0..2 {
        assert_eq!(
            post(&proxy.chat_url("openai"), chat_body("m", false))
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        post(&proxy.chat_url("anthropic"), chat_body("m", false))
            .await
            .status(),
        200
    );
    assert_eq!(
        post(&proxy.chat_url("nope-xyz"), chat_body("m", false))
            .await
            .status(),
        404
    );
    assert_eq!(
        post(
            &proxy.chat_url("openai"),
            json!({"model": "m", "messages": []})
        )
        .await
        .status(),
        422
    );
    // Neither of these is a chat request.
    client()
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    scrape(&proxy).await;

    let text = scrape(&proxy).await;
    assert_eq!(value(&text, &requests("openai", 200)), 2.0, "{text}");
    assert_eq!(value(&text, &requests("anthropic", 200)), 1.0);
    assert_eq!(value(&text, &requests("unknown", 404)), 1.0);
    assert_eq!(value(&text, &requests("openai", 422)), 1.0);
    assert_eq!(total(&text, "llmproxy_requests_total"), 5.0);
    assert!(
        !text.contains("nope-xyz"),
        "a client-chosen name is a label"
    );
    assert_eq!(value(&text, &tokens("openai", "input")), 38.0);
    assert_eq!(value(&text, &tokens("openai", "output")), 18.0);
    assert_eq!(value(&text, &tokens("anthropic", "input")), 14.0);
    assert_eq!(value(&text, &tokens("anthropic", "output")), 12.0);
    assert_eq!(
        value(
            &text,
            r#"llmproxy_request_duration_seconds_count{route="chat",provider="openai",stream="false"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            r#"llmproxy_request_duration_seconds_count{route="chat",provider="unknown",stream="false"}"#
        ),
        1.0
    );
    // Once per request sent upstream.
    assert_eq!(value(&text, "llmproxy_overhead_seconds_count"), 3.0);
    assert!(value(&text, "llmproxy_overhead_seconds_sum") > 0.0);
    // Streams only.
    assert_eq!(
        total(&text, "llmproxy_time_to_first_byte_seconds_count"),
        0.0
    );
    assert_eq!(total(&text, "llmproxy_stream_ends_total"), 0.0);
    assert_eq!(value(&text, "llmproxy_in_flight_requests"), 0.0);
    // Registered for the retries to come, never incremented yet.
    assert_eq!(total(&text, "llmproxy_upstream_retries_total"), 0.0);
}

#[tokio::test]
async fn streams_count_their_tokens_and_how_they_ended() {
    let openai = fixture("openai-stream-usage.sse");
    let cut = sse_events(&openai)[..3].to_vec();
    let mock = MockUpstream::start(move |request| {
        let model = request.json()["model"].as_str().unwrap().to_owned();
        match model.as_str() {
            "usage" => Script::sse(sse_events(&fixture("openai-stream-usage.sse"))),
            "cut" => Script::sse([cut.clone(), vec![Step::Close]].concat()),
            "anthropic" => Script::sse(sse_events(&fixture("anthropic-stream.sse"))),
            "stall" => Script::sse([cut[..1].to_vec(), vec![Step::Stall]].concat()),
            _ => Script::sse(sse_events(&fixture("anthropic-stream-error.sse"))),
        }
    })
    .await;
    let proxy = Proxy::start(&mock.url(), &[("HTTP_TIMEOUT_SECONDS", "0.3")]).await;

    for (provider, model) in [
        ("openai", "usage"),
        ("openai", "cut"),
        ("openai", "stall"),
        ("anthropic", "anthropic"),
        ("anthropic", "error"),
    ] {
        let reply = post(&proxy.chat_url(provider), chat_body(model, true)).await;
        assert_eq!(reply.status(), 200);
        reply.bytes().await.unwrap();
    }
    // A stream's record is written before its body ends, so it is counted
    // by the time the client has read it all.
    let text = scrape(&proxy).await;
    assert_eq!(value(&text, &requests("openai", 200)), 3.0, "{text}");
    assert_eq!(value(&text, &requests("anthropic", 200)), 2.0);
    assert_eq!(value(&text, &tokens("openai", "input")), 19.0);
    assert_eq!(value(&text, &tokens("openai", "output")), 9.0);
    // 14 + 12 from the complete stream, 31 and no output from the failed one.
    assert_eq!(value(&text, &tokens("anthropic", "input")), 45.0);
    assert_eq!(value(&text, &tokens("anthropic", "output")), 12.0);
    assert_eq!(value(&text, &stream_ends("openai", "complete")), 1.0);
    assert_eq!(value(&text, &stream_ends("openai", "truncated")), 1.0);
    assert_eq!(value(&text, &stream_ends("openai", "timeout")), 1.0);
    assert_eq!(value(&text, &stream_ends("anthropic", "complete")), 1.0);
    assert_eq!(
        value(&text, &stream_ends("anthropic", "upstream_error")),
        1.0
    );
    assert_eq!(total(&text, "llmproxy_stream_ends_total"), 5.0);
    assert_eq!(
        value(
            &text,
            r#"llmproxy_time_to_first_byte_seconds_count{provider="openai"}"#
        ),
        3.0
    );
    assert_eq!(
        value(
            &text,
            r#"llmproxy_request_duration_seconds_count{route="chat",provider="anthropic",stream="true"}"#
        ),
        2.0
    );
    assert_eq!(value(&text, "llmproxy_overhead_seconds_count"), 5.0);
    assert_eq!(value(&text, "llmproxy_in_flight_requests"), 0.0);
}

#[tokio::test]
async fn an_open_stream_is_in_flight_until_its_client_leaves() {
    let first = sse_events(&fixture("openai-stream.sse"))[..1].to_vec();
    let mock = MockUpstream::always(Script::sse([first, vec![Step::Stall]].concat())).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let reply = post(&proxy.chat_url("openai"), chat_body("m", true)).await;
    let mut body = reply.bytes_stream();
    body.next().await.unwrap().unwrap();
    let text = scrape(&proxy).await;
    assert_eq!(value(&text, "llmproxy_in_flight_requests"), 1.0);
    assert_eq!(total(&text, "llmproxy_requests_total"), 0.0);

    drop(body);
    // The body writes its record before it drops the upstream connection.
    mock.wait_closed(1, Duration::from_secs(5))
        .await
        .expect("the upstream connection was closed");
    let text = scrape(&proxy).await;
    assert_eq!(value(&text, "llmproxy_in_flight_requests"), 0.0);
    assert_eq!(value(&text, &stream_ends("openai", "client_closed")), 1.0);
    assert_eq!(value(&text, &requests("openai", 200)), 1.0);
}

#[tokio::test]
async fn metrics_false_turns_the_route_off() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[("METRICS", "false")]).await;
    let reply = client()
        .get(format!("{}/metrics", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
    assert!(reply.headers().contains_key("x-llmproxy-request-id"));
    assert_eq!(
        reply.json::<serde_json::Value>().await.unwrap(),
        json!({"detail": "not found"})
    );
    // The rest of the server is unchanged.
    let reply = client()
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
}

#[tokio::test]
async fn gemini_tokens_come_from_whole_replies_and_from_the_last_stream_event() {
    let mock = MockUpstream::start(|request| {
        if request.path.contains(":streamGenerateContent") {
            Script::sse(sse_events(&fixture("gemini-stream.sse")))
        } else {
            Script::json(200, fixture("gemini-generate.json"))
        }
    })
    .await;
    let base = format!("{}/v1beta", mock.url());
    let proxy = Proxy::start(&mock.url(), &[("GEMINI_BASE_URL", &base)]).await;
    for stream in [false, true] {
        let reply = post(
            &proxy.chat_url("gemini"),
            chat_body("gemini-2.5-flash", stream),
        )
        .await;
        assert_eq!(reply.status(), 200);
        reply.bytes().await.unwrap();
    }
    let text = scrape(&proxy).await;
    // 11 in and 9 + 27 out, once whole and once streamed (the stream's
    // events carry 30, 33 and 36 output tokens: only the last counts).
    assert_eq!(value(&text, &tokens("gemini", "input")), 22.0, "{text}");
    assert_eq!(value(&text, &tokens("gemini", "output")), 72.0);
    assert_eq!(value(&text, &stream_ends("gemini", "complete")), 1.0);
}
