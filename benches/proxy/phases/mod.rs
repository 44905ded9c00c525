//! The measured phases, one file each, and what they share: the running
//! mock, proxy and relay.

pub mod idle;
pub mod latency;
pub mod memory;
pub mod sanity;
pub mod startup;
pub mod streams;
pub mod throughput;

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use crate::args::Plan;
use crate::endpoint::{Addrs, Endpoint, Provider, Side};
use crate::process::Proxy;
use crate::relay::Relay;

/// What the phases after start-up run against.
pub struct Bench<'a> {
    pub runtime: &'a Runtime,
    pub plan: &'a Plan,
    pub addrs: Addrs,
    pub proxy: &'a Proxy,
    pub relay: &'a Relay,
}

impl Bench<'_> {
    pub fn endpoint(
        &self,
        side: Side,
        provider: Provider,
        stream: Option<(usize, Duration)>,
    ) -> Arc<Endpoint> {
        Arc::new(Endpoint::new(side, provider, &self.addrs, stream))
    }
}
