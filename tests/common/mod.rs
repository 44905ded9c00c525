//! Test support shared by the integration tests: fixtures, a scripted mock
//! upstream on a real loopback socket (chunk timing, stalls, resets, and
//! observing when the proxy closes its connection), and the proxy itself,
//! in-process or as the real binary.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};

mod fixtures;
#[allow(unused_imports)]
pub use fixtures::fixture;

/// One request as the mock upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the mock does after the response head.
#[derive(Debug, Clone)]
pub enum Step {
    /// Writes bytes (one chunk when chunked).
    Send(Vec<u8>),
    Sleep(Duration),
    /// Sends nothing more and keeps the connection open until the peer
    /// closes it.
    Stall,
    /// Resets the connection (RST).
    Reset,
    /// Closes the connection without finishing the body.
    Close,
}

#[derive(Debug, Clone)]
pub struct Script {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `None`: chunked transfer encoding, each `Send` one chunk.
    pub content_length: Option<usize>,
    pub steps: Vec<Step>,
    /// Sleep before the response head (or stall when `Duration::MAX`).
    pub delay: Duration,
}

impl Script {
    /// A complete reply with a `Content-Length`.
    pub fn full(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        Script {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            content_length: Some(body.len()),
            steps: vec![Step::Send(body)],
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::full(status, "application/json", body)
    }

    /// A chunked SSE reply made of `steps`.
    pub fn sse(steps: Vec<Step>) -> Self {
        Script {
            status: 200,
            headers: vec![(
                "content-type".into(),
                "text/event-stream; charset=utf-8".into(),
            )],
            content_length: None,
            steps,
            delay: Duration::ZERO,
        }
    }

    /// Accepts the request and never answers.
    pub fn never_answer() -> Self {
        Script {
            status: 200,
            headers: vec![],
            content_length: None,
            steps: vec![],
            delay: Duration::MAX,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A fixture SSE stream, one `Send` step per event (as a real upstream
/// flushes them).
pub fn sse_events(bytes: &[u8]) -> Vec<Step> {
    let text = std::str::from_utf8(bytes).expect("utf-8 fixture");
    text.split_inclusive("\n\n")
        .map(|e| Step::Send(e.as_bytes().to_vec()))
        .collect()
}

type Handler = dyn Fn(&Recorded) -> Script + Send + Sync;

/// A scripted HTTP/1.1 upstream on 127.0.0.1 with an ephemeral port.
#[derive(Clone)]
pub struct MockUpstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    closed: Arc<Mutex<Vec<Instant>>>,
    closed_notify: Arc<Notify>,
    active: Arc<AtomicUsize>,
    max_active: Arc<AtomicUsize>,
}

impl MockUpstream {
    pub async fn start(handler: impl Fn(&Recorded) -> Script + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mock = MockUpstream {
            addr: listener.local_addr().unwrap(),
            requests: Default::default(),
            closed: Default::default(),
            closed_notify: Default::default(),
            active: Default::default(),
            max_active: Default::default(),
        };
        let handler: Arc<Handler> = Arc::new(handler);
        let m = mock.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let _ = socket.set_nodelay(true);
                tokio::spawn(m.clone().serve_connection(socket, handler.clone()));
            }
        });
        mock
    }

    /// Always answers with the same script.
    pub async fn always(script: Script) -> Self {
        Self::start(move |_| script.clone()).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn max_concurrent(&self) -> usize {
        self.max_active.load(Ordering::SeqCst)
    }

    /// Waits until the proxy has closed `n` connections in total; returns
    /// when the last of them closed.
    pub async fn wait_closed(&self, n: usize, within: Duration) -> Option<Instant> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.closed_notify.notified();
            if let Some(at) = self.closed.lock().unwrap().get(n - 1) {
                return Some(*at);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.closed.lock().unwrap().get(n - 1).copied();
            }
        }
    }

    async fn serve_connection(self, socket: TcpStream, handler: Arc<Handler>) {
        let (read, mut write) = socket.into_split();
        let mut reader = BufReader::new(read);
        loop {
            let Some(request) = read_request(&mut reader).await else {
                break;
            };
            let script = handler(&request);
            self.requests.lock().unwrap().push(request);
            let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_active.fetch_max(now, Ordering::SeqCst);
            let keep_going = self.run_script(&script, &mut reader, &mut write).await;
            self.active.fetch_sub(1, Ordering::SeqCst);
            if !keep_going {
                break;
            }
        }
        self.closed.lock().unwrap().push(Instant::now());
        self.closed_notify.notify_waiters();
    }

