//! Durable state: every acknowledged write is in a snapshot file before the answer goes out.
//! The file is written whole to a temporary name, synced, and renamed over the old one, so a
//! crash (even `kill -9`) leaves either the old or the new snapshot, never half of one.
//!
//! Writes are group-committed: a write that waited while another was being saved finds its
//! change already on disk if that save started after it, and returns without writing. Under
//! concurrent registrations one fsync serves many of them.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use tokio::{fs, io::AsyncWriteExt, sync::Mutex};

use crate::ServiceInstance;

#[derive(Debug)]
pub(crate) struct Snapshots {
    path: Option<PathBuf>,
    /// Numbers the changes that asked to be saved.
    requested: AtomicU64,
    /// One writer at a time (concurrent renames could reorder snapshots); holds the number
    /// of the newest change known to be on disk.
    saved: Mutex<u64>,
}

impl Snapshots {
    pub(crate) fn new(path: Option<PathBuf>) -> Self {
        Snapshots {
            path,
            requested: AtomicU64::new(0),
            saved: Mutex::new(0),
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

    /// Returns once a snapshot holding the caller's change (made before the call) is on
    /// disk, saving `instances` (taken under the lock, so the newest state wins) unless a
    /// save that started after the change already did.
    pub(crate) async fn save(
        &self,
        instances: impl FnOnce() -> Vec<ServiceInstance>,
    ) -> std::io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mine = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut saved = self.saved.lock().await;
        if *saved >= mine {
            return Ok(()); // a later save included this change
        }
        // Every change numbered up to `upto` was made before its number was taken, so the
        // instances read next include it.
        let upto = self.requested.load(Ordering::Acquire);
        let bytes = serde_json::to_vec(&instances())?;
        write_atomically(path, &bytes).await?;
        *saved = upto;
        Ok(())
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
