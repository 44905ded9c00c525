//! Test support shared by the integration tests: fixtures, a scripted mock
//! upstream on a real loopback socket (chunk timing, stalls, resets, and
//! observing when the proxy closes its connection), and the proxy itself,
//! in-process or as the real binary.
//!
//! One file per concern, all re-exported here: a test needs only
//! `use common::*;`. Each test binary uses only part of it, hence the
//! `allow`s.
#![allow(dead_code)]

mod fixtures;
mod mock_upstream;
mod proxy;
mod raw_http;
mod wait;

#[allow(unused_imports)]
pub use self::{
    fixtures::fixture,
    mock_upstream::{sse_events, MockUpstream, Recorded, Script, Step},
    proxy::{chat_body, client, post, Proxy, ServeProcess},
    raw_http::{RawConnection, RawResponse},
    wait::wait_until,
};
