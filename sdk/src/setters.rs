//! Builder methods for the config types: one method per setting, named as its field, so
//! settings in code read `RetryConfig::new().max_attempts(5)` rather than struct literals
//! (which `#[non_exhaustive]` rules out, so settings can be added without breaking
//! anyone).
//!
//! A macro, because each type has a handful of identical one-line setters; `const` ones for
//! `Copy` types, so generated clients can build their settings in constants.

/// `setters!(const Type { /// doc  name: Ty, ... })` or without `const`.
macro_rules! setters {
    (const $ty:ty { $($(#[$doc:meta])* $name:ident: $field:ty),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub const fn $name(mut self, $name: $field) -> Self {
                    self.$name = $name;
                    self
                }
            )*
        }
    };
    ($ty:ty { $($(#[$doc:meta])* $name:ident: $field:ty),* $(,)? }) => {
        impl $ty {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, $name: $field) -> Self {
                    self.$name = $name;
                    self
                }
            )*
        }
    };
}
