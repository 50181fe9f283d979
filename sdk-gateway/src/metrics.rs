//! The gateway's metrics, through the [`metrics`] facade (the binary renders them on
//! `GET /metrics` with the SDK's own: calls per service and endpoint, where the endpoint is
//! the route's pattern, and `sdk_circuit_state` per route).
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `sdk_gateway_requests_total` | counter | `route`, `status` |
//! | `sdk_gateway_request_duration_seconds` | histogram | `route`: from the request's arrival to the answer's head |
//! | `sdk_gateway_websockets` | gauge | `route`: connections open |
//! | `sdk_gateway_rate_limit_fallbacks_total` | counter | checks counted locally because Redis could not answer |
//!
//! Requests no route matches count under `route="none"`. Series are bounded: one per route
//! and status.

use std::{sync::OnceLock, time::Duration};

use metrics::{Counter, Gauge, Histogram};

/// Metric names.
pub mod names {
    /// Requests answered, by route and status.
    pub const REQUESTS: &str = "sdk_gateway_requests_total";
    /// Time to the answer's head, by route.
    pub const DURATION: &str = "sdk_gateway_request_duration_seconds";
    /// WebSocket connections open, by route.
    pub const WEBSOCKETS: &str = "sdk_gateway_websockets";
    /// Shared rate-limit checks that fell back to the local count.
    pub const LIMIT_FALLBACKS: &str = "sdk_gateway_rate_limit_fallbacks_total";
}

/// The lowest and highest status recorded by its own series (others count as 599).
const FIRST_STATUS: u16 = 100;
const STATUSES: usize = 500;

/// One route's handles, made once (a request then records without building labels).
pub struct RouteMetrics {
    route: String,
    duration: Histogram,
    websockets: Gauge,
    statuses: Box<[OnceLock<Counter>]>,
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl RouteMetrics {
    /// The handles of `route`.
    pub fn new(route: &str) -> Self {
        RouteMetrics {
            route: route.to_owned(),
            duration: metrics::histogram!(names::DURATION, "route" => route.to_owned()),
            websockets: metrics::gauge!(names::WEBSOCKETS, "route" => route.to_owned()),
            statuses: (0..STATUSES).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Records an answer with `status` after `elapsed`.
    pub fn answered(&self, status: http::StatusCode, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        let index = usize::from(status.as_u16().saturating_sub(FIRST_STATUS)).min(STATUSES - 1);
        if let Some(slot) = self.statuses.get(index) {
            slot.get_or_init(|| {
                let status = (usize::from(FIRST_STATUS) + index).to_string();
                metrics::counter!(names::REQUESTS, "route" => self.route.clone(), "status" => status)
            })
            .increment(1);
        }
    }

    /// A WebSocket connection opened; it counts until the guard is dropped.
    pub fn websocket_opened(&self) -> WebSocketGuard {
        self.websockets.increment(1.0);
        WebSocketGuard(self.websockets.clone())
    }
}

/// Counts one open WebSocket connection while it lives.
#[derive(Debug)]
pub struct WebSocketGuard(Gauge);

impl Drop for WebSocketGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