    /// Returns whether the connection can serve another request.
    async fn run_script(
        &self,
        script: &Script,
        reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
        write: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> bool {
        if script.delay == Duration::MAX {
            wait_for_eof(reader).await;
            return false;
        }
        tokio::time::sleep(script.delay).await;
        let mut head = format!("HTTP/1.1 {} Mock\r\n", script.status);
        for (name, value) in &script.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match script.content_length {
            Some(n) => head.push_str(&format!("content-length: {n}\r\n\r\n")),
            None => head.push_str("transfer-encoding: chunked\r\n\r\n"),
        }
        if write.write_all(head.as_bytes()).await.is_err() {
            return false;
        }
        for step in &script.steps {
            match step {
                Step::Send(bytes) => {
                    let ok = match script.content_length {
                        Some(_) => write.write_all(bytes).await,
                        None => {
                            let mut chunk = format!("{:x}\r\n", bytes.len()).into_bytes();
                            chunk.extend_from_slice(bytes);
                            chunk.extend_from_slice(b"\r\n");
                            write.write_all(&chunk).await
                        }
                    };
                    if ok.and(write.flush().await).is_err() {
                        return false;
                    }
                }
                Step::Sleep(d) => {
                    // Notice a peer that leaves while we wait.
                    tokio::select! {
                        _ = tokio::time::sleep(*d) => {}
                        _ = wait_for_eof(reader) => return false,
                    }
                }
                Step::Stall => {
                    wait_for_eof(reader).await;
                    return false;
                }
                Step::Reset => {
                    // With SO_LINGER 0 the close that follows sends RST.
                    linger_zero(write);
                    return false;
                }
                Step::Close => {
                    let _ = write.shutdown().await;
                    return false;
                }
            }
        }
        if script.content_length.is_none() && write.write_all(b"0\r\n\r\n").await.is_err() {
            return false;
        }
        true
    }
}

#[allow(deprecated)] // blocking on drop is only a concern for a non-zero linger
fn linger_zero(write: &mut tokio::net::tcp::OwnedWriteHalf) {
    let stream: &TcpStream = write.as_ref();
    let _ = stream.set_linger(Some(Duration::ZERO));
}

async fn wait_for_eof(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// One HTTP/1.1 message head and its `Content-Length` body: the start line,
/// the headers (lower-case names) and the body. `None` at EOF.
async fn read_message(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut start = String::new();
    if reader.read_line(&mut start).await.ok()? == 0 {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some((start, headers, body))
}

async fn read_request(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Recorded> {
    let (start, headers, body) = read_message(reader).await?;
    let mut parts = start.split_whitespace();
    Some(Recorded {
        method: parts.next()?.to_owned(),
        path: parts.next()?.to_owned(),
        headers,
        body,
    })
}

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
        let mut map: HashMap<String, String> = HashMap::from([
            ("OPENAI_BASE_URL".to_owned(), format!("{upstream}/v1")),
            ("ANTHROPIC_BASE_URL".to_owned(), upstream.to_owned()),
        ]);
        for (k, v) in vars {
            map.insert((*k).to_owned(), (*v).to_owned());
        }
        let settings =
            llmproxy::config::Settings::from_lookup(|name| map.get(name).cloned()).unwrap();
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

impl Script {
    /// Waits before sending the response head.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }
}

/// Polls `condition` (cheap, in-memory) until it holds; panics after `within`.
pub async fn wait_until(condition: impl Fn() -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A raw keep-alive HTTP/1.1 connection, for tests that need to control
/// exactly which connection a request goes on.
pub struct RawConnection {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

pub struct RawResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl RawConnection {
    pub async fn open(url: &str) -> std::io::Result<Self> {
        let stream = TcpStream::connect(url.trim_start_matches("http://")).await?;
        let (read, writer) = stream.into_split();
        Ok(RawConnection {
            reader: BufReader::new(read),
            writer,
        })
    }

    /// Sends `method path` with `body` and reads a `Content-Length` reply.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &str,
        body: &str,
    ) -> RawResponse {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: test\r\n{extra}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(request.as_bytes()).await.unwrap();
        self.read_response().await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    pub async fn read_response(&mut self) -> RawResponse {
        let (start, headers, body) = read_message(&mut self.reader)
            .await
            .expect("a complete response");
        let status = start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect(&start);
        RawResponse {
            status,
            headers,
            body,
        }
    }

    /// Whether the peer closed the connection (EOF) within `within`.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(within, self.reader.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
