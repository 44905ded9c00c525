//! nginx as a plain reverse proxy in front of the mock: the anchor the
//! targets are set against. Found as `BENCH_NGINX=path`, else `nginx` on
//! `PATH`, else `/usr/sbin/nginx`; without it the nginx figures are skipped.
//!
//! Each instance gets its own temporary directory (configuration, pid file,
//! error log, temp paths) and a free loopback port, runs in the foreground
//! (`daemon off`, master and `worker_processes auto` workers) and dies with
//! the benchmark (the master's parent-death signal is SIGTERM).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::healthz;
use crate::procfs;

/// The upstream keep-alive pool per worker, as llmproxy's own pool in this
/// benchmark (`PROXY_ENV`).
pub const KEEPALIVE: usize = 2048;

/// The nginx binary and what it was built with.
pub struct Binary {
    pub path: PathBuf,
    pub version: String,
    /// `nginx -V`: which temp-path directives exist, whether `-e` does.
    configure: String,
}

impl Binary {
    /// `explicit` (`BENCH_NGINX`) must work; otherwise `None` when there is
    /// no nginx to be found.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Binary>> {
        let path = match explicit {
            Some(path) => path.to_path_buf(),
            None => {
                let on_path = std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                    .unwrap_or_default();
                let found = on_path
                    .into_iter()
                    .map(|dir| dir.join("nginx"))
                    .chain([PathBuf::from("/usr/sbin/nginx")])
                    .find(|p| p.is_file());
                match found {
                    Some(path) => path,
                    None => return Ok(None),
                }
            }
        };
        let out = Command::new(&path)
            .arg("-V")
            .output()
            .with_context(|| format!("could not run {} -V", path.display()))?;
        let configure = String::from_utf8_lossy(&out.stderr).into_owned();
        let version = configure
            .lines()
            .find_map(|l| l.strip_prefix("nginx version: nginx/"))
            .with_context(|| format!("{} -V said {configure:?}", path.display()))?
            .trim()
            .to_owned();
        Ok(Some(Binary {
            path,
            version,
            configure,
        }))
    }

    /// `-e file` (the error log before the configuration is read) came in
    /// 1.19.5.
    fn has_e_flag(&self) -> bool {
        let v: Vec<u32> = self
            .version
            .split('.')
            .filter_map(|n| n.parse().ok())
            .collect();
        v >= vec![1, 19, 5]
    }

    /// The configuration of one instance.
    pub fn config(&self, dir: &Path, port: u16, upstream: SocketAddr) -> String {
        let dir = dir.display();
        let root = unsafe { libc::geteuid() } == 0;
        let user = if root { "user root;\n" } else { "" };
        let mut temp_paths = format!("    client_body_temp_path {dir}/client_body;\n");
        temp_paths += &format!("    proxy_temp_path {dir}/proxy;\n");
        for module in ["fastcgi", "uwsgi", "scgi"] {
            if !self
                .configure
                .contains(&format!("--without-http_{module}_module"))
            {
                temp_paths += &format!("    {module}_temp_path {dir}/{module};\n");
            }
        }
        // Connections per worker: clients and upstreams; the open-file limit
        // (raised by the benchmark, inherited) is the real bound.
        let connections = procfs::open_file_limit().clamp(1024, 4096);
        format!(
            "{user}worker_processes auto;
daemon off;
master_process on;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    access_log off;
{temp_paths}    # Clients and upstream connections live for the whole run (the
    # default closes them after 1,000 requests).
    keepalive_requests 1000000;
    upstream mock {{
        server {upstream};
        keepalive {KEEPALIVE};
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{
            return 200;
        }}
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_buffering off;
        }}
    }}
}}
"
        )
    }
}

/// A running nginx.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub startup: Duration,
    /// Its configuration file's text.
    pub config: String,
    dir: PathBuf,
}

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

impl Nginx {
    /// Starts nginx in front of `upstream` and times process start to the
    /// first 200 from its `/healthz`. A port taken in between picking and
    /// binding it gets another try.
    pub fn start(binary: &Binary, upstream: SocketAddr) -> Result<Nginx> {
        let mut attempt = 0;
        loop {
            match Self::try_start(binary, upstream) {
                Ok(nginx) => return Ok(nginx),
                Err(e) if attempt < 2 && format!("{e:#}").contains("Address already in use") => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_start(binary: &Binary, upstream: SocketAddr) -> Result<Nginx> {
        let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("llmproxy-bench-nginx-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let conf = dir.join("nginx.conf");
        let config = binary.config(&dir, port, upstream);
        std::fs::write(&conf, &config)?;
        let mut command = Command::new(&binary.path);
        command.arg("-p").arg(&dir).arg("-c").arg(&conf);
        if binary.has_e_flag() {
            command.arg("-e").arg(dir.join("error.log"));
        }
        command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(dir.join("stderr.log"))?));
        // SAFETY: prctl is async-signal-safe; nothing else runs in between.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let started = Instant::now();
        let child = command
            .spawn()
            .with_context(|| format!("could not start {}", binary.path.display()))?;
        let mut nginx = Nginx {
            child,
            addr,
            startup: Duration::ZERO,
            config,
            dir,
        };
        loop {
            if healthz(addr) {
                break;
            }
            if let Some(status) = nginx.child.try_wait()? {
                bail!("nginx exited during start-up ({status}): {}", nginx.log());
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("nginx was not healthy within 10 s: {}", nginx.log());
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        nginx.startup = started.elapsed();
        Ok(nginx)
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut pids = vec![master];
        pids.extend(procfs::children(master));
        pids
    }

    /// VmRSS summed over the master and the workers (pages they share are
    /// counted in each).
    pub fn rss_kib(&self) -> u64 {
        procfs::rss_kib(&self.pids())
    }

    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
            .trim()
            .to_owned()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: fast shutdown, the master stops its workers.
        let pids = self.pids();
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for pid in pids {
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
