use thiserror::Error;

/// What a registry operation can fail with.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// A field of the instance is invalid.
    #[error("invalid `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// No such instance is registered.
    #[error("no instance `{id}` of service `{service}`")]
    UnknownInstance {
        /// The service.
        service: String,
        /// The instance id.
        id: String,
    },
    /// The registry refused this client's credentials (a missing or wrong token).
    #[error("registry refused the credentials: {0}")]
    Unauthorized(String),
    /// The backend could not be reached or failed.
    #[error("registry backend unavailable: {0}")]
    Unavailable(String),
    /// The registry URL answered, but with 404 for the registry's own API: a wrong URL (a
    /// path, a port of another server), or not a registry.
    #[error("{0} answered 404 Not Found: a wrong registry URL, or not an sdk-registry server")]
    NotFound(String),
}
