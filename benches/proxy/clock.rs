//! A shared clock: the mock stamps each stream chunk with it, the client
//! (same process) reads it back.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the first call.
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The stamp in each chunk: `@T` and 20 digits of nanoseconds since EPOCH.
pub const STAMP: &[u8] = b"@T";
const STAMP_DIGITS: usize = 20;

/// Appends the stamp of `ns` to `out`.
pub fn push_stamp(out: &mut String, ns: u64) {
    use std::fmt::Write;
    let _ = write!(out, "@T{ns:020}");
}

pub const STAMP_LEN: usize = STAMP.len() + STAMP_DIGITS;

/// Finds every complete stamp in `pending` (appended to as frames arrive),
/// records `now - stamp` for each, and keeps only what might be the start of
/// a stamp split across frames.
pub fn take_stamps(pending: &mut Vec<u8>, now: u64, delays: &mut Vec<u64>) -> usize {
    let mut found = 0;
    let mut consumed = 0;
    let mut from = 0;
    while let Some(at) = find(&pending[from..], STAMP).map(|p| p + from) {
        let digits = at + STAMP.len();
        if pending.len() < digits + STAMP_DIGITS {
            break;
        }
        let text = std::str::from_utf8(&pending[digits..digits + STAMP_DIGITS]).unwrap_or("");
        if let Ok(written) = text.parse::<u64>() {
            delays.push(now.saturating_sub(written));
            found += 1;
        }
        from = digits + STAMP_DIGITS;
        consumed = from;
    }
    let keep_from = consumed.max(pending.len().saturating_sub(STAMP_LEN));
    pending.drain(..keep_from);
    found
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
