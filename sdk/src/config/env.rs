//! `${VAR}` and `${VAR:default}` substitution in configuration strings.

/// Replaces `${VAR}` / `${VAR:default}` in `input` using `lookup`; `$${` is a literal `${`.
/// Returns the name of a variable that is unset and has no default.
pub(crate) fn substitute(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstitutionError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let end = body_start
            .find('}')
            .ok_or_else(|| SubstitutionError::Unclosed(input.to_owned()))?;
        let body = &body_start[..end];
        let (name, default) = match body.split_once(':') {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(SubstitutionError::BadName(body.to_owned()));
        }
        match (lookup(name), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(SubstitutionError::Unset(name.to_owned())),
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubstitutionError {
    Unset(String),
    Unclosed(String),
    BadName(String),
}

impl std::fmt::Display for SubstitutionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubstitutionError::Unset(name) => write!(
                f,
                "environment variable `{name}` is not set and has no default (write `${{{name}:default}}`)"
            ),
            SubstitutionError::Unclosed(s) => write!(f, "`${{` without a closing `}}` in `{s}`"),
            SubstitutionError::BadName(s) => write!(f, "`${{{s}}}` is not a valid variable reference"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOST").then(|| "10.0.0.1".to_owned())
    }

    #[test]
    fn substitutes_with_defaults() {
        assert_eq!(
            substitute("http://${HOST}:${PORT:8080}/x", &env).as_deref(),
            Ok("http://10.0.0.1:8080/x")
        );
        assert_eq!(
            substitute("cost $5 $${HOST}", &env).as_deref(),
            Ok("cost $5 ${HOST}")
        );
        assert_eq!(substitute("${EMPTY:}", &env).as_deref(), Ok(""));
        assert_eq!(
            substitute("${MISSING}", &env),
            Err(SubstitutionError::Unset("MISSING".into()))
        );
        assert!(substitute("${HOST", &env).is_err());
        assert!(substitute("${A-B}", &env).is_err());
    }
}
