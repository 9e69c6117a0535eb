//! Metrics of the agent (Prometheus names).
//!
//! * `vn_agent_requests_total{tenant,verb,outcome}`: every request, once, by how it ended (`ok`,
//!   `unauthenticated`, `forbidden`, `not_found`, `unavailable`, `upstream_error`).
//! * `vn_agent_request_duration_seconds{verb}`: time to the response head.
//! * `vn_agent_streams_in_flight`: responses being streamed back.
//! * `vn_agent_bytes_proxied_total{verb}`: body bytes streamed back to callers.

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

/// Holds the in-flight gauge up while a response body is streamed.
#[derive(Debug)]
pub struct StreamGuard;

impl StreamGuard {
    /// Increments the gauge.
    pub fn new() -> Self {
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        StreamGuard
    }
}

impl Default for StreamGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}
