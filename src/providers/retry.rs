//! When a failed upstream attempt is tried again, and after how long.
//!
//! Retried: a connection that failed before any byte of the reply
//! (refused, reset, closed), and the statuses that say "try again"
//! (408, 409, 429, 500, 502, 503, 504, 529), unless the upstream says
//! `x-should-retry: false` (and always when it says `true`). Never retried:
//! a read timeout after the request went out (the upstream may be
//! generating, and billing, the reply), any other status, and anything
//! after the first byte reached the client.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::Error;

const RETRY_STATUSES: [u16; 8] = [408, 409, 429, 500, 502, 503, 504, 529];

/// The longest wait an upstream may ask for; beyond it the reply is
/// answered at once instead.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

/// Why an attempt is tried again (a label of bounded values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// The upstream answered this status.
    Status(u16),
    /// The connection failed before the reply started.
    Connection,
}

impl RetryReason {
    /// The metrics label: the status code, `connection`, or `other` for a
    /// status retried only because the upstream said `x-should-retry: true`
    /// (labels never take unbounded values).
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::Status(408) => "408",
            RetryReason::Status(409) => "409",
            RetryReason::Status(429) => "429",
            RetryReason::Status(500) => "500",
            RetryReason::Status(502) => "502",
            RetryReason::Status(503) => "503",
            RetryReason::Status(504) => "504",
            RetryReason::Status(529) => "529",
            RetryReason::Status(_) => "other",
            RetryReason::Connection => "connection",
        }
    }
}

/// One retry about to happen, for the CLI's stderr line and the metrics.
#[derive(Debug, Clone)]
pub struct RetryNotice {
    pub provider: &'static str,
    pub reason: RetryReason,
    /// What went wrong, in words (the error's message).
    pub message: String,
    pub delay: Duration,
    /// 1 for the first retry.
    pub retry: u32,
    pub of: u32,
}

impl std::fmt::Display for RetryNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            RetryReason::Status(status) => write!(f, "{} answered {status}", self.provider)?,
            RetryReason::Connection => write!(f, "{}", self.message)?,
        }
        write!(
            f,
            "; retrying in {:.1} s ({} of {})",
            self.delay.as_secs_f64(),
            self.retry,
            self.of
        )
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Retry {
        reason: RetryReason,
        delay: Duration,
    },
    GiveUp,
}

/// Decides about `error` after attempt `attempt` (0-based). `connection`
/// says the transport failed before the reply started (not a timeout
/// after the request went out).
pub fn decide(error: &Error, connection: bool, attempt: u32, jitter: f64) -> Decision {
    let reason = match error {
        Error::UpstreamStatus {
            status, headers, ..
        } => {
            let should_retry = header(headers, "x-should-retry");
            let retry = match should_retry {
                Some("true") => true,
                Some("false") => false,
                _ => RETRY_STATUSES.contains(status),
            };
            if !retry {
                return Decision::GiveUp;
            }
            match server_delay(headers) {
                ServerDelay::TooLong => return Decision::GiveUp,
                ServerDelay::Wait(delay) => {
                    return Decision::Retry {
                        reason: RetryReason::Status(*status),
                        delay,
                    }
                }
                ServerDelay::None => RetryReason::Status(*status),
            }
        }
        _ if connection => RetryReason::Connection,
        _ => return Decision::GiveUp,
    };
    Decision::Retry {
        reason,
        delay: backoff(attempt, jitter),
    }
}

/// `min(0.5 × 2^n, 8)` seconds, times `jitter` in (0.75, 1].
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = (0.5 * 2f64.powi(attempt.min(16) as i32)).min(8.0);
    Duration::from_secs_f64(base * jitter)
}

#[derive(Debug, PartialEq)]
enum ServerDelay {
    /// No usable header.
    None,
    Wait(Duration),
    /// Over [`MAX_SERVER_DELAY`]: do not retry.
    TooLong,
}

