//! Load benchmark of `llmproxy serve`: `cargo bench --bench proxy`.
//!
//! One process holds a fast mock upstream (OpenAI and Anthropic shapes,
//! stream and non-stream, the recorded fixtures of `tests/fixtures`) and a
//! lean hyper HTTP/1.1 load client; the release `llmproxy` binary (built by
//! cargo for this bench target, `CARGO_BIN_EXE_llmproxy`) runs as a separate
//! process in front of the mock. Every figure is measured direct-to-mock,
//! through a byte relay, through nginx (the anchor of the targets, when
//! installed) and through the proxy in the same run, repeated (median of 3),
//! and printed as a table with the targets; the raw numbers go to
//! `<target dir>/bench-results/proxy.json`.
//!
//! Loopback only, offline. Timing targets live here, never in `cargo test`.
//! `-- --quick` runs shorter, single repetitions (for development);
//! `-- --help` lists the options and the environment variables
//! (`BENCH_PROXY_BIN`, `BENCH_PROXY_LOG`, `BENCH_RUST_LOG`, `BENCH_PERF`,
//! `BENCH_NGINX`).
//!
//! The files: `args` (command line and plan), `mock` (the upstream),
//! `endpoint` and `client` (what the load client sends, and how), `clock`
//! (the stamps in stream chunks), `process`, `relay` and `nginx` (the proxy,
//! the L4 relay and nginx processes), `procfs` and `machine` (what the system reports),
//! `phases/` (one file per measured phase), `stats` and `report`.

mod args;
mod client;
mod clock;
mod endpoint;
#[path = "../../tests/common/fixtures.rs"]
mod fixtures;
mod machine;
mod mock;
mod nginx;
mod phases;
mod process;
mod procfs;
mod relay;
mod report;
mod stats;

use std::time::Instant;

use anyhow::{bail, Result};
use clap::error::ErrorKind;
use clap::Parser;

use args::{Args, Phase, Plan};
use endpoint::Addrs;
use machine::Machine;
use nginx::Nginx;
use phases::Bench;
use process::{Launch, Profiler, Proxy};
use relay::Relay;
use report::{Results, Row};

fn main() {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        // `cargo test --benches` runs bench targets with its own arguments
        // and without `--bench`: nothing to measure then, and no error.
        Err(_) if !std::env::args_os().skip(1).any(|a| a == "--bench") => return not_a_bench(),
        Err(e) => e.exit(),
    };
    if let Some(upstream) = args.relay {
        relay::main(upstream);
    }
    if !args.bench {
        return not_a_bench();
    }
    let plan = Plan::from_args(&args);
    if let Err(error) = run(&args, &plan) {
        eprintln!("benchmark failed: {error:#}");
        std::process::exit(1);
    }
}

fn not_a_bench() {
    println!("proxy benchmark: run it with `cargo bench --bench proxy`");
}

fn run(args: &Args, plan: &Plan) -> Result<()> {
    let wall = Instant::now();
    let phase = |p: Phase| args.only.contains(&p);
    clock::now_ns();
    let fd_limit = machine::raise_fd_limit();
    let needed = 2 * plan.open_streams as u64 + 256;
    if fd_limit < needed {
        bail!("the open-file limit is {fd_limit}; the benchmark needs {needed} (ulimit -n)");
    }
    let machine = Machine::read();
    let load_before = procfs::loadavg();
    println!(
        "llmproxy benchmark, {}: {} x {}, {:.0} GiB, {}, commit {}, load average {}",
        machine.date,
        machine.cores,
        machine.cpu,
        machine.memory_gib,
        machine.kernel,
        machine.commit,
        load_before
    );
    let launch = Launch::from_args(args);
    println!("proxy binary: {}", launch.binary.display());
    // One worker per core, whatever SERVE_WORKERS says: that variable is
    // passed on to the proxy only.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(machine.cores)
        .enable_all()
        .build()?;
    let nginx_binary = nginx::Binary::find(args.nginx.as_deref())?;
    match &nginx_binary {
        Some(n) => println!("nginx: {} ({})", n.path.display(), n.version),
        None => println!("{}", report::NGINX_MISSING),
    }
    let mock = runtime.block_on(mock::start())?;
    let mut results = Results::default();
    if nginx_binary.is_none() {
        results.rows.push(Row::note(report::NGINX_MISSING));
    }

    // Fresh processes, before the ones the other phases measure.
    if phase(Phase::Startup) {
        phases::startup::run(plan, mock, &launch, nginx_binary.as_ref(), &mut results)?;
    }

    let proxy = Proxy::start(mock, &launch)?;
    let relay = Relay::start(mock)?;
    let nginx = match &nginx_binary {
        Some(binary) => Some(Nginx::start(binary, mock)?),
        None => None,
    };
    let bench = Bench {
        runtime: &runtime,
        plan,
        addrs: Addrs {
            mock,
            proxy: proxy.addr,
            relay: relay.addr,
            nginx: nginx.as_ref().map(|n| n.addr),
        },
        proxy: &proxy,
        relay: &relay,
        nginx: nginx.as_ref(),
    };
    runtime.block_on(phases::sanity::check(&bench.addrs))?;
    let idle_before_load = phases::idle::BeforeLoad::read(&bench);
    let profiler = Profiler::attach(proxy.pid(), args.perf.as_deref())?;
    if phase(Phase::Throughput) {
        phases::throughput::run(&bench, &mut results)?;
    }
    if phase(Phase::Latency) {
        phases::latency::run(&bench, &mut results)?;
    }
    if phase(Phase::Streams) {
        phases::streams::run(&bench, &mut results)?;
    }
    if phase(Phase::Memory) {
        phases::memory::run(&bench, &mut results)?;
    }
    drop(profiler);
    phases::idle::run(&bench, idle_before_load, &mut results);
    let nginx_config = nginx.as_ref().map(|n| n.config.clone());
    drop(proxy);
    drop(relay);
    drop(nginx);

    let wall_seconds = wall.elapsed().as_secs_f64();
    let context = report::Context {
        machine: &machine,
        plan,
        phases: args.only.iter().map(|p| p.name()).collect(),
        proxy_binary: launch.binary.display().to_string(),
        nginx: nginx_binary.as_ref(),
        nginx_config,
        load_before,
        load_after: procfs::loadavg(),
        wall_seconds,
    };
    report::finish(&context, results)
}
