//! The declared `rust-version` and the lockfile agree: no locked crate built on this
//! platform needs a newer compiler than the one the workspace promises to build with.
//! (Crates for other platforms are filtered out: the lockfile also holds Windows-only
//! `windows-*` crates needing 1.95, which the README says.)

#[test]
fn no_locked_crate_needs_a_newer_compiler_than_declared() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let about = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc runs");
    let host = String::from_utf8_lossy(&about.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc names its host");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
        ])
        .arg(&host)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    // `1.94` and `1.94.0` are the same version.
    let version = |v: &str| -> Vec<u64> {
        let mut parts: Vec<u64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
        parts.resize(3, 0);
        parts
    };
    let resolved: std::collections::HashSet<&str> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    let declared = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "sdk")
        .and_then(|p| p["rust_version"].as_str())
        .map(version)
        .expect("sdk declares a rust-version");
    let too_new: Vec<String> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| resolved.contains(id)))
        .filter_map(|p| {
            let needs = version(p["rust_version"].as_str()?);
            (needs > declared).then(|| format!("{} {} needs {needs:?}", p["name"], p["version"]))
        })
        .collect();
    assert!(
        too_new.is_empty(),
        "declared {declared:?}, but: {too_new:?}"
    );
}
