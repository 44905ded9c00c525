//! Black-box tests of `llmproxy chat` and `llmproxy stream`: the real
//! binary, a cleaned environment, an empty working directory, and the
//! scripted mock upstream from `common` on 127.0.0.1. Nothing goes online.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

// ---------------------------------------------------------------- helpers

/// A fresh directory under the system temp dir, removed on drop. Used as
/// the working directory so that no developer `.env` is picked up.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "llmproxy-cli-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, contents: &str) -> &Self {
        std::fs::write(self.0.join(name), contents).unwrap();
        self
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real binary with no inherited environment, run in `dir`.
fn llmproxy(dir: &TempDir) -> assert_cmd::Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("llmproxy");
    cmd.env_clear()
        .current_dir(dir.path())
        .timeout(Duration::from_secs(20));
    cmd
}

/// Both base URLs pointing at `mock`, a key for each provider, and a short
/// timeout, as environment variables.
fn upstream_env(mock: &MockUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_BASE_URL", format!("{}/v1", mock.url())),
        ("ANTHROPIC_BASE_URL", mock.url()),
        ("OPENAI_API_KEY", "sk-openai-test".to_owned()),
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
        ("HTTP_TIMEOUT_SECONDS", "5".to_owned()),
    ]
}

/// `llmproxy` configured for `mock`.
fn against(mock: &MockUpstream, dir: &TempDir) -> assert_cmd::Command {
    let mut cmd = llmproxy(dir);
    cmd.envs(upstream_env(mock));
    cmd
}

/// Runs `cmd` (taken out of the builder chain it ends) to completion on a
/// blocking thread, so that the mock, which lives on the test's runtime,
/// keeps serving meanwhile. Stdin is an empty pipe unless the test wrote
/// some.
async fn run(cmd: &mut assert_cmd::Command) -> Output {
    let mut cmd = std::mem::replace(cmd, assert_cmd::Command::new("unused"));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The same, for tests that need a live child: stdin closed, stdout and
/// stderr piped.
fn spawn(mock: &MockUpstream, dir: &TempDir, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"))
        .args(args)
        .env_clear()
        .envs(upstream_env(mock))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Answers like the real upstreams: the chat or stream fixture of the
/// provider the path belongs to.
fn realistic(request: &Recorded) -> Script {
    let stream = request.json()["stream"] == true;
    match (request.path.as_str(), stream) {
        ("/v1/chat/completions", false) => Script::json(200, fixture("openai-chat.json")),
        ("/v1/chat/completions", true) => Script::sse(sse_events(&fixture("openai-stream.sse"))),
        ("/v1/messages", false) => Script::json(200, fixture("anthropic-messages.json")),
        ("/v1/messages", true) => Script::sse(sse_events(&fixture("anthropic-stream.sse"))),
        _ => Script::json(404, r#"{"error":{"message":"unexpected path"}}"#),
    }
}

/// A mock that reports the moment each request arrives.
async fn signalling_mock(
    script: Script,
) -> (MockUpstream, tokio::sync::mpsc::UnboundedReceiver<Instant>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mock = MockUpstream::start(move |_| {
        let _ = tx.send(Instant::now());
        script.clone()
    })
    .await;
    (mock, rx)
}

const REPLY: &str = "Hello! How can I help you today?";

/// The text deltas of the Anthropic error fixture, which stops with an
/// `overloaded_error` event and no `message_stop`.
const ERROR_FIXTURE_TEXT: &str = "Here is a short overview of the three main options:\n\n1.";

/// Sends SIGINT, as Ctrl-C in a terminal does.
fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("child is running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn wait(child: tokio::process::Child) -> Output {
    tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("llmproxy exited within 10 s")
        .unwrap()
}

/// Reads `stdout` until `needle` has arrived; returns what was read.
async fn read_until(stdout: &mut tokio::process::ChildStdout, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(10), stdout.read(&mut buf))
            .await
            .expect("output within 10 s")
            .unwrap();
        assert!(n > 0, "stdout ended before {needle:?}; got {seen:?}");
        seen.extend_from_slice(&buf[..n]);
    }
    text(&seen)
}

/// A pseudo-terminal, to see what a user at a terminal sees on stderr.
#[cfg(target_os = "linux")]
mod pty {
    use std::ffi::CStr;
    use std::fs::{File, OpenOptions};
    use std::io::Read;
    use std::os::fd::FromRawFd;
    use std::os::raw::{c_char, c_int};
    use std::os::unix::fs::OpenOptionsExt;

    extern "C" {
        fn posix_openpt(flags: c_int) -> c_int;
        fn grantpt(fd: c_int) -> c_int;
        fn unlockpt(fd: c_int) -> c_int;
        fn ptsname_r(fd: c_int, buf: *mut c_char, len: usize) -> c_int;
    }
    const O_RDWR: c_int = 0o2;
    const O_NOCTTY: c_int = 0o400;

    /// Returns the controlling side (read what the child wrote) and the
    /// terminal to hand to the child.
    pub fn open() -> (File, File) {
        // SAFETY: plain libc calls on a descriptor this function owns; the
        // name buffer outlives the calls and is NUL-terminated by ptsname_r.
        unsafe {
            let fd = posix_openpt(O_RDWR | O_NOCTTY);
            assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
            let controller = File::from_raw_fd(fd);
            assert_eq!(grantpt(fd), 0, "grantpt");
            assert_eq!(unlockpt(fd), 0, "unlockpt");
            let mut name = [0 as c_char; 128];
            assert_eq!(ptsname_r(fd, name.as_mut_ptr(), name.len()), 0, "ptsname_r");
            let path = CStr::from_ptr(name.as_ptr()).to_str().unwrap().to_owned();
            let terminal = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(O_NOCTTY)
                .open(path)
                .unwrap();
            (controller, terminal)
        }
    }

    /// Everything written to the terminal until its last holder closes it
    /// (then Linux answers reads with EIO).
    pub fn drain(mut controller: File) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = controller.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            seen
        })
    }
}

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
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"));
    command
        .args(args)
        .env_clear()
        .envs(upstream_env(mock))
        .envs(extra_env.iter().copied())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(terminal))
        .kill_on_drop(true);
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

