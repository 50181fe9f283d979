//! Picking an instance for each attempt, and turning the pipeline's [`ServiceRequest`] into
//! an HTTP request for it.
//!
//! Instances come from a live [`InstanceSet`]; each attempt takes the next one in round-robin
//! order, so a retry goes to a different instance than the attempt that failed when there is
//! more than one. (Latency-aware choice arrives with service discovery.)
//!
//! Each attempt has one timer, at the earlier of the attempt timeout and the call's deadline
//! (see [`timeout`](mod@crate::timeout)).
//!
//! Each attempt runs in a `tracing` span (`service`, `method`, `endpoint`, `instance`,
//! `attempt`, `status`), and an error is tagged with the instance it came from.

mod error;

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use tower::{Layer, Service};
use tracing::Instrument;

pub use self::error::{AttemptError, NoInstances};
use crate::{
    discovery::InstanceSet,
    error::BoxError,
    request::ServiceRequest,
    response::ServiceResponse,
    timeout,
    transport::{HttpRequest, HttpResponse},
};

/// Applies [`Balance`] over an instance set.
#[derive(Clone, Debug)]
pub struct BalanceLayer {
    service: Arc<str>,
    instances: InstanceSet,
    attempt_timeout: Option<Duration>,
}

impl BalanceLayer {
    /// Balances calls to `service` over `instances`; each attempt is bounded by
    /// `attempt_timeout` (if any) and the call's deadline.
    pub fn new(
        service: Arc<str>,
        instances: InstanceSet,
        attempt_timeout: Option<Duration>,
    ) -> Self {
        BalanceLayer {
            service,
            instances,
            attempt_timeout,
        }
    }
}

impl<S> Layer<S> for BalanceLayer {
    type Service = Balance<S>;

    fn layer(&self, inner: S) -> Balance<S> {
        Balance {
            inner,
            shared: Arc::new(Shared {
                service: self.service.clone(),
                instances: self.instances.clone(),
                attempt_timeout: self.attempt_timeout,
                next: AtomicUsize::new(fastrand::usize(..1024)),
            }),
        }
    }
}

/// Sends each attempt to one instance of the service.
#[derive(Clone, Debug)]
pub struct Balance<S> {
    inner: S,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    service: Arc<str>,
    instances: InstanceSet,
    attempt_timeout: Option<Duration>,
    next: AtomicUsize,
}

impl<S> Service<ServiceRequest> for Balance<S>
where
    S: Service<HttpRequest, Response = HttpResponse, Error = BoxError> + Send,
    S::Future: Send + 'static,
{
    type Response = ServiceResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: ServiceRequest) -> Self::Future {
        let next = &self.shared.next;
        let chosen = self.shared.instances.with_current(|instances| {
            if instances.is_empty() {
                return None;
            }
            // One instance: no shared counter to bump on every call.
            let index = match instances.len() {
                1 => 0,
                len => next.fetch_add(1, Ordering::Relaxed) % len,
            };
            let instance = &instances[index];
            Some((instance.url_arc().clone(), to_http(&request, instance)))
        });
        let (url, http_request) = match chosen {
            Some((url, Ok(http_request))) => (url, http_request),
            Some((_, Err(e))) => return Box::pin(std::future::ready(Err(e))),
            None => return Box::pin(std::future::ready(Err(NoInstances.into()))),
        };
        let span = tracing::debug_span!(
            "attempt",
            service = %self.shared.service,
            method = %request.method(),
            endpoint = request.endpoint(),
            instance = %url,
            attempt = request.attempt(),
            status = tracing::field::Empty,
        );
        let bound =
            timeout::attempt_bound(self.shared.attempt_timeout, request.deadline_and_limit());
        let future = self.inner.call(http_request);
        Box::pin(
            async move {
                let outcome = match bound {
                    Some((at, bound)) => match tokio::time::timeout_at(at, future).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(bound.error()),
                    },
                    None => future.await,
                };
                match outcome {
                    Ok(response) => {
                        let (parts, body) = response.into_parts();
                        tracing::Span::current().record("status", parts.status.as_u16());
                        let mut response = ServiceResponse::new(parts.status, parts.headers, body);
                        response.instance = Some(url);
                        Ok(response)
                    }
                    Err(source) => {
                        tracing::debug!(error = %source, "attempt failed");
                        Err(AttemptError::new(url, source).into())
                    }
                }
            }
            .instrument(span),
        )
    }
}

fn to_http(
    request: &ServiceRequest,
    instance: &crate::discovery::Instance,
) -> Result<HttpRequest, BoxError> {
    let mut http_request = http::Request::new(request.body().clone());
    *http_request.method_mut() = request.method().clone();
    *http_request.uri_mut() = instance.uri(request.path_and_query())?;
    let mut headers = request.headers().clone();
    crate::trace::propagate(&mut headers, request.trace_id());
    *http_request.headers_mut() = headers;
    Ok(http_request)
}
