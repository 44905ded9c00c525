//! Settings shared by every subcommand, resolved once from the command
//! line's `--config`, the environment (and `.env`, loaded by `main` before
//! anything reads the environment) and the config file, in that order of
//! precedence. Invalid values fail here, naming the variable, or the file,
//! line and key.

pub mod file;

use std::path::Path;
use std::time::Duration;

pub use file::ConfigFile;

use crate::providers::Registry;

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Connect timeout and the longest wait for the next upstream byte
    /// (each provider has its own, this is the default).
    pub timeout: Duration,
    /// Upstream requests in flight at once.
    pub max_connections: usize,
    /// Idle pooled connections kept per host.
    pub max_keepalive_connections: usize,
    /// `serve`'s worker threads (`SERVE_WORKERS`); 0 means one per CPU.
    pub workers: usize,
    pub anthropic_version: String,
    pub anthropic_default_max_tokens: u64,
    pub max_body_bytes: u64,
    pub shutdown_grace: Duration,
    /// Every provider and model alias, built in or configured.
    pub providers: Registry,
    /// The OpenAI-compatible route drops parameters a provider cannot honour
    /// instead of refusing the request.
    pub drop_unsupported_params: bool,
    /// `UPSTREAM_MAX_RETRIES` (or the CLI's `--retries`): wins over every
    /// provider's `retries`.
    pub max_retries: Option<u32>,
    /// Retries when neither that nor the provider says: 0 for `serve` (the
    /// SDKs in front of it retry already), 2 for `chat`/`stream`.
    pub default_retries: u32,
}

pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid {variable}={value:?}: {expected}")]
    Variable {
        variable: String,
        value: String,
        expected: String,
    },
    /// `path` carries `:line` when one is known.
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl ConfigError {
    fn variable(variable: &str, value: impl Into<String>, expected: impl Into<String>) -> Self {
        ConfigError::Variable {
            variable: variable.to_owned(),
            value: value.into(),
            expected: expected.into(),
        }
    }
}

/// Variable lookups, as `Settings` reads them: blank counts as unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Settings {
    /// Reads the process environment and the config file (`--config`, else
    /// `LLMPROXY_CONFIG`, else the XDG location when it exists).
    pub fn from_env(config_flag: Option<&Path>) -> Result<Self, ConfigError> {
        let lookup = |name: &str| std::env::var(name).ok();
        let file = match file::locate(config_flag, &lookup) {
            Some((path, _)) => Some(ConfigFile::load(&path)?),
            None => None,
        };
        Self::resolve(&lookup, file.as_ref())
    }

    /// Resolves settings from any variable lookup (tests pass a map), with
    /// no config file.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::resolve(&lookup, None)
    }

    /// Resolves settings: variables first, then the file, then defaults.
    pub fn resolve(lookup: Lookup<'_>, file: Option<&ConfigFile>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let timeout_variable = get("HTTP_TIMEOUT_SECONDS")
            .map(|_| positive_f64(&get, "HTTP_TIMEOUT_SECONDS", 60.0))
            .transpose()?
            .map(Duration::from_secs_f64);
        let drop_unsupported_params = match get("DROP_UNSUPPORTED_PARAMS") {
            Some(raw) => boolean("DROP_UNSUPPORTED_PARAMS", &raw)?,
            None => file
                .and_then(|f| f.data.drop_unsupported_params)
                .unwrap_or(false),
        };
        Ok(Settings {
            timeout: timeout_variable.unwrap_or(Duration::from_secs(60)),
            max_connections: positive(&get, "HTTP_MAX_CONNECTIONS", 1024)? as usize,
            max_keepalive_connections: number(&get, "HTTP_MAX_KEEPALIVE_CONNECTIONS", 20)? as usize,
            workers: workers(&get)?,
            anthropic_version: get("ANTHROPIC_VERSION").unwrap_or_else(|| "2023-06-01".to_owned()),
            anthropic_default_max_tokens: positive(&get, "ANTHROPIC_DEFAULT_MAX_TOKENS", 1024)?,
            max_body_bytes: positive(&get, "MAX_BODY_BYTES", 4 * 1024 * 1024)?,
            shutdown_grace: Duration::from_secs_f64(non_negative_f64(
                &get,
                "SHUTDOWN_GRACE_SECONDS",
                30.0,
            )?),
            providers: Registry::resolve(&get, timeout_variable, file)?,
            drop_unsupported_params,
            max_retries: get("UPSTREAM_MAX_RETRIES")
                .map(|_| number(&get, "UPSTREAM_MAX_RETRIES", 0))
                .transpose()?
                .map(|n| n.min(u64::from(u32::MAX)) as u32),
            default_retries: 0,
        })
    }

    /// How many worker threads `serve` runs: `SERVE_WORKERS`, else one
    /// per CPU the process may use.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// How many times a failed attempt to `provider` may be retried.
    pub fn retries_for(&self, provider: &crate::providers::Provider) -> u32 {
        self.max_retries
            .or(provider.retries)
            .unwrap_or(self.default_retries)
    }
}

