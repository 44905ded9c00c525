//! The prompt and the request: what `chat` and `stream` send upstream,
//! from arguments, stdin, `--messages`, flags, the environment and `.env`.

use serde_json::{json, Value};

use crate::common::*;
use crate::support::*;

#[tokio::test]
async fn prompt_words_are_joined_and_options_reach_the_openai_body() {
    let mock = MockUpstream::start(realistic).await;
    let dir = temp_dir();
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
    let dir = temp_dir();
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
    let dir = temp_dir();
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

#[tokio::test]
async fn prompt_from_stdin_arguments_or_both() {
    let dir = temp_dir();
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

#[tokio::test]
async fn messages_from_a_file_or_stdin_then_the_prompt() {
    let history = r#"[{"role":"system","content":"You are a pirate."},
        {"role":"user","content":"Hi"},{"role":"assistant","content":"Arr!"}]"#;
    let dir = temp_dir();
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
    let dir = temp_dir();
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
