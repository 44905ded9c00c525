//! The TOML config file: where it is found, its schema, and errors that
//! name the file, the line and the key. Read once at start-up; nothing of it
//! is watched afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use crate::providers::{Kind, MaxTokensField};

/// The parsed file, with its text kept for locating errors.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    source: String,
    pub data: FileData,
}

/// The top level: `[providers.*]`, `[models.*]` and two settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileData {
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderEntry>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelEntry>,
    pub default_provider: Option<String>,
    pub drop_unsupported_params: Option<bool>,
}

/// `[providers.NAME]`: a new provider, or changes to a built-in one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub kind: Option<Kind>,
    pub base_url: Option<String>,
    pub key: Option<KeyMode>,
    pub key_env: Option<String>,
    pub max_tokens_field: Option<MaxTokensField>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_seconds: Option<f64>,
    pub retries: Option<u32>,
}

/// `key = "caller" | "optional" | "none"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    /// The caller's key (`X-API-Key`, or the CLI's), required.
    Caller,
    /// The caller's key when there is one.
    Optional,
    /// No key is ever sent.
    None,
}

/// `[models.ALIAS]`: a name for a provider and model, with defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub provider: String,
    pub model: String,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
}

/// Which file to read: `--config`, else `LLMPROXY_CONFIG`, else the XDG
/// location when it exists. `true` when the file was named explicitly (then
/// it must exist).
pub fn locate(
    flag: Option<&Path>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Option<(PathBuf, bool)> {
    if let Some(path) = flag {
        return Some((path.to_owned(), true));
    }
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if let Some(path) = get("LLMPROXY_CONFIG") {
        return Some((PathBuf::from(path), true));
    }
    let dir = get("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| get("HOME").map(|home| Path::new(&home).join(".config")))?;
    let path = dir.join("llmproxy").join("config.toml");
    path.is_file().then_some((path, false))
}

impl ConfigFile {
    /// Reads and parses `path`. A syntax error or an unknown key names the
    /// line.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: format!("cannot read the config file: {e}"),
        })?;
        Self::parse(path, source)
    }

    pub fn parse(path: &Path, source: String) -> Result<Self, ConfigError> {
        match toml::from_str::<FileData>(&source) {
            Ok(data) => Ok(ConfigFile {
                path: path.to_owned(),
                source,
                data,
            }),
            Err(error) => {
                let line = error
                    .span()
                    .map(|span| line_of(&source, span.start))
                    .unwrap_or(1);
                let message = error.message().trim().replace('\n', " ");
                Err(ConfigError::File {
                    path: format!("{}:{line}", path.display()),
                    message,
                })
            }
        }
    }

    /// An error about `key` of table `table` (`providers.vllm`), naming the
    /// line where it is set (or where the table starts).
    pub fn error(&self, table: &str, key: Option<&str>, message: impl Into<String>) -> ConfigError {
        let line = self.line_of_key(table, key);
        let place = match key {
            Some(key) => format!("[{table}] {key}"),
            None => format!("[{table}]"),
        };
        ConfigError::File {
            path: format!("{}:{line}", self.path.display()),
            message: format!("{place}: {}", message.into()),
        }
    }

    /// An error about a top-level key.
    pub fn top_level_error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let line = self.line_of_key("", Some(key));
        ConfigError::File {
            path: format!("{}:{line}", self.path.display()),
            message: format!("{key}: {}", message.into()),
        }
    }

    /// The 1-based line of `key` inside `[table]` ("" for the top level),
    /// else of the table header, else 1. A plain scan: good enough to point
    /// a person at the right line.
    fn line_of_key(&self, table: &str, key: Option<&str>) -> usize {
        let mut current = String::new();
        let mut header_line = None;
        for (index, raw) in self.source.lines().enumerate() {
            let line = raw.trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
                current = name.trim().replace([' ', '"'], "");
                if current == table {
                    header_line = Some(index + 1);
                }
                continue;
            }
            if current != table {
                continue;
            }
            if let Some(key) = key {
                let name = line.split('=').next().unwrap_or_default().trim();
                if name.trim_matches('"') == key {
                    return index + 1;
                }
            }
        }
        header_line.unwrap_or(1)
    }
}

fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("/etc/llm.toml"), text.to_owned())
    }

    #[test]
    fn a_complete_file_parses() {
        let file = parse(
            r#"
default_provider = "vllm"
drop_unsupported_params = true

[providers.vllm]
kind = "openai"
base_url = "http://127.0.0.1:8001/v1"
key = "none"
key_env = "VLLM_API_KEY"
max_tokens_field = "max_tokens"
headers = { "HTTP-Referer" = "https://example.com" }
timeout_seconds = 300
retries = 1

[models.fast]
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
max_tokens = 512
temperature = 0.2
"#,
        )
        .unwrap();
        let vllm = &file.data.providers["vllm"];
        assert_eq!(vllm.kind, Some(Kind::OpenAi));
        assert_eq!(vllm.key, Some(KeyMode::None));
        assert_eq!(vllm.timeout_seconds, Some(300.0));
        assert_eq!(file.data.models["fast"].max_tokens, Some(512));
        assert_eq!(file.data.default_provider.as_deref(), Some("vllm"));
    }

    #[test]
    fn unknown_keys_and_syntax_errors_name_the_line() {
        let err = parse("[providers.x]\nkind = \"openai\"\nbase_ur = \"http://x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("/etc/llm.toml:3: "), "{text}");
        assert!(text.contains("base_ur"), "{text}");
        let err = parse("listen = 1\n").unwrap_err().to_string();
        assert!(err.contains(":1: ") && err.contains("listen"), "{err}");
        let err = parse("[models.a]\nprovider = \n").unwrap_err().to_string();
        assert!(err.contains(":2: "), "{err}");
        let err = parse("[providers.x]\nkind = \"grpc\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains(":2: ") && err.contains("grpc"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_the_key() {
        let file = parse("[providers.a]\nkind = \"openai\"\n\n[providers.b]\nkind = \"openai\"\nbase_url = \"x\"\n").unwrap();
        let err = file
            .error("providers.b", Some("base_url"), "bad")
            .to_string();
        assert_eq!(err, "/etc/llm.toml:6: [providers.b] base_url: bad");
        let err = file
            .error("providers.b", Some("headers"), "bad")
            .to_string();
        assert_eq!(err, "/etc/llm.toml:4: [providers.b] headers: bad");
    }

    #[test]
    fn location_follows_flag_then_variable_then_xdg() {
        let none = |_: &str| None;
        assert_eq!(
            locate(Some(Path::new("a.toml")), &none),
            Some((PathBuf::from("a.toml"), true))
        );
        let var = |name: &str| (name == "LLMPROXY_CONFIG").then(|| "b.toml".to_owned());
        assert_eq!(locate(None, &var), Some((PathBuf::from("b.toml"), true)));
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().to_string_lossy().into_owned();
        let lookup = move |name: &str| (name == "XDG_CONFIG_HOME").then(|| xdg.clone());
        assert_eq!(
            locate(None, &lookup),
            None,
            "absent default file is no error"
        );
        std::fs::create_dir_all(dir.path().join("llmproxy")).unwrap();
        std::fs::write(dir.path().join("llmproxy/config.toml"), "").unwrap();
        assert_eq!(
            locate(None, &lookup),
            Some((dir.path().join("llmproxy/config.toml"), false))
        );
    }
}
