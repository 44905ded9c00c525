//! The SSE event interpretation of every adapter (what `llmproxy stream`
//! runs on every upstream event): any text must be handled without a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use llmproxy::config::Settings;

static SETTINGS: OnceLock<Settings> = OnceLock::new();

fuzz_target!(|data: &str| {
    let settings = SETTINGS.get_or_init(|| Settings::from_lookup(|_| None).expect("defaults"));
    for provider in settings.providers.providers() {
        let _ = provider.stream_event(data);
        let _ = provider.stream_is_complete(data.as_bytes());
    }
});
