//! The load client: one hyper HTTP/1.1 connection per worker, driven in the
//! worker's own task (no extra task per connection, so no extra wake-ups).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Driver = Pin<Box<client_http1::Connection<TokioIo<TcpStream>, Full<Bytes>>>>;

pub struct Conn {
    sender: client_http1::SendRequest<Full<Bytes>>,
    driver: Driver,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, driver) = client_http1::handshake(TokioIo::new(stream)).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(driver),
        })
    }

    /// Runs `work` while driving the connection's I/O in the same task.
    async fn drive<F: Future>(driver: &mut Driver, work: F) -> Result<F::Output> {
        tokio::select! {
            biased;
            out = work => Ok(out),
            end = driver.as_mut() => Err(anyhow!("connection closed: {end:?}")),
        }
    }

    /// Sends `request` and reads the whole reply.
    pub async fn call(&mut self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
        let Conn { sender, driver } = self;
        Self::drive(driver, async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await?
        .map_err(Into::into)
    }

    /// Sends `request` and returns the response head; read the body with
    /// [`Conn::frame`].
    pub async fn start(&mut self, request: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        let Conn { sender, driver } = self;
        Self::drive(driver, async {
            sender.ready().await?;
            sender.send_request(request).await
        })
        .await?
        .map_err(Into::into)
    }

    /// The next data bytes of `body`, `None` at its end.
    pub async fn frame(&mut self, body: &mut Incoming) -> Result<Option<Bytes>> {
        loop {
            let frame = Self::drive(&mut self.driver, body.frame()).await?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        return Ok(Some(data));
                    }
                }
            }
        }
    }
}
