//! A scripted HTTP/1.1 upstream on a real loopback socket: each request is
//! recorded and answered by a `Script` (status, headers, chunk timing,
//! stalls, resets), and the moments the proxy closes its connections are
//! observable.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::raw_http::read_message;

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

    /// Waits before sending the response head.
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay = Duration::from_millis(ms);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A fixture SSE stream, one `Send` step per event (as a real upstream
/// flushes them); events end with `\n\n`, or `\r\n\r\n` as Gemini's do.
pub fn sse_events(bytes: &[u8]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let end = if bytes[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if bytes[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        };
        match end {
            Some(end) => {
                steps.push(Step::Send(bytes[start..end].to_vec()));
                start = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if start < bytes.len() {
        steps.push(Step::Send(bytes[start..].to_vec()));
    }
    steps
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
