//! Temporary directories, removed when dropped.

use std::path::PathBuf;

/// A fresh directory under the system's temp dir, named after the test; removed (with what
/// it holds) when dropped.
#[derive(Debug)]
pub struct TempDir {
    /// Where it is.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates `sdk-test-<pid>-<name>-<random>`.
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "sdk-test-{}-{name}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir { path }
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
