//! [`FallbackOn`]: which failures a fallback takes over (a call option; the fallback itself
//! is [`fallback`](mod@crate::fallback)).

use std::fmt;

use crate::{error::ServiceError, outcome::CallOutcome};

/// Which failures a fallback takes over. Combine with [`or`](Self::or).
///
/// ```
/// use sdk::fallback::FallbackOn;
///
/// let on = FallbackOn::CIRCUIT_OPEN.or(FallbackOn::TIMEOUT);
/// assert!(on.contains(FallbackOn::TIMEOUT));
/// assert!(!on.contains(FallbackOn::SERVER_ERROR));
/// assert_eq!(FallbackOn::DEFAULT.to_string(), "circuit_open, timeout, server_error, unavailable");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FallbackOn(u8);

impl FallbackOn {
    /// No failure: the start of a set built with [`or`](Self::or).
    pub const NONE: FallbackOn = FallbackOn(0);
    /// The endpoint's breaker is open (nothing was sent).
    pub const CIRCUIT_OPEN: FallbackOn = FallbackOn(1);
    /// An attempt timeout or the call's deadline fired.
    pub const TIMEOUT: FallbackOn = FallbackOn(2);
    /// The service answered 5xx.
    pub const SERVER_ERROR: FallbackOn = FallbackOn(4);
    /// No connection could be made, the connection broke, or the service had no instance.
    pub const UNAVAILABLE: FallbackOn = FallbackOn(8);
    /// All four: an open breaker, a timeout, a 5xx answer, an unreachable service.
    pub const DEFAULT: FallbackOn = FallbackOn(15);

    const NAMES: [(FallbackOn, &'static str); 4] = [
        (Self::CIRCUIT_OPEN, "circuit_open"),
        (Self::TIMEOUT, "timeout"),
        (Self::SERVER_ERROR, "server_error"),
        (Self::UNAVAILABLE, "unavailable"),
    ];

    /// Both sets.
    #[must_use]
    pub const fn or(self, other: FallbackOn) -> FallbackOn {
        FallbackOn(self.0 | other.0)
    }

    /// Whether every failure in `other` is in this set.
    pub const fn contains(self, other: FallbackOn) -> bool {
        self.0 & other.0 == other.0
    }

    /// The set named `circuit_open`, `timeout`, `server_error` or `unavailable` (what
    /// `#[fallback(f, on = [...])]` takes).
    pub fn from_name(name: &str) -> Option<FallbackOn> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(on, _)| *on)
    }

    /// The cause of `error` a fallback could take over, whether or not this set does.
    /// `None` for the failures no fallback takes (4xx, invalid requests, decoding).
    ///
    /// Read from the same outcome the metrics and `on_call` report, so the three never
    /// disagree about what a failure was.
    pub fn cause(error: &ServiceError) -> Option<FallbackOn> {
        match CallOutcome::of_error(error) {
            CallOutcome::CircuitOpen => Some(Self::CIRCUIT_OPEN),
            CallOutcome::Timeout => Some(Self::TIMEOUT),
            CallOutcome::ServerError => Some(Self::SERVER_ERROR),
            CallOutcome::Connect | CallOutcome::Transport | CallOutcome::NoInstance => {
                Some(Self::UNAVAILABLE)
            }
            _ => None,
        }
    }

    /// Whether a fallback with this set takes over `error`.
    pub fn matches(self, error: &ServiceError) -> bool {
        self.taken(error).is_some()
    }

    /// The label of a single cause (`circuit_open`...), for metrics and events.
    pub(crate) fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(on, _)| *on == self)
            .map_or("mixed", |(_, n)| n)
    }

    /// A single cause's slot (0 to 3) in per-cause arrays.
    pub(crate) fn index(self) -> usize {
        (self.0.trailing_zeros() as usize).min(3)
    }

    /// The cause of `error` if a fallback with this set takes it over.
    pub(crate) fn taken(self, error: &ServiceError) -> Option<FallbackOn> {
        Self::cause(error).filter(|cause| self.contains(*cause))
    }
}

impl Default for FallbackOn {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for FallbackOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (on, name) in Self::NAMES {
            if self.contains(on) {
                if !first {
                    f.write_str(", ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for FallbackOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FallbackOn({self})")
    }
}
