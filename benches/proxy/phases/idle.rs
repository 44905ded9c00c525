//! Idle memory before and after the load, and the peak: llmproxy's, and
//! nginx's (master and workers).

use std::time::Duration;

use serde_json::json;

use super::Bench;
use crate::mock::wait_for_streams_to_close;
use crate::procfs;
use crate::report::{Results, Row};
use crate::stats::mb;

/// Idle RSS in KiB, read right after the sanity check.
pub struct BeforeLoad {
    pub proxy_kib: u64,
    pub nginx_kib: Option<u64>,
}

impl BeforeLoad {
    pub fn read(bench: &Bench) -> BeforeLoad {
        BeforeLoad {
            proxy_kib: bench.proxy.rss_kib(),
            nginx_kib: bench.nginx.map(|n| n.rss_kib()),
        }
    }
}

/// Once the measured phases are over (and the profiler detached).
pub fn run(bench: &Bench, before: BeforeLoad, results: &mut Results) {
    wait_for_streams_to_close(Duration::from_secs(10));
    let peak_kib = procfs::status_kib(bench.proxy.pid(), "VmHWM:").unwrap_or(0);
    // The proxy checks once a second whether to give memory back after a
    // burst: wait long enough for that check to have run.
    std::thread::sleep(Duration::from_millis(1500));
    let after_kib = bench.proxy.rss_kib();
    let nginx_after_kib = bench.nginx.map(|n| n.rss_kib());
    results.runs.insert(
        "proxy_memory".into(),
        json!({"before_load_kib": before.proxy_kib, "after_load_kib": after_kib,
               "peak_kib": peak_kib, "nginx_before_load_kib": before.nginx_kib,
               "nginx_after_load_kib": nginx_after_kib}),
    );
    let both =
        |before: u64, after: u64| format!("{:.1} / {:.1} MB", mb(before as f64), mb(after as f64));
    let nginx = match (before.nginx_kib, nginx_after_kib) {
        (Some(b), Some(a)) => both(b, a),
        _ => "-".into(),
    };
    results.rows.push(
        Row::new("RSS idle, before / after the load")
            .nginx(nginx)
            .proxied(format!(
                "{} (peak {:.1} MB)",
                both(before.proxy_kib, after_kib),
                mb(peak_kib as f64)
            )),
    );
}
