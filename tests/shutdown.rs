//! SIGTERM / SIGINT on the real binary: stop accepting at once, answer 503
//! on connections still open, let streams finish within the grace period,
//! end the rest with the provider's error event, exit 0.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::Value;

fn slow_openai_stream(events: usize, gap_ms: u64) -> (Script, Vec<u8>) {
    let mut steps = Vec::new();
    let mut all = Vec::new();
    for i in 0..events {
        let event = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}}}}]}}\n\n"
        );
        all.extend_from_slice(event.as_bytes());
        steps.push(Step::Send(event.into_bytes()));
        steps.push(Step::Sleep(Duration::from_millis(gap_ms)));
    }
    steps.push(Step::Send(b"data: [DONE]\n\n".to_vec()));
    all.extend_from_slice(b"data: [DONE]\n\n");
    (Script::sse(steps), all)
}

async fn wait_for_exit(server: &mut ServeProcess, within: Duration) -> std::process::ExitStatus {
    tokio::time::timeout(within, server.child.wait())
        .await
        .expect("the server exited in time")
        .unwrap()
}

#[tokio::test]
async fn sigterm_drains_in_flight_streams_then_exits_0() {
    let (script, expected) = slow_openai_stream(10, 100);
    let mock = MockUpstream::always(script).await;
    let base = format!("{}/v1", mock.url());
    let mut server =
        ServeProcess::start(&[("OPENAI_BASE_URL", &base), ("SHUTDOWN_GRACE_SECONDS", "10")]).await;

    // Two idle keep-alive connections, opened before the signal.
    let mut health_conn = RawConnection::open(&server.url).await.unwrap();
    assert_eq!(
        health_conn.request("GET", "/healthz", "", "").await.status,
        200
    );
    let mut chat_conn = RawConnection::open(&server.url).await.unwrap();
    assert_eq!(
        chat_conn.request("GET", "/healthz", "", "").await.status,
        200
    );

    // A stream in flight.
    let reply = post(
        &format!("{}/v1/chat/openai", server.url),
        chat_body("m", true),
    )
    .await;
    assert_eq!(reply.status(), 200);
    let mut body = reply.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();

    server.signal("TERM");
    // New connections are refused at once.
    let address = server.url.clone();
    let mut refused = false;
    for _ in 0..200 {
        if RawConnection::open(&address).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused, "still accepting connections after SIGTERM");

    // Connections still open are told the server is draining.
    let health = health_conn.request("GET", "/healthz", "", "").await;
    assert_eq!(health.status, 503);
    assert_eq!(
        serde_json::from_slice::<Value>(&health.body).unwrap(),
        serde_json::json!({"status": "draining"})
    );
    let chat_body = chat_body("m", false).to_string();
    let chat = chat_conn
        .request("POST", "/v1/chat/openai", "x-api-key: k\r\n", &chat_body)
        .await;
    assert_eq!(chat.status, 503);
    assert_eq!(chat.headers["retry-after"], "1");

    // The stream in flight finishes untouched.
    while let Some(chunk) = body.next().await {
        received.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(received, expected);
    let status = wait_for_exit(&mut server, Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        mock.requests().len(),
        1,
        "the 503 never reached the upstream"
    );
    let logs = final_logs(&server).await;
    assert!(
        logs.lines().any(|l| l.contains("status=503")
            && l.contains("attempts=0")
            && l.contains("error=shutdown")),
        "{logs}"
    );
    assert!(
        logs.lines()
            .any(|l| l.contains("stream=true") && l.contains("stream_end=complete")),
        "{logs}"
    );
}

/// The logs of a server that has exited, once its last line has been read.
async fn final_logs(server: &ServeProcess) -> String {
    wait_until(
        || server.logs().contains(" stopped"),
        Duration::from_secs(5),
    )
    .await;
    server.logs()
}

#[tokio::test]
async fn after_the_grace_period_open_streams_end_with_a_provider_error_event() {
    let events = sse_events(&fixture("anthropic-stream.sse"));
    let mut steps = events[..2].to_vec();
    steps.push(Step::Sleep(Duration::from_secs(30)));
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let mut server = ServeProcess::start(&[
        ("ANTHROPIC_BASE_URL", &mock.url()),
        ("SHUTDOWN_GRACE_SECONDS", "0.3"),
        ("HTTP_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    let reply = post(
        &format!("{}/v1/chat/anthropic", server.url),
        chat_body("m", true),
    )
    .await;
    let mut body = reply.bytes_stream();
    let mut received = body.next().await.unwrap().unwrap().to_vec();

    server.signal("INT");
    while let Some(Ok(chunk)) = body.next().await {
        received.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(received).unwrap();
    let tail = text.rsplit("\n\n").nth(1).unwrap();
    assert!(tail.starts_with("event: error\ndata: "), "{text}");
    let data: Value =
        serde_json::from_str(tail.trim_start_matches("event: error\ndata: ")).unwrap();
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(data["error"]["message"]
        .as_str()
        .unwrap()
        .contains("shutting down"));
    let status = wait_for_exit(&mut server, Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    // The upstream request was dropped with the stream.
    assert!(mock.wait_closed(1, Duration::from_secs(2)).await.is_some());
    // Its log line says why it ended, with the input tokens of
    // message_start (the stream got no further).
    let logs = final_logs(&server).await;
    let line = logs
        .lines()
        .find(|l| l.contains("stream_end="))
        .unwrap_or_else(|| panic!("no stream line in\n{logs}"));
    for field in [
        "status=200",
        "error=shutdown",
        "stream_end=shutdown",
        "input_tokens=14",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(!line.contains("output_tokens"), "{line}");
}

#[tokio::test]
async fn idle_server_exits_0_at_once_on_sigterm() {
    let mut server = ServeProcess::start(&[]).await;
    let started = std::time::Instant::now();
    server.signal("TERM");
    let status = wait_for_exit(&mut server, Duration::from_secs(5)).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}
