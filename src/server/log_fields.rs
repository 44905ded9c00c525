//! Cheap `Display` forms for the per-request log line, which is written
//! for every request and showed up in profiles (f64 formatting, escaping
//! every character).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static JSON: AtomicBool = AtomicBool::new(false);
static COLOUR: AtomicBool = AtomicBool::new(false);

/// Says how log lines are written: JSON (`LOG_FORMAT=json`), or text with
/// colours (a terminal, and no `NO_COLOR`); the request line follows suit.
pub fn set_format(json: bool, colour: bool) {
    JSON.store(json, Ordering::Relaxed);
    COLOUR.store(colour, Ordering::Relaxed);
}

pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

pub fn colour() -> bool {
    COLOUR.load(Ordering::Relaxed)
}

/// A client-supplied string: written as is when it holds only plain
/// identifier characters, quoted and escaped otherwise (so it can forge
/// neither fields nor lines).
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plain = self
            .0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'));
        if plain {
            f.write_str(self.0)
        } else {
            write!(f, "{:?}", self.0)
        }
    }
}

/// A duration in milliseconds with three decimals, from integers.
pub struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        write!(f, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// Milliseconds with microsecond precision, as a number (JSON lines).
pub fn ms(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_through_and_others_are_escaped() {
        assert_eq!(Escaped("gpt-4o-mini").to_string(), "gpt-4o-mini");
        assert_eq!(
            Escaped("claude-3-5-haiku-20241022").to_string(),
            "claude-3-5-haiku-20241022"
        );
        assert_eq!(Escaped("a b=\"c\"\n").to_string(), "\"a b=\\\"c\\\"\\n\"");
    }

    #[test]
    fn millis_keep_three_decimals() {
        assert_eq!(Millis(Duration::from_micros(417)).to_string(), "0.417");
        assert_eq!(Millis(Duration::from_micros(12_005)).to_string(), "12.005");
        assert_eq!(Millis(Duration::from_nanos(999)).to_string(), "0.000");
    }
}
