//! Metrics of the agent (Prometheus names).
//!
//! * `vn_agent_requests_total{tenant,verb,outcome}`: every request, once, by how it ended (`ok`,
//!   `unauthenticated`, `forbidden`, `not_found`, `bad_request`, `unavailable`, `upstream_error`,
//!   `upstream_status` (the upstream answered non-2xx), `unsupported`).
//! * `vn_agent_request_duration_seconds{verb}`: time to the response head.
//! * `vn_agent_streams_in_flight{tenant,verb}`: responses being streamed back and upgraded connections
//!   being spliced.
//! * `vn_agent_bytes_proxied_total{verb,direction}`: bytes streamed back to callers (`down`) and, on upgraded
//!   connections, from callers to the upstream (`up`).

/// Requests counter.
pub const REQUESTS: &str = "vn_agent_requests_total";
/// Latency histogram.
pub const DURATION: &str = "vn_agent_request_duration_seconds";
/// In-flight streams gauge.
pub const IN_FLIGHT: &str = "vn_agent_streams_in_flight";
/// Bytes counter.
pub const BYTES: &str = "vn_agent_bytes_proxied_total";

/// Counts one finished request.
pub fn request(tenant: &str, verb: &'static str, outcome: &'static str) {
    metrics::counter!(REQUESTS, "tenant" => tenant.to_string(), "verb" => verb, "outcome" => outcome)
        .increment(1);
}

/// The bytes counter of `verb` in `direction` (`down`: to the caller, `up`: to the upstream).
pub fn bytes(verb: &'static str, direction: &'static str) -> metrics::Counter {
    metrics::counter!(BYTES, "verb" => verb, "direction" => direction)
}

/// Holds the in-flight gauge up while a response body is streamed or a connection spliced.
#[derive(Debug)]
pub struct StreamGuard(metrics::Gauge);

impl StreamGuard {
    /// Increments the gauge of `tenant` and `verb`.
    pub fn new(tenant: &str, verb: &'static str) -> Self {
        let gauge = metrics::gauge!(IN_FLIGHT, "tenant" => tenant.to_string(), "verb" => verb);
        gauge.increment(1.0);
        StreamGuard(gauge)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
