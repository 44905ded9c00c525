//! The command line, as clap parses it. Nothing here talks to a network:
//! `cli::run` resolves these into settings and a request.

use std::path::PathBuf;

use clap::builder::{NonEmptyStringValueParser, PossibleValuesParser};
use clap::{Args, Parser, Subcommand, ValueHint};
use clap_complete::Shell;

use crate::providers::BUILTIN_NAMES;

#[derive(Debug, Parser)]
#[command(
    name = "llmproxy",
    version,
    about = "A fast proxy and terminal client for the OpenAI, Anthropic and Gemini chat APIs and every OpenAI-compatible host",
    after_help = "Examples:\n  llmproxy serve --port 8000\n  llmproxy chat openai -m gpt-4o-mini \"Hello\"\n  llmproxy stream anthropic -m claude-3-5-sonnet-20240620 \"Write a haiku\"\n\nConfiguration comes from environment variables, a .env file and a TOML config file; see the README."
)]
pub struct Cli {
    /// The TOML config file [default: LLMPROXY_CONFIG, else
    /// $XDG_CONFIG_HOME/llmproxy/config.toml or ~/.config/llmproxy/config.toml
    /// when it exists]
    #[arg(long, global = true, value_name = "FILE", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
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
    /// List the providers and model aliases (built in and from the config file)
    #[command(
        after_help = "Examples:\n  llmproxy providers\n  llmproxy providers --json | jq -r '.providers[].name'\n  llmproxy --config ./llmproxy.toml providers"
    )]
    Providers {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
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
    /// Which provider to call, or a model alias of the config file
    // Explicit indexes: `command_with` re-adds this argument, which would
    // otherwise move it after the prompt.
    #[arg(index = 1, value_name = "PROVIDER", value_parser = PossibleValuesParser::new(BUILTIN_NAMES))]
    pub provider: String,
    /// Prompt words, joined by spaces; `-` reads the prompt from stdin only
    #[arg(index = 2, value_name = "PROMPT", value_hint = ValueHint::Other)]
    pub prompt: Vec<String>,
    /// Model name, as the provider spells it [default: an alias's model]
    #[arg(
        short,
        long,
        env = "LLMPROXY_MODEL",
        value_parser = NonEmptyStringValueParser::new(),
        value_hint = ValueHint::Other
    )]
    pub model: Option<String>,
    /// Whether `model` came from `LLMPROXY_MODEL` (an alias's model wins
    /// over the variable, `-m` over the alias).
    #[arg(skip)]
    pub model_from_env: bool,
    /// A system prompt
    #[arg(short, long, value_hint = ValueHint::Other)]
    pub system: Option<String>,
    /// Cap on generated tokens
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_tokens: Option<u64>,
    /// Sampling temperature (0 to 2; Anthropic accepts 0 to 1)
    #[arg(long, value_parser = parse_temperature)]
    pub temperature: Option<f64>,
    /// API key [default: the provider's variable, e.g. OPENAI_API_KEY; see `llmproxy providers`]
    #[arg(long, value_name = "KEY", value_hint = ValueHint::Other)]
    pub api_key: Option<String>,
    /// Retries of a failed request (429, 5xx, refused connections)
    /// [default: UPSTREAM_MAX_RETRIES, else the provider's `retries`, else 2]
    #[arg(long, value_name = "N")]
    pub retries: Option<u32>,
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
    /// Validate the configuration (variables and config file), then exit 0
    /// or 2 without listening
    #[arg(long)]
    pub check_config: bool,
}

/// The clap command, with every name of `names` (providers, then aliases)
/// as the accepted values of `chat` and `stream`'s first argument; `None`
/// (the configuration is broken) accepts any name, so that the command
/// reports the configuration error rather than clap a name it cannot know.
pub fn command_with(names: Option<Vec<&'static str>>) -> clap::Command {
    use clap::CommandFactory;
    let mut command = Cli::command();
    for name in ["chat", "stream"] {
        let names = names.clone();
        command = command.mut_subcommand(name, |sub| {
            sub.mut_arg("provider", |arg| match names {
                Some(names) => arg.value_parser(PossibleValuesParser::new(names)),
                None => arg.value_parser(NonEmptyStringValueParser::new()),
            })
        });
    }
    command
}

/// Parses `args` against [`command_with`]; exits on `--help` and errors.
pub fn parse_with(names: Option<Vec<&'static str>>, args: Vec<std::ffi::OsString>) -> Cli {
    use clap::FromArgMatches;
    let matches = command_with(names).get_matches_from(args);
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let from_env = |sub: &str| {
        matches.subcommand_matches(sub).is_some_and(|m| {
            m.value_source("model") == Some(clap::parser::ValueSource::EnvVariable)
        })
    };
    match &mut cli.command {
        Command::Chat(args) => args.prompt.model_from_env = from_env("chat"),
        Command::Stream(args) => args.prompt.model_from_env = from_env("stream"),
        _ => {}
    }
    cli
}

/// The `--config` value, read before clap parses (the config file names
/// the providers that clap must accept).
pub fn config_flag(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            return None;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    None
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
        command_with(Some(vec!["openai", "fast"])).debug_assert();
        command_with(None).debug_assert();
    }

    #[test]
    fn the_config_flag_is_found_before_parsing() {
        let args = |list: &[&str]| list.iter().map(Into::into).collect::<Vec<_>>();
        assert_eq!(
            config_flag(&args(&["llmproxy", "--config", "a.toml", "providers"])),
            Some(PathBuf::from("a.toml"))
        );
        assert_eq!(
            config_flag(&args(&["llmproxy", "chat", "x", "--config=b.toml"])),
            Some(PathBuf::from("b.toml"))
        );
        assert_eq!(
            config_flag(&args(&["llmproxy", "chat", "--", "--config"])),
            None
        );
    }

    #[test]
    fn configured_names_are_accepted_and_the_model_source_is_known() {
        let cli = parse_with(
            Some(vec!["openai", "fast"]),
            ["llmproxy", "chat", "fast", "Hi"].map(Into::into).to_vec(),
        );
        let Command::Chat(chat) = cli.command else {
            unreachable!()
        };
        assert_eq!(chat.prompt.provider, "fast");
        assert_eq!(chat.prompt.model, None);
        assert!(!chat.prompt.model_from_env);
    }
}
