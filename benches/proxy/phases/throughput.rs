//! Non-stream throughput, closed loop, for each provider. The relay (a
//! floor for any proxy hop on this machine) only for OpenAI, to save time.

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
use crate::report::{verdict, Results, Row};
use crate::stats::Figures;

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    let mut runs = Vec::new();
    for provider in [Provider::OpenAi, Provider::Anthropic] {
        let sides: &[Side] = if provider == Provider::OpenAi {
            &[Side::Direct, Side::Relay, Side::Proxied]
        } else {
            &[Side::Direct, Side::Proxied]
        };
        let (f, errors) = measure(bench, provider, sides, &mut runs)?;
        rows(bench.plan, provider, sides, &f, errors, &mut results.rows);
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
) -> Result<(Figures, u64)> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    let mut f = Figures::default();
    let mut errors = 0;
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
        let mut direct_rps = f64::NAN;
        for &side in sides {
            let hop = match side {
                Side::Direct => None,
                Side::Relay => Some(bench.relay.pid()),
                Side::Proxied => Some(bench.proxy.pid()),
            };
            let endpoint = bench.endpoint(side, provider, None);
            let t = bench.runtime.block_on(throughput(endpoint, plan, hop))?;
            errors += t.errors;
            if side == Side::Direct {
                direct_rps = t.rps;
            }
            let name = side.name();
            f.put(&mut run, format!("{name}_rps"), t.rps);
            f.put(&mut run, format!("{name}_ratio"), t.rps / direct_rps);
            f.put(&mut run, format!("{name}_ok"), t.ok as f64);
            f.put(&mut run, format!("{name}_errors"), t.errors as f64);
            f.put(&mut run, format!("{name}_hop_cpu_us"), t.hop_cpu_us);
            f.put(&mut run, format!("{name}_bench_cpu_us"), t.bench_cpu_us);
        }
        runs.push(Value::Object(run));
    }
    Ok((f, errors))
}

fn rows(
    plan: &Plan,
    provider: Provider,
    sides: &[Side],
    f: &Figures,
    errors: u64,
    rows: &mut Vec<Row>,
) {
    let ratio = f.median("proxied_ratio");
    let with_relay = sides.contains(&Side::Relay);
    let relay_cell = |key: &str, unit: &str| {
        if with_relay {
            format!("{:.0}{unit}", f.median(key))
        } else {
            "-".to_owned()
        }
    };
    rows.push(Row::new(
        format!(
            "non-stream throughput, {}, c={}",
            provider.name(),
            plan.concurrency
        ),
        format!("{:.0} req/s", f.median("direct_rps")),
        if with_relay {
            format!(
                "{:.0} req/s ({:.2}x)",
                f.median("relay_rps"),
                f.median("relay_ratio")
            )
        } else {
            "-".to_owned()
        },
        format!("{:.0} req/s", f.median("proxied_rps")),
        format!("{ratio:.2}x"),
        ">= 0.40x, 0 errors",
        verdict(
            ratio >= 0.4 && errors == 0,
            format!("({ratio:.2}x, {errors} errors)"),
        ),
    ));
    rows.push(Row::new(
        format!("  CPU µs per request, {}", provider.name()),
        format!("client+mock {:.0}", f.median("direct_bench_cpu_us")),
        relay_cell("relay_hop_cpu_us", ""),
        format!("{:.0}", f.median("proxied_hop_cpu_us")),
        format!("client+mock {:.0}", f.median("proxied_bench_cpu_us")),
        "(reported)",
        String::new(),
    ));
}

struct Throughput {
    rps: f64,
    ok: u64,
    errors: u64,
    /// CPU time per request over the measured window: the hop's (proxy or
    /// relay), and this process's (load client + mock upstream).
    hop_cpu_us: f64,
    bench_cpu_us: f64,
}

/// `plan.concurrency` workers, each sending on its own connection as fast
/// as replies come; only replies that end after the warm-up count.
async fn throughput(
    endpoint: Arc<Endpoint>,
    plan: &Plan,
    hop_pid: Option<u32>,
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
    let hop_cpu_now = || hop_pid.map_or(0.0, cpu_seconds);
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
