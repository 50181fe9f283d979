//! Message patterns: dot-separated tokens (`user.create`, `order.placed`), and for handlers
//! the wildcards of AMQP topics: `*` is exactly one token (`order.*` matches `order.placed`,
//! not `order.eu.placed`), `#` as the last token is any number of them, none included
//! (`order.#` matches `order`, `order.placed` and `order.eu.placed`).
//!
//! One rule, checked here, for every transport: a token is letters, digits, `-` or
//! `_` (at most 128 bytes); a pattern is 1 to 16 tokens (at most 255 bytes). A message is sent to a concrete
//! pattern (no wildcard); a handler may listen on a wildcard one. When several of a
//! server's handlers match a message, the most specific one takes it (literal tokens before
//! `*`, `*` before `#`, from the left), so a message is handled once.
//!
//! ```
//! use sdk_messaging::Pattern;
//!
//! let any_order = Pattern::handler("order.*")?;
//! assert!(any_order.matches("order.placed"));
//! assert!(!any_order.matches("order.eu.placed"));
//! assert!(Pattern::handler("order.#")?.matches("order"));
//! assert!(Pattern::message("order.*").is_err(), "a message goes to one pattern");
//! assert!(Pattern::handler("order..placed").is_err());
//! # Ok::<(), sdk_messaging::PatternError>(())
//! ```

use std::{cmp::Ordering, fmt, sync::Arc};

/// A checked pattern (see the module docs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern(Arc<str>);

/// The bytes a token is made of: letters, digits, `-` and `_`.
const TOKEN_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        byte += 1;
    }
    table
};

/// Whether `bytes` (1 to 255 of them) is a valid pattern without a wildcard, in one pass:
/// a comparison and a table lookup a byte. Every message is checked (issue 33: the token by
/// token check took ~480 instructions a pattern, ~1,300 a message sent and handled). `false`
/// says only that [`Pattern::check_tokens`] must look: a wildcard, or something wrong.
fn is_concrete(bytes: &[u8]) -> bool {
    let (mut tokens, mut start) = (1, 0);
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == b'.' {
            if at == start || at - start > MAX_TOKEN {
                return false;
            }
            tokens += 1;
            start = at + 1;
        } else if !TOKEN_BYTE[usize::from(byte)] {
            return false;
        }
    }
    start < bytes.len() && bytes.len() - start <= MAX_TOKEN && tokens <= MAX_TOKENS
}

/// Why a pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{pattern}` is not a message pattern: {reason}")]
pub struct PatternError {
    /// The pattern as given (cut to 64 characters).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

const MAX_TOKENS: usize = 16;
const MAX_TOKEN: usize = 128;
const MAX_LEN: usize = 255;

impl Pattern {
    /// A pattern a message is sent to: no wildcard.
    pub fn message(pattern: &str) -> Result<Pattern, PatternError> {
        Self::check_message(pattern)?;
        Ok(Pattern(pattern.into()))
    }

    /// A pattern a handler listens on: `*` for one token, a last `#` for any number.
    pub fn handler(pattern: &str) -> Result<Pattern, PatternError> {
        Self::check(pattern)?;
        Ok(Pattern(pattern.into()))
    }

    /// Whether `pattern` is one a message can be sent to, without keeping it.
    pub(crate) fn check_message(pattern: &str) -> Result<(), PatternError> {
        if Self::check(pattern)? {
            return Err(error(
                pattern,
                "a message is sent to one pattern; wildcards (`*`, `#`) are for handlers",
            ));
        }
        Ok(())
    }

    /// Checks `pattern` (on every message sent, so without allocating); whether it has a
    /// wildcard.
    fn check(pattern: &str) -> Result<bool, PatternError> {
        if pattern.is_empty() || pattern.len() > MAX_LEN {
            return Err(error(pattern, "it must be 1 to 255 bytes"));
        }
        if is_concrete(pattern.as_bytes()) {
            return Ok(false);
        }
        Self::check_tokens(pattern)
    }

