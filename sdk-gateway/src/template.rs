//! Path templates: the `{name}` and `{*name}` parameters of a route's pattern (axum's
//! syntax), and a rewrite filled in from the values a request matched. A rewrite is parsed
//! once, when its route is built.

/// The parameter names of `template`, in order, or why it is malformed.
///
/// ```
/// use sdk_gateway::template::params;
/// assert_eq!(params("/api/{user}/files/{*rest}").expect("valid"), ["user", "rest"]);
/// assert!(params("/api/{user").is_err());
/// ```
pub fn params(template: &str) -> Result<Vec<String>, String> {
    Ok(Template::parse(template)?
        .pieces
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Param(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect())
}

/// The parameter `text` is made of alone (`{service}` → `service`), if it is one.
pub fn single_param(text: &str) -> Option<&str> {
    let name = text.strip_prefix('{')?.strip_suffix('}')?;
    let name = name.strip_prefix('*').unwrap_or(name);
    is_name(name).then_some(name)
}

/// A parsed template, to be filled in with a request's values.
///
/// ```
/// use sdk_gateway::template::Template;
/// let rewrite = Template::parse("/users/{user}/{rest}").expect("valid");
/// let values = [("user", "42"), ("rest", "a/b%20c")];
/// let value = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
/// assert_eq!(rewrite.fill(value).expect("filled"), "/users/42/a/b%20c");
/// ```
#[derive(Clone, Debug)]
pub struct Template {
    pieces: Vec<Piece>,
    len: usize,
}

#[derive(Clone, Debug)]
enum Piece {
    Text(String),
    Param(String),
}

impl Template {
    /// Parses `template`, or says why it is malformed.
    pub fn parse(template: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_owned()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("`{template}`: a `{{` is never closed"));
            };
            let inner = &rest[open + 1..open + close];
            let name = inner.strip_prefix('*').unwrap_or(inner);
            if !is_name(name) {
                return Err(format!("`{template}`: `{{{inner}}}` is not a parameter"));
            }
            pieces.push(Piece::Param(name.to_owned()));
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("`{template}`: a `}}` was never opened"));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template {
            pieces,
            len: template.len(),
        })
    }

    /// The template with each `{name}` replaced by `value(name)` (raw, still
    /// percent-encoded, as the request carried it), or the first name without a value.
    pub fn fill<'a>(&self, value: impl Fn(&str) -> Option<&'a str>) -> Result<String, String> {
        let mut out = String::with_capacity(self.len + 32);
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Param(name) => match value(name) {
                    Some(value) => out.push_str(value),
                    None => return Err(format!("no value for `{{{name}}}`")),
                },
            }
        }
        Ok(out)
    }
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
