//! Service versions: which instances a call may go to, by the version they registered.
//!
//! Instances carry the version they registered with (`ServiceInstance::with_version`), read
//! leniently as semver (`2.3.1`, `v2.3.1`, `2.3` and `2` all parse). A [`VersionSelector`]
//! says which of them a call may use:
//!
//! - **a requirement** (`"^2"`, `">=1.4, <3"`: Cargo's syntax): only matching instances
//!   are picked; when none match, the call fails with
//!   [`NoInstanceReason::NoVersionMatch`](crate::balance::NoInstanceReason::NoVersionMatch),
//!   naming the requirement and the versions that are there;
//! - **a weighted split** for a gradual migration (90 % to `^1`, 10 % to `^2`): each call is
//!   given one group by weight, and the balancer picks among that group's instances as it
//!   always does (latency, ejections, health). A group with no instance up gives its share
//!   to the others, so a migration never fails calls because the new version is not
//!   deployed yet. Every attempt of one call stays in the group the call drew.
//!
//! ```
//! use sdk::version::VersionSelector;
//!
//! let v2 = VersionSelector::require("^2")?;
//! assert_eq!(v2.to_string(), "^2");
//! let migration = VersionSelector::split([("^1", 90), ("^2", 10)])?;
//! assert_eq!(migration.to_string(), "^1 (90), ^2 (10)");
//! assert!(VersionSelector::require("two").is_err());
//! # Ok::<(), sdk::version::VersionError>(())
//! ```
//!
//! In a config file, per service (or in `[defaults]`):
//!
//! ```toml
//! [services.user-service]
//! version = "^2"
//!
//! # or, while migrating:
//! [services.user-service.version]
//! "^1" = 90
//! "^2" = 10
//! ```

use std::{fmt, sync::Arc};

use semver::VersionReq;

use crate::instances::Instance;
pub use crate::instances::InstanceVersion;

/// A version requirement or a weighted split between requirements; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionSelector {
    /// Requirement and weight of each group; one group of weight 1 for a plain requirement.
    groups: Vec<(VersionReq, u32)>,
    total: u64,
}

/// Why a version requirement or split was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VersionError(String);

impl VersionSelector {
    /// Only instances whose version matches `requirement` (Cargo's syntax: `"^2"`,
    /// `"~1.4"`, `">=1.2, <2"`, `"=2.0.1"`).
    pub fn require(requirement: &str) -> Result<Self, VersionError> {
        Ok(VersionSelector {
            groups: vec![(parse_requirement(requirement)?, 1)],
            total: 1,
        })
    }

    /// A weighted split: each call goes to one group, drawn by weight (the weights need not
    /// add up to 100). At least one group must have a weight above zero.
    pub fn split<'a>(
        groups: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<Self, VersionError> {
        let groups = groups
            .into_iter()
            .map(|(requirement, weight)| Ok((parse_requirement(requirement)?, weight)))
            .collect::<Result<Vec<_>, VersionError>>()?;
        let total = groups.iter().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return Err(VersionError(
                "a version split needs at least one group with a weight above zero".into(),
            ));
        }
        Ok(VersionSelector { groups, total })
    }

    /// The indices of `instances` one call may use, drawn by `seed` for a split (a call's
    /// random trace id, so every attempt of the call draws the same group). `None` when no
    /// group has a matching instance.
    pub(crate) fn candidates(&self, instances: &[Instance], seed: u128) -> Option<Vec<usize>> {
        let matching = |requirement: &VersionReq| -> Vec<usize> {
            (0..instances.len())
                .filter(|&i| {
                    instances[i]
                        .version()
                        .is_some_and(|v| v.matches(requirement))
                })
                .collect()
        };
        if let [(requirement, _)] = self.groups.as_slice() {
            let found = matching(requirement);
            return (!found.is_empty()).then_some(found);
        }
        // Only groups with an instance share the calls: a version not deployed yet (or
        // gone) gives its share to the others.
        let groups: Vec<(Vec<usize>, u64)> = self
            .groups
            .iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(requirement, weight)| (matching(requirement), u64::from(*weight)))
            .filter(|(found, _)| !found.is_empty())
            .collect();
        let total: u64 = groups.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut draw = u64::try_from(seed % u128::from(total)).unwrap_or(0);
        for (found, weight) in groups {
            if draw < weight {
                return Some(found);
            }
            draw -= weight;
        }
        None
    }

    /// The groups: each requirement with its weight.
    pub fn groups(&self) -> impl Iterator<Item = (&VersionReq, u32)> {
        self.groups.iter().map(|(r, w)| (r, *w))
    }
}

