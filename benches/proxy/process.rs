//! The proxy under test, `llmproxy serve`, as a separate process; and
//! `perf record` attached to it on request.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::args::Args;
use crate::procfs;

/// Proxy settings for the whole run: a 2,048-request upstream pool, as
/// nginx's (`nginx::KEEPALIVE`). The defaults, 1,024 in flight and 20 idle
/// per host, would do for every phase but the 1,000 open streams with one
/// more kept open.
pub const PROXY_ENV: [(&str, &str); 4] = [
    ("HTTP_MAX_CONNECTIONS", "2048"),
    ("HTTP_MAX_KEEPALIVE_CONNECTIONS", "2048"),
    ("HTTP_TIMEOUT_SECONDS", "30"),
    ("SHUTDOWN_GRACE_SECONDS", "1"),
];

/// How every proxy of the run is started.
pub struct Launch {
    /// Absolute: the proxy runs in another directory.
    pub binary: PathBuf,
    /// Where the proxy's stderr is appended (default: discarded).
    log: Option<PathBuf>,
    /// The proxy's `RUST_LOG` (default: unset).
    rust_log: Option<OsString>,
}

impl Launch {
    pub fn from_args(args: &Args) -> Launch {
        let binary = args
            .proxy_bin
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_llmproxy")));
        Launch {
            binary: std::fs::canonicalize(&binary).unwrap_or(binary),
            log: args.proxy_log.clone(),
            rust_log: args.rust_log.clone(),
        }
    }
}

pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub startup: Duration,
}

impl Proxy {
    /// Starts `llmproxy serve` in front of `mock` and times process start
    /// to the first 200 from `/healthz`.
    pub fn start(mock: SocketAddr, launch: &Launch) -> Result<Proxy> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = match &launch.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::null(),
        };
        let mut command = Command::new(&launch.binary);
        command
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            // No `.env` from the checkout: only what is set here counts.
            .current_dir(std::env::temp_dir())
            .env("OPENAI_BASE_URL", format!("http://{mock}/v1"))
            .env("ANTHROPIC_BASE_URL", format!("http://{mock}"))
            .envs(PROXY_ENV)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(filter) = &launch.rust_log {
            command.env("RUST_LOG", filter);
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("could not start {}", launch.binary.display()))?;
        loop {
            if healthz(addr) {
                break;
            }
            if let Some(status) = child.try_wait()? {
                bail!("llmproxy exited during start-up: {status}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                bail!("llmproxy was not healthy within 10 s");
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(Proxy {
            startup: started.elapsed(),
            child,
            addr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn rss_kib(&self) -> u64 {
        procfs::status_kib(self.pid(), "VmRSS:").unwrap_or(0)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SIGTERM (graceful), then SIGKILL if it lingers (a profiler wrapping
        // it, see BENCH_PROXY_BIN, may need a while to write its data).
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One blocking `GET /healthz`; true on a 200.
pub fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/1.1 200"
}

/// `perf record` of the proxy while the phases run, when `BENCH_PERF=file`.
pub struct Profiler(Option<Child>);

impl Profiler {
    pub fn attach(pid: u32, out: Option<&Path>) -> Result<Profiler> {
        let Some(out) = out else {
            return Ok(Profiler(None));
        };
        let child = Command::new("perf")
            .args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "2000",
                "-g",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("BENCH_PERF is set but perf could not be started")?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(Profiler(Some(child)))
    }
}

impl Drop for Profiler {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }
}
