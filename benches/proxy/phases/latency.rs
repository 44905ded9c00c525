//! Latency of OpenAI non-stream requests at fixed open-loop rates.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};

use super::Bench;
use crate::args::Plan;
use crate::client::Conn;
use crate::clock::now_ns;
use crate::endpoint::{Endpoint, Provider, Side};
use crate::report::{verdict_vs_nginx, Results, Row};
use crate::stats::{cell, cell_added, pct, signed, us, Figures};

/// Targets: what llmproxy may add to nginx's p50 and p99, in µs.
const LIMITS: [(&str, f64, f64); 2] = [("p50", 50.0, 100.0), ("p99", 99.0, 500.0)];

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    let mut runs = Vec::new();
    for rate in bench.plan.rates {
        let f = measure(bench, rate, &mut runs)?;
        rows(rate, &f, &mut results.rows);
    }
    results.runs.insert("latency".into(), Value::Array(runs));
    Ok(())
}

/// Every repetition at `rate`, each over all sides in turn.
fn measure(bench: &Bench, rate: u64, runs: &mut Vec<Value>) -> Result<Figures> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    let mut f = Figures::default();
    for rep in 0..reps {
        eprintln!("[latency] openai {rate} req/s rep {}/{reps}", rep + 1);
        let mut run = serde_json::Map::new();
        run.insert("rep".into(), json!(rep));
        run.insert("rate".into(), json!(rate));
        let mut achieved = f64::INFINITY;
        for side in bench.sides(true) {
            let endpoint = bench.endpoint(side, Provider::OpenAi, None);
            let l = bench.runtime.block_on(latency(endpoint, plan, rate))?;
            achieved = achieved.min(l.achieved_rps);
            let name = side.name();
            for (label, p, _) in LIMITS {
                let value = us(pct(&l.samples, p));
                f.put(&mut run, format!("{name}_{label}_us"), value);
                let added = value - f.last(&format!("direct_{label}_us"));
                f.put(&mut run, format!("{name}_added_{label}_us"), added);
                if side == Side::Proxied {
                    let over = value - f.last(&format!("nginx_{label}_us"));
                    if !over.is_nan() {
                        f.put(&mut run, format!("proxied_vs_nginx_{label}_us"), over);
                    }
                }
            }
            let max = us(pct(&l.samples, 100.0));
            f.put(&mut run, format!("{name}_max_us"), max);
            f.put(&mut run, format!("{name}_samples"), l.samples.len() as f64);
            f.put(&mut run, format!("{name}_errors"), l.errors as f64);
        }
        f.put(&mut run, "achieved_rps".into(), achieved);
        runs.push(Value::Object(run));
    }
    Ok(f)
}

fn rows(rate: u64, f: &Figures, rows: &mut Vec<Row>) {
    let m = |key: String| f.median(&key);
    let errors = f.sum("proxied_errors") as u64;
    let achieved = f.median("achieved_rps");
    let short = if achieved < 0.95 * rate as f64 {
        format!(" (only {achieved:.0} sent)")
    } else {
        String::new()
    };
    for (label, _, limit) in LIMITS {
        let side = |name: &str| {
            cell_added(
                m(format!("{name}_{label}_us")),
                m(format!("{name}_added_{label}_us")),
                " µs",
            )
        };
        let over = m(format!("proxied_vs_nginx_{label}_us"));
        rows.push(
            Row::new(format!("latency {label} at {rate} req/s{short}, openai"))
                .direct(cell(m(format!("direct_{label}_us")), " µs"))
                .relay(side("relay"))
                .nginx(side("nginx"))
                .proxied(side("proxied"))
                .versus(signed(over, " µs"))
                .target(format!("<= nginx + {limit:.0} µs"))
                .verdict(verdict_vs_nginx(
                    over - limit,
                    errors,
                    format!("{:+.0} µs", over - limit),
                )),
        );
    }
}

struct Latency {
    /// Sorted, in nanoseconds.
    samples: Vec<u64>,
    errors: u64,
    achieved_rps: f64,
}

/// Sends `rate` requests a second on schedule, whether or not earlier
/// ones have finished. A request's latency runs from when the scheduler
/// released it (so time spent queued for a free connection counts, and
/// timer lateness of the scheduler itself does not) to the end of its body.
async fn latency(endpoint: Arc<Endpoint>, plan: &Plan, rate: u64) -> Result<Latency> {
    let total = ((plan.warmup + plan.measure).as_secs_f64() * rate as f64) as usize;
    let skip = (plan.warmup.as_secs_f64() * rate as f64) as usize;
    let (tx, rx) = mpsc::channel::<(usize, u64)>(total);
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for _ in 0..plan.rate_connections {
        let endpoint = endpoint.clone();
        let rx = rx.clone();
        let mut conn = Conn::open(endpoint.addr).await?;
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut errors = 0u64;
            loop {
                let job = rx.lock().await.recv().await;
                let Some((index, released)) = job else { break };
                match conn.call(endpoint.request()).await {
                    Ok((StatusCode::OK, body)) if body.len() > 64 => {
                        if index >= skip {
                            samples.push(now_ns() - released);
                        }
                    }
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        if let Ok(fresh) = Conn::open(endpoint.addr).await {
                            conn = fresh;
                        }
                    }
                }
            }
            (samples, errors)
        }));
    }
    let start = tokio::time::Instant::now();
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let mut measured_from = 0;
    for index in 0..total {
        let due = start + period * index as u32;
        if tokio::time::Instant::now() < due {
            tokio::time::sleep_until(due).await;
        }
        if index == skip {
            measured_from = now_ns();
        }
        tx.send((index, now_ns())).await?;
    }
    let measured_ns = now_ns().saturating_sub(measured_from).max(1);
    drop(tx);
    let mut samples = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (s, e) = worker.await?;
        samples.extend(s);
        errors += e;
    }
    samples.sort_unstable();
    Ok(Latency {
        achieved_rps: (total - skip) as f64 / (measured_ns as f64 / 1e9),
        samples,
        errors,
    })
}
