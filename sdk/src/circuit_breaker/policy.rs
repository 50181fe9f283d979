//! What counts as a failure for the breaker.

use crate::{box_error::BoxError, outcome::ErrorClass, response::ServiceResponse};

/// Decides whether a call's outcome counts against the breaker.
///
/// The default, [`ServerFailures`], counts transport errors, timeouts and 5xx answers; a 4xx
/// is the caller's mistake and says nothing about the service's health.
///
/// ```
/// use sdk::circuit_breaker::FailureClassifier;
/// use sdk::{BoxError, ServiceResponse};
///
/// /// Also treat 429 (the service shedding load) as a failure.
/// #[derive(Debug)]
/// struct CountThrottling;
///
/// impl FailureClassifier for CountThrottling {
///     fn is_failure(&self, outcome: &Result<ServiceResponse, BoxError>) -> bool {
///         match outcome {
///             Ok(response) => response.status().is_server_error() || response.status() == 429,
///             Err(_) => true,
///         }
///     }
/// }
/// ```
pub trait FailureClassifier: std::fmt::Debug + Send + Sync + 'static {
    /// Whether this outcome is a failure of the service.
    fn is_failure(&self, outcome: &Result<ServiceResponse, BoxError>) -> bool;
}

/// Transport errors, timeouts and 5xx answers are failures; an oversized body or a service
/// with no instance is not (nothing was wrong with the service's answers).
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerFailures;

impl FailureClassifier for ServerFailures {
    fn is_failure(&self, outcome: &Result<ServiceResponse, BoxError>) -> bool {
        match outcome {
            Ok(response) => response.class().fault().counts_against_service(),
            Err(err) => ErrorClass::of(err.as_ref()).is_service_failure(),
        }
    }
}
