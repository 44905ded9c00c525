//! The SSE event interpretation of both adapters (what `llmproxy stream`
//! runs on every upstream event): any text must be handled without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmproxy::providers::PROVIDERS;

fuzz_target!(|data: &str| {
    for provider in PROVIDERS {
        let _ = provider.stream_event(data);
        let _ = provider.stream_is_complete(data.as_bytes());
    }
});
