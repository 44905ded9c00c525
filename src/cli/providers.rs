//! `llmproxy providers`: every provider (built in or configured) and model
//! alias, as a table for people or JSON for scripts.

use serde::Serialize;

use super::exit::Failure;
use super::output::Output;
use crate::config::Settings;
use crate::providers::KeyPolicy;

#[derive(Serialize)]
struct Listing<'a> {
    default_provider: &'a str,
    providers: Vec<ProviderRow<'a>>,
    models: Vec<AliasRow<'a>>,
}

#[derive(Serialize)]
struct ProviderRow<'a> {
    name: &'a str,
    kind: &'a str,
    base_url: &'a str,
    key_variables: &'a [String],
    /// `required`, `optional` or `none`.
    key: &'a str,
    source: &'a str,
}

#[derive(Serialize)]
struct AliasRow<'a> {
    name: &'a str,
    provider: &'a str,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

pub fn list(settings: &Settings, json: bool) -> Result<(), Failure> {
    let registry = &settings.providers;
    let listing = Listing {
        default_provider: registry.default_provider().name,
        providers: registry
            .providers()
            .iter()
            .map(|p| ProviderRow {
                name: p.name,
                kind: p.kind.as_str(),
                base_url: &p.base_url,
                key_variables: &p.key_variables,
                key: match p.key {
                    KeyPolicy::Required => "required",
                    KeyPolicy::Optional => "optional",
                    KeyPolicy::Never => "none",
                },
                source: if p.builtin { "built-in" } else { "config" },
            })
            .collect(),
        models: registry
            .aliases()
            .iter()
            .map(|a| AliasRow {
                name: a.name,
                provider: a.provider.name,
                model: &a.model,
                max_tokens: a.max_tokens,
                temperature: a.temperature,
            })
            .collect(),
    };
    let text = if json {
        serde_json::to_string_pretty(&listing).map_err(anyhow::Error::from)? + "\n"
    } else {
        table(&listing)
    };
    Output::default().write(text.as_bytes())
}

fn table(listing: &Listing<'_>) -> String {
    let mut rows = vec![[
        "PROVIDER".to_owned(),
        "KIND".to_owned(),
        "KEY".to_owned(),
        "KEY VARIABLE".to_owned(),
        "BASE URL".to_owned(),
    ]];
    for p in &listing.providers {
        let mut name = p.name.to_owned();
        if p.name == listing.default_provider {
            name.push_str(" (default)");
        }
        rows.push([
            name,
            p.kind.to_owned(),
            p.key.to_owned(),
            p.key_variables.join(", "),
            p.base_url.to_owned(),
        ]);
    }
    let mut text = columns(&rows);
    if !listing.models.is_empty() {
        let mut rows = vec![[
            "ALIAS".to_owned(),
            "PROVIDER".to_owned(),
            "MODEL".to_owned(),
            "DEFAULTS".to_owned(),
        ]];
        for a in &listing.models {
            let mut defaults = Vec::new();
            if let Some(n) = a.max_tokens {
                defaults.push(format!("max_tokens={n}"));
            }
            if let Some(t) = a.temperature {
                defaults.push(format!("temperature={t}"));
            }
            rows.push([
                a.name.to_owned(),
                a.provider.to_owned(),
                a.model.to_owned(),
                defaults.join(" "),
            ]);
        }
        text.push('\n');
        text.push_str(&columns(&rows));
    }
    text
}

/// Left-aligned columns, two spaces apart, no trailing blanks.
fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}
