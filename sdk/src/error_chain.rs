//! Walking an error's `source()` chain, the way `reqwest::Error::is_timeout` does, with
//! [`sdk_base::causes`] (which steps into `io::Error`s).

use std::error::Error as StdError;

/// Every error in `err`'s chain, `err` first (the registry crate's walk, which steps into
/// `io::Error`s).
pub(crate) fn iter<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    sdk_base::causes(err)
}

/// The first error of type `T` in `err`'s source chain (including `err` itself).
pub(crate) fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    iter(err).find_map(|e| e.downcast_ref::<T>())
}

/// Whether `err`'s source chain holds an error of type `T`.
pub(crate) fn contains<T: StdError + 'static>(err: &(dyn StdError + 'static)) -> bool {
    find::<T>(err).is_some()
}

/// Whether `err`'s chain holds an I/O timeout (a connect timeout, say).
pub(crate) fn has_io_timeout(err: &(dyn StdError + 'static)) -> bool {
    iter(err).any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// Whether `err`'s chain holds a TLS certificate failure: another attempt would meet the
/// same certificate.
pub(crate) fn is_certificate_failure(err: &(dyn StdError + 'static)) -> bool {
    iter(err).any(|e| {
        matches!(
            e.downcast_ref::<rustls::Error>(),
            Some(
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
            )
        )
    })
}
