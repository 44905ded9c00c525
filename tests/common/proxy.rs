//! The proxy under test, in-process (`Proxy`) or as the real binary
//! (`ServeProcess`), and a client to call it with.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The proxy, in-process, on 127.0.0.1 with an ephemeral port.
pub struct Proxy {
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts with default settings plus `vars`; both base URLs point at
    /// `upstream` unless `vars` says otherwise.
    pub async fn start(upstream: &str, vars: &[(&str, &str)]) -> Self {
        Self::start_with_config(upstream, vars, None).await
    }

    /// [`Proxy::start`] with the text of a config file as well.
    pub async fn start_with_config(
        upstream: &str,
        vars: &[(&str, &str)],
        config: Option<&str>,
    ) -> Self {
        let mut map: HashMap<String, String> = HashMap::from([
            ("OPENAI_BASE_URL".to_owned(), format!("{upstream}/v1")),
            ("ANTHROPIC_BASE_URL".to_owned(), upstream.to_owned()),
        ]);
        for (k, v) in vars {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let file = config.map(|text| {
            llmproxy::config::ConfigFile::parse(std::path::Path::new("config.toml"), text.into())
                .unwrap()
        });
        let lookup = |name: &str| map.get(name).cloned();
        let settings = llmproxy::config::Settings::resolve(&lookup, file.as_ref()).unwrap();
        let observability =
            llmproxy::config::Observability::from_lookup(|name| map.get(name).cloned()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            llmproxy::server::serve_with(Arc::new(settings), observability, listener, shutdown)
                .await
                .unwrap();
        });
        Proxy {
            url,
            shutdown: Some(tx),
            task,
        }
    }

    /// The text of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Scrapes `/metrics` until it holds `line` (what a stream's end or a
    /// dropped request leaves there has no other signal); panics with the
    /// last scrape after `within`.
    pub async fn wait_for_metric(&self, line: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.metrics().await;
            if text.contains(line) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {line:?} within {within:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn chat_url(&self, provider: &str) -> String {
        format!("{}/v1/chat/{provider}", self.url)
    }

    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// POSTs `body` with a key to `url`.
pub async fn post(url: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(url)
        .header("x-api-key", "sk-test-key")
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hello!"}]})
}

/// The real binary running `serve --port 0`, with its stderr captured.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub url: String,
    pub stderr: Arc<Mutex<String>>,
    pub started: Instant,
}

impl ServeProcess {
    pub async fn start(vars: &[(&str, &str)]) -> Self {
        Self::start_with(&["--port", "0"], vars).await
    }

    /// `serve` with `args` (no `--port 0` added) and `vars`.
    pub async fn start_with(args: &[&str], vars: &[(&str, &str)]) -> Self {
        let started = Instant::now();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_llmproxy"));
        command
            .arg("serve")
            .args(args)
            .env_clear()
            .env("RUST_LOG", "info")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in vars {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn llmproxy");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let captured = Arc::new(Mutex::new(String::new()));
        let url = loop {
            let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .expect("server started within 10 s")
                .unwrap()
                .expect("server printed its address");
            captured.lock().unwrap().push_str(&line);
            captured.lock().unwrap().push('\n');
            // Text or JSON lines: the URL ends at a blank or a quote.
            if let Some(at) = line.find("listening on ") {
                let rest = &line[at + "listening on ".len()..];
                let end = rest.find(['"', ' ']).unwrap_or(rest.len());
                break rest[..end].trim().to_owned();
            }
        };
        let sink = captured.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        ServeProcess {
            child,
            url,
            stderr: captured,
            started,
        }
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}
