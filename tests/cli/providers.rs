//! Every provider from the terminal: Gemini, the keyless Ollama, model
//! aliases of the config file, `llmproxy providers`, `serve --check-config`
//! and the config file's errors.

use serde_json::{json, Value};

use crate::common::*;
use crate::support::*;

/// Answers Gemini requests (by path) and OpenAI ones.
fn any_provider(request: &Recorded) -> Script {
    if request.path.contains(":streamGenerateContent") {
        Script::sse(sse_events(&fixture("gemini-stream.sse")))
    } else if request.path.contains(":generateContent") {
        Script::json(200, fixture("gemini-generate.json"))
    } else {
        realistic(request)
    }
}

#[tokio::test]
async fn chat_and_stream_reach_gemini_with_its_own_key_variable() {
    let mock = MockUpstream::start(any_provider).await;
    let dir = temp_dir();
    let base = format!("{}/v1beta", mock.url());
    for (variable, command) in [("GEMINI_API_KEY", "chat"), ("GOOGLE_API_KEY", "stream")] {
        let out = run(llmproxy(&dir)
            .env("GEMINI_BASE_URL", &base)
            .env(variable, "AIza-cli")
            .args([command, "gemini", "-m", "gemini-2.0-flash", "Hi"]))
        .await;
        assert_eq!(text(&out.stderr), "", "{command}");
        assert_eq!(out.status.code(), Some(0), "{command}");
        assert_eq!(text(&out.stdout), format!("{REPLY}\n"), "{command}");
    }
    let sent = mock.requests();
    assert_eq!(
        sent[0].path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        sent[1].path,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    for request in &sent {
        assert_eq!(request.headers["x-goog-api-key"], "AIza-cli");
    }
    // GEMINI_API_KEY wins over GOOGLE_API_KEY.
    let out = run(llmproxy(&dir)
        .env("GEMINI_BASE_URL", &base)
        .env("GEMINI_API_KEY", "first")
        .env("GOOGLE_API_KEY", "second")
        .args(["chat", "gemini", "-m", "g", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(mock.requests()[2].headers["x-goog-api-key"], "first");
}

#[tokio::test]
async fn stream_reaches_ollama_without_a_key() {
    let mock = MockUpstream::start(any_provider).await;
    let dir = temp_dir();
    let out = run(llmproxy(&dir)
        .env("OLLAMA_BASE_URL", format!("{}/v1", mock.url()))
        .args(["stream", "ollama", "-m", "llama3.2", "Hi"]))
    .await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert!(!sent.headers.contains_key("authorization"));
    assert_eq!(sent.json()["model"], "llama3.2");
}

/// A config file with an alias of each kind of defaults.
fn config(mock: &MockUpstream) -> String {
    format!(
        r#"
[providers.vllm]
kind = "openai"
base_url = "{url}/v1"
key = "none"

[models.fast]
provider = "vllm"
model = "qwen2.5"
max_tokens = 64
temperature = 0.5
"#,
        url = mock.url()
    )
}

#[tokio::test]
async fn an_alias_gives_provider_model_and_defaults_and_flags_override_them() {
    let mock = MockUpstream::start(any_provider).await;
    let dir = temp_dir();
    dir.write("llmproxy.toml", &config(&mock));
    let out = run(llmproxy(&dir).env("LLMPROXY_MODEL", "not-this-one").args([
        "--config",
        "llmproxy.toml",
        "chat",
        "fast",
        "Hi",
    ]))
    .await;
    assert_eq!(text(&out.stderr), "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), format!("{REPLY}\n"));
    let out = run(llmproxy(&dir)
        .env("LLMPROXY_CONFIG", "llmproxy.toml")
        .args(["chat", "fast", "-m", "other", "--max-tokens", "9", "Hi"]))
    .await;
    assert_eq!(out.status.code(), Some(0));
    let sent = mock.requests();
    assert_eq!(
        (
            sent[0].json()["model"].clone(),
            sent[0].json()["max_tokens"].clone()
        ),
        (json!("qwen2.5"), json!(64))
    );
    assert_eq!(sent[0].json()["temperature"], 0.5);
    assert!(!sent[0].headers.contains_key("authorization"));
    assert_eq!(sent[1].json()["model"], "other");
    assert_eq!(sent[1].json()["max_tokens"], 9);
    assert_eq!(sent[1].json()["temperature"], 0.5);
}

#[tokio::test]
async fn providers_lists_built_in_and_configured_ones_with_aliases() {
    let mock = MockUpstream::start(any_provider).await;
    let dir = temp_dir();
    dir.write("llmproxy.toml", &config(&mock));
    let out = run(llmproxy(&dir).args(["--config", "llmproxy.toml", "providers", "--json"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = listing["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "openai",
            "anthropic",
            "gemini",
            "ollama",
            "groq",
            "openrouter",
            "deepseek",
            "mistral",
            "vllm"
        ]
    );
    assert_eq!(
        listing["providers"][2],
        json!({"name": "gemini", "kind": "gemini",
            "base_url": "https://generativelanguage.googleapis.com/v1beta",
            "key_variables": ["GEMINI_API_KEY", "GOOGLE_API_KEY"], "key": "required", "source": "built-in"})
    );
    assert_eq!(listing["providers"][3]["key"], "optional");
    assert_eq!(listing["providers"][8]["key"], "none");
    assert_eq!(listing["providers"][8]["source"], "config");
    assert_eq!(
        listing["models"],
        json!([{"name": "fast", "provider": "vllm", "model": "qwen2.5", "max_tokens": 64, "temperature": 0.5}])
    );
    assert_eq!(listing["default_provider"], "openai");
    let out = run(llmproxy(&dir).args(["providers", "--config", "llmproxy.toml"])).await;
    let table = text(&out.stdout);
    assert!(table.starts_with("PROVIDER"), "{table}");
    assert!(table.contains("openai (default)"), "{table}");
    assert!(table.contains("\nfast "), "{table}");
}

#[tokio::test]
async fn check_config_validates_without_listening() {
    let mock = MockUpstream::start(any_provider).await;
    let dir = temp_dir();
    dir.write("llmproxy.toml", &config(&mock));
    let out =
        run(llmproxy(&dir).args(["serve", "--check-config", "--config", "llmproxy.toml"])).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        "configuration is valid: 9 providers, 1 model aliases\n"
    );
    dir.write(
        "broken.toml",
        "[providers.vllm]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n",
    );
    let out =
        run(llmproxy(&dir).args(["serve", "--check-config", "--config", "broken.toml"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: broken.toml:3: [providers.vllm] base_url: expected an http:// or https:// URL without a query string\n"
    );
}

#[tokio::test]
async fn config_file_errors_stop_every_command_with_the_file_line_and_key() {
    let dir = temp_dir();
    dir.write("unknown.toml", "[providers.vllm]\nkind = \"openai\"\nbase_url = \"http://x/v1\"\nbase = 1\n")
        .write("alias.toml", "[models.openai]\nprovider = \"anthropic\"\nmodel = \"m\"\n")
        .write("headers.toml", "[providers.x]\nkind = \"openai\"\nbase_url = \"http://x\"\nheaders = { Authorization = \"Bearer k\" }\n");
    for (file, args, expected) in [
        (
            "unknown.toml",
            vec!["serve"],
            "error: unknown.toml:4: unknown field `base`",
        ),
        (
            "alias.toml",
            vec!["chat", "openai", "-m", "m", "Hi"],
            "error: alias.toml:1: [models.openai]: 'openai' is already a provider name",
        ),
        (
            "headers.toml",
            vec!["providers"],
            "error: headers.toml:4: [providers.x] headers: 'Authorization' cannot be set here",
        ),
        (
            "missing.toml",
            vec!["stream", "vllm", "-m", "m", "Hi"],
            "error: missing.toml: cannot read the config file:",
        ),
    ] {
        let out = run(llmproxy(&dir).arg("--config").arg(file).args(&args)).await;
        assert_eq!(out.status.code(), Some(2), "{file}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with(expected), "{file}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{file}: {stderr}");
    }
    // A default location that does not exist is no error.
    let out = run(llmproxy(&dir)
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["serve", "--check-config"]))
    .await;
    assert_eq!(out.status.code(), Some(0));
}
