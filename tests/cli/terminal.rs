//! What a user at a terminal meets: a terminal on stdin, the spinner and
//! the coloured error label on a terminal stderr, and Ctrl-C (SIGINT) at
//! each stage of a run.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::common::*;
use crate::support::*;

// For the tests that need a terminal (Linux only).
#[cfg(target_os = "linux")]
use {crate::pty, serde_json::json, std::process::Stdio};

/// Runs `args` with stderr on a pseudo-terminal (stdout a pipe, stdin
/// null); returns the exit code, stdout, and what the terminal showed.
#[cfg(target_os = "linux")]
async fn run_with_terminal_stderr(
    mock: &MockUpstream,
    dir: &TempDir,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> (Option<i32>, String, String) {
    let (controller, terminal) = pty::open();
    let screen = pty::drain(controller);
    let mut command = command(mock, dir, args);
    command
        .envs(extra_env.iter().copied())
        .stderr(Stdio::from(terminal));
    let child = command.spawn().unwrap();
    // The command holds a copy of the terminal; the screen is only complete
    // once every copy is closed.
    drop(command);
    let output = wait(child).await;
    let screen = tokio::task::spawn_blocking(move || screen.join().unwrap())
        .await
        .unwrap();
    (
        output.status.code(),
        text(&output.stdout),
        String::from_utf8_lossy(&screen).into_owned(),
    )
}

/// A terminal on stdin is never read implicitly (that would wait for a
/// Ctrl-D nobody types); `-` reads it until Ctrl-D.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_terminal_on_stdin_is_read_only_for_dash() {
    use std::io::Write;
    let mock = MockUpstream::start(realistic).await;
    let dir = temp_dir();
    for (prompt, typed) in [("Hi", ""), ("-", "typed at a terminal\n\x04")] {
        let (mut controller, terminal) = pty::open();
        let mut command = command(
            &mock,
            &dir,
            &["chat", "openai", "-m", "gpt-4o-mini", prompt],
        );
        command.stdin(Stdio::from(terminal));
        let child = command.spawn().unwrap();
        drop(command);
        controller.write_all(typed.as_bytes()).unwrap();
        // The terminal stays open meanwhile: reading it uninvited would hang.
        let output = wait(child).await;
        assert_eq!(text(&output.stderr), "", "{prompt}");
        assert_eq!(output.status.code(), Some(0), "{prompt}");
        assert_eq!(text(&output.stdout), format!("{REPLY}\n"));
    }
    let requests = mock.requests();
    assert_eq!(requests[0].json()["messages"], json!([user("Hi")]));
    assert_eq!(
        requests[1].json()["messages"],
        json!([user("typed at a terminal\n")])
    );
}

