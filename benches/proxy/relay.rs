//! The L4 relay: a byte relay in its own process (this executable with
//! `--relay`), what any proxy hop costs on this machine at the least, with
//! no HTTP work.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};

pub struct Relay {
    child: Child,
    pub addr: SocketAddr,
}

impl Relay {
    pub fn start(upstream: SocketAddr) -> Result<Relay> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--relay", &upstream.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("could not start the relay")?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().context("relay stdout")?),
            &mut line,
        )?;
        let addr = line
            .trim()
            .parse()
            .with_context(|| format!("relay said {line:?}"))?;
        Ok(Relay { child, addr })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay process: accepts on a free port (printed on stdout), copies
/// bytes both ways to `upstream`, one upstream connection per client
/// connection; exits when its stdin closes (the benchmark ended).
pub fn main(upstream: SocketAddr) -> ! {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        println!("{}", listener.local_addr().expect("an address"));
        tokio::spawn(async {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
            std::process::exit(0);
        });
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = inbound.set_nodelay(true);
                let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = outbound.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    })
}
