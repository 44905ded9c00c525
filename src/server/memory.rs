//! Gives memory back to the operating system once a burst is over.
//!
//! glibc's allocator keeps freed memory mapped, so after a load spike RSS
//! stays at its high-water mark even though the heap is back to idle (the
//! soak test and massif show this). Once a second, if requests ran since the
//! last check and none is in flight now, `malloc_trim` releases the free
//! pages. The check is two atomic loads; the trim runs only after activity.
//!
//! Tried and not kept: `mallopt(M_MMAP_THRESHOLD, 8 KiB)`, which maps
//! hyper's mostly empty 8 to 16 KB connection buffers fresh so that only
//! touched pages count. It cut 1,000 open streams from about 63 to 47 MB,
//! but hyper re-allocates a read buffer on most requests, and the `munmap`
//! that follows costs cross-CPU TLB flushes: stream TTFB grew by 0.2 to
//! 1.9 ms (README, Performance).

use std::time::Duration;

use super::state::AppState;

const CHECK_EVERY: Duration = Duration::from_secs(1);

pub fn spawn_idle_trim(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut trimmed_at = state.started();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let started = state.started();
            if started != trimmed_at && state.in_flight() == 0 {
                trimmed_at = started;
                release_free_memory();
            }
        }
    })
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
