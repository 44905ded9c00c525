//! The command line (`cargo bench --bench proxy -- ARGS`) and the plan of
//! the run it selects.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "proxy",
    bin_name = "cargo bench --bench proxy --",
    about = "Load benchmark of `llmproxy serve`: run it with `cargo bench --bench proxy`"
)]
pub struct Args {
    /// Shorter, single repetitions (for development): one 1 s repetition of
    /// each figure.
    #[arg(long)]
    pub quick: bool,

    /// The phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "PHASES",
        default_value = "startup,throughput,latency,streams,memory"
    )]
    pub only: Vec<Phase>,

    /// Repetitions of each figure (the table shows medians).
    #[arg(long, value_name = "N")]
    pub reps: Option<usize>,

    /// Seconds measured in each throughput and latency repetition.
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub seconds: Option<Duration>,

    /// The `llmproxy` binary to benchmark (default: the one cargo built for
    /// this bench target).
    #[arg(long, env = "BENCH_PROXY_BIN", value_name = "PATH")]
    pub proxy_bin: Option<PathBuf>,

    /// Appends the proxy's log to this file (default: discarded).
    #[arg(long, env = "BENCH_PROXY_LOG", value_name = "FILE")]
    pub proxy_log: Option<PathBuf>,

    /// The proxy's `RUST_LOG` (default: unset, so the proxy's own default,
    /// `info`, is measured).
    // Not a String: any value, an empty one included, is passed on as is.
    #[arg(long, env = "BENCH_RUST_LOG", value_name = "FILTER")]
    pub rust_log: Option<OsString>,

    /// The nginx binary measured as the anchor (default: `nginx` on `PATH`,
    /// else `/usr/sbin/nginx`; without one, the nginx figures are skipped).
    #[arg(long, env = "BENCH_NGINX", value_name = "PATH")]
    pub nginx: Option<PathBuf>,

    /// Records the proxy with `perf record` into this file while the phases
    /// run.
    #[arg(long, env = "BENCH_PERF", value_name = "FILE")]
    pub perf: Option<PathBuf>,

    /// Passed by `cargo bench` (and not by `cargo test --benches`, which
    /// runs bench targets too): without it nothing is measured.
    #[arg(long, hide = true)]
    pub bench: bool,

    /// Runs as the L4 byte relay in front of this upstream (the benchmark
    /// starts this executable so).
    #[arg(long, hide = true, value_name = "UPSTREAM")]
    pub relay: Option<SocketAddr>,
}

fn seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = text.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(s).map_err(|e| format!("{e}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Phase {
    Startup,
    Throughput,
    Latency,
    Streams,
    Memory,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Startup => "startup",
            Phase::Throughput => "throughput",
            Phase::Latency => "latency",
            Phase::Streams => "streams",
            Phase::Memory => "memory",
        }
    }
}

/// Settings of one run.
pub struct Plan {
    pub reps: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Closed-loop workers (one keep-alive connection each).
    pub concurrency: usize,
    /// Open-loop request rates, one latency run each.
    pub rates: [u64; 2],
    /// Connections serving the open-loop requests.
    pub rate_connections: usize,
    pub streams: usize,
    pub chunks: usize,
    pub chunk_interval: Duration,
    pub open_streams: usize,
}

impl Plan {
    fn full() -> Self {
        Plan {
            reps: 3,
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(3),
            concurrency: 64,
            rates: [200, 1000],
            rate_connections: 32,
            streams: 200,
            chunks: 20,
            chunk_interval: Duration::from_millis(50),
            open_streams: 1000,
        }
    }

    fn quick() -> Self {
        Plan {
            reps: 1,
            measure: Duration::from_secs(1),
            ..Self::full()
        }
    }

    /// `--quick` picks the base plan; `--reps` and `--seconds` override it.
    pub fn from_args(args: &Args) -> Self {
        let mut plan = if args.quick {
            Self::quick()
        } else {
            Self::full()
        };
        if let Some(reps) = args.reps {
            plan.reps = reps;
        }
        if let Some(measure) = args.seconds {
            plan.measure = measure;
        }
        plan
    }
}
