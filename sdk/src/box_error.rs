//! The boxed error the pipeline's layers pass between each other (tower's convention): a
//! leaf module, so no layer depends on the public error type to name it.

/// The boxed error the pipeline's layers pass between each other (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The boxed future of a layer or transport whose future is an `async` block: one home for
/// the shape, so every such service names it the same way.
pub(crate) type BoxFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, BoxError>> + Send>>;
