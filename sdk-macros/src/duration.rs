//! Durations written in attributes: `"250ms"`, `"2s"`, `"5m"`.

use std::time::Duration;

use syn::LitStr;

/// Parses a duration literal, or explains how to write one.
pub(crate) fn parse(lit: &LitStr) -> syn::Result<Duration> {
    let text = lit.value();
    match sdk_base::units::parse_duration(&text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(syn::Error::new_spanned(
            lit,
            "the duration must be greater than zero",
        )),
        Err(_) => Err(syn::Error::new_spanned(
            lit,
            format!("`{text}` is not a duration; write it like \"250ms\", \"2s\" or \"5m\""),
        )),
    }
}
