//! Every provider the process can reach, built in or from the config file,
//! and the model aliases: resolved once at start-up (variables, then the
//! file, then the built-in defaults) and read-only afterwards.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::builtin::{Builtin, BUILTINS, BUILTIN_NAMES};
use super::{KeyPolicy, Kind, MaxTokensField, Provider};
use crate::config::file::{KeyMode, ProviderEntry};
use crate::config::{
    base_url, base_url_variable, variable_error, ConfigError, ConfigFile, OPENAI_DEFAULT_BASE_URL,
};
use crate::error::{Error, Result};

/// Reserved for the OpenAI-compatible route (`/v1/chat/completions`).
const RESERVED: &str = "completions";

/// Headers a config file may not set: the auth headers the adapters own,
/// and the framing headers the client computes.
const FORBIDDEN_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "proxy-authorization",
    "host",
    "content-length",
    "transfer-encoding",
];

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// `[models.ALIAS]`: a provider and model under one name.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub name: &'static str,
    pub provider: &'static Provider,
    pub model: String,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    providers: Vec<&'static Provider>,
    aliases: Vec<Alias>,
    default: &'static Provider,
}

impl Registry {
    /// Looks a provider up by name; the error lists the known ones.
    pub fn provider(&self, name: &str) -> Result<&'static Provider> {
        self.providers
            .iter()
            .copied()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::UnknownProvider {
                name: name.chars().take(64).collect(),
                known: self.provider_names().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn providers(&self) -> &[&'static Provider] {
        &self.providers
    }

    pub fn provider_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.providers.iter().map(|p| p.name)
    }

    pub fn aliases(&self) -> &[Alias] {
        &self.aliases
    }

    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.iter().find(|a| a.name == name)
    }

    /// Where a model that names no provider goes (the OpenAI-compatible
    /// route): `DEFAULT_PROVIDER`, `default_provider`, else `openai`.
    pub fn default_provider(&self) -> &'static Provider {
        self.default
    }

    /// Providers, then aliases: every name `chat` and `stream` accept.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.provider_names()
            .chain(self.aliases.iter().map(|a| a.name))
    }

    /// Builds the registry. `get` reads variables (blank is unset);
    /// `timeout` is `HTTP_TIMEOUT_SECONDS` when set (it wins over the
    /// file's per-provider `timeout_seconds`).
    pub fn resolve(
        get: &dyn Fn(&str) -> Option<String>,
        timeout: Option<Duration>,
        file: Option<&ConfigFile>,
    ) -> std::result::Result<Self, ConfigError> {
        let entries = file.map(|f| &f.data.providers);
        let mut providers = Vec::new();
        for builtin in &BUILTINS {
            let entry = entries.and_then(|e| e.get(builtin.name));
            providers.push(leak(resolve_builtin(builtin, entry, get, timeout, file)?));
        }
        if let Some(file) = file {
            for (name, entry) in &file.data.providers {
                if BUILTIN_NAMES.contains(&name.as_str()) {
                    continue;
                }
                providers.push(leak(resolve_configured(name, entry, get, timeout, file)?));
            }
        }
        let mut registry = Registry {
            default: providers[0],
            providers,
            aliases: Vec::new(),
        };
        if let Some(file) = file {
            registry.aliases = resolve_aliases(&registry, file)?;
        }
        registry.default = match (get("DEFAULT_PROVIDER"), file) {
            (Some(name), _) => registry.provider(name.trim()).map_err(|_| {
                variable_error(
                    "DEFAULT_PROVIDER",
                    &name,
                    &format!("expected a provider name ({})", registry.known()),
                )
            })?,
            (None, Some(file)) => match &file.data.default_provider {
                Some(name) => registry.provider(name).map_err(|_| {
                    file.top_level_error(
                        "default_provider",
                        format!("'{name}' is not a provider ({})", registry.known()),
                    )
                })?,
                None => registry.default,
            },
            (None, None) => registry.default,
        };
        Ok(registry)
    }

    fn known(&self) -> String {
        self.provider_names().collect::<Vec<_>>().join(", ")
    }
}

