//! Durable state: every acknowledged write is in a snapshot file before the answer goes out.
//! The file is written whole to a temporary name, synced, and renamed over the old one, so a
//! crash (even `kill -9`) leaves either the old or the new snapshot, never half of one.

use std::path::{Path, PathBuf};

use tokio::{fs, io::AsyncWriteExt, sync::Mutex};

use crate::ServiceInstance;

#[derive(Debug)]
pub(crate) struct Snapshots {
    path: Option<PathBuf>,
    // One writer at a time: concurrent renames could reorder snapshots.
    lock: Mutex<()>,
}

impl Snapshots {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        Snapshots {
            path,
            lock: Mutex::new(()),
        }
    }

    /// The instances saved last time, or none.
    pub(crate) async fn load(&self) -> std::io::Result<Vec<ServiceInstance>> {
        let Some(path) = &self.path else {
            return Ok(Vec::new());
        };
        match fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Saves `instances` (taken while holding the lock, so the newest state wins).
    pub(crate) async fn save(
        &self,
        instances: impl FnOnce() -> Vec<ServiceInstance>,
    ) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let _guard = self.lock.lock().await;
        let bytes = serde_json::to_vec(&instances())?;
        write_atomically(path, &bytes).await
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = fs::File::create(&temporary).await?;
    file.write_all(bytes).await?;
    file.sync_all().await?;
    drop(file);
    fs::rename(&temporary, path).await
}
