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
use crate::report::{verdict, Results, Row};
use crate::stats::{pct, us, Figures};

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    eprintln!("[streams] warm-up");
    for side in [Side::Direct, Side::Relay, Side::Proxied] {
        both_providers(bench, side)?;
    }
    let mut runs = Vec::new();
    let mut f = Figures::default();
    let mut errors = 0;
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
        let mut direct_ttfb = (0.0, 0.0);
        for side in [Side::Direct, Side::Relay, Side::Proxied] {
            let s = both_providers(bench, side)?;
            errors += s.errors;
            let name = side.name();
            let (t50, t99) = (us(pct(&s.ttfb, 50.0)), us(pct(&s.ttfb, 99.0)));
            if side == Side::Direct {
                direct_ttfb = (t50, t99);
            }
            f.put(&mut run, format!("{name}_ttfb_p50_us"), t50);
            f.put(&mut run, format!("{name}_ttfb_p99_us"), t99);
            f.put(
                &mut run,
                format!("{name}_added_ttfb_p50_us"),
                t50 - direct_ttfb.0,
            );
            f.put(
                &mut run,
                format!("{name}_added_ttfb_p99_us"),
                t99 - direct_ttfb.1,
            );
            for (key, p) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
                f.put(
                    &mut run,
                    format!("{name}_chunk_{key}_us"),
                    us(pct(&s.delays, p)),
                );
            }
            f.put(&mut run, format!("{name}_chunks"), s.delays.len() as f64);
            f.put(&mut run, format!("{name}_errors"), s.errors as f64);
        }
        runs.push(Value::Object(run));
    }
    results.runs.insert("streams".into(), Value::Array(runs));
    rows(bench, &f, errors, &mut results.rows);
    Ok(())
}

fn rows(bench: &Bench, f: &Figures, errors: u64, rows: &mut Vec<Row>) {
    let plan = bench.plan;
    let added = f.median("proxied_added_ttfb_p50_us");
    rows.push(Row::new(
        format!("stream TTFB p50, {} streams", plan.streams),
        format!("{:.0} µs", f.median("direct_ttfb_p50_us")),
        format!(
            "{:.0} µs ({:+.0})",
            f.median("relay_ttfb_p50_us"),
            f.median("relay_added_ttfb_p50_us")
        ),
        format!("{:.0} µs", f.median("proxied_ttfb_p50_us")),
        format!("{added:+.0} µs"),
        "added <= 1000 µs",
        verdict(added <= 1000.0, format!("({:+.0} µs)", added - 1000.0)),
    ));
    rows.push(Row::new(
        "stream TTFB p99",
        format!("{:.0} µs", f.median("direct_ttfb_p99_us")),
        format!(
            "{:.0} µs ({:+.0})",
            f.median("relay_ttfb_p99_us"),
            f.median("relay_added_ttfb_p99_us")
        ),
        format!("{:.0} µs", f.median("proxied_ttfb_p99_us")),
        format!("{:+.0} µs", f.median("proxied_added_ttfb_p99_us")),
        "(reported)",
        String::new(),
    ));
    for key in ["p50", "p99", "max"] {
        let d = f.median(&format!("direct_chunk_{key}_us"));
        let r = f.median(&format!("relay_chunk_{key}_us"));
        let p = f.median(&format!("proxied_chunk_{key}_us"));
        let (target, verdict_text) = if key == "p99" {
            (
                "<= 1000 µs mock->client",
                verdict(
                    p <= 1000.0 && errors == 0,
                    format!("({:+.0} µs, {errors} errors)", p - 1000.0),
                ),
            )
        } else {
            ("(reported)", String::new())
        };
        rows.push(Row::new(
            format!("chunk delay {key}, {}x{} chunks", plan.streams, plan.chunks),
            format!("{d:.0} µs"),
            format!("{r:.0} µs"),
            format!("{p:.0} µs"),
            format!("{:+.0} µs", p - d),
            target,
            verdict_text,
        ));
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
