//! The shell completion scripts in `completions/` are generated files: each
//! must be byte for byte what `llmproxy completions <shell>` prints, so they
//! cannot drift from the clap definition. `UPDATE_COMPLETIONS=1` rewrites
//! them.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::ValueEnum;
use clap_complete::{Generator, Shell};

const REGENERATE: &str = "UPDATE_COMPLETIONS=1 cargo test --test completions";

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("completions")
}

/// What the real binary prints for `shell`.
fn generated(shell: Shell) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_llmproxy"))
        .args(["completions", &shell.to_string()])
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success(), "completions {shell} failed");
    assert!(
        output.stderr.is_empty(),
        "completions {shell} wrote to stderr"
    );
    output.stdout
}

/// One script per shell, each exactly as generated, and nothing else.
#[test]
fn committed_completions_match_the_cli_definition() {
    let update = std::env::var_os("UPDATE_COMPLETIONS").is_some_and(|v| v == "1");
    if update {
        std::fs::create_dir_all(folder()).unwrap();
    }
    let expected: Vec<String> = Shell::value_variants()
        .iter()
        .map(|shell| shell.file_name("llmproxy"))
        .collect();
    let mut stale = Vec::new();
    for (&shell, name) in Shell::value_variants().iter().zip(&expected) {
        let path = folder().join(name);
        let fresh = generated(shell);
        if update {
            std::fs::write(&path, &fresh).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(fresh.as_slice()) {
            stale.push(name.clone());
        }
    }
    for entry in std::fs::read_dir(folder()).into_iter().flatten() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !expected.contains(&name) {
            if update {
                std::fs::remove_file(entry.path()).unwrap();
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "completions/{{{}}} out of date with the CLI definition; regenerate with: {REGENERATE}",
        stale.join(",")
    );
}

#[test]
fn completions_offer_the_providers_and_subcommands() {
    let bash = String::from_utf8(generated(Shell::Bash)).unwrap();
    assert!(
        bash.contains("openai anthropic gemini ollama groq openrouter deepseek mistral"),
        "bash lacks the providers"
    );
    let zsh = String::from_utf8(generated(Shell::Zsh)).unwrap();
    assert!(
        zsh.contains(":(openai anthropic gemini ollama groq openrouter deepseek mistral)"),
        "zsh lacks the providers"
    );
    let fish = String::from_utf8(generated(Shell::Fish)).unwrap();
    for subcommand in ["chat", "stream", "serve", "providers", "completions"] {
        assert!(
            fish.contains(&format!("-a \"{subcommand}\"")),
            "fish lacks {subcommand}"
        );
    }
    // --messages completes file names; free text such as --model does not.
    assert!(zsh.contains(":FILE:_files"), "zsh: --messages");
    assert!(
        zsh.contains("'--model=[Model name, as the provider spells it \\[default\\: an alias'\\''s model\\]]:MODEL:' \\"),
        "zsh: --model should not complete file names"
    );
}

/// The binary and the library's command produce the same script: nothing
/// in `main` changes the command before generating but the provider names.
#[test]
fn binary_and_library_definition_agree() {
    let names = llmproxy::providers::BUILTIN_NAMES.to_vec();
    let mut command = llmproxy::cli::args::command_with(Some(names));
    let mut in_process = Vec::new();
    clap_complete::generate(Shell::Fish, &mut command, "llmproxy", &mut in_process);
    assert!(in_process == generated(Shell::Fish));
}

/// Providers and aliases of the config file complete too.
#[test]
fn configured_providers_and_aliases_complete() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[providers.vllm]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:1/v1\"\n[models.fast]\nprovider = \"vllm\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_llmproxy"))
        .args(["--config", &config.to_string_lossy(), "completions", "bash"])
        .env_clear()
        .output()
        .unwrap();
    assert!(output.status.success());
    let bash = String::from_utf8(output.stdout).unwrap();
    assert!(bash.contains("deepseek mistral vllm fast"), "{bash}");
}
