//! The recorded upstream payloads in `tests/fixtures/` (their statuses and
//! headers are in that folder's README). The one loader of the unit tests,
//! the integration tests and the benchmark, which all include this file.

/// The bytes of `tests/fixtures/{name}`, exactly as recorded.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}