// ------------------------------------------------------ prompt and request

#[tokio::test]
async fn prompt_words_are_joined_and_options_reach_the_openai_body() {
    let mock = MockUpstream::start(realistic).await;
    let dir = TempDir::new();
    let out = run(against(&mock, &dir).args([
        "chat",
        "openai",
        "-m",
        "gpt-4o-mini",
        "-s",
        "Be terse",
        "--max-tokens",
        "50",
        "--temperature",
        "0.25",
        "Hello",
        "there",
    ]))
    .await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    assert_eq!(out.status.code(), Some(0));

    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.headers["authorization"], "Bearer sk-openai-test");
    // A non-default OPENAI_BASE_URL means `max_tokens` (see the README).
    assert_eq!(
        request.json(),
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be terse"},
                {"role": "user", "content": "Hello there"}
            ],
            "max_tokens": 50,
            "temperature": 0.25
        })
    );
}

#[tokio::test]
async fn anthropic_stream_sends_system_max_tokens_and_temperature() {
    let mock = MockUpstream::start(realistic).await;
    let dir = TempDir::new();
    let out = run(against(&mock, &dir).args([
        "stream",
        "anthropic",
        "-m",
        "claude-3-5-sonnet-20240620",
        "-s",
        "Be terse",
        "--max-tokens",
        "64",
        "--temperature",
        "0.5",
        "Write a haiku",
    ]))
    .await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    assert_eq!(out.status.code(), Some(0));

    let request = &mock.requests()[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.headers["x-api-key"], "sk-ant-test");
    assert_eq!(request.headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        request.json(),
        json!({
            "model": "claude-3-5-sonnet-20240620",
            "max_tokens": 64,
            "system": "Be terse",
            "messages": [{"role": "user", "content": "Write a haiku"}],
            "stream": true,
            "temperature": 0.5
        })
    );
}

