//! Request ids: the client's `x-request-id` when it is a sane token,
//! otherwise a generated one. It comes back on every reply as
//! `x-llmproxy-request-id` and is the `request_id` of the log line. It is
//! never sent upstream (the upstream's own ids pass through unchanged).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

use warp::http::HeaderValue;

/// The request header a client may set.
pub const CLIENT_HEADER: &str = "x-request-id";
/// The response header every reply of the server carries.
pub const HEADER: &str = "x-llmproxy-request-id";

const MAX_LEN: usize = 128;

/// A request id, ready to go into a header (cloning is cheap).
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The client's id when it is 1 to 128 characters of `[A-Za-z0-9._:-]`,
    /// otherwise a fresh one.
    pub fn from_client(client: Option<&str>) -> Self {
        match client {
            Some(id) if is_valid(id) => match HeaderValue::from_str(id) {
                Ok(value) => RequestId(value),
                Err(_) => Self::generate(),
            },
            _ => Self::generate(),
        }
    }

    /// `req_` and 32 lowercase hex digits (128 bits).
    ///
    /// Random without an RNG crate or a system call per request: SipHash
    /// keyed once per process from the OS (`RandomState`) over a counter.
    /// SipHash is a keyed pseudo-random function, so ids are unique within
    /// a process, unpredictable without the key, and unrelated across
    /// restarts.
    pub fn generate() -> Self {
        static KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let high = KEY.hash_one((n, 0u8));
        let low = KEY.hash_one((n, 1u8));
        let mut text = [0u8; 36];
        text[..4].copy_from_slice(b"req_");
        hex(&mut text[4..20], high);
        hex(&mut text[20..], low);
        // Hex digits are always a valid header value.
        match HeaderValue::from_bytes(&text) {
            Ok(value) => RequestId(value),
            Err(_) => RequestId(HeaderValue::from_static("req_invalid")),
        }
    }

    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }

    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }
}

fn is_valid(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn hex(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated(id: &str) -> bool {
        id.len() == 36
            && id.starts_with("req_")
            && id[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn valid_client_ids_are_kept() {
        for id in ["a", "abc-123_x.y:z", &"x".repeat(128)] {
            assert_eq!(RequestId::from_client(Some(id)).as_str(), id);
        }
    }

    #[test]
    fn others_are_replaced_by_a_generated_one() {
        for id in ["", &"x".repeat(129), "a b", "a/b", "é", "a\"b", "a,b"] {
            let got = RequestId::from_client(Some(id));
            assert!(generated(got.as_str()), "{id:?} -> {}", got.as_str());
        }
        assert!(generated(RequestId::from_client(None).as_str()));
    }

    #[test]
    fn generated_ids_differ() {
        let ids: std::collections::HashSet<String> = (0..10_000)
            .map(|_| RequestId::generate().as_str().to_owned())
            .collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| generated(id)));
    }
}
