//! How the server process uses memory (glibc's allocator; elsewhere these
//! are no-ops).
//!
//! - Connection buffers come from `mmap`. hyper gives every connection,
//!   client side and server side, 8 to 16 KB buffers of which a stream
//!   touches a page or two. Carved from the heap, those buffers land on
//!   pages that earlier connections dirtied, so 1,000 open streams cost
//!   about 60 KB each once the heap has churned; mapped fresh, only touched
//!   pages count, and the same streams cost about 40 KB each, round after
//!   round (README, Performance).
//! - After a burst, free memory goes back to the OS. glibc keeps freed
//!   memory mapped, so RSS would stay at its high-water mark even though the
//!   heap is back to idle (the soak test and massif show this). Once a
//!   second, if requests ran since the last check and none is in flight
//!   now, `malloc_trim` releases the free pages. The check is two atomic
//!   loads; the trim runs only after activity.

use std::time::Duration;

use super::state::AppState;

const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Sets the allocator policy and starts the idle trim.
pub fn manage(state: AppState) -> tokio::task::JoinHandle<()> {
    map_large_buffers();
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
fn map_large_buffers() {
    /// Allocations of this size and more get their own mapping: hyper's
    /// 8 KB connection buffers and up.
    const MMAP_FROM_BYTES: i32 = 8 * 1024;
    // SAFETY: mallopt only changes a tunable of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM_BYTES);
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
fn map_large_buffers() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
