//! The one binary spawner: starts a server binary (the registry, the event bus, the
//! gateway) as a real process, keeps what it logs on stderr, and waits for the
//! `listening on <addr>` line every binary prints on stdout once it serves.

use std::{
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};

/// A server binary that printed its `listening on` line. Killed when dropped.
#[derive(Debug)]
pub struct Running {
    /// The process.
    pub child: Child,
    /// The address it listens on (`host:port`).
    pub addr: String,
    /// Everything it wrote on stderr so far.
    pub log: Arc<Mutex<String>>,
}

impl Running {
    /// Spawns `command` (its stdout and stderr piped, killed on drop) and waits, for at most
    /// `within`, for its `listening on` line. Panics, with what `what` logged, when it exits
    /// or stays silent instead.
    pub async fn start(mut command: Command, what: &str, within: Duration) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("start {what}: {error}"));
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(within, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("{what} starts within {within:?}"))
            .expect("read stdout");
        let Some(line) = line else {
            // Let the stderr reader catch up with the last lines before they are shown.
            tokio::time::sleep(Duration::from_millis(100)).await;
            panic!("{what} exited: {}", log.lock().expect("log"));
        };
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{what} printed {line:?}, not its listening line"))
            .to_owned();
        Running { child, addr, log }
    }

    /// What it logged so far.
    pub fn logged(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// `kill -9`, and the exit.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// SIGTERM, and the exit status, which must come within 20 s.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .expect("kill -TERM");
        assert!(sent.success(), "kill -TERM {pid}");
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("exits within 20 s of SIGTERM")
            .expect("exit status")
    }
}

/// Runs `command` until it exits, for at most `within`: its exit status and what it wrote
/// on stderr (stdout is dropped).
pub async fn run_to_exit(mut command: Command, within: Duration) -> (ExitStatus, String) {
    let output = tokio::time::timeout(
        within,
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("the binary exits within {within:?}"))
    .expect("run the binary");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
