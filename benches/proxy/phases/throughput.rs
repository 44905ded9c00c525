//! Non-stream throughput, closed loop, for each provider. The relay (a
//! floor for any proxy hop on this machine) only for OpenAI, to save time;
//! nginx (the anchor of the targets) for both.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::Bench;
use crate::args::Plan;
use crate::client::Conn;
use crate::endpoint::{Endpoint, Provider, Side};
use crate::procfs::cpu_seconds;
use crate::report::{verdict, verdict_vs_nginx, Results, Row};
use crate::stats::{cell, signed, Figures};

/// Targets: llmproxy's throughput against nginx's, and its CPU time per
/// request.
const MIN_VS_NGINX: f64 = 0.75;
const MAX_CPU_US: f64 = 55.0;

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    let mut runs = Vec::new();
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let sides = bench.sides(provider == Provider::OpenAi);
        let f = measure(bench, provider, &sides, &mut runs)?;
        rows(bench.plan, provider, &f, &mut results.rows);
    }
    results.runs.insert("throughput".into(), Value::Array(runs));
    Ok(())
}

/// Every repetition for `provider`, each over all `sides` in turn.
fn measure(
    bench: &Bench,
    provider: Provider,
    sides: &[Side],
    runs: &mut Vec<Value>,
) -> Result<Figures> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    let mut f = Figures::default();
    for rep in 0..reps {
        eprintln!(
            "[throughput] {} c={} rep {}/{reps}",
            provider.name(),
            plan.concurrency,
            rep + 1
        );
        let mut run = serde_json::Map::new();
        run.insert("provider".into(), json!(provider.name()));
        run.insert("rep".into(), json!(rep));
        let (mut direct_rps, mut nginx_rps) = (f64::NAN, f64::NAN);
        for &side in sides {
            let endpoint = bench.endpoint(side, provider, None);
            let t = bench
                .runtime
                .block_on(throughput(endpoint, plan, bench.hop_pids(side)))?;
            match side {
                Side::Direct => direct_rps = t.rps,
                Side::Nginx => nginx_rps = t.rps,
                _ => {}
            }
            let name = side.name();
            f.put(&mut run, format!("{name}_rps"), t.rps);
            f.put(&mut run, format!("{name}_ratio"), t.rps / direct_rps);
            f.put(&mut run, format!("{name}_ok"), t.ok as f64);
            f.put(&mut run, format!("{name}_errors"), t.errors as f64);
            f.put(&mut run, format!("{name}_hop_cpu_us"), t.hop_cpu_us);
            f.put(&mut run, format!("{name}_bench_cpu_us"), t.bench_cpu_us);
        }
        if !nginx_rps.is_nan() {
            let ratio = f.last("proxied_rps") / nginx_rps;
            f.put(&mut run, "proxied_vs_nginx".into(), ratio);
        }
        runs.push(Value::Object(run));
    }
    Ok(f)
}

fn rows(plan: &Plan, provider: Provider, f: &Figures, rows: &mut Vec<Row>) {
    let m = |key: &str| f.median(key);
    let rps = |side: &str| {
        let rps = m(&format!("{side}_rps"));
        if rps.is_nan() {
            return "-".to_owned();
        }
        format!("{rps:.0} req/s ({:.2}x)", m(&format!("{side}_ratio")))
    };
    let ratio = m("proxied_vs_nginx");
    let errors = f.sum("proxied_errors") as u64;
    let nginx_errors = f.sum("nginx_errors") as u64;
    rows.push(
        Row::new(format!(
            "non-stream throughput, {}, c={}",
            provider.name(),
            plan.concurrency
        ))
        .direct(format!("{:.0} req/s", m("direct_rps")))
        .relay(rps("relay"))
        .nginx(match nginx_errors {
            0 => rps("nginx"),
            n => format!("{}, {n} errors", rps("nginx")),
        })
        .proxied(rps("proxied"))
        .versus(if ratio.is_nan() {
            String::new()
        } else {
            format!("{ratio:.2}x")
        })
        .target(format!(">= {MIN_VS_NGINX:.2}x nginx, 0 errors"))
        .verdict(verdict_vs_nginx(
            MIN_VS_NGINX - ratio,
            errors,
            format!("{ratio:.2}x"),
        )),
    );
    let cpu = m("proxied_hop_cpu_us");
    rows.push(
        Row::new(format!("  CPU µs per request, {}", provider.name()))
            .direct(format!("client+mock {:.0}", m("direct_bench_cpu_us")))
            .relay(cell(m("relay_hop_cpu_us"), ""))
            .nginx(cell(m("nginx_hop_cpu_us"), ""))
            .proxied(format!(
                "{cpu:.0} (client+mock {:.0})",
                m("proxied_bench_cpu_us")
            ))
            .versus(signed(cpu - m("nginx_hop_cpu_us"), " µs"))
            .target(format!("llmproxy <= {MAX_CPU_US:.0} µs"))
            .verdict(verdict(
                cpu <= MAX_CPU_US,
                format!("({:+.0} µs)", cpu - MAX_CPU_US),
            )),
    );
}

struct Throughput {
    rps: f64,
    ok: u64,
    errors: u64,
    /// CPU time per request over the measured window: the hop's (proxy,
    /// relay, or nginx's master and workers), and this process's (load
    /// client + mock upstream).
    hop_cpu_us: f64,
    bench_cpu_us: f64,
}

/// `plan.concurrency` workers, each sending on its own connection as fast
/// as replies come; only replies that end after the warm-up count.
async fn throughput(
    endpoint: Arc<Endpoint>,
    plan: &Plan,
    hop_pids: Vec<u32>,
) -> Result<Throughput> {
    let barrier = Arc::new(Barrier::new(plan.concurrency + 1));
    let mut workers = Vec::new();
    let (warmup, measure) = (plan.warmup, plan.measure);
    for _ in 0..plan.concurrency {
        let endpoint = endpoint.clone();
        let barrier = barrier.clone();
        let mut conn = Conn::open(endpoint.addr).await?;
        workers.push(tokio::spawn(async move {
            barrier.wait().await;
            let begin = Instant::now() + warmup;
            let end = begin + measure;
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < end {
                match conn.call(endpoint.request()).await {
                    Ok((StatusCode::OK, body)) if body.len() > 64 => {
                        if Instant::now() >= begin {
                            ok += 1;
                        }
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        match Conn::open(endpoint.addr).await {
                            Ok(fresh) => conn = fresh,
                            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                }
            }
            (ok, errors)
        }));
    }
    barrier.wait().await;
    tokio::time::sleep(warmup).await;
    let me = std::process::id();
    let hop_cpu_now = || hop_pids.iter().map(|&pid| cpu_seconds(pid)).sum::<f64>();
    let (hop_cpu, bench_cpu) = (hop_cpu_now(), cpu_seconds(me));
    tokio::time::sleep(measure).await;
    let (hop_cpu, bench_cpu) = (hop_cpu_now() - hop_cpu, cpu_seconds(me) - bench_cpu);
    let (mut ok, mut errors) = (0, 0);
    for worker in workers {
        let (o, e) = worker.await?;
        ok += o;
        errors += e;
    }
    let per_request = |cpu: f64| cpu * 1e6 / ok.max(1) as f64;
    Ok(Throughput {
        rps: ok as f64 / measure.as_secs_f64(),
        ok,
        errors,
        hop_cpu_us: per_request(hop_cpu),
        bench_cpu_us: per_request(bench_cpu),
    })
}
