//! Settings shared by every subcommand, resolved once from the environment
//! (and `.env`, loaded by `main` before anything reads the environment).
//! Invalid values fail here, naming the variable.

use std::time::Duration;

/// Which OpenAI request field carries the caller's `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Connect timeout and the longest wait for the next upstream byte.
    pub timeout: Duration,
    /// Upstream requests in flight at once.
    pub max_connections: usize,
    /// Idle pooled connections kept per host.
    pub max_keepalive_connections: usize,
    pub openai_base_url: String,
    pub openai_max_tokens_field: MaxTokensField,
    pub anthropic_base_url: String,
    pub anthropic_version: String,
    pub anthropic_default_max_tokens: u64,
    pub max_body_bytes: u64,
    pub shutdown_grace: Duration,
}

pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const ANTHROPIC_DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid {variable}={value:?}: {expected}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Resolves settings from any variable lookup (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let openai_base_url = base_url(&get, "OPENAI_BASE_URL", OPENAI_DEFAULT_BASE_URL)?;
        // OpenAI's own API wants the new field (reasoning models reject the
        // old one); OpenAI-compatible servers often only know `max_tokens`.
        let default_field = if openai_base_url == OPENAI_DEFAULT_BASE_URL {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        };
        let openai_max_tokens_field = match get("OPENAI_MAX_TOKENS_FIELD").as_deref().map(str::trim)
        {
            None => default_field,
            Some("max_tokens") => MaxTokensField::MaxTokens,
            Some("max_completion_tokens") => MaxTokensField::MaxCompletionTokens,
            Some(other) => {
                return Err(ConfigError {
                    variable: "OPENAI_MAX_TOKENS_FIELD",
                    value: other.to_owned(),
                    expected: "expected max_tokens or max_completion_tokens",
                })
            }
        };
        Ok(Settings {
            timeout: Duration::from_secs_f64(positive_f64(&get, "HTTP_TIMEOUT_SECONDS", 60.0)?),
            max_connections: positive(&get, "HTTP_MAX_CONNECTIONS", 100)? as usize,
            max_keepalive_connections: number(&get, "HTTP_MAX_KEEPALIVE_CONNECTIONS", 20)? as usize,
            openai_base_url,
            openai_max_tokens_field,
            anthropic_base_url: base_url(&get, "ANTHROPIC_BASE_URL", ANTHROPIC_DEFAULT_BASE_URL)?,
            anthropic_version: get("ANTHROPIC_VERSION").unwrap_or_else(|| "2023-06-01".to_owned()),
            anthropic_default_max_tokens: positive(&get, "ANTHROPIC_DEFAULT_MAX_TOKENS", 1024)?,
            max_body_bytes: positive(&get, "MAX_BODY_BYTES", 4 * 1024 * 1024)?,
            shutdown_grace: Duration::from_secs_f64(non_negative_f64(
                &get,
                "SHUTDOWN_GRACE_SECONDS",
                30.0,
            )?),
        })
    }
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match get(variable) {
        None => Ok(default),
        Some(raw) => raw.trim().parse::<u64>().map_err(|_| ConfigError {
            variable,
            value: raw,
            expected: "expected a whole number",
        }),
    }
}

fn positive(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u64,
) -> Result<u64, ConfigError> {
    match number(get, variable, default)? {
        0 => Err(ConfigError {
            variable,
            value: "0".to_owned(),
            expected: "expected a whole number greater than 0",
        }),
        n => Ok(n),
    }
}

fn seconds(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: f64,
    allow_zero: bool,
) -> Result<f64, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default);
    };
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(v),
        Ok(v) if allow_zero && v == 0.0 => Ok(v),
        _ => Err(ConfigError {
            variable,
            value: raw,
            expected: if allow_zero {
                "expected a number of seconds, 0 or more"
            } else {
                "expected a number of seconds greater than 0"
            },
        }),
    }
}

fn positive_f64(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: f64,
) -> Result<f64, ConfigError> {
    seconds(get, variable, default, false)
}

fn non_negative_f64(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: f64,
) -> Result<f64, ConfigError> {
    seconds(get, variable, default, true)
}

/// An `http(s)://` URL without a trailing slash, so paths can be appended.
fn base_url(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: &str,
) -> Result<String, ConfigError> {
    let Some(raw) = get(variable) else {
        return Ok(default.to_owned());
    };
    let trimmed = raw.trim().trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.has_host()
                && url.query().is_none() =>
        {
            Ok(trimmed.to_owned())
        }
        _ => Err(ConfigError {
            variable,
            value: raw,
            expected: "expected an http:// or https:// URL without a query string",
        }),
    }
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
                    return Err(ConfigError {
                        variable: "LOG_FORMAT",
                        value: raw,
                        expected: "expected text or json",
                    })
                }
            },
        };
        let metrics = match get("METRICS") {
            None => true,
            Some(raw) => match raw.trim() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ConfigError {
                        variable: "METRICS",
                        value: raw,
                        expected: "expected true or false",
                    })
                }
            },
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
            assert_eq!(err.variable, var, "{var}={value}");
            assert!(err.to_string().contains(var), "{err}");
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
        assert_eq!(s.max_connections, 100);
        assert_eq!(s.max_keepalive_connections, 20);
        assert_eq!(s.openai_base_url, "https://api.openai.com/v1");
        assert_eq!(
            s.openai_max_tokens_field,
            MaxTokensField::MaxCompletionTokens
        );
        assert_eq!(s.anthropic_base_url, "https://api.anthropic.com");
        assert_eq!(s.anthropic_version, "2023-06-01");
        assert_eq!(s.anthropic_default_max_tokens, 1024);
        assert_eq!(s.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn other_base_url_defaults_to_max_tokens_and_loses_trailing_slash() {
        let s = settings(&[("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")]).unwrap();
        assert_eq!(s.openai_base_url, "http://127.0.0.1:9/v1");
        assert_eq!(s.openai_max_tokens_field, MaxTokensField::MaxTokens);
        let s = settings(&[
            ("OPENAI_BASE_URL", "http://x/v1"),
            ("OPENAI_MAX_TOKENS_FIELD", "max_completion_tokens"),
        ])
        .unwrap();
        assert_eq!(
            s.openai_max_tokens_field,
            MaxTokensField::MaxCompletionTokens
        );
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
        ])
        .unwrap();
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
            ("OPENAI_BASE_URL", "not a url"),
            ("OPENAI_BASE_URL", "ftp://example.com"),
            ("ANTHROPIC_BASE_URL", "localhost:8080"),
            ("OPENAI_MAX_TOKENS_FIELD", "tokens"),
            ("ANTHROPIC_DEFAULT_MAX_TOKENS", "0"),
            ("MAX_BODY_BYTES", "4MB"),
            ("SHUTDOWN_GRACE_SECONDS", "-3"),
        ] {
            let err = settings(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{var}={value}");
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn empty_values_mean_default() {
        let s = settings(&[("HTTP_TIMEOUT_SECONDS", ""), ("OPENAI_BASE_URL", " ")]).unwrap();
        assert_eq!(s, settings(&[]).unwrap());
    }
}
