//! The request parsing and validation entry point of `serve`: any bytes
//! must give a request or a typed client error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llmproxy::error::Error;
use llmproxy::providers::ChatRequest;

fuzz_target!(|data: &[u8]| {
    match ChatRequest::from_json(data) {
        Ok(request) => {
            assert!(!request.model.trim().is_empty());
            assert!(!request.messages.is_empty());
            assert!(request.max_tokens.is_none_or(|n| n > 0));
        }
        Err(Error::MalformedJson(_) | Error::InvalidField { .. }) => {}
        Err(other) => panic!("unexpected error kind: {other:?}"),
    }
});
