//! Gives memory back to the operating system as soon as a burst is over.
//!
//! glibc's allocator keeps freed memory mapped, so after a load spike RSS
//! stays at its high-water mark even though the heap is back to idle (the
//! soak test and massif show this). Worse, the next burst is carved from
//! those dirty pages: hyper's 8 to 16 KB connection buffers, of which a
//! stream touches a page or two, then count in full.
//!
//! So the moment the server becomes idle (no request or stream in flight)
//! after requests ran, `malloc_trim` releases the free pages, at most once
//! a second, on the blocking pool (it walks the whole heap). Under load
//! that never pauses there is no idle moment: there the trim comes when the
//! number in flight has fallen to a quarter of its peak since the last one
//! (1,000 streams ending while a few stay open), and again once what was
//! still open then has ended.
//!
//! Tried and not kept: `mallopt(M_MMAP_THRESHOLD, 8 KiB)`, which maps those
//! buffers fresh so that only touched pages count whatever the heap's
//! history, but hyper re-allocates a read buffer on most requests, and the
//! `munmap` that follows costs cross-CPU TLB flushes on the streams' time
//! to first byte (figures in docs/performance.md).

use std::time::{Duration, Instant};

use super::state::AppState;

const AT_MOST_EVERY: Duration = Duration::from_secs(1);
/// How often the in-flight count is looked at while requests are open.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

pub fn spawn_idle_trim(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut low_water = LowWater::new(state.started());
        let mut trimmed = Instant::now();
        loop {
            let in_flight = state.in_flight();
            if low_water.should_trim(state.started(), in_flight)
                && trimmed.elapsed() >= AT_MOST_EVERY
            {
                low_water.trimmed(state.started(), in_flight);
                trimmed = Instant::now();
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
            if in_flight == 0 {
                tokio::time::sleep(AT_MOST_EVERY).await;
            } else {
                // Idle wakes this at once; otherwise the count is sampled.
                tokio::select! {
                    _ = state.idle() => {}
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
            }
        }
    })
}

/// When to trim: requests started, or fewer are in flight, since the last
/// trim (so memory they held may be free), and the number in flight has
/// fallen to a quarter of its peak since then (to zero: the server is idle;
/// or from 1,000 streams to a few, under load that never pauses).
struct LowWater {
    started_at_trim: usize,
    in_flight_at_trim: usize,
    peak: usize,
}

impl LowWater {
    fn new(started: usize) -> Self {
        LowWater {
            started_at_trim: started,
            in_flight_at_trim: 0,
            peak: 0,
        }
    }

    fn should_trim(&mut self, started: usize, in_flight: usize) -> bool {
        self.peak = self.peak.max(in_flight);
        let changed = started != self.started_at_trim || in_flight < self.in_flight_at_trim;
        changed && in_flight <= self.peak / 4
    }

    fn trimmed(&mut self, started: usize, in_flight: usize) {
        self.started_at_trim = started;
        self.in_flight_at_trim = in_flight;
        self.peak = in_flight;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::LowWater;

    #[test]
    fn trims_once_idle_after_requests() {
        let mut low = LowWater::new(0);
        assert!(!low.should_trim(0, 0), "nothing ran yet");
        assert!(!low.should_trim(3, 2));
        assert!(low.should_trim(3, 0));
        low.trimmed(3, 0);
        assert!(!low.should_trim(3, 0), "nothing ran since");
    }

    #[test]
    fn trims_when_a_peak_has_mostly_drained_without_going_idle() {
        let mut low = LowWater::new(0);
        assert!(!low.should_trim(1000, 1000));
        assert!(!low.should_trim(1000, 400));
        assert!(low.should_trim(1001, 250));
        low.trimmed(1001, 250);
        // Steady load at the new level is no reason to trim again.
        assert!(!low.should_trim(2000, 250));
        assert!(!low.should_trim(2500, 100));
        assert!(low.should_trim(2600, 62));
    }

    #[test]
    fn trims_again_when_what_was_left_open_ends() {
        let mut low = LowWater::new(0);
        assert!(!low.should_trim(1000, 1000));
        assert!(low.should_trim(1000, 250));
        low.trimmed(1000, 250);
        // No request started since, but 250 ended: their memory is free.
        assert!(low.should_trim(1000, 0));
        low.trimmed(1000, 0);
        assert!(!low.should_trim(1000, 0));
    }
}
