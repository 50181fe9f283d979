//! The boxed error the pipeline's layers pass between each other (tower's convention): a
//! leaf module, so no layer depends on the public error type to name it.

/// The boxed error the pipeline's layers pass between each other (tower's convention).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
