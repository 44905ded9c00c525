//! Running the real binary against the mock upstream: a clean working
//! directory, the environment, the command (to completion or as a live
//! child), Ctrl-C, and reading what it printed.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

pub use tempfile::TempDir;
use tokio::io::AsyncReadExt;

use crate::common::*;

pub const REPLY: &str = "Hello! How can I help you today?";

/// A fresh directory under the system temp dir, removed on drop. Used as
/// the working directory so that no developer `.env` is picked up.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("llmproxy-cli-test-")
        .tempdir()
        .unwrap()
}

/// Files a test puts in its working directory.
pub trait WriteFile {
    /// Writes `contents` to `name` in the directory; chains.
    fn write(&self, name: &str, contents: &str) -> &Self;
}

impl WriteFile for TempDir {
    fn write(&self, name: &str, contents: &str) -> &Self {
        std::fs::write(self.path().join(name), contents).unwrap();
        self
    }
}

/// The real binary with no inherited environment, run in `dir`.
pub fn llmproxy(dir: &TempDir) -> assert_cmd::Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("llmproxy");
    cmd.env_clear()
        .current_dir(dir.path())
        .timeout(Duration::from_secs(20));
    cmd
}

/// Both base URLs pointing at `mock`, a key for each provider, and a short
/// timeout, as environment variables.
pub fn upstream_env(mock: &MockUpstream) -> Vec<(&'static str, String)> {
    vec![
        ("OPENAI_BASE_URL", format!("{}/v1", mock.url())),
        ("ANTHROPIC_BASE_URL", mock.url()),
        ("OPENAI_API_KEY", "sk-openai-test".to_owned()),
        ("ANTHROPIC_API_KEY", "sk-ant-test".to_owned()),
        ("GEMINI_BASE_URL", format!("{}/v1beta", mock.url())),
        ("GEMINI_API_KEY", "AIza-test".to_owned()),
        ("OLLAMA_BASE_URL", format!("{}/v1", mock.url())),
        ("HTTP_TIMEOUT_SECONDS", "5".to_owned()),
    ]
}

/// `llmproxy` configured for `mock`.
pub fn against(mock: &MockUpstream, dir: &TempDir) -> assert_cmd::Command {
    let mut cmd = llmproxy(dir);
    cmd.envs(upstream_env(mock));
    cmd
}

/// Runs `cmd` (taken out of the builder chain it ends) to completion on a
/// blocking thread, so that the mock, which lives on the test's runtime,
/// keeps serving meanwhile. Stdin is an empty pipe unless the test wrote
/// some.
pub async fn run(cmd: &mut assert_cmd::Command) -> Output {
    let mut cmd = std::mem::replace(cmd, assert_cmd::Command::new("unused"));
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// The same, for tests that need a live child: `args` configured for `mock`
/// and run in `dir`, stdin closed, stdout and stderr piped (a test may
/// replace any of them before spawning), killed on drop.
pub fn command(mock: &MockUpstream, dir: &TempDir, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"));
    command
        .args(args)
        .env_clear()
        .envs(upstream_env(mock))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// `command` spawned as it is.
pub fn spawn(mock: &MockUpstream, dir: &TempDir, args: &[&str]) -> tokio::process::Child {
    command(mock, dir, args).spawn().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// A user message as the upstream receives it.
pub fn user(content: &str) -> serde_json::Value {
    serde_json::json!({"role": "user", "content": content})
}

/// Answers like the real upstreams: the chat or stream fixture of the
/// provider the path belongs to.
pub fn realistic(request: &Recorded) -> Script {
    if request.path.ends_with(":generateContent") {
        return Script::json(200, fixture("gemini-generate.json"));
    }
    if request.path.ends_with(":streamGenerateContent?alt=sse") {
        return Script::sse(sse_events(&fixture("gemini-stream.sse")));
    }
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
pub async fn signalling_mock(
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

/// Sends SIGINT, as Ctrl-C in a terminal does.
pub fn interrupt(child: &tokio::process::Child) {
    let pid = child.id().expect("child is running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-s", "INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

pub async fn wait(child: tokio::process::Child) -> Output {
    tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("llmproxy exited within 10 s")
        .unwrap()
}

/// Reads `stdout` until `needle` has arrived; returns what was read.
pub async fn read_until(stdout: &mut tokio::process::ChildStdout, needle: &str) -> String {
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
