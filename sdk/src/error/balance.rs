//! The balancer's errors: no instance to send to (and why), and one attempt's failure
//! with the instance it went to.

use std::{fmt, sync::Arc};

use crate::{box_error::BoxError, class::ErrorClass};

/// The service has no instance to send to, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoInstances(pub NoInstanceReason);

/// Why a service had no instance to send to.
///
/// There is no "all ejected": when every instance is ejected for failing, the balancer
/// still sends to one (as Envoy's panic threshold does), since refusing would turn a
/// partial outage into a total one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoInstanceReason {
    /// Nothing is registered (or configured) under the service's name.
    NothingRegistered,
    /// Instances are registered, but every one is marked unhealthy.
    AllUnhealthy {
        /// How many are registered.
        registered: usize,
    },
    /// The registry could not be reached (the last known set was empty).
    RegistryUnreachable(String),
    /// The registry refused the SDK's credentials.
    Unauthorized(String),
    /// The registry URL answered 404 for the registry's API: a wrong URL, or not a
    /// registry.
    RegistryNotFound(String),
    /// Nothing is listening for the message's pattern: no responder subscribed (NATS
    /// "no responders"), or the broker returned the message as unroutable.
    NoResponder,
    /// Instances are there, but none runs a version the call accepts.
    NoVersionMatch {
        /// The requirement (or split) the call had, e.g. `^2`.
        requirement: String,
        /// How many instances are there.
        registered: usize,
        /// The versions they run, sorted, each once (`unversioned` for those without one).
        versions: Vec<String>,
    },
    /// A hedge found every instance the call may use already tried by the call (hedges
    /// never go to the same instance twice). The hedging layer waits for the attempts
    /// it has instead; a caller never sees this.
    AllTried {
        /// How many instances the call had tried.
        tried: usize,
    },
}

impl fmt::Display for NoInstanceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoInstanceReason::NothingRegistered => f.write_str("no instance is registered"),
            NoInstanceReason::AllUnhealthy { registered } => {
                write!(f, "all {registered} registered instances are unhealthy")
            }
            NoInstanceReason::RegistryUnreachable(why) => {
                write!(f, "the registry is unreachable ({why})")
            }
            NoInstanceReason::Unauthorized(why) => {
                write!(f, "the registry refused the credentials ({why})")
            }
            NoInstanceReason::RegistryNotFound(url) => write!(
                f,
                "the registry was not found: {url} answered 404 (a wrong registry URL, or not a registry)"
            ),
            NoInstanceReason::NoResponder => {
                f.write_str("nothing is listening for this message's pattern")
            }
            NoInstanceReason::NoVersionMatch {
                requirement,
                registered,
                versions,
            } => write!(
                f,
                "none of the {registered} instances matches version {requirement} (they run {})",
                versions.join(", ")
            ),
            NoInstanceReason::AllTried { tried } => {
                write!(
                    f,
                    "all {tried} instances already have an attempt of this call"
                )
            }
        }
    }
}

impl fmt::Display for NoInstances {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no instance available: {}", self.0)
    }
}

impl std::error::Error for NoInstances {}

/// An attempt failed at a particular instance.
#[derive(Debug)]
pub struct AttemptError {
    instance: Arc<str>,
    source: BoxError,
    class: ErrorClass,
}

impl AttemptError {
    /// The attempt at `instance` failed with `source`, whose class was found once, where the
    /// attempt ended.
    pub(crate) fn new(instance: Arc<str>, source: BoxError, class: ErrorClass) -> Self {
        AttemptError {
            instance,
            source,
            class,
        }
    }

    /// The class of the attempt's error, carried with it so that no layer reads its cause
    /// chain again.
    pub(crate) fn class(&self) -> ErrorClass {
        self.class
    }

    /// The attempt's error.
    pub(crate) fn into_source(self) -> BoxError {
        self.source
    }

    /// The instance the attempt went to.
    pub fn instance(&self) -> &Arc<str> {
        &self.instance
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt at {} failed: {}", self.instance, self.source)
    }
}

impl std::error::Error for AttemptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}
