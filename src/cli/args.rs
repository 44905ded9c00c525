//! The command line, as clap parses it. Nothing here talks to a network:
//! `cli::run` resolves these into settings and a request.

use std::path::PathBuf;

use clap::builder::{NonEmptyStringValueParser, PossibleValuesParser};
use clap::{Args, Parser, Subcommand, ValueHint};
use clap_complete::Shell;

use crate::providers::provider_names;

#[derive(Debug, Parser)]
#[command(
    name = "llmproxy",
    version,
    about = "A fast proxy and terminal client for the OpenAI and Anthropic chat APIs",
    after_help = "Examples:\n  llmproxy serve --port 8000\n  llmproxy chat openai -m gpt-4o-mini \"Hello\"\n  llmproxy stream anthropic -m claude-3-5-sonnet-20240620 \"Write a haiku\"\n\nConfiguration comes from environment variables and a .env file; see the README."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one prompt and print the whole reply
    #[command(
        after_help = "Examples:\n  llmproxy chat openai -m gpt-4o-mini \"Hello\"\n  cat notes.txt | llmproxy chat openai -m gpt-4o-mini \"Summarize this\"\n  llmproxy chat anthropic -m claude-3-5-sonnet-20240620 --json \"Hi\"\n  llmproxy chat openai -m gpt-4o-mini --messages chat.json \"And in French?\""
    )]
    Chat(ChatArgs),
    /// Send one prompt and print the reply token by token as it arrives
    #[command(
        after_help = "Examples:\n  llmproxy stream anthropic -m claude-3-5-sonnet-20240620 -s \"Be terse\" \"Write a haiku\"\n  llmproxy stream openai -m gpt-4o-mini \"List 5 colors\" | tr a-z A-Z\n  llmproxy stream openai -m gpt-4o-mini --raw \"Hi\"   # the upstream SSE bytes"
    )]
    Stream(StreamArgs),
    /// Run the HTTP proxy server
    #[command(
        after_help = "Examples:\n  llmproxy serve --port 8000\n  curl -s localhost:8000/v1/chat/openai -H \"X-API-Key: $OPENAI_API_KEY\" \\\n    -d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'"
    )]
    Serve(ServeArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  llmproxy completions bash > ~/.local/share/bash-completion/completions/llmproxy\n  llmproxy completions zsh > \"${fpath[1]}/_llmproxy\""
    )]
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct PromptArgs {
    /// Which provider to call
    #[arg(value_parser = PossibleValuesParser::new(provider_names()))]
    pub provider: String,
    /// Prompt words, joined by spaces; `-` reads the prompt from stdin only
    #[arg(value_name = "PROMPT", value_hint = ValueHint::Other)]
    pub prompt: Vec<String>,
    /// Model name, as the provider spells it
    #[arg(
        short,
        long,
        env = "LLMPROXY_MODEL",
        value_parser = NonEmptyStringValueParser::new(),
        value_hint = ValueHint::Other
    )]
    pub model: String,
    /// A system prompt
    #[arg(short, long, value_hint = ValueHint::Other)]
    pub system: Option<String>,
    /// Cap on generated tokens
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: Option<u64>,
    /// Sampling temperature (0 to 2; Anthropic accepts 0 to 1)
    #[arg(long, value_parser = parse_temperature)]
    pub temperature: Option<f64>,
    /// API key [default: OPENAI_API_KEY or ANTHROPIC_API_KEY, by provider]
    #[arg(long, value_name = "KEY", value_hint = ValueHint::Other)]
    pub api_key: Option<String>,
    /// Ignore stdin even when it is not a terminal (cron, CI)
    #[arg(long)]
    pub no_stdin: bool,
    /// A JSON array of {role, content} messages for multi-turn use (`-` for stdin)
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub messages: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Print the normalized JSON reply instead of the text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub prompt: PromptArgs,
    /// Write the upstream SSE bytes unchanged instead of the text
    #[arg(long)]
    pub raw: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0 picks a free one)
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,
}

fn parse_temperature(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(t) if (0.0..=2.0).contains(&t) => Ok(t),
        _ => Err("expected a number from 0 to 2".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
