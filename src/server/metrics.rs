//! `GET /metrics`: Prometheus counters and histograms of the chat route.
//!
//! No label takes a value the client chose: `provider` is a resolved
//! provider or `unknown`, `status` the status the proxy sent. The label
//! sets of the known providers are resolved once at start-up, so recording
//! a request takes no lock but the family's read lock for
//! `requests_total` (its `status` varies) and each histogram's own short
//! lock.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::request_log::StreamEnd;
use crate::providers::RetryReason;

/// The `Content-Type` of the exposition (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The `route` label of `POST /v1/chat/{provider}`.
pub const ROUTE_CHAT: &str = "chat";
/// The `route` label of `POST /v1/chat/completions` (OpenAI-compatible).
pub const ROUTE_CHAT_COMPLETIONS: &str = "chat_completions";
/// The `provider` label of a request whose provider was not resolved.
pub const UNKNOWN_PROVIDER: &str = "unknown";

/// Request durations and time to first byte: 10 ms to 655.36 s, doubling
/// (17 buckets; a long stream lasts minutes).
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
}

/// The proxy's own time per request: 50 µs to 51.2 ms, doubling (11
/// buckets).
fn overhead_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 11))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    provider: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    route: &'static str,
    provider: Arc<str>,
    stream: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: Arc<str>,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RetryLabels {
    provider: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamEndLabels {
    provider: Arc<str>,
    how: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What one finished chat request contributes.
pub struct Outcome<'a> {
    /// [`ROUTE_CHAT`] or [`ROUTE_CHAT_COMPLETIONS`].
    pub route: &'static str,
    /// The resolved provider, `None` when there was none.
    pub provider: Option<&'a str>,
    pub status: u16,
    pub stream: bool,
    pub duration: Duration,
    /// Streams only: to the first chunk sent.
    pub ttfb: Option<Duration>,
    /// Requests sent upstream only.
    pub overhead: Option<Duration>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub stream_end: Option<StreamEnd>,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily<DurationLabels>,
    ttfb: HistogramFamily<ProviderLabels>,
    tokens: Family<TokenLabels, Counter>,
    stream_ends: Family<StreamEndLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    overhead: Histogram,
    in_flight: Gauge,
    /// Label sets of the providers known at start-up, resolved once.
    known: Vec<Resolved>,
    unknown: Arc<str>,
}

/// One provider's metrics with their labels already applied.
struct Resolved {
    name: Arc<str>,
    /// Indexed by `stream as usize`.
    durations: [Histogram; 2],
    ttfb: Histogram,
    input_tokens: Counter,
    output_tokens: Counter,
    stream_ends: [Counter; StreamEnd::ALL.len()],
}

impl Metrics {
    /// Registers every metric; `providers` are the names worth resolving
    /// up front (their series start at zero).
    pub fn new<'a>(providers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: HistogramFamily<DurationLabels> =
            Family::new_with_constructor(duration_histogram);
        let ttfb: HistogramFamily<ProviderLabels> =
            Family::new_with_constructor(duration_histogram);
        let tokens = Family::<TokenLabels, Counter>::default();
        let retries = Family::<RetryLabels, Counter>::default();
        let stream_ends = Family::<StreamEndLabels, Counter>::default();
        let overhead = overhead_histogram();
        let in_flight = Gauge::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "llmproxy_requests",
            "Chat requests answered, by route, provider and the status sent to the client",
            requests.clone(),
        );
        registry.register(
            "llmproxy_request_duration_seconds",
            "Time from request received to the last byte of the reply (streams: to their end)",
            durations.clone(),
        );
        registry.register(
            "llmproxy_time_to_first_byte_seconds",
            "Streams: time from request received to the first chunk sent to the client",
            ttfb.clone(),
        );
        registry.register(
            "llmproxy_overhead_seconds",
            "Time the proxy itself adds to a request sent upstream: before sending it, and from the upstream's reply to the client's reply head",
            overhead.clone(),
        );
        registry.register(
            "llmproxy_tokens",
            "Tokens the upstream reported, by provider and type (input, output)",
            tokens.clone(),
        );
        // A family without series does not show in the exposition: this one
        // appears with the first retry.
        registry.register(
            "llmproxy_upstream_retries",
            "Upstream requests retried, by provider and reason (a status code or connection)",
            retries.clone(),
        );
        registry.register(
            "llmproxy_stream_ends",
            "Streamed replies by how they ended",
            stream_ends.clone(),
        );
        registry.register(
            "llmproxy_in_flight_requests",
            "Chat requests being handled, open streams included",
            in_flight.clone(),
        );
        let known = providers
            .into_iter()
            .map(|name| {
                let name: Arc<str> = Arc::from(name);
                let duration = |stream| {
                    durations.get_or_create_owned(&DurationLabels {
                        route: ROUTE_CHAT,
                        provider: name.clone(),
                        stream,
                    })
                };
                let token = |kind| {
                    tokens.get_or_create_owned(&TokenLabels {
                        provider: name.clone(),
                        r#type: kind,
                    })
                };
                Resolved {
                    durations: [duration(false), duration(true)],
                    ttfb: ttfb.get_or_create_owned(&ProviderLabels {
                        provider: name.clone(),
                    }),
                    input_tokens: token("input"),
                    output_tokens: token("output"),
                    stream_ends: StreamEnd::ALL.map(|how| {
                        stream_ends.get_or_create_owned(&StreamEndLabels {
                            provider: name.clone(),
                            how: how.as_str(),
                        })
                    }),
                    name,
                }
            })
            .collect();
        Metrics {
            registry,
            requests,
            durations,
            ttfb,
            tokens,
            stream_ends,
            retries,
            overhead,
            in_flight,
            known,
            unknown: Arc::from(UNKNOWN_PROVIDER),
        }
    }

    /// One more attempt of a request to `provider`.
    pub fn retried(&self, provider: &'static str, reason: RetryReason) {
        self.retries
            .get_or_create(&RetryLabels {
                provider: Arc::from(provider),
                reason: reason.label(),
            })
            .inc();
    }

    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    /// Records a finished request (and ends its in-flight count).
    pub fn request_finished(&self, outcome: &Outcome<'_>) {
        self.in_flight.dec();
        let known = outcome
            .provider
            .and_then(|name| self.known.iter().find(|p| &*p.name == name));
        let name = match (known, outcome.provider) {
            (Some(known), _) => known.name.clone(),
            // Resolved, but not known at start-up: labelled all the same.
            (None, Some(name)) => Arc::from(name),
            (None, None) => self.unknown.clone(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: outcome.route,
                provider: name.clone(),
                status: outcome.status,
            })
            .inc();
        if let Some(overhead) = outcome.overhead {
            self.overhead.observe(overhead.as_secs_f64());
        }
        match known {
            Some(p) => {
                // Resolved up front for the native route only.
                if outcome.route == ROUTE_CHAT {
                    p.durations[outcome.stream as usize].observe(outcome.duration.as_secs_f64());
                } else {
                    self.durations
                        .get_or_create(&DurationLabels {
                            route: outcome.route,
                            provider: name.clone(),
                            stream: outcome.stream,
                        })
                        .observe(outcome.duration.as_secs_f64());
                }
                if let (Some(ttfb), Some(_)) = (outcome.ttfb, outcome.stream_end) {
                    p.ttfb.observe(ttfb.as_secs_f64());
                }
                if let Some(n) = outcome.input_tokens {
                    p.input_tokens.inc_by(n);
                }
                if let Some(n) = outcome.output_tokens {
                    p.output_tokens.inc_by(n);
                }
                if let Some(how) = outcome.stream_end {
                    p.stream_ends[how as usize].inc();
                }
            }
            None => self.unresolved(name, outcome),
        }
    }

    /// The same through the families, for a provider without resolved
    /// labels (`unknown` only gets a duration: nothing was sent upstream).
    fn unresolved(&self, name: Arc<str>, outcome: &Outcome<'_>) {
        self.durations
            .get_or_create(&DurationLabels {
                route: outcome.route,
                provider: name.clone(),
                stream: outcome.stream,
            })
            .observe(outcome.duration.as_secs_f64());
        if let (Some(ttfb), Some(_)) = (outcome.ttfb, outcome.stream_end) {
            self.ttfb
                .get_or_create(&ProviderLabels {
                    provider: name.clone(),
                })
                .observe(ttfb.as_secs_f64());
        }
        for (kind, n) in [
            ("input", outcome.input_tokens),
            ("output", outcome.output_tokens),
        ] {
            if let Some(n) = n {
                self.tokens
                    .get_or_create(&TokenLabels {
                        provider: name.clone(),
                        r#type: kind,
                    })
                    .inc_by(n);
            }
        }
        if let Some(how) = outcome.stream_end {
            self.stream_ends
                .get_or_create(&StreamEndLabels {
                    provider: name,
                    how: how.as_str(),
                })
                .inc();
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(provider: Option<&str>, status: u16) -> Outcome<'_> {
        Outcome {
            route: ROUTE_CHAT,
            provider,
            status,
            stream: true,
            duration: Duration::from_millis(30),
            ttfb: Some(Duration::from_millis(5)),
            overhead: Some(Duration::from_micros(120)),
            input_tokens: Some(19),
            output_tokens: Some(9),
            stream_end: Some(StreamEnd::Complete),
        }
    }

    #[test]
    fn a_request_moves_its_series() {
        let metrics = Metrics::new(["openai", "anthropic"]);
        metrics.request_started();
        metrics.request_finished(&outcome(Some("openai"), 200));
        metrics.request_started();
        metrics.request_finished(&Outcome {
            stream_end: None,
            input_tokens: None,
            output_tokens: None,
            overhead: None,
            ..outcome(None, 404)
        });
        let text = metrics.encode().unwrap();
        for line in [
            r#"llmproxy_requests_total{route="chat",provider="openai",status="200"} 1"#,
            r#"llmproxy_requests_total{route="chat",provider="unknown",status="404"} 1"#,
            r#"llmproxy_tokens_total{provider="openai",type="input"} 19"#,
            r#"llmproxy_tokens_total{provider="openai",type="output"} 9"#,
            r#"llmproxy_tokens_total{provider="anthropic",type="input"} 0"#,
            r#"llmproxy_stream_ends_total{provider="openai",how="complete"} 1"#,
            r#"llmproxy_request_duration_seconds_count{route="chat",provider="openai",stream="true"} 1"#,
            r#"llmproxy_request_duration_seconds_bucket{route="chat",provider="unknown",stream="true",le="0.04"} 1"#,
            r#"llmproxy_time_to_first_byte_seconds_count{provider="openai"} 1"#,
            r#"llmproxy_overhead_seconds_count 1"#,
            r#"llmproxy_overhead_seconds_bucket{le="5e-05"} 0"#,
            r#"llmproxy_in_flight_requests 0"#,
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains(r#"provider="unknown",type="#), "{text}");
        // Registered, but a family without series is not exposed.
        assert!(!text.contains("llmproxy_upstream_retries"), "{text}");
    }
}
