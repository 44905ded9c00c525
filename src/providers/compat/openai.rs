//! To an OpenAI-format provider the client's body goes as it was sent:
//! every member in its order with its bytes unchanged (numbers as written,
//! nested whitespace and escapes included), only `model` replaced by the
//! resolved one and an alias's defaults added when the client did not send
//! them. Only the whitespace between top-level members is not kept.

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::{Defaults, Target};
use crate::error::{Error, Result};
use crate::providers::MaxTokensField;

/// A JSON object's members in order, values unparsed.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((name, value)) = map.next_entry::<String, &'de RawValue>()? {
                    members.push((name, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// The body to send: the client's members, rewritten as they are written.
pub struct Body<'a> {
    members: Members<'a>,
    model: &'a str,
    /// Members to add at the end, or to fill in where the client sent
    /// `null`.
    defaults: Vec<(&'static str, serde_json::Value)>,
}

/// Reads the client's body for forwarding to `target`.
pub fn body<'a>(raw: &'a [u8], target: &'a Target) -> Result<Body<'a>> {
    let members: Members<'a> =
        serde_json::from_slice(raw).map_err(|e| Error::MalformedJson(e.to_string()))?;
    let sent = |name: &str| {
        members
            .0
            .iter()
            .any(|(n, v)| n == name && v.get() != "null")
    };
    let Defaults {
        max_tokens,
        temperature,
    } = target.defaults;
    let mut defaults = Vec::new();
    if let Some(n) = max_tokens {
        if !sent("max_tokens") && !sent("max_completion_tokens") {
            // The provider's own field: api.openai.com's reasoning models
            // refuse the old one.
            let name = match target.provider.max_tokens_field {
                MaxTokensField::MaxTokens => "max_tokens",
                MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            };
            defaults.push((name, n.into()));
        }
    }
    if let Some(t) = temperature {
        if !sent("temperature") {
            defaults.push(("temperature", t.into()));
        }
    }
    Ok(Body {
        members,
        model: &target.model,
        defaults,
    })
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let mut filled = vec![false; self.defaults.len()];
        for (name, value) in &self.members.0 {
            if name == "model" {
                map.serialize_entry(name, self.model)?;
                continue;
            }
            let default = self.defaults.iter().position(|(n, _)| n == name);
            match default {
                Some(i) if value.get() == "null" => {
                    filled[i] = true;
                    map.serialize_entry(name, &self.defaults[i].1)?;
                }
                _ => map.serialize_entry(name, value)?,
            }
        }
        for ((name, value), filled) in self.defaults.iter().zip(filled) {
            if !filled {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn target(model: &str, defaults: Defaults) -> Target {
        let settings = Settings::from_lookup(|_| None).unwrap();
        Target {
            provider: settings.providers.provider("openai").unwrap(),
            model: model.to_owned(),
            defaults,
        }
    }

    fn rewrite(raw: &str, target: &Target) -> String {
        let body = body(raw.as_bytes(), target).unwrap();
        String::from_utf8(serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn only_the_model_changes_and_every_other_member_keeps_its_bytes() {
        let raw = r#"{ "temperature" : 1.50, "model":"openai/gpt-4o-mini", "messages":[ {"role":"user","content":"h\u00e9 \"x\""} ],
            "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
            "max_tokens": 1e2, "response_format": {"type":"json_object"}, "zzz": null }"#;
        let out = rewrite(raw, &target("gpt-4o-mini", Defaults::default()));
        assert_eq!(
            out,
            r#"{"temperature":1.50,"model":"gpt-4o-mini","messages":[ {"role":"user","content":"h\u00e9 \"x\""} ],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"max_tokens":1e2,"response_format":{"type":"json_object"},"zzz":null}"#
        );
    }

    #[test]
    fn alias_defaults_fill_in_only_what_the_client_did_not_send() {
        let defaults = Defaults {
            max_tokens: Some(64),
            temperature: Some(0.2),
        };
        let t = target("m", defaults);
        // api.openai.com's field for the built-in openai provider.
        assert_eq!(
            rewrite(r#"{"model":"fast","messages":[]}"#, &t),
            r#"{"model":"m","messages":[],"max_completion_tokens":64,"temperature":0.2}"#
        );
        assert_eq!(
            rewrite(
                r#"{"model":"fast","max_tokens":5,"temperature":null,"messages":[]}"#,
                &t
            ),
            r#"{"model":"m","max_tokens":5,"temperature":0.2,"messages":[]}"#
        );
        assert_eq!(
            rewrite(
                r#"{"model":"fast","max_completion_tokens":null,"temperature":1,"messages":[]}"#,
                &t
            ),
            r#"{"model":"m","max_completion_tokens":64,"temperature":1,"messages":[]}"#
        );
    }
}
