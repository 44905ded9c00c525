//! The request line, written straight to stderr in the layout of the
//! `tracing` lines around it (text or JSON), without `tracing`'s field
//! machinery: with a dozen fields that cost more CPU than a whole proxied
//! request's JSON work. `tracing` still decides whether the line is wanted
//! (`RUST_LOG`), so filtering works as for every other line.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::log_fields::Escaped;

/// The `target` the line is filtered and written under.
pub const TARGET: &str = "llmproxy::server::request_log";

/// One value of the line.
pub enum Value<'a> {
    /// A fixed word of ours (written bare in text).
    Word(&'a str),
    /// A string the client chose: escaped in text unless plain.
    Client(&'a str),
    /// A fixed string written quoted in text (as `tracing` writes `&str`).
    Quoted(&'a str),
    Bool(bool),
    Number(u64),
    /// Milliseconds with three decimals.
    Millis(Duration),
}

thread_local! {
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Whether `RUST_LOG` wants the line (the same check `tracing::info!`
/// makes for its callsite).
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// Writes `message` and the present `fields` as one line on stderr.
pub fn write(json: bool, colour: bool, message: &str, fields: &[(&str, Option<Value<'_>>)]) {
    LINE.with(|line| {
        let Ok(mut line) = line.try_borrow_mut() else {
            return;
        };
        line.clear();
        let now = SystemTime::now();
        if json {
            json_line(&mut line, now, message, fields);
        } else {
            text_line(&mut line, now, colour, message, fields);
        }
        line.push('\n');
        // One write of the whole line: lines of other threads cannot
        // interleave with it.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    });
}

fn text_line(
    line: &mut String,
    now: SystemTime,
    colour: bool,
    message: &str,
    fields: &[(&str, Option<Value<'_>>)],
) {
    if colour {
        line.push_str("\x1b[2m");
        timestamp(line, now);
        line.push_str("\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2m");
        line.push_str(TARGET);
        line.push_str(":\x1b[0m ");
    } else {
        timestamp(line, now);
        line.push_str("  INFO ");
        line.push_str(TARGET);
        line.push_str(": ");
    }
    line.push_str(message);
    for (name, value) in fields {
        let Some(value) = value else { continue };
        line.push(' ');
        line.push_str(name);
        line.push('=');
        let _ = match value {
            Value::Word(word) => {
                line.push_str(word);
                Ok(())
            }
            Value::Client(text) => write!(line, "{}", Escaped(text)),
            Value::Quoted(text) => write!(line, "{text:?}"),
            Value::Bool(b) => write!(line, "{b}"),
            Value::Number(n) => write!(line, "{n}"),
            Value::Millis(d) => {
                let micros = d.as_micros();
                write!(line, "{}.{:03}", micros / 1000, micros % 1000)
            }
        };
    }
}

fn json_line(
    line: &mut String,
    now: SystemTime,
    message: &str,
    fields: &[(&str, Option<Value<'_>>)],
) {
    line.push_str("{\"timestamp\":\"");
    timestamp(line, now);
    line.push_str("\",\"level\":\"INFO\",\"message\":");
    json_string(line, message);
    for (name, value) in fields {
        let Some(value) = value else { continue };
        line.push_str(",\"");
        line.push_str(name);
        line.push_str("\":");
        let _ = match value {
            Value::Word(text) | Value::Client(text) | Value::Quoted(text) => {
                json_string(line, text);
                Ok(())
            }
            Value::Bool(b) => write!(line, "{b}"),
            Value::Number(n) => write!(line, "{n}"),
            Value::Millis(d) => {
                let micros = d.as_micros();
                write!(line, "{}.{:03}", micros / 1000, micros % 1000)
            }
        };
    }
    line.push_str(",\"target\":\"");
    line.push_str(TARGET);
    line.push_str("\"}");
}

fn json_string(line: &mut String, text: &str) {
    line.push_str(&serde_json::Value::from(text).to_string());
}

thread_local! {
    /// The last second formatted on this thread, and its text: requests
    /// in the same second reuse it.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// RFC 3339 in UTC with microseconds, as `tracing-subscriber` writes it.
fn timestamp(line: &mut String, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|cached| {
        let Ok(mut cached) = cached.try_borrow_mut() else {
            return;
        };
        if cached.0 != secs {
            let (year, month, day) = civil_from_days((secs / 86_400) as i64);
            let rem = secs % 86_400;
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            );
            cached.0 = secs;
        }
        line.push_str(&cached.1);
    });
    // Six digits without the formatting machinery.
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    line.push('.');
    line.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    line.push('Z');
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_rfc_3339() {
        let mut line = String::new();
        let at = UNIX_EPOCH + Duration::from_micros(1_796_080_081_798_867);
        timestamp(&mut line, at);
        assert_eq!(line, "2026-11-30T23:08:01.798867Z");
        // The same second again, from the cache; then the next one.
        line.clear();
        timestamp(&mut line, at + Duration::from_micros(5));
        assert_eq!(line, "2026-11-30T23:08:01.798872Z");
        line.clear();
        timestamp(&mut line, at + Duration::from_secs(1));
        assert_eq!(line, "2026-11-30T23:08:02.798867Z");
        for (days, date) in [
            (0, (1970, 1, 1)),
            (11_016, (2000, 2, 29)),
            (-1, (1969, 12, 31)),
        ] {
            assert_eq!(civil_from_days(days), date);
        }
    }

    fn fields() -> Vec<(&'static str, Option<Value<'static>>)> {
        vec![
            ("request_id", Some(Value::Word("req_1"))),
            ("method", Some(Value::Quoted("POST"))),
            ("model", Some(Value::Client("a b"))),
            ("stream", Some(Value::Bool(true))),
            ("upstream_status", None),
            ("attempts", Some(Value::Number(2))),
            (
                "duration_ms",
                Some(Value::Millis(Duration::from_micros(3793))),
            ),
        ]
    }

    #[test]
    fn text_lines_look_like_tracings() {
        let mut line = String::new();
        text_line(&mut line, UNIX_EPOCH, false, "request", &fields());
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000000Z  INFO llmproxy::server::request_log: request \
             request_id=req_1 method=\"POST\" model=\"a b\" stream=true attempts=2 duration_ms=3.793"
        );
    }

    #[test]
    fn json_lines_are_objects_with_every_present_field() {
        let mut line = String::new();
        json_line(&mut line, UNIX_EPOCH, "request", &fields());
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"timestamp": "1970-01-01T00:00:00.000000Z", "level": "INFO",
                "message": "request", "request_id": "req_1", "method": "POST", "model": "a b",
                "stream": true, "attempts": 2, "duration_ms": 3.793,
                "target": "llmproxy::server::request_log"})
        );
    }
}
