//! Percentiles, medians, units, and the per-repetition figures.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

/// Nearest-rank percentile of sorted samples.
pub fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of the finite values, NaN when there is none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// KiB (as /proc reports them) to MB (10^6 bytes, the targets' unit).
pub fn mb(kib: f64) -> f64 {
    kib * 1024.0 / 1e6
}

/// Nanoseconds to microseconds.
pub fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Per-repetition figures by name; the report shows their medians.
#[derive(Default)]
pub struct Figures(BTreeMap<String, Vec<f64>>);

impl Figures {
    /// Records `value` as `name` in this repetition's JSON `run` and here.
    pub fn put(&mut self, run: &mut Map<String, Value>, name: String, value: f64) {
        run.insert(name.clone(), json!(value));
        self.0.entry(name).or_default().push(value);
    }

    pub fn median(&self, name: &str) -> f64 {
        self.0.get(name).map_or(f64::NAN, |v| median(v))
    }

    /// This repetition's value (NaN when there is none).
    pub fn last(&self, name: &str) -> f64 {
        self.0
            .get(name)
            .and_then(|v| v.last().copied())
            .unwrap_or(f64::NAN)
    }

    /// The total over the repetitions (zero when there is none).
    pub fn sum(&self, name: &str) -> f64 {
        self.0.get(name).map_or(0.0, |v| v.iter().sum())
    }
}

/// A table cell: `value` with its unit, `-` when it was not measured (NaN).
pub fn cell(value: f64, unit: &str) -> String {
    if value.is_nan() {
        "-".into()
    } else {
        format!("{value:.0}{unit}")
    }
}

/// A table cell: `value` with its unit and, in parentheses, `added`: what
/// it adds to the direct figure.
pub fn cell_added(value: f64, added: f64, unit: &str) -> String {
    if value.is_nan() {
        "-".into()
    } else {
        format!("{value:.0}{unit} ({added:+.0})")
    }
}

/// A difference with its unit and sign, empty when it was not measured.
pub fn signed(value: f64, unit: &str) -> String {
    if value.is_nan() {
        String::new()
    } else {
        format!("{value:+.0}{unit}")
    }
}
