//! Circuit breaking per service endpoint.
//!
//! Each endpoint (method plus path template) of a service has its own [`CircuitBreaker`]:
//!
//! - **closed**: calls flow; `failure_threshold` failures in a row (or, when a
//!   [`FailureRate`] window is configured, a failure rate at or above its threshold) open it;
//! - **open**: calls are refused in `call` with [`CircuitOpen`], without network I/O, for
//!   `open_duration`;
//! - **half-open**: up to `half_open_max_probes` probe calls go through; `success_threshold`
//!   successes close the breaker, one failure opens it again.
//!
//! The closed path takes no lock: finding the endpoint's breaker is a lock-free read of an
//! immutable map (arc-swap; a new endpoint copies the bounded map once), admission is one
//! atomic load, and a success is recorded with one more. The breaker refuses in `call`, never in `poll_ready`, so a buffer or
//! balancer in front of it is never poisoned by an open circuit.
//!
//! tower has no circuit breaker, which is why this module exists; its shape (layer, service,
//! named response future, named error, classifier policy) follows `tower::timeout`.

mod future;
mod layer;
mod policy;
mod state;

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::Method;
use tower::Service;

pub use crate::{
    error::CircuitOpen,
    settings::{BreakerConfig, FailureRate},
};

pub use self::{
    future::ResponseFuture,
    layer::CircuitBreakerLayer,
    policy::{FailureClassifier, ServerFailures},
    state::{CircuitBreaker, CircuitState, Permit},
};
use crate::{
    box_error::BoxError, endpoint_map::EndpointMap, request::ServiceRequest,
    response::ServiceResponse,
};

/// One endpoint's breaker, as reported by `ServiceClient::circuit_state`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointCircuit {
    /// `METHOD endpoint`, e.g. `GET /orders/{id}`.
    pub endpoint: String,
    /// The breaker's state.
    pub state: CircuitState,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Failures over the breaker's lifetime.
    pub total_failures: u64,
    /// Calls refused while open.
    pub rejected: u64,
}

/// The breakers of one service, one per endpoint, created on first use.
///
/// The number of endpoints is bounded (`max_endpoints`, default 1,024): ad-hoc calls that
/// format ids into their paths would otherwise grow the map without end, so endpoints past
/// the bound share one overflow breaker. Name ad-hoc endpoints with
/// `RequestBuilder::endpoint` to keep them apart.
#[derive(Debug)]
pub struct EndpointBreakers {
    config: BreakerConfig,
    classifier: Arc<dyn FailureClassifier>,
    map: EndpointMap<CircuitBreaker>,
    service: Option<Arc<str>>,
}

impl EndpointBreakers {
    /// Breakers with the given settings and failure classifier.
    pub fn new(config: BreakerConfig, classifier: Arc<dyn FailureClassifier>) -> Self {
        let overflow = CircuitBreaker::with_classifier(config, classifier.clone());
        EndpointBreakers {
            config,
            classifier,
            map: EndpointMap::new(1024, overflow),
            service: None,
        }
    }

    /// Names the service, so each breaker's transitions are recorded as metrics.
    #[must_use]
    pub fn named(mut self, service: Arc<str>) -> Self {
        self.service = Some(service);
        self
    }

    /// Sets how many distinct endpoints get a breaker of their own.
    #[must_use]
    pub fn max_endpoints(mut self, max: usize) -> Self {
        self.map = self.map.with_max(max);
        self
    }

    /// The breaker for `method endpoint`, created closed on first use.
    pub fn get(&self, method: &Method, endpoint: &str) -> Arc<CircuitBreaker> {
        self.get_or_create(method, endpoint, None)
    }

    /// The breaker for `method endpoint`; a new one takes `config` when given (a method's
    /// own `#[circuit_breaker]` settings) instead of the service's.
    pub fn get_or_create(
        &self,
        method: &Method,
        endpoint: &str,
        config: Option<&BreakerConfig>,
    ) -> Arc<CircuitBreaker> {
        self.map.get_or_insert_with(method, endpoint, || {
            let config = config.copied().unwrap_or(self.config);
            let breaker = CircuitBreaker::with_classifier(config, self.classifier.clone());
            match &self.service {
                Some(service) => breaker.named(service.clone(), method, endpoint),
                None => breaker,
            }
        })
    }