/// `true` or `false`, nothing else.
pub(crate) fn boolean(variable: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::variable(
            variable,
            raw,
            "expected true or false",
        )),
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| ConfigError::variable(variable, raw, "expected a whole number")),
    }
}

/// `SERVE_WORKERS`: 0 (one per CPU) up to a sane bound.
fn workers(get: &impl Fn(&str) -> Option<String>) -> Result<usize, ConfigError> {
    const MOST: u64 = 1024;
    match number(get, "SERVE_WORKERS", 0)? {
        n if n > MOST => Err(ConfigError::variable(
            "SERVE_WORKERS",
            n.to_string(),
            "expected a whole number from 0 (one per CPU) to 1024",
        )),
        n => Ok(n as usize),
    }
}

fn positive(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: u64,
) -> Result<u64, ConfigError> {
    match number(get, variable, default)? {
        0 => Err(ConfigError::variable(
            variable,
            "0",
            "expected a whole number greater than 0",
        )),
        n => Ok(n),
    }
}

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: f64,
    allow_zero: bool,
) -> Result<f64, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        Ok(v) if allow_zero && v == 0.0 => Ok(v),
        _ => Err(ConfigError::variable(
            variable,
            raw,
            if allow_zero {
                "expected a number of seconds, 0 or more"
            } else {
                "expected a number of seconds greater than 0"
            },
        )),
    }
}

fn positive_f64(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: f64,
) -> Result<f64, ConfigError> {
    seconds(get, variable, default, false)
}

fn non_negative_f64(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
    default: f64,
) -> Result<f64, ConfigError> {
    seconds(get, variable, default, true)
}

/// An `http(s)://` URL without a trailing slash, so paths can be appended.
pub(crate) fn base_url(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim().trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.query().is_none() =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err("expected an http:// or https:// URL without a query string"),
    }
}

/// A base URL from `variable`, if set.
pub(crate) fn base_url_variable(
    get: &impl Fn(&str) -> Option<String>,
    variable: &str,
) -> Result<Option<String>, ConfigError> {
    get(variable)
        .map(|raw| {
            base_url(&raw).map_err(|expected| ConfigError::variable(variable, raw, expected))
        })
        .transpose()
}

/// Builds a variable error (for the registry's variables).
pub(crate) fn variable_error(variable: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError::variable(variable, value, expected)
}

// --- Observability: LOG_FORMAT and METRICS -------------------------------
// Kept apart from `Settings`: logging starts before the other settings are
// read, and only `serve` has metrics.

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `tracing-subscriber`'s text lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observability {
    pub log_format: LogFormat,
    /// Whether `serve` answers `GET /metrics` (`METRICS`, default `true`).
    pub metrics: bool,
}

impl Default for Observability {
    fn default() -> Self {
        Observability {
            log_format: LogFormat::Text,
            metrics: true,
        }
    }
}

impl Observability {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let log_format = match get("LOG_FORMAT") {
            None => LogFormat::Text,
            Some(raw) => match raw.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::variable(
                        "LOG_FORMAT",
                        raw,
                        "expected text or json",
                    ))
                }
            },
        };
        let metrics = match get("METRICS") {
            None => true,
            Some(raw) => boolean("METRICS", &raw)?,
        };
        Ok(Observability {
            log_format,
            metrics,
        })
    }
}

