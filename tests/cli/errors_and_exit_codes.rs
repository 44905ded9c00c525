//! Failures before any reply: upstream errors, an unreachable or silent
//! upstream (exit 1), and usage errors (exit 2, nothing sent).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn upstream_error_is_one_line_and_exit_1() {
    let body = fixture("openai-error-401.json");
    let message = serde_json::from_slice::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.starts_with("Incorrect API key provided"));
    let mock = MockUpstream::always(Script::json(401, body)).await;
    let dir = temp_dir();
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
    let dir = temp_dir();
    let out = run(llmproxy(&dir)
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .args([
            "chat",
            "openai",
            "-m",
            "gpt-4o-mini",
            "--retries",
            "0",
            "Hi",
        ]))
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

    // By default the CLI retries twice, one stderr line per retry.
    let out = run(llmproxy(&dir)
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .env("OPENAI_API_KEY", "sk-test")
        .args(["chat", "openai", "-m", "gpt-4o-mini", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    for (line, of) in lines[..2].iter().zip(["(1 of 2)", "(2 of 2)"]) {
        assert!(line.starts_with("could not reach openai: "), "{line}");
        assert!(line.contains("; retrying in "), "{line}");
        assert!(line.ends_with(of), "{line}");
    }
    assert!(
        lines[2].starts_with("error: could not reach openai: "),
        "{stderr}"
    );
}

#[tokio::test]
async fn upstream_silence_times_out_with_exit_1() {
    let mock = MockUpstream::always(Script::never_answer()).await;
    let dir = temp_dir();
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
    let dir = temp_dir();
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
            vec!["chat", "nope", "-m", "x", "Hi"],
            vec![],
            "",
            "error: invalid value 'nope' for '<PROVIDER>'\n  [possible values: openai, anthropic, gemini, ollama, groq, openrouter, deepseek, mistral]",
        ),
        (
            vec!["chat", "openai", "Hi"],
            vec![("OPENAI_API_KEY", "k")],
            "",
            "error: missing model: pass -m MODEL or set LLMPROXY_MODEL\n",
        ),
        (
            vec!["chat", "gemini", "-m", "x", "Hi"],
            vec![("GEMINI_API_KEY", " ")],
            "",
            "error: missing API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) or pass --api-key\n",
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
async fn retries_are_announced_and_the_flag_beats_the_variable() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = AtomicUsize::new(0);
    let mock = MockUpstream::start(move |request| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            Script::json(429, fixture("openai-error-429.json")).header("retry-after-ms", "10")
        } else {
            realistic(request)
        }
    })
    .await;
    let dir = temp_dir();
    let out = run(against(&mock, &dir).args(["chat", "openai", "-m", "m", "Hi"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stderr),
        "openai answered 429; retrying in 0.0 s (1 of 2)\n"
    );
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));

    let always = MockUpstream::always(
        Script::json(429, fixture("openai-error-429.json")).header("retry-after-ms", "10"),
    )
    .await;
    let out = run(against(&always, &dir)
        .env("UPSTREAM_MAX_RETRIES", "5")
        .args(["stream", "openai", "-m", "m", "--retries", "1", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(always.requests().len(), 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(
            "openai answered 429; retrying in 0.0 s (1 of 1)\nerror: openai returned 429: "
        ),
        "{stderr}"
    );
}