fn leak(provider: Provider) -> &'static Provider {
    Box::leak(Box::new(provider))
}

/// `GROQ` for `groq`, `MY_HOST` for `my-host`: the prefix of a provider's
/// variables.
pub fn variable_prefix(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

fn resolve_builtin(
    builtin: &Builtin,
    entry: Option<&ProviderEntry>,
    get: &dyn Fn(&str) -> Option<String>,
    timeout: Option<Duration>,
    file: Option<&ConfigFile>,
) -> std::result::Result<Provider, ConfigError> {
    let table = format!("providers.{}", builtin.name);
    let default = ProviderEntry::default();
    let entry = entry.unwrap_or(&default);
    if let (Some(kind), Some(file)) = (entry.kind, file) {
        if kind != builtin.kind {
            return Err(file.error(
                &table,
                Some("kind"),
                format!(
                    "the built-in '{}' speaks {}",
                    builtin.name,
                    builtin.kind.as_str()
                ),
            ));
        }
    }
    let base_url = resolved_base_url(builtin.name, entry, get, file, &table)?
        .unwrap_or_else(|| builtin.base_url.to_owned());
    // OpenAI's own API wants the new field (reasoning models reject the
    // old one); OpenAI-compatible servers often only know `max_tokens`.
    let field_variable = match builtin.name {
        "openai" => max_tokens_field_variable(get)?,
        _ => None,
    };
    let default_field = if base_url == OPENAI_DEFAULT_BASE_URL {
        MaxTokensField::MaxCompletionTokens
    } else {
        MaxTokensField::MaxTokens
    };
    let key_variables = match &entry.key_env {
        Some(variable) => vec![variable.clone()],
        None => builtin
            .key_variables
            .iter()
            .map(|v| (*v).to_owned())
            .collect(),
    };
    build(
        builtin.name,
        builtin.kind,
        base_url,
        entry,
        Common {
            key: key_policy(entry.key).unwrap_or(builtin.key),
            key_variables,
            max_tokens_field: field_variable
                .or(entry.max_tokens_field)
                .unwrap_or(default_field),
            timeout,
            builtin: true,
        },
        file,
        &table,
    )
}

fn resolve_configured(
    name: &str,
    entry: &ProviderEntry,
    get: &dyn Fn(&str) -> Option<String>,
    timeout: Option<Duration>,
    file: &ConfigFile,
) -> std::result::Result<Provider, ConfigError> {
    let table = format!("providers.{name}");
    let valid_name = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if !valid_name {
        return Err(file.error(
            &table,
            None,
            "a provider name is 1 to 32 characters of a-z, 0-9, _ and -",
        ));
    }
    if name == RESERVED {
        return Err(file.error(
            &table,
            None,
            "'completions' is reserved for the OpenAI-compatible route",
        ));
    }
    let kind = entry.kind.ok_or_else(|| {
        file.error(
            &table,
            Some("kind"),
            "required: \"openai\", \"anthropic\" or \"gemini\"",
        )
    })?;
    let base_url = resolved_base_url(name, entry, get, Some(file), &table)?.ok_or_else(|| {
        file.error(
            &table,
            Some("base_url"),
            format!("required (or set {}_BASE_URL)", variable_prefix(name)),
        )
    })?;
    let key_variables = vec![entry
        .key_env
        .clone()
        .unwrap_or_else(|| format!("{}_API_KEY", variable_prefix(name)))];
    build(
        Box::leak(name.to_owned().into_boxed_str()),
        kind,
        base_url,
        entry,
        Common {
            key: key_policy(entry.key).unwrap_or(KeyPolicy::Required),
            key_variables,
            max_tokens_field: entry.max_tokens_field.unwrap_or(MaxTokensField::MaxTokens),
            timeout,
            builtin: false,
        },
        Some(file),
        &table,
    )
}

/// What `build` needs besides the entry.
struct Common {
    key: KeyPolicy,
    key_variables: Vec<String>,
    max_tokens_field: MaxTokensField,
    timeout: Option<Duration>,
    builtin: bool,
}

fn build(
    name: &'static str,
    kind: Kind,
    base_url: String,
    entry: &ProviderEntry,
    common: Common,
    file: Option<&ConfigFile>,
    table: &str,
) -> std::result::Result<Provider, ConfigError> {
    let file_error = |key: &str, message: String| match file {
        Some(file) => file.error(table, Some(key), message),
        None => ConfigError::File {
            path: "config".to_owned(),
            message,
        },
    };
    if entry.max_tokens_field.is_some() && kind != Kind::OpenAi {
        return Err(file_error(
            "max_tokens_field",
            "only providers of kind \"openai\" have one".to_owned(),
        ));
    }
    if let Some(variable) = &entry.key_env {
        let valid = !variable.is_empty()
            && variable
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(file_error(
                "key_env",
                "expected a variable name (letters, digits, _)".to_owned(),
            ));
        }
    }
    let mut headers = Vec::new();
    for (header, value) in entry.headers.iter().flatten() {
        let parsed_name = HeaderName::try_from(header.as_str())
            .map_err(|_| file_error("headers", format!("'{header}' is not a header name")))?;
        if FORBIDDEN_HEADERS.contains(&parsed_name.as_str()) {
            return Err(file_error(
                "headers",
                format!("'{header}' cannot be set here (the adapter or the client sets it)"),
            ));
        }
        let parsed_value = HeaderValue::try_from(value.as_str()).map_err(|_| {
            file_error(
                "headers",
                format!("the value of '{header}' is not a header value"),
            )
        })?;
        headers.push((parsed_name, parsed_value));
    }
    let file_timeout = match entry.timeout_seconds {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(_) => {
            return Err(file_error(
                "timeout_seconds",
                "expected a number of seconds greater than 0".to_owned(),
            ))
        }
        None => None,
    };
    let endpoint = match kind.wire().fixed_endpoint(&base_url) {
        Some(url) => Some(reqwest::Url::parse(&url).map_err(|e| {
            file_error("base_url", format!("gives an invalid endpoint {url}: {e}"))
        })?),
        None => None,
    };
    Ok(Provider {
        name,
        kind,
        base_url,
        key: common.key,
        key_variables: common.key_variables,
        max_tokens_field: common.max_tokens_field,
        headers,
        timeout: common.timeout.or(file_timeout).unwrap_or(DEFAULT_TIMEOUT),
        retries: entry.retries,
        builtin: common.builtin,
        endpoint,
    })
}

