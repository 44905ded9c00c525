//! Start-up and idle memory: fresh processes, each timed from spawn to its
//! first healthy 200, then its idle RSS.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::args::Plan;
use crate::process::{Launch, Proxy};
use crate::report::{verdict, Results, Row};
use crate::stats::{mb, median};

pub fn run(plan: &Plan, mock: SocketAddr, launch: &Launch, results: &mut Results) -> Result<()> {
    let reps = plan.reps;
    eprintln!("[start-up] {reps} fresh processes");
    let mut startup_ms = Vec::new();
    let mut idle_kib = Vec::new();
    for _ in 0..reps {
        let proxy = Proxy::start(mock, launch)?;
        startup_ms.push(proxy.startup.as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
        idle_kib.push(proxy.rss_kib() as f64);
    }
    results.runs.insert(
        "startup".into(),
        json!({"startup_ms": startup_ms, "idle_rss_kib": idle_kib}),
    );
    let idle = mb(median(&idle_kib));
    results.rows.push(Row::new(
        "proxy RSS idle (fresh process)",
        "-",
        "-",
        format!("{idle:.1} MB"),
        "",
        "<= 10 MB",
        verdict(idle <= 10.0, format!("({:+.1} MB)", idle - 10.0)),
    ));
    let startup = median(&startup_ms);
    results.rows.push(Row::new(
        "start-up to first healthy 200",
        "-",
        "-",
        format!("{startup:.1} ms"),
        "",
        "<= 20 ms",
        verdict(startup <= 20.0, format!("({:+.1} ms)", startup - 20.0)),
    ));
    Ok(())
}