impl fmt::Display for VersionSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [(requirement, _)] = self.groups.as_slice() {
            return write!(f, "{requirement}");
        }
        for (i, (requirement, weight)) in self.groups.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{requirement} ({weight})")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for VersionSelector {
    type Err = VersionError;

    fn from_str(requirement: &str) -> Result<Self, VersionError> {
        Self::require(requirement)
    }
}

impl From<VersionSelector> for crate::settings::Policy<VersionSelector> {
    fn from(selector: VersionSelector) -> Self {
        crate::settings::Policy::Shared(Arc::new(selector))
    }
}

fn parse_requirement(requirement: &str) -> Result<VersionReq, VersionError> {
    VersionReq::parse(requirement.trim()).map_err(|e| {
        VersionError(format!(
            "`{requirement}` is not a version requirement ({e}); write e.g. \"^2\", \"~1.4\" or \">=1.2, <2\""
        ))
    })
}

/// What a call that found no instance of its version says: the selector, and the versions
/// the service's instances have (sorted, each once; `unversioned` for those without one).
pub(crate) fn no_match(
    selector: &VersionSelector,
    instances: &[Instance],
) -> crate::error::NoInstanceReason {
    let mut versions: Vec<String> = instances
        .iter()
        .map(|i| {
            i.version()
                .map_or_else(|| "unversioned".to_owned(), ToString::to_string)
        })
        .collect();
    versions.sort();
    versions.dedup();
    crate::error::NoInstanceReason::NoVersionMatch {
        requirement: selector.to_string(),
        registered: instances.len(),
        versions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instances(versions: &[Option<&str>]) -> Vec<Instance> {
        versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let instance = Instance::parse(&format!("http://10.0.0.{i}:80")).expect("valid");
                match v {
                    Some(v) => instance.with_version(v),
                    None => instance,
                }
            })
            .collect()
    }

    #[test]
    fn a_requirement_keeps_only_matching_instances() {
        let set = instances(&[Some("1.4.0"), Some("2.0.1"), None, Some("v2.1"), Some("x")]);
        let v2 = VersionSelector::require("^2").expect("valid");
        assert_eq!(v2.candidates(&set, 7), Some(vec![1, 3]));
        let v3 = VersionSelector::require("^3").expect("valid");
        assert_eq!(v3.candidates(&set, 7), None);
        match no_match(&v3, &set) {
            crate::error::NoInstanceReason::NoVersionMatch {
                requirement,
                registered,
                versions,
            } => {
                assert_eq!(requirement, "^3");
                assert_eq!(registered, 5);
                assert_eq!(versions, ["1.4.0", "2.0.1", "unversioned", "v2.1", "x"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_split_draws_groups_by_weight_and_skips_empty_ones() {
        let set = instances(&[Some("1.0.0"), Some("1.2.0"), Some("2.0.0")]);
        let split = VersionSelector::split([("^1", 90), ("^2", 10)]).expect("valid");
        let mut to_v2 = 0;
        for seed in 0..1000u128 {
            match split.candidates(&set, seed).expect("a group").as_slice() {
                [2] => to_v2 += 1,
                [0, 1] => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(to_v2, 100, "10 % of the seeds");
        let only_v1 = instances(&[Some("1.0.0")]);
        for seed in 0..100u128 {
            assert_eq!(split.candidates(&only_v1, seed), Some(vec![0]));
        }
        assert!(VersionSelector::split([("^1", 0)]).is_err());
        assert!(VersionSelector::split([("^1", 1), ("nope", 1)]).is_err());
    }
}
