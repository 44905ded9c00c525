//! The report: the table on stdout and every repetition's raw numbers in
//! `<target dir>/bench-results/proxy.json`.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::args::Plan;
use crate::machine::Machine;
use crate::nginx;
use crate::process::PROXY_ENV;

/// The note when there is no nginx to measure.
pub const NGINX_MISSING: &str = "nginx not found: apt-get install nginx (or BENCH_NGINX=path)";

/// The table's columns, and their keys in the JSON summary.
const COLUMNS: [(&str, &str); 8] = [
    ("figure", "figure"),
    ("direct", "direct"),
    ("L4 relay", "relay"),
    ("nginx", "nginx"),
    ("llmproxy", "llmproxy"),
    ("llmproxy vs nginx", "vs_nginx"),
    ("target", "target"),
    ("verdict", "verdict"),
];

/// One row of the table: `Row::new(figure)`, then the cells that apply
/// (the others read `-`, or nothing for the comparison and the verdict).
pub struct Row {
    cells: [String; 8],
}

macro_rules! cells {
    ($($name:ident = $index:literal),*) => {
        $(pub fn $name(mut self, text: impl Into<String>) -> Row {
            self.cells[$index] = text.into();
            self
        })*
    };
}

impl Row {
    pub fn new(figure: impl Into<String>) -> Row {
        let cells = [
            figure.into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            String::new(),
            "(reported)".into(),
            String::new(),
        ];
        Row { cells }
    }

    /// A row that only says something, in its first cell.
    pub fn note(text: impl Into<String>) -> Row {
        let mut row = Row::new(text);
        row.cells[1..].iter_mut().for_each(String::clear);
        row
    }

    cells!(
        direct = 1,
        relay = 2,
        nginx = 3,
        proxied = 4,
        versus = 5,
        target = 6,
        verdict = 7
    );
}

pub fn verdict(met: bool, detail: String) -> String {
    format!("{} {detail}", if met { "MET" } else { "MISSED" })
}

/// A verdict against nginx's figure: `excess` is llmproxy's figure past
/// the limit derived from nginx's (met at zero or less; NaN when nginx was
/// not measured), `detail` says by how much.
pub fn verdict_vs_nginx(excess: f64, errors: u64, detail: String) -> String {
    if excess.is_nan() {
        return "n/a (no nginx)".into();
    }
    let errors = if errors > 0 {
        format!(", {errors} errors")
    } else {
        String::new()
    };
    verdict(
        excess <= 0.0 && errors.is_empty(),
        format!("({detail}{errors})"),
    )
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
    pub nginx: Option<&'a nginx::Binary>,
    /// The configuration of the nginx the phases ran against.
    pub nginx_config: Option<String>,
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
         process -> mock (the floor for any proxy hop here); nginx: client -> nginx {} -> mock \
         (the anchor of the targets; its RSS and CPU are its master's and workers' summed); \
         llmproxy: client -> llmproxy -> mock. In parentheses: against direct. Load average before/after: {load_before} / {load_after}.",
        plan.reps,
        context.nginx.map_or("(not found)", |n| n.version.as_str()),
    );
    print_table(&results.rows);
    if context.nginx.is_none() {
        println!("note: {NGINX_MISSING}; the targets set against nginx read n/a.");
    }
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
        "nginx": context.nginx.map(|n| json!({
            "binary": n.path.display().to_string(), "version": n.version,
            "config": context.nginx_config,
        })),
        "proxy_env": PROXY_ENV.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<Map<_, _>>(),
        "plan": {
            "phases": context.phases, "repetitions": plan.reps, "warmup_s": plan.warmup.as_secs_f64(),
            "measure_s": plan.measure.as_secs_f64(), "concurrency": plan.concurrency,
            "rates": plan.rates, "rate_connections": plan.rate_connections,
            "streams": plan.streams, "chunks": plan.chunks,
            "chunk_interval_ms": plan.chunk_interval.as_millis() as u64,
            "open_streams": plan.open_streams,
        },
        "summary": results.rows.iter().map(|r| {
            COLUMNS.iter().zip(&r.cells).map(|((_, key), cell)| (key.to_string(), json!(cell)))
                .collect::<Map<_, _>>()
        }).collect::<Vec<_>>(),
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
    let headers = COLUMNS.map(|(name, _)| name.to_owned());
    let mut widths = headers.clone().map(|h| h.chars().count());
    for row in rows {
        for (w, c) in widths.iter_mut().zip(&row.cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String; 8]| {
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
