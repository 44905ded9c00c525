//! `GET /openapi.json` and `GET /docs`. The document is kept by hand, so
//! these tests fail when a route, a request or reply field, or the error
//! shape changes without it: its paths must equal the router's
//! (`server::ROUTES`), its schemas the types' fields.

mod common;

use std::collections::BTreeSet;

use common::*;
use llmproxy::providers::{ChatRequest, ChatResponse, Message, Role, Usage};
use serde_json::{json, Value};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(proxy: &Proxy) -> Value {
    let reply = client()
        .get(format!("{}/openapi.json", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "application/json");
    reply.json().await.unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn set<const N: usize>(names: [&str; N]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("not a local $ref: {reference}"));
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("$ref to nothing: {reference}"))
        }
        None => value,
    }
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc.pointer(&format!("/components/schemas/{name}"))
        .unwrap_or_else(|| panic!("no schema {name}"))
}

/// Every `$ref` anywhere in `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// `(method, path, operation)` of every operation.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            found.push((method.clone(), path.clone(), operation));
        }
    }
    found
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let doc = document(&proxy).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert_eq!(doc["info"]["title"], "llmproxy");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for reference in &all {
        resolve(&doc, &json!({ "$ref": reference }));
    }

    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        schemes["ApiKey"],
        json!({"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": schemes["ApiKey"]["description"]})
    );
    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let what = format!("{method} {path}");
        assert!(
            ids.insert(operation["operationId"].as_str().unwrap()),
            "{what}"
        );
        for requirement in operation["security"].as_array().expect(&what) {
            for name in keys(requirement) {
                assert!(schemes.get(&name).is_some(), "{what}: {name}");
            }
        }
        // Path templates are declared parameters.
        let parameters: Vec<&Value> = operation
            .get("parameters")
            .map(|p| {
                p.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| resolve(&doc, p))
                    .collect()
            })
            .unwrap_or_default();
        for name in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            assert!(
                parameters
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                "{what}: path parameter {name}"
            );
        }
        // Every reply documents the request id header.
        let responses = operation["responses"].as_object().expect(&what);
        assert!(!responses.is_empty(), "{what}");
        for (status, response) in responses {
            let response = resolve(&doc, response);
            assert!(response["description"].is_string(), "{what} {status}");
            assert!(
                response["headers"].get("x-llmproxy-request-id").is_some(),
                "{what} {status}: no x-llmproxy-request-id"
            );
        }
    }
    let chat = &doc["paths"]["/v1/chat/{provider}"]["post"];
    assert_eq!(chat["security"], json!([{"ApiKey": []}]));
    let ok = &chat["responses"]["200"]["content"];
    assert_eq!(
        ok["application/json"]["schema"]["$ref"],
        "#/components/schemas/ChatResponse"
    );
    assert!(ok.get("text/event-stream").is_some());
    assert_eq!(
        chat["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ChatRequest"
    );
}

#[tokio::test]
async fn the_paths_are_the_routers() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let doc = document(&proxy).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let routed: BTreeSet<(String, String)> = llmproxy::server::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed);
    // And the router does answer each of them.
    for (method, path) in &routed {
        let url = format!("{}{}", proxy.url, path.replace("{provider}", "openai"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = client().request(method.clone(), &url).send().await.unwrap();
        assert_ne!(reply.status(), 404, "{method} {path}");
        assert_ne!(reply.status(), 405, "{method} {path}");
    }
}

#[tokio::test]
async fn the_schemas_are_the_types() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let doc = document(&proxy).await;
    let properties = |name: &str| keys(&schema(&doc, name)["properties"]);

    // Destructured without `..`: a new field breaks the build here.
    let ChatRequest {
        model: _,
        messages: _,
        stream: _,
        max_tokens: _,
        temperature: _,
    } = ChatRequest::from_json(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
        .unwrap();
    assert_eq!(
        properties("ChatRequest"),
        set(["model", "messages", "stream", "max_tokens", "temperature"])
    );
    let Message {
        role: _,
        content: _,
    } = Message {
        role: Role::User,
        content: String::new(),
    };
    assert_eq!(properties("Message"), set(["role", "content"]));
    let roles: Vec<Value> = [Role::System, Role::User, Role::Assistant]
        .into_iter()
        .map(|role| {
            // A new role breaks the build here.
            match role {
                Role::System | Role::User | Role::Assistant => {}
            }
            serde_json::to_value(role).unwrap()
        })
        .collect();
    assert_eq!(
        schema(&doc, "Message")["properties"]["role"]["enum"],
        json!(roles)
    );

    let sample = serde_json::to_value(ChatResponse {
        provider: "openai".into(),
        model: "m".into(),
        content: "c".into(),
        stop_reason: None,
        usage: Usage {
            input_tokens: 1,
            output_tokens: 2,
        },
        id: "i".into(),
    })
    .unwrap();
    assert_eq!(properties("ChatResponse"), keys(&sample));
    assert_eq!(
        schema(&doc, "ChatResponse")["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<BTreeSet<_>>(),
        keys(&sample)
    );
    assert_eq!(properties("Usage"), keys(&sample["usage"]));

    // The error and health shapes, as the server answers them.
    let reply = post(&proxy.chat_url("nope"), chat_body("m", false)).await;
    assert_eq!(reply.status(), 404);
    assert_eq!(
        properties("Error"),
        keys(&reply.json::<Value>().await.unwrap())
    );
    let reply = client()
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap();
    let health: Value = reply.json().await.unwrap();
    assert_eq!(properties("Health"), keys(&health));
    assert!(schema(&doc, "Health")["properties"]["status"]["enum"]
        .as_array()
        .unwrap()
        .contains(&health["status"]));
}

#[tokio::test]
async fn docs_render_the_document() {
    let proxy = Proxy::start("http://127.0.0.1:9", &[]).await;
    let reply = client()
        .get(format!("{}/docs", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.headers()["content-type"], "text/html; charset=utf-8");
    let page = reply.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains(r#"url: "/openapi.json""#), "{page}");
    assert!(page.contains("swagger-ui-bundle.js"));
}
