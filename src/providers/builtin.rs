//! The providers shipped with llmproxy, and their defaults. The config file
//! and the `<NAME>_BASE_URL` variables change them (see `registry`).

use super::{KeyPolicy, Kind};
use crate::config::OPENAI_DEFAULT_BASE_URL;

/// A provider shipped with llmproxy: its defaults.
pub(super) struct Builtin {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) base_url: &'static str,
    pub(super) key_variables: &'static [&'static str],
    pub(super) key: KeyPolicy,
}

pub(super) const BUILTINS: [Builtin; 8] = [
    Builtin {
        name: "openai",
        kind: Kind::OpenAi,
        base_url: OPENAI_DEFAULT_BASE_URL,
        key_variables: &["OPENAI_API_KEY"],
        key: KeyPolicy::Required,
    },
    Builtin {
        name: "anthropic",
        kind: Kind::Anthropic,
        base_url: "https://api.anthropic.com",
        key_variables: &["ANTHROPIC_API_KEY"],
        key: KeyPolicy::Required,
    },
    Builtin {
        name: "gemini",
        kind: Kind::Gemini,
        base_url: "https://generativelanguage.googleapis.com/v1beta",
        key_variables: &["GEMINI_API_KEY", "GOOGLE_API_KEY"],
        key: KeyPolicy::Required,
    },
    Builtin {
        name: "ollama",
        kind: Kind::OpenAi,
        base_url: "http://127.0.0.1:11434/v1",
        key_variables: &["OLLAMA_API_KEY"],
        key: KeyPolicy::Optional,
    },
    Builtin {
        name: "groq",
        kind: Kind::OpenAi,
        base_url: "https://api.groq.com/openai/v1",
        key_variables: &["GROQ_API_KEY"],
        key: KeyPolicy::Required,
    },
    Builtin {
        name: "openrouter",
        kind: Kind::OpenAi,
        base_url: "https://openrouter.ai/api/v1",
        key_variables: &["OPENROUTER_API_KEY"],
        key: KeyPolicy::Required,
    },
    Builtin {
        name: "deepseek",
        kind: Kind::OpenAi,
        base_url: "https://api.deepseek.com/v1",
        key_variables: &["DEEPSEEK_API_KEY"],
        key: KeyPolicy::Required,
    },
    Builtin {
        name: "mistral",
        kind: Kind::OpenAi,
        base_url: "https://api.mistral.ai/v1",
        key_variables: &["MISTRAL_API_KEY"],
        key: KeyPolicy::Required,
    },
];

/// The built-in providers' names, in the order they are listed.
pub const BUILTIN_NAMES: [&str; 8] = [
    "openai",
    "anthropic",
    "gemini",
    "ollama",
    "groq",
    "openrouter",
    "deepseek",
    "mistral",
];
