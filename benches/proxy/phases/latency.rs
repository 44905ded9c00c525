//! Latency of OpenAI non-stream requests at a fixed open-loop rate.

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
use crate::report::{verdict, Results, Row};
use crate::stats::{pct, us, Figures};

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    let mut runs = Vec::new();
    let mut f = Figures::default();
    let mut errors = 0;
    for rep in 0..reps {
        eprintln!(
            "[latency] openai {} req/s rep {}/{reps}",
            plan.rate,
            rep + 1
        );
        let mut run = serde_json::Map::new();
        run.insert("rep".into(), json!(rep));
        run.insert("rate".into(), json!(plan.rate));
        let mut direct = (0.0, 0.0);
        let mut achieved = f64::INFINITY;
        for side in [Side::Direct, Side::Relay, Side::Proxied] {
            let endpoint = bench.endpoint(side, Provider::OpenAi, None);
            let l = bench.runtime.block_on(latency(endpoint, plan))?;
            errors += l.errors;
            achieved = achieved.min(l.achieved_rps);
            let (p50, p99) = (us(pct(&l.samples, 50.0)), us(pct(&l.samples, 99.0)));
            if side == Side::Direct {
                direct = (p50, p99);
            }
            let name = side.name();
            f.put(&mut run, format!("{name}_p50_us"), p50);
            f.put(&mut run, format!("{name}_p99_us"), p99);
            f.put(
                &mut run,
                format!("{name}_max_us"),
                us(pct(&l.samples, 100.0)),
            );
            f.put(&mut run, format!("{name}_added_p50_us"), p50 - direct.0);
            f.put(&mut run, format!("{name}_added_p99_us"), p99 - direct.1);
            f.put(&mut run, format!("{name}_samples"), l.samples.len() as f64);
            f.put(&mut run, format!("{name}_errors"), l.errors as f64);
        }
        f.put(&mut run, "achieved_rps".into(), achieved);
        runs.push(Value::Object(run));
    }
    results.runs.insert("latency".into(), Value::Array(runs));
    let rate = f.median("achieved_rps");
    for (label, limit) in [("p50", 100.0), ("p99", 1000.0)] {
        let added = f.median(&format!("proxied_added_{label}_us"));
        results.rows.push(Row::new(
            format!("latency {label} at {rate:.0} req/s, openai"),
            format!("{:.0} µs", f.median(&format!("direct_{label}_us"))),
            format!(
                "{:.0} µs ({:+.0})",
                f.median(&format!("relay_{label}_us")),
                f.median(&format!("relay_added_{label}_us"))
            ),
            format!("{:.0} µs", f.median(&format!("proxied_{label}_us"))),
            format!("{added:+.0} µs"),
            format!("added <= {limit:.0} µs"),
            verdict(
                added <= limit && errors == 0,
                format!("({:+.0} µs, {errors} errors)", added - limit),
            ),
        ));
    }
    Ok(())
}

struct Latency {
    /// Sorted, in nanoseconds.
    samples: Vec<u64>,
    errors: u64,
    achieved_rps: f64,
}

/// Sends `plan.rate` requests a second on schedule, whether or not earlier
/// ones have finished. A request's latency runs from when the scheduler
/// released it (so time spent queued for a free connection counts, and
/// timer lateness of the scheduler itself does not) to the end of its body.
async fn latency(endpoint: Arc<Endpoint>, plan: &Plan) -> Result<Latency> {
    let total = ((plan.warmup + plan.measure).as_secs_f64() * plan.rate as f64) as usize;
    let skip = (plan.warmup.as_secs_f64() * plan.rate as f64) as usize;
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
    let period = Duration::from_secs_f64(1.0 / plan.rate as f64);
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
