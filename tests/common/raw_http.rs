//! HTTP/1.1 on a bare socket: reading one message (shared with the mock
//! upstream), and a raw client connection.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One HTTP/1.1 message head and its `Content-Length` body: the start line,
/// the headers (lower-case names) and the body. `None` at EOF.
pub(super) async fn read_message(
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
