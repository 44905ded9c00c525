//! Turns the prompt arguments, stdin and `--messages` into a chat request.

use std::io::{IsTerminal, Read};

use super::args::PromptArgs;
use super::exit::Failure;
use crate::providers::{messages_from_value, ChatRequest, Message, Role};

/// The process's stdin, or text in tests.
pub struct Stdin {
    /// A terminal is only read when asked for explicitly (`-`): reading it
    /// implicitly would wait for a Ctrl-D the user does not know to type.
    terminal: bool,
    reader: Box<dyn Read>,
}

impl Stdin {
    pub fn from_process() -> Self {
        let stdin = std::io::stdin();
        Stdin {
            terminal: stdin.is_terminal(),
            reader: Box::new(stdin),
        }
    }

    /// Everything until end of input.
    fn read_all(mut self) -> Result<String, Failure> {
        let mut bytes = Vec::new();
        self.reader
            .read_to_end(&mut bytes)
            .map_err(|e| Failure::Usage(format!("could not read stdin: {e}")))?;
        String::from_utf8(bytes).map_err(|_| Failure::Usage("stdin is not valid UTF-8".to_owned()))
    }

    /// What a pipe or file holds; nothing for a terminal.
    fn read_piped(self) -> Result<String, Failure> {
        if self.terminal {
            Ok(String::new())
        } else {
            self.read_all()
        }
    }
}

pub fn build_request(
    args: &PromptArgs,
    model: String,
    stdin: Stdin,
    stream: bool,
) -> Result<ChatRequest, Failure> {
    let words = args.prompt.join(" ");
    let messages_from_stdin = args
        .messages
        .as_deref()
        .is_some_and(|p| p.as_os_str() == "-");
    let stdin_only = words == "-";
    if stdin_only && messages_from_stdin {
        return Err(Failure::Usage(
            "stdin cannot be both the prompt (-) and --messages -".to_owned(),
        ));
    }

    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message {
            role: Role::System,
            content: system.clone(),
        });
    }
    let mut stdin = Some(stdin);
    if let Some(path) = &args.messages {
        let text = if messages_from_stdin {
            stdin.take().map_or(Ok(String::new()), Stdin::read_all)?
        } else {
            std::fs::read_to_string(path).map_err(|e| {
                Failure::Usage(format!("could not read --messages {}: {e}", path.display()))
            })?
        };
        let value = serde_json::from_str(&text)
            .map_err(|e| Failure::Usage(format!("--messages is not valid JSON: {e}")))?;
        messages.extend(messages_from_value(value, "--messages")?);
    }

    let prompt = if stdin_only {
        stdin.take().map_or(Ok(String::new()), Stdin::read_all)?
    } else {
        let piped = match stdin.take() {
            Some(stdin) if !args.no_stdin => stdin.read_piped()?,
            _ => String::new(),
        };
        join_prompt(piped.trim_end(), &words)
    };
    if !prompt.trim().is_empty() {
        messages.push(Message {
            role: Role::User,
            content: prompt,
        });
    }
    if !messages.iter().any(|m| m.role != Role::System) {
        return Err(Failure::Usage(
            "no prompt: give it as arguments, pipe it on stdin, or pass --messages FILE".to_owned(),
        ));
    }
    Ok(ChatRequest {
        model,
        messages,
        stream,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
    })
}

/// Stdin text first, then a blank line, then the argument words.
fn join_prompt(piped: &str, words: &str) -> String {
    match (piped.is_empty(), words.is_empty()) {
        (true, _) => words.to_owned(),
        (false, true) => piped.to_owned(),
        (false, false) => format!("{piped}\n\n{words}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> PromptArgs {
        let mut full = vec!["llmproxy", "chat", "openai", "-m", "m"];
        full.extend_from_slice(argv);
        match super::super::args::Cli::parse_from(full).command {
            super::super::args::Command::Chat(chat) => chat.prompt,
            _ => unreachable!(),
        }
    }

    fn piped(text: &'static str) -> Stdin {
        Stdin {
            terminal: false,
            reader: Box::new(text.as_bytes()),
        }
    }

    /// A terminal where the user would type `text` and then Ctrl-D.
    fn terminal(text: &'static str) -> Stdin {
        Stdin {
            terminal: true,
            reader: Box::new(text.as_bytes()),
        }
    }

    fn user_text(req: &ChatRequest) -> &str {
        &req.messages.last().unwrap().content
    }

    #[test]
    fn words_are_joined() {
        let req =
            build_request(&args(&["Hello", "there"]), "m".into(), terminal(""), false).unwrap();
        assert_eq!(user_text(&req), "Hello there");
    }

    #[test]
    fn stdin_comes_first_then_a_blank_line() {
        let req = build_request(
            &args(&["Summarize this"]),
            "m".into(),
            piped("notes\n"),
            false,
        )
        .unwrap();
        assert_eq!(user_text(&req), "notes\n\nSummarize this");
    }

    #[test]
    fn no_stdin_ignores_it_and_dash_reads_only_it() {
        let req = build_request(
            &args(&["--no-stdin", "Hi"]),
            "m".into(),
            piped("ignored"),
            false,
        )
        .unwrap();
        assert_eq!(user_text(&req), "Hi");
        let req = build_request(&args(&["-"]), "m".into(), piped("only this"), false).unwrap();
        assert_eq!(user_text(&req), "only this");
    }

    #[test]
    fn a_terminal_is_read_only_for_dash() {
        let req = build_request(&args(&["Hi"]), "m".into(), terminal("not read"), false).unwrap();
        assert_eq!(user_text(&req), "Hi");
        let req = build_request(&args(&["-"]), "m".into(), terminal("typed\n"), false).unwrap();
        assert_eq!(user_text(&req), "typed\n");
        let req = build_request(
            &args(&["--messages", "-"]),
            "m".into(),
            terminal(r#"[{"role":"user","content":"typed"}]"#),
            false,
        )
        .unwrap();
        assert_eq!(user_text(&req), "typed");
    }

    #[test]
    fn system_prompt_comes_first() {
        let req = build_request(
            &args(&["-s", "Be terse", "Hi"]),
            "m".into(),
            terminal(""),
            true,
        )
        .unwrap();
        assert_eq!(req.messages[0].role, Role::System);
        assert_eq!(req.messages[0].content, "Be terse");
        assert!(req.stream);
    }

    #[test]
    fn no_prompt_is_a_usage_error() {
        for (argv, stdin) in [
            (vec![], terminal("")),
            (vec![], piped("  \n")),
            (vec!["-s", "sys"], terminal("")),
        ] {
            let err = build_request(&args(&argv), "m".into(), stdin, false).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn messages_from_stdin_are_validated() {
        let req = build_request(
            &args(&["--messages", "-", "and now"]),
            "m".into(),
            piped(r#"[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]"#),
            false,
        )
        .unwrap();
        assert_eq!(req.messages.len(), 3);
        assert_eq!(user_text(&req), "and now");
        let err = build_request(
            &args(&["--messages", "-"]),
            "m".into(),
            piped(r#"[{"role":"bot","content":"a"}]"#),
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--messages[0].role"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
