//! The report: the table on stdout and every repetition's raw numbers in
//! `<target dir>/bench-results/proxy.json`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::args::Plan;
use crate::machine::Machine;
use crate::process::PROXY_ENV;

/// One row of the table.
pub struct Row {
    /// figure, direct, relay, llmproxy, vs direct, target, verdict
    cells: [String; 7],
}

impl Row {
    pub fn new(
        figure: impl Into<String>,
        direct: impl Into<String>,
        relay: impl Into<String>,
        proxied: impl Into<String>,
        versus: impl Into<String>,
        target: impl Into<String>,
        verdict: impl Into<String>,
    ) -> Row {
        Row {
            cells: [
                figure.into(),
                direct.into(),
                relay.into(),
                proxied.into(),
                versus.into(),
                target.into(),
                verdict.into(),
            ],
        }
    }
}

pub fn verdict(met: bool, detail: String) -> String {
    format!("{} {detail}", if met { "MET" } else { "MISSED" })
}

/// What the phases produce: the table's rows and, by phase, the raw runs.
#[derive(Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub runs: Map<String, Value>,
}

/// The run as a whole, around the phases' results.
pub struct Context<'a> {
    pub machine: &'a Machine,
    pub plan: &'a Plan,
    pub phases: Vec<&'static str>,
    pub proxy_binary: String,
    pub load_before: String,
    pub load_after: String,
    pub wall_seconds: f64,
}

/// Prints the table and writes the JSON report.
pub fn finish(context: &Context, results: Results) -> Result<()> {
    let Context {
        plan,
        machine,
        load_before,
        load_after,
        ..
    } = context;
    println!();
    println!(
        "Medians of {} run(s). direct: client -> mock; L4 relay: client -> byte relay \
         process -> mock (the floor for any proxy hop here); llmproxy: client -> llmproxy -> mock. \
         Load average before/after: {load_before} / {load_after}.",
        plan.reps
    );
    print_table(&results.rows);
    let busy = |load: &str| {
        load.split_whitespace()
            .next()
            .and_then(|l| l.parse::<f64>().ok())
            .is_some_and(|l| l > 0.5)
    };
    // (The load after includes this benchmark's own.)
    if busy(load_before) {
        println!(
            "note: the machine was busy before the run (1-minute load average above 0.5): \
             expect noisy figures."
        );
    }
    println!("wall time {:.0} s", context.wall_seconds);

    let report = json!({
        "machine": {
            "date": machine.date, "cores": machine.cores, "cpu": machine.cpu,
            "kernel": machine.kernel, "memory_gib": machine.memory_gib, "commit": machine.commit,
            "load_average_before": load_before, "load_average_after": load_after,
        },
        "proxy_binary": context.proxy_binary,
        "proxy_env": PROXY_ENV.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map<_, _>>(),
        "plan": {
            "phases": context.phases, "repetitions": plan.reps, "warmup_s": plan.warmup.as_secs_f64(),
            "measure_s": plan.measure.as_secs_f64(), "concurrency": plan.concurrency,
            "rate": plan.rate, "rate_connections": plan.rate_connections,
            "streams": plan.streams, "chunks": plan.chunks,
            "chunk_interval_ms": plan.chunk_interval.as_millis() as u64,
            "open_streams": plan.open_streams,
        },
        "summary": results.rows.iter().map(|r| json!({
            "figure": r.cells[0], "direct": r.cells[1], "relay": r.cells[2], "llmproxy": r.cells[3],
            "vs_direct": r.cells[4], "target": r.cells[5], "verdict": r.cells[6],
        })).collect::<Vec<_>>(),
        "runs": results.runs,
        "wall_seconds": context.wall_seconds,
    });
    let out = target_dir().join("bench-results").join("proxy.json");
    std::fs::create_dir_all(out.parent().expect("a parent"))?;
    std::fs::write(&out, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("results: {}", out.display());
    Ok(())
}

fn print_table(rows: &[Row]) {
    let headers = [
        "figure",
        "direct",
        "L4 relay",
        "llmproxy",
        "llmproxy vs direct",
        "target",
        "verdict",
    ]
    .map(String::from);
    let mut widths = headers.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, c) in widths.iter_mut().zip(&row.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 7]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&headers);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in rows {
        line(&row.cells);
    }
}

fn target_dir() -> PathBuf {
    // <target>/<profile>/deps/proxy-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}