#[tokio::test]
async fn model_comes_from_llmproxy_model_and_api_key_flag_wins_over_env() {
    let mock = MockUpstream::start(realistic).await;
    let dir = TempDir::new();
    let out = run(against(&mock, &dir)
        .env("LLMPROXY_MODEL", "gpt-from-env")
        .args(["chat", "openai", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(against(&mock, &dir)
        .env("LLMPROXY_MODEL", "gpt-from-env")
        .args([
            "chat",
            "openai",
            "-m",
            "gpt-flag",
            "--api-key",
            "sk-flag",
            "Hi",
        ]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let requests = mock.requests();
    assert_eq!(requests[0].json()["model"], "gpt-from-env");
    assert_eq!(
        requests[0].headers["authorization"],
        "Bearer sk-openai-test"
    );
    assert_eq!(requests[1].json()["model"], "gpt-flag");
    assert_eq!(requests[1].headers["authorization"], "Bearer sk-flag");
}

/// The user message the mock received for one run of `chat openai`.
async fn user_messages(args: &[&str], stdin: Option<&str>, dir: &TempDir) -> Vec<Value> {
    let mock = MockUpstream::start(realistic).await;
    let mut cmd = against(&mock, dir);
    cmd.args(["chat", "openai", "-m", "gpt-4o-mini"]).args(args);
    if let Some(stdin) = stdin {
        cmd.write_stdin(stdin);
    }
    let out = run(&mut cmd).await;
    assert_eq!(text(&out.stderr), "", "{args:?}");
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    requests[0].json()["messages"]
        .as_array()
        .unwrap()
        .to_owned()
}

fn user(content: &str) -> Value {
    json!({"role": "user", "content": content})
}

#[tokio::test]
async fn prompt_from_stdin_arguments_or_both() {
    let dir = TempDir::new();
    // Only arguments (stdin is an empty pipe).
    assert_eq!(
        user_messages(&["Summarize", "this"], None, &dir).await,
        [user("Summarize this")]
    );
    // Only stdin: its trailing newline is not part of the prompt.
    assert_eq!(
        user_messages(&[], Some("First line\nsecond line\n"), &dir).await,
        [user("First line\nsecond line")]
    );
    // Both: stdin text first, a blank line, then the arguments.
    assert_eq!(
        user_messages(&["Summarize this"], Some("notes: buy milk\n"), &dir).await,
        [user("notes: buy milk\n\nSummarize this")]
    );
    // `-` reads only stdin, exactly as given.
    assert_eq!(
        user_messages(&["-"], Some("Only this\n"), &dir).await,
        [user("Only this\n")]
    );
    // --no-stdin ignores piped input.
    assert_eq!(
        user_messages(&["--no-stdin", "Hi"], Some("ignored"), &dir).await,
        [user("Hi")]
    );
}

/// A terminal on stdin is never read implicitly (that would wait for a
/// Ctrl-D nobody types); `-` reads it until Ctrl-D.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_terminal_on_stdin_is_read_only_for_dash() {
    use std::io::Write;
    let mock = MockUpstream::start(realistic).await;
    let dir = TempDir::new();
    for (prompt, typed) in [("Hi", ""), ("-", "typed at a terminal\n\x04")] {
        let (mut controller, terminal) = pty::open();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"));
        command
            .args(["chat", "openai", "-m", "gpt-4o-mini", prompt])
            .env_clear()
            .envs(upstream_env(&mock))
            .current_dir(dir.path())
            .stdin(Stdio::from(terminal))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
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
async fn messages_from_a_file_or_stdin_then_the_prompt() {
    let history = r#"[{"role":"system","content":"You are a pirate."},
        {"role":"user","content":"Hi"},{"role":"assistant","content":"Arr!"}]"#;
    let dir = TempDir::new();
    dir.write("chat.json", history);
    let expected = [
        json!({"role": "system", "content": "You are a pirate."}),
        user("Hi"),
        json!({"role": "assistant", "content": "Arr!"}),
        user("And now?"),
    ];
    assert_eq!(
        user_messages(&["--messages", "chat.json", "And now?"], None, &dir).await,
        expected
    );
    assert_eq!(
        user_messages(&["--messages", "-", "And now?"], Some(history), &dir).await,
        expected
    );
    // The messages alone are a prompt too; -s comes first.
    assert_eq!(
        user_messages(&["-s", "Be terse", "--messages", "chat.json"], None, &dir).await,
        [
            json!({"role": "system", "content": "Be terse"}),
            expected[0].clone(),
            expected[1].clone(),
            expected[2].clone()
        ]
    );
}

#[tokio::test]
async fn dotenv_in_the_working_directory_is_honoured_and_env_wins() {
    let mock = MockUpstream::start(realistic).await;
    let dir = TempDir::new();
    dir.write(
        ".env",
        &format!(
            "OPENAI_BASE_URL={}/v1\nOPENAI_API_KEY=sk-from-dotenv\nLLMPROXY_MODEL=gpt-from-dotenv\n",
            mock.url()
        ),
    );
    let out = run(llmproxy(&dir).args(["chat", "openai", "Hi"])).await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    assert_eq!(out.status.code(), Some(0));
    // A variable already in the environment is not overridden by `.env`.
    let out = run(llmproxy(&dir)
        .env("OPENAI_API_KEY", "sk-from-env")
        .args(["chat", "openai", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].json()["model"], "gpt-from-dotenv");
    assert_eq!(
        requests[0].headers["authorization"],
        "Bearer sk-from-dotenv"
    );
    assert_eq!(requests[1].headers["authorization"], "Bearer sk-from-env");
}

// ----------------------------------------------------------------- output

#[tokio::test]
async fn json_output_is_the_servers_normalized_object() {
    let mock = MockUpstream::start(realistic).await;
    let proxy = Proxy::start(&mock.url(), &[]).await;
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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

#[tokio::test]
async fn spinner_never_reaches_stdout_or_a_non_terminal_stderr() {
    let mut script = Script::json(200, fixture("openai-chat.json"));
    // Long enough for several spinner ticks (one every 100 ms).
    script.delay = Duration::from_millis(400);
    let mock = MockUpstream::always(script).await;
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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

// ------------------------------------------------------------ exit codes

#[tokio::test]
async fn upstream_error_is_one_line_and_exit_1() {
    let body = fixture("openai-error-401.json");
    let message = serde_json::from_slice::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("Incorrect API key provided"));
    let mock = MockUpstream::always(Script::json(401, body)).await;
    let dir = TempDir::new();
    for command in ["chat", "stream"] {
        let out =
            run(against(&mock, &dir).args([command, "openai", "-m", "gpt-4o-mini", "Hi"])).await;
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert_eq!(text(&out.stdout), "", "{command}");
        assert_eq!(
            text(&out.stderr),
            format!("error: openai returned 401: {message}\n"),
            "{command}"
        );
    }
}

#[tokio::test]
async fn connection_refused_is_exit_1() {
    // A port that was just free: nothing listens there any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new();
    let out = run(llmproxy(&dir)
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .args(["chat", "openai", "-m", "gpt-4o-mini", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: could not reach openai: "),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn upstream_silence_times_out_with_exit_1() {
    let mock = MockUpstream::always(Script::never_answer()).await;
    let dir = TempDir::new();
    let started = Instant::now();
    let out = run(against(&mock, &dir).env("HTTP_TIMEOUT_SECONDS", "1").args([
        "chat",
        "openai",
        "-m",
        "gpt-4o-mini",
        "Hi",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "error: openai did not answer within 1s\n"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Arguments, extra environment, stdin, and the expected stderr (or how it
/// starts, where the rest comes from the OS or clap).
type UsageCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str, &'a str);

#[tokio::test]
async fn usage_errors_exit_2_and_send_nothing() {
    let mock = MockUpstream::start(realistic).await;
    let dir = TempDir::new();
    dir.write("bad-role.json", r#"[{"role":"robot","content":"hi"}]"#)
        .write("not-json.json", "[{");
    let cases: Vec<UsageCase> = vec![
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini"],
            vec![],
            "",
            "error: no prompt: give it as arguments, pipe it on stdin, or pass --messages FILE\n",
        ),
        (
            vec!["stream", "openai", "-m", "gpt-4o-mini", "-s", "only a system prompt"],
            vec![],
            "  \n",
            "error: no prompt: give it as arguments, pipe it on stdin, or pass --messages FILE\n",
        ),
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini", "Hi"],
            vec![("OPENAI_API_KEY", "")],
            "",
            "error: missing API key: set OPENAI_API_KEY or pass --api-key\n",
        ),
        (
            // The OpenAI key is set, but it is Anthropic's that counts.
            vec!["stream", "anthropic", "-m", "claude-3-5-sonnet-20240620", "Hi"],
            vec![("ANTHROPIC_API_KEY", "")],
            "",
            "error: missing API key: set ANTHROPIC_API_KEY or pass --api-key\n",
        ),
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini", "--messages", "bad-role.json"],
            vec![],
            "",
            "error: --messages[0].role: must be one of system, user, assistant\n",
        ),
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini", "--messages", "not-json.json"],
            vec![],
            "",
            "error: --messages is not valid JSON: ",
        ),
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini", "--messages", "missing.json"],
            vec![],
            "",
            "error: could not read --messages missing.json: ",
        ),
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini", "--messages", "-", "-"],
            vec![],
            "[]",
            "error: stdin cannot be both the prompt (-) and --messages -\n",
        ),
        (
            vec!["chat", "openai", "-m", "gpt-4o-mini", "Hi"],
            vec![("HTTP_TIMEOUT_SECONDS", "soon")],
            "",
            "error: invalid HTTP_TIMEOUT_SECONDS=\"soon\": expected a number of seconds greater than 0\n",
        ),
        // clap's own errors
        (
            vec!["chat", "gemini", "-m", "x", "Hi"],
            vec![],
            "",
            "error: invalid value 'gemini' for '<PROVIDER>'\n  [possible values: openai, anthropic]",
        ),
        (
            vec!["chat", "openai", "Hi"],
            vec![],
            "",
            "error: the following required arguments were not provided:\n  --model <MODEL>",
        ),
        (
            vec!["chat", "openai", "-m", "", "Hi"],
            vec![],
            "",
            "error: a value is required for '--model <MODEL>' but none was supplied",
        ),
        (
            vec!["chat", "openai", "-m", "m", "--temperature", "3", "Hi"],
            vec![],
            "",
            "error: invalid value '3' for '--temperature <TEMPERATURE>': expected a number from 0 to 2",
        ),
        (
            vec!["stream", "openai", "-m", "m", "--max-tokens", "0", "Hi"],
            vec![],
            "",
            "error: invalid value '0' for '--max-tokens <MAX_TOKENS>': 0 is not in 1..",
        ),
        (
            vec!["chat", "openai", "-m", "m", "--raw", "Hi"],
            vec![],
            "",
            "error: unexpected argument '--raw' found",
        ),
        (vec!["chat"], vec![], "", "error: the following required arguments were not provided:"),
    ];
    for (args, env, stdin, expected) in cases {
        let out = run(against(&mock, &dir)
            .envs(env)
            .args(&args)
            .write_stdin(stdin))
        .await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        assert!(
            stderr.starts_with(expected),
            "{args:?}\nexpected: {expected:?}\n     got: {stderr:?}"
        );
    }
    assert!(
        mock.requests().is_empty(),
        "a usage error reached the upstream"
    );
}

#[tokio::test]
async fn sigint_while_waiting_exits_130_and_drops_the_request() {
    let (mock, mut requested) = signalling_mock(Script::never_answer()).await;
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"))
        .args(["stream", "openai", "-m", "gpt-4o-mini", "Hi"])
        .env_clear()
        .envs(upstream_env(&mock))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
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

// ------------------------------------------------------- broken streams

#[tokio::test]
async fn anthropic_error_event_keeps_printed_tokens_and_exits_1() {
    let mock = MockUpstream::always(Script::sse(sse_events(&fixture(
        "anthropic-stream-error.sse",
    ))))
    .await;
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();

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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
    let dir = TempDir::new();
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
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"))
            .args(&args)
            .env_clear()
            .envs(upstream_env(&mock))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = wait(child).await;
        assert_eq!(text(&output.stderr), "", "{args:?}");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
    }
    assert_eq!(mock.requests().len(), 4);
}

// ------------------------------------------------------------------- help

/// The indented lines after `Examples:` in a help text.
fn examples(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Examples:")
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .map(|line| line.trim().to_owned())
        .collect()
}

#[tokio::test]
async fn help_of_every_subcommand_shows_examples() {
    let dir = TempDir::new();
    for (command, must_show) in [
        ("chat", r#"llmproxy chat openai -m gpt-4o-mini "Hello""#),
        (
            "stream",
            r#"llmproxy stream anthropic -m claude-3-5-sonnet-20240620 -s "Be terse" "Write a haiku""#,
        ),
        ("serve", "llmproxy serve --port 8000"),
        ("completions", "llmproxy completions bash"),
    ] {
        let out = run(llmproxy(&dir).args([command, "--help"])).await;
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out.stdout);
        let examples = examples(&help);
        assert!(
            examples.iter().any(|e| e.starts_with(must_show)),
            "{command} --help lacks {must_show:?}:\n{help}"
        );
    }
    let out = run(llmproxy(&dir).args(["chat", "--help"])).await;
    let help = text(&out.stdout);
    assert!(
        help.contains("[possible values: openai, anthropic]"),
        "{help}"
    );
    assert!(help.contains("[env: LLMPROXY_MODEL=]"), "{help}");
}

/// A working directory with the files the examples mention.
fn examples_dir() -> TempDir {
    let dir = TempDir::new();
    dir.write("notes.txt", "Milk, eggs, flour.\n")
        .write("question.txt", "What is the capital of France?\n")
        .write(
            "chat.json",
            r#"[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]"#,
        );
    dir
}

/// Runs one documented example line with `sh`, llmproxy on the PATH and
/// pointed at `mock`; checks that it succeeded and sent one request.
async fn run_example(mock: &MockUpstream, dir: &TempDir, example: &str) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_llmproxy")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let before = mock.requests().len();
    let mut sh = assert_cmd::Command::new("sh");
    sh.env_clear()
        .envs(upstream_env(mock))
        .env("PATH", path)
        .current_dir(dir.path())
        .timeout(Duration::from_secs(20))
        .args(["-c", example]);
    let out = run(&mut sh).await;
    // In a pipeline the status is the last command's: stderr and the mock
    // show that llmproxy itself succeeded.
    assert_eq!(text(&out.stderr), "", "{example}");
    assert_eq!(out.status.code(), Some(0), "{example}");
    assert_eq!(mock.requests().len(), before + 1, "{example}");
    let redirected = example.contains(" > ");
    assert_eq!(out.stdout.is_empty(), redirected, "{example}");
    out
}

#[tokio::test]
async fn chat_and_stream_help_examples_run_as_written() {
    let mock = MockUpstream::start(realistic).await;
    let dir = examples_dir();
    for command in ["chat", "stream"] {
        let out = run(llmproxy(&dir).args([command, "--help"])).await;
        let examples = examples(&text(&out.stdout));
        assert!(examples.len() >= 3, "{command}: {examples:?}");
        for example in examples {
            assert!(
                example.contains(&format!("llmproxy {command} ")),
                "{example}"
            );
            run_example(&mock, &dir, &example).await;
        }
    }
}

/// The lines of `sh` blocks in the README's "Command line" section that
/// run `chat` or `stream`.
fn readme_examples() -> Vec<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Command line\n")
        .nth(1)
        .expect("README.md has a \"## Command line\" section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let mut in_sh = false;
    let mut lines = Vec::new();
    for line in section.lines().map(str::trim) {
        if line.starts_with("```") {
            in_sh = line == "```sh";
        } else if in_sh
            && !line.starts_with('#')
            && (line.contains("llmproxy chat ") || line.contains("llmproxy stream "))
        {
            lines.push(line.to_owned());
        }
    }
    lines
}

#[tokio::test]
async fn readme_command_line_examples_run_as_written() {
    let mock = MockUpstream::start(realistic).await;
    let dir = examples_dir();
    let examples = readme_examples();
    assert!(examples.len() >= 10, "{examples:?}");
    for example in &examples {
        run_example(&mock, &dir, example).await;
    }
    // The --raw example saved the stream unchanged.
    let saved = std::fs::read(dir.path().join("reply.sse")).unwrap();
    assert!(saved == fixture("openai-stream.sse"));
}
