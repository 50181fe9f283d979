use std::{fmt, sync::Arc};

use http::{
    uri::{Authority, PathAndQuery, Scheme, Uri},
    HeaderValue,
};

/// One reachable instance of a service: a base URL parsed once, so building each request's
/// URI is joining pre-parsed parts.
#[derive(Clone)]
pub struct Instance {
    url: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    base_path: Arc<str>,
    version: Option<Arc<super::InstanceVersion>>,
    // The `Host` header of a plain-HTTP attempt, made once (`None` for https, whose
    // transport may speak HTTP/2 and then writes `:authority` itself).
    host: Option<HeaderValue>,
}

/// Why an instance URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid instance URL `{url}`: {reason}")]
pub struct InstanceParseError {
    /// The URL as given, with any password replaced by `xxxxx`.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Instance {
    /// Parses `http://host:port` or `https://host:port/base/path`.
    ///
    /// ```
    /// use sdk::discovery::Instance;
    ///
    /// let instance = Instance::parse("http://10.0.0.7:8080/api").expect("valid");
    /// assert_eq!(instance.url(), "http://10.0.0.7:8080/api");
    /// assert!(Instance::parse("ftp://x").is_err());
    /// assert!(Instance::parse("http://x/?q=1").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, InstanceParseError> {
        let fail = |reason| InstanceParseError {
            // Shown in errors and logs: never with a password.
            url: sdk_base::redact_url(url).into_owned(),
            reason,
        };
        let uri: Uri = url.trim().parse().map_err(|_| fail("not a URL"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| fail("missing scheme (http:// or https://)"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(fail("scheme must be http or https"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| fail("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(fail("credentials in the URL are not allowed; use a header"));
        }
        if uri.query().is_some() {
            return Err(fail("a base URL cannot have a query"));
        }
        let base_path = uri.path().trim_end_matches('/');
        let host = (scheme == Scheme::HTTP)
            .then(|| host_header(&authority))
            .flatten();
        Ok(Instance {
            url: format!("{scheme}://{authority}{base_path}").into(),
            scheme,
            authority,
            base_path: base_path.into(),
            version: None,
            host,
        })
    }

    /// This instance, running `version` (as it registered it: `2.3.1`, `v2`, ...); see
    /// [`version`](crate::version).
    ///
    /// ```
    /// use sdk::discovery::Instance;
    ///
    /// let instance = Instance::parse("http://10.0.0.7:8080")?.with_version("v2.1");
    /// assert_eq!(instance.version().map(|v| v.to_string()), Some("v2.1".into()));
    /// # Ok::<(), sdk::discovery::InstanceParseError>(())
    /// ```
    #[must_use]
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = Some(Arc::new(super::InstanceVersion::new(version)));
        self
    }

    /// The version this instance runs, when it said.
    pub fn version(&self) -> Option<&super::InstanceVersion> {
        self.version.as_deref()
    }

    /// The base URL, normalised (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn url_arc(&self) -> &Arc<str> {
        &self.url
    }

    /// The `Host` header of a plain-HTTP attempt at this instance (none for https).
    pub(crate) fn host_header(&self) -> Option<&HeaderValue> {
        self.host.as_ref()
    }

    /// The URI of `path_and_query` (already checked by `check_path`) on this instance.
    pub(crate) fn uri(&self, path_and_query: &str) -> Result<Uri, http::Error> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(if self.base_path.is_empty() {
            PathAndQuery::try_from(path_and_query)?
        } else {
            let mut joined = String::with_capacity(self.base_path.len() + path_and_query.len());
            joined.push_str(&self.base_path);
            joined.push_str(path_and_query);
            PathAndQuery::try_from(joined)?
        });
        Ok(Uri::from_parts(parts)?)
    }
}

/// The `Host` header for `authority` over plain HTTP/1.1, as hyper-util would write it: the
/// host, with the port unless it is 80.
fn host_header(authority: &Authority) -> Option<HeaderValue> {
    let text = match authority.port_u16() {
        Some(80) => authority.host(),
        _ => authority.as_str(),
    };
    HeaderValue::from_str(text).ok()
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)?;
        match &self.version {
            Some(version) => write!(f, " ({version})"),
            None => Ok(()),
        }
    }
}

impl PartialEq for Instance {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
    }
}

impl Eq for Instance {}

#[cfg(test)]
mod tests {
    use super::Instance;

    #[test]
    fn the_host_header_is_hyper_utils() {
        let host = |url: &str| {
            let instance = Instance::parse(url).expect("an instance");
            instance
                .host_header()
                .map(|v| v.to_str().expect("ascii").to_owned())
        };
        assert_eq!(
            host("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host("http://example.com:80/").as_deref(),
            Some("example.com")
        );
        assert_eq!(host("http://example.com").as_deref(), Some("example.com"));
        assert_eq!(host("http://[::1]:8080/").as_deref(), Some("[::1]:8080"));
        assert_eq!(host("http://[::1]:80/").as_deref(), Some("[::1]"));
        assert_eq!(host("https://example.com:8443/"), None);
    }
}
