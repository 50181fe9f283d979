//! The registry binary as a child process.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A running `sdk-registry` process (killed when dropped).
pub(crate) struct Server {
    pub(crate) child: Child,
    /// `http://host:port`.
    pub(crate) url: String,
    /// `host:port`.
    pub(crate) addr: String,
}

impl Server {
    /// Sends SIGTERM and returns the exit status, which must come within 10 s.
    pub(crate) async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill -TERM");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exits within 10 s of SIGTERM")
            .expect("exit status")
    }
}

/// Starts the binary on `listen` with token `s3cret`, the TTL and the snapshot file given,
/// and waits for its `listening on` line.
pub(crate) async fn start_server(
    data: &Path,
    ttl_secs: u64,
    listen: &str,
    extra: &[&str],
) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sdk-registry"))
        .args([
            "--listen",
            listen,
            "--ttl-secs",
            &ttl_secs.to_string(),
            "--token",
            "s3cret",
            "--data",
        ])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the registry binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("the server starts within 10 s")
        .expect("read stdout")
        .expect("a line");
    let addr = line
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    Server {
        child,
        url: format!("http://{addr}"),
        addr,
    }
}

/// A fresh snapshot path in a directory of its own.
pub(crate) fn data_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sdk-registry-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join("registry.db")
}
