//! Streams that break: an error event or chunk, a cut before the end
//! marker, a stall. What was printed stays printed, and the exit code is 1.

use crate::common::*;
use crate::support::*;

/// The text deltas of the Anthropic error fixture, which stops with an
/// `overloaded_error` event and no `message_stop`.
const ERROR_FIXTURE_TEXT: &str = "Here is a short overview of the three main options:\n\n1.";

#[tokio::test]
async fn anthropic_error_event_keeps_printed_tokens_and_exits_1() {
    let mock = MockUpstream::always(Script::sse(sse_events(&fixture(
        "anthropic-stream-error.sse",
    ))))
    .await;
    let dir = temp_dir();
    let out = run(against(&mock, &dir).args([
        "stream",
        "anthropic",
        "-m",
        "claude-3-5-sonnet-20240620",
        "Hi",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), format!("{ERROR_FIXTURE_TEXT}\n"));
    assert_eq!(
        text(&out.stderr),
        "error: anthropic stream failed: overloaded_error: Overloaded\n"
    );
}

#[tokio::test]
async fn openai_error_chunk_keeps_printed_tokens_and_exits_1() {
    let mut steps = sse_events(&fixture("openai-stream.sse"))[..3].to_vec();
    steps.push(Step::Send(
        br#"data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}

"#
        .to_vec(),
    ));
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let dir = temp_dir();
    let out = run(against(&mock, &dir).args(["stream", "openai", "-m", "gpt-4o-mini", "Hi"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "Hello!\n");
    assert_eq!(
        text(&out.stderr),
        "error: openai stream failed: The server had an error while processing your request.\n"
    );
}

#[tokio::test]
async fn stream_cut_before_its_end_marker_exits_1() {
    let full = fixture("openai-stream.sse");
    let cut = full
        .strip_suffix(b"data: [DONE]\n\n")
        .expect("the fixture ends with [DONE]");
    let without_done = sse_events(cut);
    let dir = temp_dir();

    // The connection closes in the middle of the body.
    let mut steps = without_done[..4].to_vec();
    steps.push(Step::Close);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let out = run(against(&mock, &dir).args(["stream", "openai", "-m", "gpt-4o-mini", "Hi"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "Hello! How\n");
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("openai"), "{stderr}");
    assert!(stderr.contains("unexpected EOF"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // The body ends cleanly, but without `data: [DONE]`.
    let mock = MockUpstream::always(Script::sse(without_done)).await;
    let out = run(against(&mock, &dir).args(["stream", "openai", "-m", "gpt-4o-mini", "Hi"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    assert_eq!(
        text(&out.stderr),
        "error: openai stream ended before its end marker\n"
    );

    // --raw: the bytes that came stay written, and it is still an error.
    let out =
        run(against(&mock, &dir).args(["stream", "openai", "-m", "gpt-4o-mini", "--raw", "Hi"]))
            .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout == cut, "--raw did not write the bytes that came");
    assert_eq!(
        text(&out.stderr),
        "error: openai stream ended before its end marker\n"
    );
}

/// `--raw` passes an in-stream error event through unchanged, and still
/// reports it: exit 1 with the error on stderr.
#[tokio::test]
async fn raw_stream_with_an_error_event_exits_1() {
    let stream = fixture("anthropic-stream-error.sse");
    let mock = MockUpstream::always(Script::sse(sse_events(&stream))).await;
    let dir = temp_dir();
    let out = run(against(&mock, &dir).args([
        "stream",
        "anthropic",
        "-m",
        "claude-3-5-sonnet-20240620",
        "--raw",
        "Hi",
    ]))
    .await;
    assert!(
        out.stdout == stream,
        "--raw output differs from the fixture"
    );
    assert_eq!(
        text(&out.stderr),
        "error: anthropic stream failed: overloaded_error: Overloaded\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn stream_stall_times_out_keeping_printed_tokens() {
    let mut steps = sse_events(&fixture("openai-stream.sse"))[..2].to_vec();
    steps.push(Step::Stall);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let dir = temp_dir();
    let out = run(against(&mock, &dir).env("HTTP_TIMEOUT_SECONDS", "1").args([
        "stream",
        "openai",
        "-m",
        "gpt-4o-mini",
        "Hi",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "Hello\n");
    assert_eq!(
        text(&out.stderr),
        "error: openai did not answer within 1s\n"
    );
}
