//! The measured phases, one file each, and what they share: the running
//! mock, proxy, relay and nginx.

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
use crate::nginx::Nginx;
use crate::process::Proxy;
use crate::relay::Relay;

/// What the phases after start-up run against.
pub struct Bench<'a> {
    pub runtime: &'a Runtime,
    pub plan: &'a Plan,
    pub addrs: Addrs,
    pub proxy: &'a Proxy,
    pub relay: &'a Relay,
    /// None when no nginx was found: its figures are skipped.
    pub nginx: Option<&'a Nginx>,
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

    /// The paths measured in each repetition, in this order: direct first
    /// (the others' differences are taken to it), llmproxy last.
    pub fn sides(&self, with_relay: bool) -> Vec<Side> {
        let mut sides = vec![Side::Direct];
        if with_relay {
            sides.push(Side::Relay);
        }
        if self.nginx.is_some() {
            sides.push(Side::Nginx);
        }
        sides.push(Side::Proxied);
        sides
    }

    /// The processes of the hop on `side` (nginx: master and workers).
    pub fn hop_pids(&self, side: Side) -> Vec<u32> {
        match side {
            Side::Direct => Vec::new(),
            Side::Relay => vec![self.relay.pid()],
            Side::Nginx => self.nginx.map_or_else(Vec::new, |n| n.pids()),
            Side::Proxied => vec![self.proxy.pid()],
        }
    }
}