/// `retry-after-ms` (milliseconds) wins over `retry-after` (seconds or an
/// HTTP date); 0, negative or unreadable values are ignored.
fn server_delay(headers: &[(&'static str, String)]) -> ServerDelay {
    let delay = header(headers, "retry-after-ms")
        .and_then(|ms| ms.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms > 0.0)
        .map(|ms| ms / 1000.0)
        .or_else(|| {
            let value = header(headers, "retry-after")?.trim();
            match value.parse::<f64>() {
                Ok(seconds) => Some(seconds).filter(|s| s.is_finite() && *s > 0.0),
                Err(_) => {
                    let at = httpdate::parse_http_date(value).ok()?;
                    let wait = at.duration_since(SystemTime::now()).ok()?;
                    Some(wait.as_secs_f64()).filter(|s| *s > 0.0)
                }
            }
        });
    match delay {
        None => ServerDelay::None,
        Some(seconds) if seconds > MAX_SERVER_DELAY.as_secs_f64() => ServerDelay::TooLong,
        Some(seconds) => ServerDelay::Wait(Duration::from_secs_f64(seconds)),
    }
}

fn header<'h>(headers: &'h [(&'static str, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

/// A random factor in (0.75, 1], from the process's random hasher keys
/// and a counter (no random-number crate needed for a backoff).
pub fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let unit = (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    1.0 - 0.25 * unit
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn status(code: u16, headers: &[(&'static str, &str)]) -> Error {
        Error::UpstreamStatus {
            provider: "openai",
            status: code,
            body: Bytes::new(),
            headers: headers.iter().map(|(n, v)| (*n, (*v).to_owned())).collect(),
        }
    }

    fn delay_of(decision: Decision) -> Option<Duration> {
        match decision {
            Decision::Retry { delay, .. } => Some(delay),
            Decision::GiveUp => None,
        }
    }

    #[test]
    fn the_retryable_statuses_back_off_exponentially_up_to_8_s() {
        for code in RETRY_STATUSES {
            assert_eq!(
                decide(&status(code, &[]), false, 0, 1.0),
                Decision::Retry {
                    reason: RetryReason::Status(code),
                    delay: Duration::from_millis(500)
                }
            );
        }
        let delays: Vec<_> = (0..6)
            .map(|n| delay_of(decide(&status(429, &[]), false, n, 1.0)).unwrap())
            .collect();
        let secs: Vec<f64> = delays.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]);
        assert_eq!(
            delay_of(decide(&status(503, &[]), false, 1, 0.75)),
            Some(Duration::from_millis(750))
        );
    }

    #[test]
    fn other_statuses_and_read_timeouts_are_not_retried() {
        for code in [400, 401, 403, 404, 422, 501] {
            assert_eq!(decide(&status(code, &[]), false, 0, 1.0), Decision::GiveUp);
        }
        let timeout = Error::Timeout {
            provider: "openai",
            seconds: 60,
        };
        assert_eq!(decide(&timeout, false, 0, 1.0), Decision::GiveUp);
        let refused = Error::Unreachable {
            provider: "openai",
            reason: "connection refused".into(),
        };
        assert_eq!(
            decide(&refused, true, 0, 1.0),
            Decision::Retry {
                reason: RetryReason::Connection,
                delay: Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn x_should_retry_overrides_the_status() {
        assert_eq!(
            decide(&status(503, &[("x-should-retry", "false")]), false, 0, 1.0),
            Decision::GiveUp
        );
        assert!(matches!(
            decide(&status(400, &[("x-should-retry", "true")]), false, 0, 1.0),
            Decision::Retry { .. }
        ));
    }

    #[test]
    fn the_upstream_may_say_how_long_to_wait_up_to_60_s() {
        let wait = |headers: &[(&'static str, &str)]| {
            delay_of(decide(&status(429, headers), false, 3, 1.0))
        };
        assert_eq!(wait(&[("retry-after", "2")]), Some(Duration::from_secs(2)));
        assert_eq!(
            wait(&[("retry-after", "2"), ("retry-after-ms", "150")]),
            Some(Duration::from_millis(150))
        );
        assert_eq!(
            wait(&[("retry-after", "60")]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            wait(&[("retry-after", "61")]),
            None,
            "over 60 s: answer at once"
        );
        assert_eq!(wait(&[("retry-after-ms", "60001")]), None);
        // 0 and nonsense fall back to the backoff (4 s at attempt 3).
        assert_eq!(wait(&[("retry-after", "0")]), Some(Duration::from_secs(4)));
        assert_eq!(
            wait(&[("retry-after", "soon")]),
            Some(Duration::from_secs(4))
        );
        let in_ten = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(10));
        let waited = wait(&[("retry-after", &in_ten)]).unwrap();
        assert!(
            waited > Duration::from_secs(8) && waited <= Duration::from_secs(10),
            "{waited:?}"
        );
    }

    #[test]
    fn jitter_stays_in_its_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!(j > 0.75 && j <= 1.0, "{j}");
        }
    }

    #[test]
    fn the_notice_reads_as_one_line() {
        let notice = RetryNotice {
            provider: "openai",
            reason: RetryReason::Status(429),
            message: String::new(),
            delay: Duration::from_millis(1234),
            retry: 1,
            of: 2,
        };
        assert_eq!(
            notice.to_string(),
            "openai answered 429; retrying in 1.2 s (1 of 2)"
        );
    }
}
