//! The documentation runs: every subcommand's `--help` shows examples, and
//! the `chat` and `stream` examples of the help and of the README work as
//! written.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::*;
use crate::support::*;

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
    let dir = temp_dir();
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
        help.contains("[possible values: openai,\n               anthropic, gemini, ollama, groq, openrouter, deepseek, mistral]"),
        "{help}"
    );
    assert!(help.contains("[env: LLMPROXY_MODEL=]"), "{help}");
}

/// A working directory with the files the examples mention.
fn examples_dir() -> TempDir {
    let dir = temp_dir();
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