    /// [`check`](Self::check) token by token: for a wildcard, and to say what is wrong.
    fn check_tokens(pattern: &str) -> Result<bool, PatternError> {
        let (mut count, mut wildcard, mut after_hash) = (0, false, false);
        // Bytes, not `str::split` and its char searcher: a message's two checks took 1,269
        // instructions that way, 966 this way.
        for token in pattern.as_bytes().split(|&b| b == b'.') {
            count += 1;
            if count > MAX_TOKENS {
                return Err(error(pattern, "it has more than 16 tokens"));
            }
            if after_hash {
                return Err(error(pattern, "`#` may only be the last token"));
            }
            match token {
                b"*" => wildcard = true,
                b"#" => (wildcard, after_hash) = (true, true),
                b"" => {
                    return Err(error(
                        pattern,
                        "it has an empty token (`..`, or a `.` at an end)",
                    ))
                }
                t if t.len() > MAX_TOKEN => {
                    return Err(error(pattern, "a token is longer than 128 bytes"))
                }
                t if !t
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
                {
                    return Err(error(
                        pattern,
                        "tokens are letters, digits, `-` and `_`, separated by `.`",
                    ))
                }
                _ => {}
            }
        }
        Ok(wildcard)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it has a `*` or `#` (a token is letters, digits, `-` and `_` otherwise, so a
    /// byte says it).
    pub fn has_wildcard(&self) -> bool {
        self.0.bytes().any(|b| b == b'*' || b == b'#')
    }

    fn tokens(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }

    /// Whether a message sent to `subject` (a concrete pattern) is for this one.
    pub fn matches(&self, subject: &str) -> bool {
        // Routing matches every message against every binding (issue 33: splitting both by
        // `char` cost ~280 instructions a binding): a literal pattern is one comparison, a
        // wildcard one is split by bytes.
        if !self.has_wildcard() {
            return *self.0 == *subject;
        }
        let mut subject = subject.as_bytes().split(|&b| b == b'.');
        for token in self.0.as_bytes().split(|&b| b == b'.') {
            match token {
                b"#" => return true,
                b"*" => {
                    if subject.next().is_none() {
                        return false;
                    }
                }
                literal => {
                    if subject.next() != Some(literal) {
                        return false;
                    }
                }
            }
        }
        subject.next().is_none()
    }

    /// Orders by specificity, most specific first: literal tokens before `*` before `#`,
    /// from the left; then the longer pattern first.
    pub fn specificity(&self, other: &Pattern) -> Ordering {
        fn rank(token: &str) -> u8 {
            match token {
                "#" => 2,
                "*" => 1,
                _ => 0,
            }
        }
        let (mut a, mut b) = (self.tokens(), other.tokens());
        loop {
            match (a.next(), b.next()) {
                (Some(x), Some(y)) => match rank(x).cmp(&rank(y)) {
                    Ordering::Equal => continue,
                    unequal => return unequal,
                },
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => return Ordering::Equal,
            }
        }
    }

    /// The NATS subjects that carry this pattern's messages under `prefix` (`*` is NATS's
    /// `*`; a last `#` is the pattern without it plus `>`, since NATS's `>` needs a token).
    #[cfg(any(feature = "nats", test))]
    pub(crate) fn nats_subjects(&self, prefix: &str) -> Vec<String> {
        let join = |body: &str| match (prefix.is_empty(), body.is_empty()) {
            (true, _) => body.to_owned(),
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{body}"),
        };
        match self.0.strip_suffix('#') {
            Some(stem) => {
                let stem = stem.trim_end_matches('.');
                let any = if stem.is_empty() {
                    ">".to_owned()
                } else {
                    format!("{stem}.>")
                };
                let mut subjects = vec![join(&any)];
                if !stem.is_empty() {
                    subjects.push(join(stem));
                }
                subjects
            }
            None => vec![join(&self.0)],
        }
    }
}

fn error(pattern: &str, reason: &'static str) -> PatternError {
    PatternError {
        pattern: pattern.chars().take(64).collect(),
        reason,
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// The most specific of `patterns` that matches `subject`, if any.
pub(crate) fn best<'a>(
    patterns: impl IntoIterator<Item = &'a Pattern>,
    subject: &str,
) -> Option<&'a Pattern> {
    patterns
        .into_iter()
        .filter(|p| p.matches(subject))
        .min_by(|a, b| a.specificity(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Pattern {
        Pattern::handler(s).expect("valid")
    }

    /// The one-pass check accepts exactly what the token by token check accepts without a
    /// wildcard: every string of up to 6 bytes from an alphabet with each kind of byte, and
    /// the limits on a token's length and on the number of tokens at and past their edge.
    #[test]
    fn the_one_pass_check_agrees_with_the_token_by_token_one() {
        let alphabet = [b'a', b'Z', b'7', b'-', b'_', b'.', b'*', b'#', b' ', 0xC3];
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut all = Vec::new();
        for _ in 0..6 {
            inputs = inputs
                .iter()
                .flat_map(|prefix| {
                    alphabet.iter().map(move |&b| {
                        let mut next = prefix.clone();
                        next.push(b);
                        next
                    })
                })
                .collect();
            all.extend(inputs.iter().cloned());
        }
        let token = |n: usize| "t".repeat(n);
        for edge in [
            format!("{}.b", token(MAX_TOKEN)),
            format!("{}.b", token(MAX_TOKEN + 1)),
            format!("a.{}", token(MAX_TOKEN)),
            format!("a.{}", token(MAX_TOKEN + 1)),
            vec!["x"; MAX_TOKENS].join("."),
            vec!["x"; MAX_TOKENS + 1].join("."),
        ] {
            all.push(edge.into_bytes());
        }
        for bytes in &all {
            let Ok(text) = std::str::from_utf8(bytes) else {
                assert!(!is_concrete(bytes), "{bytes:?}");
                continue;
            };
            let by_tokens = Pattern::check_tokens(text) == Ok(false);
            assert_eq!(is_concrete(bytes), by_tokens, "{text:?}");
            assert_eq!(Pattern::check(text) == Ok(false), by_tokens, "{text:?}");
        }
        assert!(is_concrete(b"order.placed") && !is_concrete(b"order.*"));
    }

    #[test]
    fn wildcards_match_as_amqp_topics_do() {
        assert!(p("a.b").matches("a.b"));
        assert!(!p("a.b").matches("a.b.c"));
        assert!(p("a.*").matches("a.b") && !p("a.*").matches("a") && !p("a.*").matches("a.b.c"));
        assert!(p("a.#").matches("a") && p("a.#").matches("a.b.c"));
        assert!(p("#").matches("anything.at.all"));
        assert!(p("*.created").matches("user.created") && !p("*.created").matches("user.updated"));
        assert!(!p("a.b").matches("a.bc") && !p("a.b").matches("a") && !p("ab").matches("a.b"));
        assert!(p("a.*.c").matches("a.b.c") && !p("a.*.c").matches("a.b.d"));
        assert!(p("a-1.b_2").matches("a-1.b_2") && !p("a.b").has_wildcard());
        assert!(p("a.*").has_wildcard() && p("#").has_wildcard());
    }

    #[test]
    fn the_most_specific_handler_wins() {
        let handlers = [p("order.#"), p("order.*"), p("order.placed"), p("#")];
        assert_eq!(best(&handlers, "order.placed"), Some(&handlers[2]));
        assert_eq!(best(&handlers, "order.shipped"), Some(&handlers[1]));
        assert_eq!(best(&handlers, "order.eu.placed"), Some(&handlers[0]));
        assert_eq!(best(&handlers, "user.created"), Some(&handlers[3]));
    }

    #[test]
    fn mistakes_are_refused() {
        for bad in ["", "a..b", ".a", "a.", "a.#.b", "a b", "a/b", "ä"] {
            assert!(Pattern::handler(bad).is_err(), "{bad:?}");
        }
        assert!(Pattern::message("a.*").is_err());
        assert!(Pattern::handler(&["a"; 16].join(".")).is_ok());
        assert!(Pattern::handler(&["a"; 17].join(".")).is_err());
    }

    #[test]
    fn nats_subjects_cover_the_pattern() {
        assert_eq!(p("a.*").nats_subjects(""), ["a.*"]);
        assert_eq!(p("a.#").nats_subjects("events"), ["events.a.>", "events.a"]);
        assert_eq!(p("#").nats_subjects("events"), ["events.>"]);
        assert_eq!(p("a.b").nats_subjects("events"), ["events.a.b"]);
    }
}