#[cfg(test)]
mod observability_tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<Observability, ConfigError> {
        Observability::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(read(&[]).unwrap(), Observability::default());
        assert_eq!(
            read(&[("LOG_FORMAT", " ")]).unwrap(),
            Observability::default()
        );
        let o = read(&[("LOG_FORMAT", "json"), ("METRICS", "false")]).unwrap();
        assert_eq!(o.log_format, LogFormat::Json);
        assert!(!o.metrics);
        assert!(read(&[("METRICS", "true")]).unwrap().metrics);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("LOG_FORMAT", "JSON"),
            ("LOG_FORMAT", "logfmt"),
            ("METRICS", "1"),
            ("METRICS", "off"),
        ] {
            let err = read(&[(var, value)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Variable { variable, .. } if variable == var),
                "{var}={value}: {err}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_readme() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert_eq!(s.max_connections, 1024);
        assert_eq!(s.max_keepalive_connections, 20);
        assert_eq!(s.workers, 0);
        assert!(!s.drop_unsupported_params);
        assert_eq!((s.max_retries, s.default_retries), (None, 0));
        assert_eq!(s.anthropic_version, "2023-06-01");
        assert_eq!(s.anthropic_default_max_tokens, 1024);
        assert_eq!(s.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn values_are_read() {
        let s = settings(&[
            ("HTTP_TIMEOUT_SECONDS", "0.5"),
            ("HTTP_MAX_CONNECTIONS", "7"),
            ("HTTP_MAX_KEEPALIVE_CONNECTIONS", "0"),
            ("ANTHROPIC_VERSION", "2023-01-01"),
            ("ANTHROPIC_DEFAULT_MAX_TOKENS", "55"),
            ("MAX_BODY_BYTES", "1000"),
            ("SHUTDOWN_GRACE_SECONDS", "0"),
            ("SERVE_WORKERS", "3"),
        ])
        .unwrap();
        assert_eq!((s.workers, s.worker_threads()), (3, 3));
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!(s.max_connections, 7);
        assert_eq!(s.max_keepalive_connections, 0);
        assert_eq!(s.anthropic_version, "2023-01-01");
        assert_eq!(s.anthropic_default_max_tokens, 55);
        assert_eq!(s.max_body_bytes, 1000);
        assert_eq!(s.shutdown_grace, Duration::ZERO);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            ("HTTP_TIMEOUT_SECONDS", "soon"),
            ("HTTP_TIMEOUT_SECONDS", "0"),
            ("HTTP_MAX_CONNECTIONS", "-1"),
            ("HTTP_MAX_CONNECTIONS", "0"),
            ("HTTP_MAX_KEEPALIVE_CONNECTIONS", "lots"),
            ("SERVE_WORKERS", "-2"),
            ("SERVE_WORKERS", "1025"),
            ("OPENAI_BASE_URL", "not a url"),
            ("OPENAI_BASE_URL", "ftp://example.com"),
            ("ANTHROPIC_BASE_URL", "localhost:8080"),
            ("GROQ_BASE_URL", "http://x/?key=1"),
            ("OPENAI_MAX_TOKENS_FIELD", "tokens"),
            ("DEFAULT_PROVIDER", "nope"),
            ("DROP_UNSUPPORTED_PARAMS", "yes"),
            ("UPSTREAM_MAX_RETRIES", "-1"),
            ("UPSTREAM_MAX_RETRIES", "two"),
            ("ANTHROPIC_DEFAULT_MAX_TOKENS", "0"),
            ("MAX_BODY_BYTES", "4MB"),
            ("SHUTDOWN_GRACE_SECONDS", "-3"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Variable { variable, .. } if variable == var),
                "{var}={value}: {err}"
            );
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn retries_come_from_the_variable_then_the_provider_then_the_default() {
        let file = ConfigFile::parse(
            Path::new("c.toml"),
            "[providers.groq]\nretries = 4\n".to_owned(),
        )
        .unwrap();
        let resolve = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::resolve(&|name| map.get(name).cloned(), Some(&file)).unwrap()
        };
        let mut s = resolve(&[]);
        let groq = s.providers.provider("groq").unwrap();
        let openai = s.providers.provider("openai").unwrap();
        assert_eq!((s.retries_for(groq), s.retries_for(openai)), (4, 0));
        s.default_retries = 2;
        assert_eq!((s.retries_for(groq), s.retries_for(openai)), (4, 2));
        let s = resolve(&[("UPSTREAM_MAX_RETRIES", "1")]);
        assert_eq!((s.retries_for(groq), s.retries_for(openai)), (1, 1));
    }

    #[test]
    fn empty_values_mean_default() {
        let s = settings(&[("HTTP_TIMEOUT_SECONDS", ""), ("OPENAI_BASE_URL", " ")]).unwrap();
        assert_eq!(s, settings(&[]).unwrap());
    }
}