#[tokio::test]
async fn spinner_never_reaches_stdout_or_a_non_terminal_stderr() {
    let mut script = Script::json(200, fixture("openai-chat.json"));
    // Long enough for several spinner ticks (one every 100 ms).
    script.delay = Duration::from_millis(400);
    let mock = MockUpstream::always(script).await;
    let dir = temp_dir();
    let out = run(against(&mock, &dir).args(["chat", "openai", "-m", "gpt-4o-mini", "Hi"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    assert_eq!(text(&out.stderr), "");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn spinner_runs_on_a_terminal_stderr_and_is_cleared() {
    let mut script = Script::json(200, fixture("openai-chat.json"));
    script.delay = Duration::from_millis(400);
    let mock = MockUpstream::always(script).await;
    let dir = temp_dir();
    let args = ["chat", "openai", "-m", "gpt-4o-mini", "Hi"];
    // Terminal emulators set TERM; indicatif draws nothing without it.
    let (code, stdout, screen) =
        run_with_terminal_stderr(&mock, &dir, &args, &[("TERM", "xterm-256color")]).await;
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("{REPLY}\n"));
    assert!(screen.contains("waiting for the reply"), "{screen:?}");
    // The last thing drawn erases the spinner line.
    assert!(screen.ends_with("\r\x1b[2K"), "{screen:?}");

    // A dumb terminal gets no spinner at all.
    let (code, stdout, screen) =
        run_with_terminal_stderr(&mock, &dir, &args, &[("TERM", "dumb")]).await;
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("{REPLY}\n"));
    assert_eq!(screen, "");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn error_label_is_coloured_only_on_a_terminal_without_no_color() {
    let mock = MockUpstream::always(Script::json(401, fixture("anthropic-error-401.json"))).await;
    let dir = temp_dir();
    let args = [
        "chat",
        "anthropic",
        "-m",
        "claude-3-5-sonnet-20240620",
        "Hi",
    ];
    let (code, stdout, screen) = run_with_terminal_stderr(&mock, &dir, &args, &[]).await;
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(
        screen.contains("\x1b[1;31merror:\x1b[0m anthropic returned 401: invalid x-api-key"),
        "{screen:?}"
    );

    let (code, stdout, screen) =
        run_with_terminal_stderr(&mock, &dir, &args, &[("NO_COLOR", "1")]).await;
    assert_eq!((code, stdout.as_str()), (Some(1), ""));
    assert!(!screen.contains('\x1b'), "{screen:?}");
    assert!(
        screen.contains("error: anthropic returned 401: invalid x-api-key"),
        "{screen:?}"
    );

    // Not a terminal: no colour either (see upstream_error_is_one_line_and_exit_1).
}

// ------------------------------------------------------------------ Ctrl-C

#[tokio::test]
async fn sigint_while_waiting_exits_130_and_drops_the_request() {
    let (mock, mut requested) = signalling_mock(Script::never_answer()).await;
    let dir = temp_dir();
    let child = spawn(&mock, &dir, &["chat", "openai", "-m", "gpt-4o-mini", "Hi"]);
    tokio::time::timeout(Duration::from_secs(10), requested.recv())
        .await
        .expect("the request reached the mock");
    interrupt(&child);
    let output = wait(child).await;
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(text(&output.stdout), "");
    assert_eq!(text(&output.stderr), "");
    assert!(
        mock.wait_closed(1, Duration::from_secs(5)).await.is_some(),
        "the upstream connection stayed open"
    );
}

#[tokio::test]
async fn sigint_mid_stream_keeps_printed_tokens_and_exits_130() {
    let events = sse_events(&fixture("anthropic-stream.sse"));
    // message_start, content_block_start, ping, the "Hello" delta; then silence.
    let mut steps = events[..4].to_vec();
    steps.push(Step::Stall);
    let mock = MockUpstream::always(Script::sse(steps)).await;
    let dir = temp_dir();
    let mut child = spawn(
        &mock,
        &dir,
        &[
            "stream",
            "anthropic",
            "-m",
            "claude-3-5-sonnet-20240620",
            "Hi",
        ],
    );
    let mut stdout = child.stdout.take().unwrap();
    assert_eq!(read_until(&mut stdout, "Hello").await, "Hello");
    interrupt(&child);
    let output = wait(child).await;
    assert_eq!(output.status.code(), Some(130));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "");
    assert_eq!(text(&output.stderr), "");
    assert!(mock.wait_closed(1, Duration::from_secs(5)).await.is_some());
}

/// Ctrl-C still works while the process is blocked writing to a pipe whose
/// reader has stopped reading (stdout writes block the command itself).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn sigint_while_blocked_on_a_full_stdout_pipe_exits_130() {
    use std::os::fd::AsRawFd;
    let (reader, writer) = std::io::pipe().unwrap();
    // Fill the pipe so the child's first write blocks.
    let fd = writer.as_raw_fd();
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        let chunk = [b'x'; 4096];
        while libc::write(fd, chunk.as_ptr().cast(), chunk.len()) > 0 {}
        libc::fcntl(fd, libc::F_SETFL, flags);
    }
    let mock = MockUpstream::always(Script::sse(sse_events(&fixture("openai-stream.sse")))).await;
    let dir = temp_dir();
    let child = command(
        &mock,
        &dir,
        &["stream", "openai", "-m", "gpt-4o-mini", "Hi"],
    )
    .stdout(writer)
    .spawn()
    .unwrap();
    // Wait until one of its threads sleeps in the kernel's pipe write.
    let pid = child.id().unwrap();
    let blocked = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|task| {
                std::fs::read_to_string(task.path().join("wchan"))
                    .is_ok_and(|w| w.ends_with("pipe_write"))
            })
    };
    wait_until(blocked, Duration::from_secs(10)).await;
    interrupt(&child);
    let output = wait(child).await;
    assert_eq!(output.status.code(), Some(130));
    assert_eq!(text(&output.stderr), "");
    drop(reader);
}
