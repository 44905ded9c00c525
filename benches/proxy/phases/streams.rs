//! Streams: time to first byte and per-chunk delay, half OpenAI, half
//! Anthropic, starts spread evenly over one chunk interval.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use super::Bench;
use crate::client::Conn;
use crate::clock::{now_ns, take_stamps};
use crate::endpoint::{Endpoint, Provider, Side};
use crate::report::{verdict_vs_nginx, Results, Row};
use crate::stats::{cell, cell_added, pct, signed, us, Figures};

/// Targets: what llmproxy may add to nginx's TTFB p50 and chunk delay p99.
const MAX_TTFB_OVER_NGINX_US: f64 = 1000.0;
const MAX_CHUNK_P99_OVER_NGINX_US: f64 = 1000.0;

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    let sides = bench.sides(true);
    eprintln!("[streams] warm-up");
    for &side in &sides {
        both_providers(bench, side)?;
    }
    let mut runs = Vec::new();
    let mut f = Figures::default();
    for rep in 0..reps {
        eprintln!(
            "[streams] {} x {} chunks {} ms apart, rep {}/{reps}",
            plan.streams,
            plan.chunks,
            plan.chunk_interval.as_millis(),
            rep + 1
        );
        let mut run = serde_json::Map::new();
        run.insert("rep".into(), json!(rep));
        for &side in &sides {
            let s = both_providers(bench, side)?;
            let name = side.name();
            let mut put = |key: &str, value: f64| f.put(&mut run, format!("{name}_{key}"), value);
            for (key, p) in [("p50", 50.0), ("p99", 99.0)] {
                put(&format!("ttfb_{key}_us"), us(pct(&s.ttfb, p)));
            }
            for (key, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
                put(&format!("chunk_{key}_us"), us(pct(&s.delays, p)));
            }
            put("chunks", s.delays.len() as f64);
            put("errors", s.errors as f64);
            // Differences within the repetition: to direct, and to nginx.
            for key in [
                "ttfb_p50",
                "ttfb_p99",
                "chunk_p50",
                "chunk_p99",
                "chunk_max",
            ] {
                let value = f.last(&format!("{name}_{key}_us"));
                let added = value - f.last(&format!("direct_{key}_us"));
                f.put(&mut run, format!("{name}_added_{key}_us"), added);
                let over = value - f.last(&format!("nginx_{key}_us"));
                if side == Side::Proxied && !over.is_nan() {
                    f.put(&mut run, format!("proxied_vs_nginx_{key}_us"), over);
                }
            }
        }
        runs.push(Value::Object(run));
    }
    results.runs.insert("streams".into(), Value::Array(runs));
    rows(bench, &f, &mut results.rows);
    Ok(())
}

fn rows(bench: &Bench, f: &Figures, rows: &mut Vec<Row>) {
    let plan = bench.plan;
    let errors = f.sum("proxied_errors") as u64;
    let m = |key: String| f.median(&key);
    let figures = [
        (
            "ttfb_p50",
            format!("stream TTFB p50, {} streams", plan.streams),
            Some(MAX_TTFB_OVER_NGINX_US),
        ),
        ("ttfb_p99", "stream TTFB p99".to_owned(), None),
        (
            "chunk_p50",
            format!("chunk delay p50, {}x{} chunks", plan.streams, plan.chunks),
            None,
        ),
        (
            "chunk_p99",
            format!("chunk delay p99, {}x{} chunks", plan.streams, plan.chunks),
            Some(MAX_CHUNK_P99_OVER_NGINX_US),
        ),
        (
            "chunk_max",
            format!("chunk delay max, {}x{} chunks", plan.streams, plan.chunks),
            None,
        ),
    ];
    for (key, figure, limit) in figures {
        let side = |name: &str| {
            cell_added(
                m(format!("{name}_{key}_us")),
                m(format!("{name}_added_{key}_us")),
                " µs",
            )
        };
        let over = m(format!("proxied_vs_nginx_{key}_us"));
        let mut row = Row::new(figure)
            .direct(cell(m(format!("direct_{key}_us")), " µs"))
            .relay(side("relay"))
            .nginx(side("nginx"))
            .proxied(side("proxied"))
            .versus(signed(over, " µs"));
        if let Some(limit) = limit {
            row = row
                .target(format!("<= nginx + {limit:.0} µs"))
                .verdict(verdict_vs_nginx(
                    over - limit,
                    errors,
                    format!("{:+.0} µs", over - limit),
                ));
        }
        rows.push(row);
    }
}

struct Streams {
    ttfb: Vec<u64>,
    delays: Vec<u64>,
    errors: u64,
}

/// `plan.streams` streams along `side`, half of each provider, the
/// Anthropic ones started in between the OpenAI ones.
fn both_providers(bench: &Bench, side: Side) -> Result<Streams> {
    let plan = bench.plan;
    let stream_plan = Some((plan.chunks, plan.chunk_interval));
    let stagger = plan.chunk_interval / plan.streams as u32;
    let half = plan.streams / 2;
    let a = bench.endpoint(side, Provider::OpenAi, stream_plan);
    let b = bench.endpoint(side, Provider::Anthropic, stream_plan);
    bench.runtime.block_on(async {
        let (x, y) = tokio::join!(
            streams(a, half, plan.chunks, stagger * 2, Duration::ZERO),
            streams(b, plan.streams - half, plan.chunks, stagger * 2, stagger),
        );
        let (mut x, y) = (x?, y?);
        x.ttfb.extend(y.ttfb);
        x.delays.extend(y.delays);
        x.errors += y.errors;
        x.ttfb.sort_unstable();
        x.delays.sort_unstable();
        Ok(x)
    })
}

/// `count` concurrent streams (one connection each, opened beforehand),
/// started `stagger` apart, each read to its end.
async fn streams(
    endpoint: Arc<Endpoint>,
    count: usize,
    chunks: usize,
    stagger: Duration,
    offset: Duration,
) -> Result<Streams> {
    let barrier = Arc::new(Barrier::new(count + 1));
    let mut tasks = Vec::new();
    for i in 0..count {
        let endpoint = endpoint.clone();
        let barrier = barrier.clone();
        let mut conn = Conn::open(endpoint.addr).await?;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            tokio::time::sleep(offset + stagger * i as u32).await;
            let sent = now_ns();
            let mut ttfb = None;
            let mut delays = Vec::with_capacity(chunks);
            let mut pending = Vec::new();
            let mut stamps = 0;
            let outcome: Result<()> = async {
                let response = conn.start(endpoint.request()).await?;
                if response.status() != StatusCode::OK {
                    bail!("status {}", response.status());
                }
                let mut body = response.into_body();
                while let Some(data) = conn.frame(&mut body).await? {
                    let now = now_ns();
                    ttfb.get_or_insert(now - sent);
                    pending.extend_from_slice(&data);
                    stamps += take_stamps(&mut pending, now, &mut delays);
                }
                if stamps != chunks {
                    bail!("{stamps} of {chunks} chunks arrived");
                }
                Ok(())
            }
            .await;
            (ttfb, delays, outcome.is_err())
        }));
    }
    barrier.wait().await;
    let mut result = Streams {
        ttfb: Vec::new(),
        delays: Vec::new(),
        errors: 0,
    };
    for task in tasks {
        let (ttfb, delays, failed) = task.await?;
        result.ttfb.extend(ttfb);
        result.delays.extend(delays);
        result.errors += failed as u64;
    }
    result.ttfb.sort_unstable();
    result.delays.sort_unstable();
    Ok(result)
}
