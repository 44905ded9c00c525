//! Memory with many open streams: llmproxy's and nginx's rounds in turn,
//! with an idle moment in between; then llmproxy's rounds again while one
//! more stream stays open throughout.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Notify, Semaphore};

use super::Bench;
use crate::client::Conn;
use crate::endpoint::{Endpoint, Provider, Side};
use crate::mock::wait_for_open_streams_at_most;
use crate::procfs;
use crate::report::{verdict, Results, Row};
use crate::stats::{mb, median};

/// Slow streams: they stay open across a round, a chunk a second.
const HOLD_PLAN: Option<(usize, Duration)> = Some((600, Duration::from_secs(1)));

/// Target: llmproxy's RSS with the streams open, in MB.
const MAX_MB: f64 = 50.0;

pub fn run(bench: &Bench, results: &mut Results) -> Result<()> {
    // llmproxy's rounds alternate with nginx's (master and workers).
    let mut sides = vec![Side::Proxied];
    if bench.nginx.is_some() {
        sides.push(Side::Nginx);
    }
    let (kib, runs) = rounds(bench, "", 0, &sides)?;
    results.runs.insert("memory".into(), Value::Array(runs));

    // The same rounds while one more stream stays open throughout: the
    // proxy never has an idle moment, as under load that never pauses.
    let (opened_tx, opened_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let sentinel = bench.runtime.spawn(hold_one_stream(
        bench.endpoint(Side::Proxied, Provider::OpenAi, HOLD_PLAN),
        opened_tx,
        release_rx,
    ));
    bench
        .runtime
        .block_on(opened_rx)
        .map_err(|_| anyhow!("the stream kept open across rounds could not be opened"))?;
    let label = ", no idle moment between rounds";
    let (churn_kib, churn_runs) = rounds(bench, label, 1, &[Side::Proxied])?;
    let _ = release_tx.send(());
    bench.runtime.block_on(sentinel)??;
    results
        .runs
        .insert("memory_no_idle".into(), Value::Array(churn_runs));

    let show = |kib: &[f64]| {
        let rounds: Vec<String> = kib.iter().map(|k| format!("{:.1}", mb(*k))).collect();
        format!("{:.1} MB (rounds {})", mb(median(kib)), rounds.join(" / "))
    };
    let nginx = kib.get(1).map(|k| mb(median(k)));
    let held = mb(median(&kib[0]));
    let churn = mb(median(&churn_kib[0]));
    let met = |mb: f64| verdict(mb <= MAX_MB, format!("({:+.1} MB)", mb - MAX_MB));
    results.rows.push(
        Row::new(format!("RSS, {} open streams", bench.plan.open_streams))
            .nginx(nginx.map_or("-".into(), |n| format!("{n:.1} MB")))
            .proxied(show(&kib[0]))
            .versus(nginx.map_or(String::new(), |n| format!("{:+.1} MB", held - n)))
            .target(format!("<= {MAX_MB:.0} MB"))
            .verdict(met(held)),
    );
    results.rows.push(
        Row::new("  the same, no idle moment between rounds")
            .proxied(show(&churn_kib[0]))
            .target(format!("<= {MAX_MB:.0} MB"))
            .verdict(met(churn)),
    );
    Ok(())
}

/// `reps` rounds of streams through each of `sides` in turn, while
/// `also_open` more stay open throughout: each side's RSS per round in KiB
/// (summed over its processes), and the rounds' JSON.
fn rounds(
    bench: &Bench,
    label: &str,
    also_open: usize,
    sides: &[Side],
) -> Result<(Vec<Vec<f64>>, Vec<Value>)> {
    let (plan, reps) = (bench.plan, bench.plan.reps);
    let mut kib = vec![Vec::new(); sides.len()];
    let mut runs = Vec::new();
    for rep in 0..reps {
        for (i, &side) in sides.iter().enumerate() {
            eprintln!(
                "[memory] {} open streams through {}{label}, rep {}/{reps}",
                plan.open_streams,
                side.name(),
                rep + 1
            );
            let held = bench.runtime.block_on(hold_streams(
                bench.endpoint(side, Provider::OpenAi, HOLD_PLAN),
                plan.open_streams,
                bench.hop_pids(side),
            ))?;
            if held.opened < plan.open_streams {
                bail!(
                    "only {} of {} streams could be opened through {}",
                    held.opened,
                    plan.open_streams,
                    side.name()
                );
            }
            runs.push(json!({
                "rep": rep, "side": side.name(), "open_streams": held.opened,
                "rss_kib": held.rss_kib, "seconds_to_open": held.seconds_to_open,
            }));
            kib[i].push(held.rss_kib as f64);
            // The hop notices a closed client at its next chunk (a second
            // later at most): the next round starts once all of this
            // round's are gone.
            if !wait_for_open_streams_at_most(also_open, Duration::from_secs(10)) {
                eprintln!(
                    "warning: {} still holds upstream streams after 10 s",
                    side.name()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok((kib, runs))
}

struct Held {
    rss_kib: u64,
    opened: usize,
    seconds_to_open: f64,
}

/// Opens `count` slow streams through a hop, waits until each has its
/// first chunk, samples the RSS of the hop's processes while they are all
/// open, then closes them.
async fn hold_streams(endpoint: Arc<Endpoint>, count: usize, pids: Vec<u32>) -> Result<Held> {
    let ready = Arc::new(AtomicUsize::new(0));
    let ready_signal = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let connecting = Arc::new(Semaphore::new(64));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..count {
        let endpoint = endpoint.clone();
        let (ready, ready_signal, release) = (ready.clone(), ready_signal.clone(), release.clone());
        let connecting = connecting.clone();
        tasks.push(tokio::spawn(async move {
            let released = release.notified();
            let mut released = std::pin::pin!(released);
            released.as_mut().enable();
            let permit = connecting.acquire_owned().await;
            let opened = || {
                drop(permit);
                ready.fetch_add(1, Ordering::AcqRel);
                ready_signal.notify_one();
            };
            let outcome = hold_stream(&endpoint, opened, released.as_mut()).await;
            if outcome.is_err() {
                ready_signal.notify_one();
            }
            outcome.is_ok()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::Acquire) < count && Instant::now() < deadline {
        let _ = tokio::time::timeout(Duration::from_millis(100), ready_signal.notified()).await;
        if tasks.iter().all(|t| !t.is_finished()) {
            continue;
        }
        // Some failed: stop waiting for them.
        let finished = tasks.iter().filter(|t| t.is_finished()).count();
        if ready.load(Ordering::Acquire) + finished >= count {
            break;
        }
    }
    let seconds_to_open = started.elapsed().as_secs_f64();
    let opened = ready.load(Ordering::Acquire);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rss_kib = 0;
    for _ in 0..5 {
        rss_kib = rss_kib.max(procfs::rss_kib(&pids));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    release.notify_waiters();
    for task in tasks {
        let _ = task.await;
    }
    Ok(Held {
        rss_kib,
        opened,
        seconds_to_open,
    })
}

/// Opens one slow stream, calls `opened` once its first
/// chunk has arrived, then keeps reading (a chunk a second) until `release`
/// resolves.
async fn hold_stream(
    endpoint: &Endpoint,
    opened: impl FnOnce(),
    release: impl Future<Output = ()>,
) -> Result<()> {
    let mut conn = Conn::open(endpoint.addr).await?;
    let response = conn.start(endpoint.request()).await?;
    if response.status() != StatusCode::OK {
        bail!("status {}", response.status());
    }
    let mut body = response.into_body();
    conn.frame(&mut body).await?.context("no first chunk")?;
    opened();
    let mut release = std::pin::pin!(release);
    loop {
        tokio::select! {
            _ = release.as_mut() => return Ok(()),
            frame = conn.frame(&mut body) => if frame?.is_none() { bail!("stream ended early") },
        }
    }
}

/// Holds one stream open until `release` fires, so that the proxy is never
/// idle in between (and never runs its idle trim).
async fn hold_one_stream(
    endpoint: Arc<Endpoint>,
    opened: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
) -> Result<()> {
    let opened = || {
        let _ = opened.send(());
    };
    let release = async {
        let _ = release.await;
    };
    hold_stream(&endpoint, opened, release).await
}
