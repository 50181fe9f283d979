//! serde field helpers for the config types: how a TOML value becomes a duration, a size, a
//! number written as a string (what `${VAR}` substitution leaves), a header or a status.
//!
//! Each config type derives `Deserialize` with `#[serde(default)]` and names these helpers
//! on its fields, so the file's schema is the types themselves. The crates beside the SDK
//! use them for their own sections (see [`SdkConfig::extension`](crate::config::SdkConfig::extension)),
//! so a duration or a number is written the same way everywhere:
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     #[serde(deserialize_with = "sdk::config::de::duration")]
//!     timeout: std::time::Duration,
//!     #[serde(deserialize_with = "sdk::config::de::lenient")]
//!     prefetch: u16,
//! }
//!
//! let settings: Settings = toml::from_str("timeout = \"250ms\"\nprefetch = \"8\"").expect("valid");
//! assert_eq!((settings.timeout.as_millis(), settings.prefetch), (250, 8));
//! ```

pub use crate::settings::de::*;

use serde::de::{self, Deserialize, Deserializer};

use crate::{settings::de::Lenient, version::VersionSelector};

/// A version requirement (`"^2"`) or a weighted split (`{ "^1" = 90, "^2" = 10 }`).
pub fn versions<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<VersionSelector>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Written {
        Requirement(String),
        Split(std::collections::BTreeMap<String, Lenient<u32>>),
    }
    let selector = match Written::deserialize(deserializer).map_err(|_| {
        de::Error::custom(
            "expected a version requirement (\"^2\") or a split ({ \"^1\" = 90, \"^2\" = 10 })",
        )
    })? {
        Written::Requirement(requirement) => VersionSelector::require(&requirement),
        Written::Split(groups) => {
            VersionSelector::split(groups.iter().map(|(req, Lenient(w))| (req.as_str(), *w)))
        }
    };
    selector.map(Some).map_err(de::Error::custom)
}