    /// Every endpoint's breaker state, sorted by endpoint.
    pub fn snapshot(&self) -> Vec<EndpointCircuit> {
        let mut out: Vec<EndpointCircuit> = self
            .map
            .entries()
            .into_iter()
            .map(|(endpoint, breaker)| report(endpoint, &breaker))
            .collect();
        let overflow = self.map.overflow();
        if overflow.total_failures() > 0 || overflow.state() != CircuitState::Closed {
            out.push(report("(overflow)".into(), overflow));
        }
        out.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
        out
    }
}

fn report(endpoint: String, breaker: &CircuitBreaker) -> EndpointCircuit {
    EndpointCircuit {
        endpoint,
        state: breaker.state(),
        consecutive_failures: breaker.consecutive_failures(),
        total_failures: breaker.total_failures(),
        rejected: breaker.rejected(),
    }
}

/// Refuses calls to endpoints whose breaker is open; records every outcome.
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breakers: Arc<EndpointBreakers>,
}

impl<S> CircuitBreakerService<S> {
    /// Wraps `inner` with the given breakers.
    pub fn new(inner: S, breakers: Arc<EndpointBreakers>) -> Self {
        CircuitBreakerService { inner, breakers }
    }
}

impl<S> Service<ServiceRequest> for CircuitBreakerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse>,
    S::Error: Into<BoxError>,
{
    type Response = ServiceResponse;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: ServiceRequest) -> Self::Future {
        let breaker = self.breakers.get_or_create(
            request.method(),
            request.endpoint(),
            request.options().circuit_breaker.as_deref(),
        );
        match breaker.try_acquire() {
            Ok(permit) => ResponseFuture::called(self.inner.call(request), breaker, permit),
            Err(open) => ResponseFuture::rejected(open),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http::{HeaderMap, StatusCode};
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::request::CallOptions;

    fn request() -> ServiceRequest {
        ServiceRequest::try_new(
            Method::GET,
            "/x",
            None,
            HeaderMap::new(),
            Bytes::new(),
            CallOptions::default(),
        )
        .expect("valid path")
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_refuses_in_call_and_stays_ready() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let inner = tower::service_fn(move |_req: ServiceRequest| {
            counter.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, BoxError>(ServiceResponse::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    HeaderMap::new(),
                    Bytes::new(),
                ))
            }
        });
        let config = BreakerConfig {
            failure_threshold: 2,
            ..Default::default()
        };
        let breakers = Arc::new(EndpointBreakers::new(config, Arc::new(ServerFailures)));
        let mut service = CircuitBreakerLayer::new(breakers.clone()).layer(inner);
        for _ in 0..2 {
            let response = service
                .ready()
                .await
                .expect("ready")
                .call(request())
                .await
                .expect("answered");
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        }
        assert_eq!(breakers.snapshot()[0].state, CircuitState::Open);
        for _ in 0..3 {
            // poll_ready stays ready: a buffer or balancer in front is never poisoned.
            let ready = service.ready().await.expect("still ready");
            let err = ready.call(request()).await.expect_err("refused");
            assert!(err.is::<CircuitOpen>(), "{err}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "no call reached the inner service while open"
        );
    }

    #[test]
    fn endpoints_past_the_bound_share_the_overflow_breaker() {
        let breakers = EndpointBreakers::new(BreakerConfig::default(), Arc::new(ServerFailures))
            .max_endpoints(2);
        let a = breakers.get(&Method::GET, "/a");
        assert!(
            Arc::ptr_eq(&a, &breakers.get(&Method::GET, "/a")),
            "one breaker per endpoint"
        );
        let b = breakers.get(&Method::POST, "/a");
        assert!(!Arc::ptr_eq(&a, &b), "the method is part of the endpoint");
        let c = breakers.get(&Method::GET, "/c");
        let d = breakers.get(&Method::GET, "/d");
        assert!(
            Arc::ptr_eq(&c, &d),
            "past the bound, endpoints share the overflow breaker"
        );
        let custom = breakers.get(&Method::from_bytes(b"PURGE").expect("method"), "/x");
        assert!(Arc::ptr_eq(&custom, &c));
        assert_eq!(breakers.snapshot().len(), 2);
    }
}
