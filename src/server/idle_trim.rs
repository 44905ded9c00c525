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
//! that never pauses there is no idle moment and no trim.
//!
//! Tried and not kept: `mallopt(M_MMAP_THRESHOLD, 8 KiB)`, which maps those
//! buffers fresh so that only touched pages count whatever the heap's
//! history, but hyper re-allocates a read buffer on most requests, and the
//! `munmap` that follows costs cross-CPU TLB flushes on the streams' time
//! to first byte (figures in docs/performance.md).

use std::time::Duration;

use super::state::AppState;

const AT_MOST_EVERY: Duration = Duration::from_secs(1);

pub fn spawn_idle_trim(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut trimmed_at = state.started();
        loop {
            state.idle().await;
            let started = state.started();
            if started != trimmed_at {
                trimmed_at = started;
                let _ = tokio::task::spawn_blocking(release_free_memory).await;
            }
            tokio::time::sleep(AT_MOST_EVERY).await;
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
