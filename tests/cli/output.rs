//! What the commands print: `chat --json`, streamed deltas as they arrive,
//! `stream --raw`, and a stdout whose reader goes away.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn json_output_is_the_servers_normalized_object() {
    let mock = MockUpstream::start(realistic).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let dir = temp_dir();
    for (provider, model, expected) in [
        (
            "openai",
            "gpt-4o-mini",
            json!({"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "content": REPLY,
                "stop_reason": "stop", "usage": {"input_tokens": 19, "output_tokens": 9},
                "id": "chatcmpl-CgT4kq8ZbN2xWv7LmR5sYd1JpFa9E"}),
        ),
        (
            "anthropic",
            "claude-3-5-sonnet-20240620",
            json!({"provider": "anthropic", "model": "claude-sonnet-4-5-20250929", "content": REPLY,
                "stop_reason": "stop", "usage": {"input_tokens": 14, "output_tokens": 12},
                "id": "msg_01HkR7mQ2vXsT9bLpWd4cYzN"}),
        ),
    ] {
        let out =
            run(against(&mock, &dir).args(["chat", provider, "-m", model, "--json", "Hi"])).await;
        assert_eq!(text(&out.stderr), "");
        assert_eq!(out.status.code(), Some(0));
        let stdout = text(&out.stdout);
        assert!(
            stdout.ends_with("}\n") && stdout.lines().count() == 1,
            "{stdout:?}"
        );
        let printed: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(printed, expected, "{provider}");

        let served: Value = post(&proxy.chat_url(provider), chat_body(model, false))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            printed, served,
            "{provider}: chat --json differs from serve"
        );
    }
}

#[tokio::test]
async fn stream_writes_each_delta_the_moment_it_arrives() {
    let events = sse_events(&fixture("openai-stream.sse"));
    // events[0] is the role chunk, events[1] carries "Hello".
    let pause = Duration::from_millis(500);
    let mut steps = events[..2].to_vec();
    steps.push(Step::Sleep(pause));
    steps.extend_from_slice(&events[2..]);
    let (mock, mut requested) = signalling_mock(Script::sse(steps)).await;
    let dir = temp_dir();
    let mut child = spawn(
        &mock,
        &dir,
        &["stream", "openai", "-m", "gpt-4o-mini", "Hi"],
    );
    let mut stdout = child.stdout.take().unwrap();

    // Every read with the moment it completed.
    let mut reads: Vec<(Instant, Vec<u8>)> = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .expect("output within 10 s")
            .unwrap();
        if n == 0 {
            break;
        }
        reads.push((Instant::now(), buf[..n].to_vec()));
    }
    let output = wait(child).await;
    assert_eq!(text(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));

    // The mock sent the second delta no earlier than `pause` after the
    // request arrived: whatever was read before then was flushed at once.
    let second_sent = requested.recv().await.unwrap() + pause;
    let before: Vec<u8> = reads
        .iter()
        .filter(|(at, _)| *at < second_sent)
        .flat_map(|(_, b)| b.clone())
        .collect();
    let after: Vec<u8> = reads
        .iter()
        .filter(|(at, _)| *at >= second_sent)
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert_eq!(
        text(&before),
        "Hello",
        "read before the second delta was sent"
    );
    assert_eq!(text(&after), "! How can I help you today?\n");
}

#[tokio::test]
async fn raw_stream_is_the_upstream_bytes_unchanged() {
    let mock = MockUpstream::start(realistic).await;
    let dir = temp_dir();
    for (provider, model, fixture_name) in [
        ("openai", "gpt-4o-mini", "openai-stream.sse"),
        (
            "anthropic",
            "claude-3-5-sonnet-20240620",
            "anthropic-stream.sse",
        ),
    ] {
        let out =
            run(against(&mock, &dir).args(["stream", provider, "-m", model, "--raw", "Hi"])).await;
        assert_eq!(text(&out.stderr), "");
        assert_eq!(out.status.code(), Some(0));
        assert!(
            out.stdout == fixture(fixture_name),
            "{provider}: --raw output differs from {fixture_name}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(mock.requests().iter().all(|r| r.json()["stream"] == true));
}

// ------------------------------------------------------------ closed pipe

#[tokio::test]
async fn closed_pipe_mid_stream_ends_quietly_with_exit_0() {
    // One delta far larger than a pipe buffer, then silence: the child is
    // still writing when the reader goes away, and would hang on the stall
    // (then time out with exit 1) if a closed pipe did not end it.
    let big = "x".repeat(1 << 20);
    let event = format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {"content": big}}]})
    );
    let mock = MockUpstream::always(Script::sse(vec![
        Step::Send(event.into_bytes()),
        Step::Stall,
    ]))
    .await;
    let dir = temp_dir();
    let mut child = spawn(
        &mock,
        &dir,
        &["stream", "openai", "-m", "gpt-4o-mini", "Hi"],
    );
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 20];
    stdout.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"xxxxxxxxxxxxxxxxxxxx");
    drop(stdout);
    let output = wait(child).await;
    assert_eq!(text(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
}

/// A stdout whose reader is already gone: the first write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

#[tokio::test]
async fn closed_pipe_before_the_reply_ends_quietly_with_exit_0() {
    let mock = MockUpstream::start(realistic).await;
    let dir = temp_dir();
    for args in [
        vec!["chat", "openai", "-m", "gpt-4o-mini", "Hi"],
        vec![
            "chat",
            "anthropic",
            "-m",
            "claude-3-5-sonnet-20240620",
            "--json",
            "Hi",
        ],
        vec!["stream", "openai", "-m", "gpt-4o-mini", "Hi"],
        vec![
            "stream",
            "anthropic",
            "-m",
            "claude-3-5-sonnet-20240620",
            "--raw",
            "Hi",
        ],
        vec!["completions", "bash"],
    ] {
        // Not `output()`: tokio's replaces the stdout given here with a pipe.
        let child = command(&mock, &dir, &args)
            .stdout(closed_pipe())
            .spawn()
            .unwrap();
        let output = wait(child).await;
        assert_eq!(text(&output.stderr), "", "{args:?}");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
    }
    assert_eq!(mock.requests().len(), 4);
}
