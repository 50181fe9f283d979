//! Walking an error's causes: one walk for the registry clients' messages and for the SDK's
//! classification of outcomes.

use std::error::Error as StdError;

/// Every error in `err`'s chain, `err` first.
///
/// Unlike a plain `source()` walk, it steps *into* an `io::Error` that wraps another error:
/// `io::Error::source` reports the wrapped error's source, skipping the wrapped error itself
/// (a rustls certificate error inside hyper's connect error, say).
///
/// ```
/// let inner = std::io::Error::new(std::io::ErrorKind::Other, "the real reason");
/// let texts: Vec<String> = sdk_base::causes(&inner).map(|e| e.to_string()).collect();
/// assert_eq!(texts, ["the real reason", "the real reason"]);
/// ```
pub fn causes<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |e: &&'a (dyn StdError + 'static)| next(*e))
}

fn next<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        Some(inner) => Some(inner),
        None => e.source(),
    }
}

/// `err` and its causes as one line, `outer: inner: innermost`, leaving out a cause whose
/// text the line already holds (hyper-util's errors say only "client error (Connect)" at
/// the top; the reason, a refused connection or a certificate problem, is further down).
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    for cause in causes(err).skip(1) {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
    }
    text
}
