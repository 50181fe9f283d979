//! Walking an error's `source()` chain, the way `reqwest::Error::is_timeout` does.

use std::error::Error as StdError;

/// The first error of type `T` in `err`'s source chain (including `err` itself).
pub(crate) fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// Whether `err`'s source chain holds an error of type `T`.
pub(crate) fn contains<T: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    find::<T>(err).is_some()
}
