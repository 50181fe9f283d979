//! Global hooks: `ServiceSdk::on_error` callbacks, called for every failed call.

use std::{fmt, sync::Arc};

use crate::error::{ErrorContext, ServiceError};

/// An error hook: the error and where it happened.
pub type ErrorHook = Arc<dyn Fn(&ServiceError, &ErrorContext) + Send + Sync>;

/// The hooks registered on an SDK.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_error: Vec<ErrorHook>,
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
            .finish()
    }
}
