//! Global hooks: `on_error` callbacks, called for every failed call, and `on_call`
//! callbacks, called for every finished call.

use std::{fmt, sync::Arc};

use crate::error::{ErrorContext, ServiceError};

/// An error hook: the error and where it happened.
pub type ErrorHook = Arc<dyn Fn(&ServiceError, &ErrorContext) + Send + Sync>;

/// A call hook: every finished call, however it ended.
pub type CallHook = Arc<dyn Fn(&crate::telemetry::CallInfo<'_>) + Send + Sync>;

/// The hooks registered on an SDK.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_error: Vec<ErrorHook>,
    pub(crate) on_call: Vec<CallHook>,
}

impl Hooks {
    pub(crate) fn on_error(&self, err: &ServiceError, service: &Arc<str>) {
        if self.on_error.is_empty() {
            return;
        }
        let fallback;
        let context = match err.context() {
            Some(context) => context,
            None => {
                fallback = ErrorContext {
                    service: service.clone(),
                    ..ErrorContext::default()
                };
                &fallback
            }
        };
        let mut context = context.clone();
        context.attempts = err.attempts().max(context.attempts);
        for hook in &self.on_error {
            hook(err, &context);
        }
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_error", &self.on_error.len())
            .field("on_call", &self.on_call.len())
            .finish()
    }
}
