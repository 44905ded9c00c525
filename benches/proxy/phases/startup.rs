//! Start-up and idle memory: fresh processes, each timed from spawn to its
//! first healthy 200, then its idle RSS. nginx (master and workers) in turn
//! with llmproxy.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::args::Plan;
use crate::nginx::{self, Nginx};
use crate::process::{Launch, Proxy};
use crate::report::{verdict, Results, Row};
use crate::stats::{mb, median};

/// Targets for llmproxy.
const MAX_IDLE_MB: f64 = 10.0;
const MAX_STARTUP_MS: f64 = 20.0;

pub fn run(
    plan: &Plan,
    mock: SocketAddr,
    launch: &Launch,
    nginx: Option<&nginx::Binary>,
    results: &mut Results,
) -> Result<()> {
    let reps = plan.reps;
    eprintln!("[start-up] {reps} fresh processes each");
    let (mut startup_ms, mut idle_kib) = (Vec::new(), Vec::new());
    let (mut nginx_startup_ms, mut nginx_idle_kib) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        let proxy = Proxy::start(mock, launch)?;
        startup_ms.push(proxy.startup.as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
        idle_kib.push(proxy.rss_kib() as f64);
        drop(proxy);
        if let Some(binary) = nginx {
            let nginx = Nginx::start(binary, mock)?;
            nginx_startup_ms.push(nginx.startup.as_secs_f64() * 1000.0);
            std::thread::sleep(Duration::from_millis(300));
            nginx_idle_kib.push(nginx.rss_kib() as f64);
        }
    }
    results.runs.insert(
        "startup".into(),
        json!({"startup_ms": startup_ms, "idle_rss_kib": idle_kib,
               "nginx_startup_ms": nginx_startup_ms, "nginx_idle_rss_kib": nginx_idle_kib}),
    );
    let nginx_cell = |values: &[f64], show: &dyn Fn(f64) -> String| {
        if values.is_empty() {
            "-".to_owned()
        } else {
            show(median(values))
        }
    };
    let idle = mb(median(&idle_kib));
    results.rows.push(
        Row::new("RSS idle (fresh process)")
            .nginx(nginx_cell(&nginx_idle_kib, &|k| format!("{:.1} MB", mb(k))))
            .proxied(format!("{idle:.1} MB"))
            .target(format!("<= {MAX_IDLE_MB:.0} MB"))
            .verdict(verdict(
                idle <= MAX_IDLE_MB,
                format!("({:+.1} MB)", idle - MAX_IDLE_MB),
            )),
    );
    let startup = median(&startup_ms);
    results.rows.push(
        Row::new("start-up to first healthy 200")
            .nginx(nginx_cell(&nginx_startup_ms, &|ms| format!("{ms:.1} ms")))
            .proxied(format!("{startup:.1} ms"))
            .target(format!("<= {MAX_STARTUP_MS:.0} ms"))
            .verdict(verdict(
                startup <= MAX_STARTUP_MS,
                format!("({:+.1} ms)", startup - MAX_STARTUP_MS),
            )),
    );
    Ok(())
}