fn key_policy(mode: Option<KeyMode>) -> Option<KeyPolicy> {
    mode.map(|mode| match mode {
        KeyMode::Caller => KeyPolicy::Required,
        KeyMode::Optional => KeyPolicy::Optional,
        KeyMode::None => KeyPolicy::Never,
    })
}

/// `<NAME>_BASE_URL`, else the file's `base_url`, validated.
fn resolved_base_url(
    name: &str,
    entry: &ProviderEntry,
    get: &dyn Fn(&str) -> Option<String>,
    file: Option<&ConfigFile>,
    table: &str,
) -> std::result::Result<Option<String>, ConfigError> {
    let variable = format!("{}_BASE_URL", variable_prefix(name));
    if let Some(url) = base_url_variable(&get, &variable)? {
        return Ok(Some(url));
    }
    match (&entry.base_url, file) {
        (Some(raw), Some(file)) => base_url(raw)
            .map(Some)
            .map_err(|expected| file.error(table, Some("base_url"), expected)),
        _ => Ok(None),
    }
}

fn max_tokens_field_variable(
    get: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Option<MaxTokensField>, ConfigError> {
    match get("OPENAI_MAX_TOKENS_FIELD").as_deref().map(str::trim) {
        None => Ok(None),
        Some("max_tokens") => Ok(Some(MaxTokensField::MaxTokens)),
        Some("max_completion_tokens") => Ok(Some(MaxTokensField::MaxCompletionTokens)),
        Some(other) => Err(variable_error(
            "OPENAI_MAX_TOKENS_FIELD",
            other,
            "expected max_tokens or max_completion_tokens",
        )),
    }
}

fn resolve_aliases(
    registry: &Registry,
    file: &ConfigFile,
) -> std::result::Result<Vec<Alias>, ConfigError> {
    let mut aliases = Vec::new();
    for (name, entry) in &file.data.models {
        let table = format!("models.{name}");
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !valid_name {
            return Err(file.error(
                &table,
                None,
                "an alias is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            ));
        }
        if registry.provider(name).is_ok() || name == RESERVED {
            return Err(file.error(
                &table,
                None,
                format!("'{name}' is already a provider name; aliases and providers share one namespace"),
            ));
        }
        let provider = registry.provider(&entry.provider).map_err(|_| {
            file.error(
                &table,
                Some("provider"),
                format!(
                    "'{}' is not a provider ({})",
                    entry.provider,
                    registry.known()
                ),
            )
        })?;
        if entry.model.trim().is_empty() {
            return Err(file.error(&table, Some("model"), "must not be empty"));
        }
        if entry.max_tokens == Some(0) {
            return Err(file.error(&table, Some("max_tokens"), "must be greater than 0"));
        }
        if entry.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(file.error(&table, Some("temperature"), "must be from 0 to 2"));
        }
        aliases.push(Alias {
            name: Box::leak(name.clone().into_boxed_str()),
            provider,
            model: entry.model.clone(),
            max_tokens: entry.max_tokens,
            temperature: entry.temperature,
        });
    }
    Ok(aliases)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn resolve(
        vars: &[(&str, &str)],
        toml: Option<&str>,
    ) -> std::result::Result<Registry, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let file = toml.map(|t| ConfigFile::parse(Path::new("c.toml"), t.to_owned()).unwrap());
        let get = |name: &str| map.get(name).cloned();
        Registry::resolve(&get, None, file.as_ref())
    }

    #[test]
    fn the_built_in_providers_and_their_defaults() {
        let registry = resolve(&[], None).unwrap();
        assert_eq!(registry.provider_names().collect::<Vec<_>>(), BUILTIN_NAMES);
        let gemini = registry.provider("gemini").unwrap();
        assert_eq!(gemini.kind, Kind::Gemini);
        assert_eq!(
            gemini.base_url,
            "https://generativelanguage.googleapis.com/v1beta"
        );
        assert_eq!(gemini.key_variables, ["GEMINI_API_KEY", "GOOGLE_API_KEY"]);
        let ollama = registry.provider("ollama").unwrap();
        assert_eq!(ollama.key, KeyPolicy::Optional);
        assert_eq!(ollama.max_tokens_field, MaxTokensField::MaxTokens);
        for name in ["groq", "openrouter", "deepseek", "mistral"] {
            let p = registry.provider(name).unwrap();
            assert_eq!(
                (p.kind, p.key),
                (Kind::OpenAi, KeyPolicy::Required),
                "{name}"
            );
            assert_eq!(p.max_tokens_field, MaxTokensField::MaxTokens, "{name}");
        }
        let openai = registry.provider("openai").unwrap();
        assert_eq!(openai.max_tokens_field, MaxTokensField::MaxCompletionTokens);
        assert_eq!(registry.default_provider().name, "openai");
        let err = registry.provider("nope").unwrap_err().to_string();
        assert!(err.contains("openai, anthropic, gemini, ollama"), "{err}");
    }

    #[test]
    fn base_urls_come_from_variables_before_the_file() {
        let registry = resolve(
            &[("OLLAMA_BASE_URL", "http://127.0.0.1:9/v1/"), ("OPENAI_BASE_URL", "http://x/v1")],
            Some("[providers.ollama]\nbase_url = \"http://file/v1\"\n[providers.groq]\nbase_url = \"http://groq.local/v1\"\n"),
        )
        .unwrap();
        assert_eq!(
            registry.provider("ollama").unwrap().base_url,
            "http://127.0.0.1:9/v1"
        );
        assert_eq!(
            registry.provider("groq").unwrap().base_url,
            "http://groq.local/v1"
        );
        // Another base URL than OpenAI's own defaults to the old field.
        let openai = registry.provider("openai").unwrap();
        assert_eq!(openai.max_tokens_field, MaxTokensField::MaxTokens);
    }

    #[test]
    fn configured_providers_and_aliases() {
        let registry = resolve(
            &[("HTTP_TIMEOUT_SECONDS", "")],
            Some(
                r#"
default_provider = "vllm"
[providers.vllm]
kind = "openai"
base_url = "http://127.0.0.1:8001/v1"
key = "none"
headers = { "HTTP-Referer" = "https://example.com" }
timeout_seconds = 300
retries = 3
[models.fast]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
max_tokens = 100
"#,
            ),
        )
        .unwrap();
        let vllm = registry.provider("vllm").unwrap();
        assert_eq!(vllm.key, KeyPolicy::Never);
        assert_eq!(vllm.key_variables, ["VLLM_API_KEY"]);
        assert_eq!(vllm.timeout, Duration::from_secs(300));
        assert_eq!(vllm.retries, Some(3));
        assert_eq!(vllm.headers[0].0, "http-referer");
        assert!(!vllm.builtin);
        assert_eq!(registry.default_provider().name, "vllm");
        let fast = registry.alias("fast").unwrap();
        assert_eq!(fast.provider.name, "anthropic");
        assert_eq!(fast.max_tokens, Some(100));
        assert_eq!(registry.names().last(), Some("fast"));
    }

    #[test]
    fn every_file_mistake_names_the_line_and_key() {
        for (toml, line, needle) in [
            ("[providers.Bad]\nkind = \"openai\"\nbase_url = \"http://x\"\n", 1, "[providers.Bad]"),
            ("[providers.completions]\nkind = \"openai\"\nbase_url = \"http://x\"\n", 1, "reserved"),
            ("[providers.x]\nbase_url = \"http://x\"\n", 1, "kind"),
            ("[providers.x]\nkind = \"openai\"\n", 1, "base_url"),
            ("[providers.x]\nkind = \"openai\"\nbase_url = \"ftp://x\"\n", 3, "base_url"),
            ("[providers.x]\nkind = \"gemini\"\nbase_url = \"http://x\"\nmax_tokens_field = \"max_tokens\"\n", 4, "max_tokens_field"),
            ("[providers.x]\nkind = \"openai\"\nbase_url = \"http://x\"\nheaders = { Authorization = \"Bearer k\" }\n", 4, "Authorization"),
            ("[providers.x]\nkind = \"openai\"\nbase_url = \"http://x\"\nheaders = { \"x-goog-api-key\" = \"k\" }\n", 4, "x-goog-api-key"),
            ("[providers.x]\nkind = \"openai\"\nbase_url = \"http://x\"\ntimeout_seconds = 0\n", 4, "timeout_seconds"),
            ("[providers.anthropic]\nkind = \"openai\"\n", 2, "kind"),
            ("[models.openai]\nprovider = \"anthropic\"\nmodel = \"m\"\n", 1, "namespace"),
            ("[models.fast]\nprovider = \"nope\"\nmodel = \"m\"\n", 2, "provider"),
            ("[models.fast]\nprovider = \"openai\"\nmodel = \"m\"\ntemperature = 3\n", 4, "temperature"),
            ("default_provider = \"nope\"\n", 1, "default_provider"),
        ] {
            let err = resolve(&[], Some(toml)).unwrap_err().to_string();
            assert!(err.starts_with(&format!("c.toml:{line}: ")), "{toml}: {err}");
            assert!(err.contains(needle), "{toml}: {err}");
        }
    }
}
