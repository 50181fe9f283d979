//! Path templates: the `{name}` and `{*name}` parameters of a route's pattern (axum's
//! syntax), and a rewrite filled in from the values a request matched.

/// The parameter names of `template`, in order, or why it is malformed.
///
/// ```
/// use sdk_gateway::template::params;
/// assert_eq!(params("/api/{user}/files/{*rest}").expect("valid"), ["user", "rest"]);
/// assert!(params("/api/{user").is_err());
/// ```
pub fn params(template: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for piece in pieces(template)? {
        if let Piece::Param(name) = piece {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// The parameter `text` is made of alone (`{service}` → `service`), if it is one.
pub fn single_param(text: &str) -> Option<&str> {
    let name = text.strip_prefix('{')?.strip_suffix('}')?;
    let name = name.strip_prefix('*').unwrap_or(name);
    is_name(name).then_some(name)
}

/// `template` with each `{name}` replaced by its value in `values` (raw, still
/// percent-encoded, as the request carried it).
///
/// ```
/// use sdk_gateway::template::fill;
/// let values = [("user".to_owned(), "42".to_owned()), ("rest".to_owned(), "a/b%20c".to_owned())];
/// assert_eq!(fill("/users/{user}/{rest}", &values).expect("filled"), "/users/42/a/b%20c");
/// ```
pub fn fill(template: &str, values: &[(String, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 16);
    for piece in pieces(template)? {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Param(name) => match values.iter().find(|(n, _)| n == name) {
                Some((_, value)) => out.push_str(value),
                None => return Err(format!("no value for `{{{name}}}`")),
            },
        }
    }
    Ok(out)
}

enum Piece<'a> {
    Text(&'a str),
    Param(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("`{template}`: a `{{` is never closed"));
        };
        let inner = &rest[open + 1..open + close];
        let name = inner.strip_prefix('*').unwrap_or(inner);
        if !is_name(name) {
            return Err(format!("`{template}`: `{{{inner}}}` is not a parameter"));
        }
        pieces.push(Piece::Param(name));
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("`{template}`: a `}}` was never opened"));
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
