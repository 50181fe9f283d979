//! [`InstanceVersion`]: the version an instance registered with, read as semver when it
//! can be.

use std::fmt;

use semver::{Version, VersionReq};

/// An instance's version as it registered it, and as semver when it reads as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceVersion {
    raw: Box<str>,
    parsed: Option<Version>,
}

impl InstanceVersion {
    /// Reads `raw` leniently: a leading `v` is dropped and a missing minor or patch is zero
    /// (`v2` is `2.0.0`, `2.3` is `2.3.0`). A version that still does not parse matches no
    /// requirement.
    ///
    /// ```
    /// use sdk::version::InstanceVersion;
    ///
    /// assert_eq!(InstanceVersion::new("v2.3").semver().map(|v| v.to_string()), Some("2.3.0".into()));
    /// assert_eq!(InstanceVersion::new("2.3.1-beta.1").semver().map(|v| v.to_string()), Some("2.3.1-beta.1".into()));
    /// assert!(InstanceVersion::new("blue").semver().is_none());
    /// ```
    pub fn new(raw: &str) -> Self {
        InstanceVersion {
            raw: raw.into(),
            parsed: lenient(raw),
        }
    }

    /// The version as registered.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The version as semver, when it reads as one.
    pub fn semver(&self) -> Option<&Version> {
        self.parsed.as_ref()
    }

    pub(crate) fn matches(&self, requirement: &VersionReq) -> bool {
        self.parsed.as_ref().is_some_and(|v| requirement.matches(v))
    }
}

impl fmt::Display for InstanceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn lenient(raw: &str) -> Option<Version> {
    let text = raw.trim();
    let text = text
        .strip_prefix('v')
        .or_else(|| text.strip_prefix('V'))
        .unwrap_or(text);
    if let Ok(version) = Version::parse(text) {
        return Some(version);
    }
    let (core, rest) = text.split_at(text.find(['-', '+']).unwrap_or(text.len()));
    let padded = match core.split('.').count() {
        1 => format!("{core}.0.0{rest}"),
        2 => format!("{core}.0{rest}"),
        _ => return None,
    };
    Version::parse(&padded).ok()
}
