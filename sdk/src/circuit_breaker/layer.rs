use std::sync::Arc;

use tower::Layer;

use super::{CircuitBreakerService, EndpointBreakers};

/// Applies per-endpoint circuit breaking to a service.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer {
    breakers: Arc<EndpointBreakers>,
}

impl CircuitBreakerLayer {
    /// A layer sharing the given breakers (one set per logical service).
    pub fn new(breakers: Arc<EndpointBreakers>) -> Self {
        CircuitBreakerLayer { breakers }
    }
}

impl<S> Layer<S> for CircuitBreakerLayer {
    type Service = CircuitBreakerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, self.breakers.clone())
    }
}
