//! The proxy's idle memory before and after the load, and its peak.

use std::time::Duration;

use serde_json::json;

use super::Bench;
use crate::mock::wait_for_streams_to_close;
use crate::procfs;
use crate::report::{Results, Row};
use crate::stats::mb;

/// Once the measured phases are over (and the profiler detached).
/// `before_load_kib` was read right after the proxy's sanity check.
pub fn run(bench: &Bench, before_load_kib: u64, results: &mut Results) {
    wait_for_streams_to_close(Duration::from_secs(10));
    let peak_kib = procfs::status_kib(bench.proxy.pid(), "VmHWM:").unwrap_or(0);
    // The proxy checks once a second whether to give memory back after a
    // burst: wait long enough for that check to have run.
    std::thread::sleep(Duration::from_millis(1500));
    let after_load_kib = bench.proxy.rss_kib();
    results.runs.insert(
        "proxy_memory".into(),
        json!({"before_load_kib": before_load_kib, "after_load_kib": after_load_kib,
               "peak_kib": peak_kib}),
    );
    results.rows.push(Row::new(
        "proxy RSS idle, before / after the load",
        "-",
        "-",
        format!(
            "{:.1} / {:.1} MB",
            mb(before_load_kib as f64),
            mb(after_load_kib as f64)
        ),
        format!("peak {:.1} MB", mb(peak_kib as f64)),
        "(reported)",
        String::new(),
    ));
}
