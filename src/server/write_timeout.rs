//! A write timeout for client connections.
//!
//! Stream bodies are written straight from the upstream, so a client that
//! stops reading fills its socket and hyper waits on the write. Without a
//! bound that wait holds the upstream connection (and an in-flight slot)
//! forever. When one write has made no progress for the timeout, the write
//! fails; hyper then closes the connection and drops the response body,
//! which closes the upstream connection. The client sees a cut connection,
//! never a truncated stream that looks complete.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub struct WriteTimeout<T> {
    inner: T,
    limit: Duration,
    /// Allocated at the first stalled write, then reused.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer runs for the current stall.
    armed: bool,
}

impl<T> WriteTimeout<T> {
    pub fn new(inner: T, limit: Duration) -> Self {
        WriteTimeout {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Called when a write is pending: starts or checks the stall clock.
    fn stalled<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if !self.armed {
            timer.as_mut().reset(Instant::now() + limit);
            self.armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.armed = false;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_stuck_for_the_limit_fails_with_timed_out() {
        let (client, _reader_that_never_reads) = tokio::io::duplex(64);
        let mut conn = WriteTimeout::new(client, Duration::from_millis(50));
        conn.write_all(&[0; 64]).await.unwrap();
        let error = conn.write_all(&[0; 1]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    // Simulated time: the reader takes 60 ms per read, 20 reads in all, so
    // the writer waits 1.2 s in total but never 100 ms at once.
    #[tokio::test(start_paused = true)]
    async fn the_clock_restarts_whenever_a_write_progresses() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut conn = WriteTimeout::new(client, Duration::from_millis(100));
        let reader = tokio::spawn(async move {
            let mut total = 0;
            let mut buf = [0; 64];
            loop {
                tokio::time::sleep(Duration::from_millis(60)).await;
                match server.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        let started = tokio::time::Instant::now();
        for _ in 0..20 {
            conn.write_all(&[7; 64]).await.unwrap();
        }
        conn.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), 20 * 64);
        assert!(started.elapsed() > Duration::from_millis(1000));
    }
}
