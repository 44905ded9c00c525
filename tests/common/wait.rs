//! Waiting for a condition that has no signal of its own.

use std::time::{Duration, Instant};

/// Polls `condition` (cheap, in-memory) until it holds; panics after `within`.
pub async fn wait_until(condition: impl Fn() -> bool, within: Duration) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
