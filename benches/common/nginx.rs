//! Debian's nginx as the reverse proxy a user would otherwise pick, for the gateway bench:
//! one worker in one process (`master_process off`, so the process measured is the one that
//! works), keep-alive to the upstream, on a free loopback port, with a config written here.
#![allow(dead_code, unreachable_pub)]

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// Where Debian installs it (`scripts/test` installs it when missing).
pub const BINARY: &str = "/usr/sbin/nginx";

/// A running nginx and its directory (both removed when dropped).
pub struct Nginx {
    pub child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A command running `program` under `launcher` (e.g. `taskset -c 1`), or directly when
/// the launcher is empty.
pub fn launched(launcher: &[&str], program: impl AsRef<std::ffi::OsStr>) -> Command {
    match launcher.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// Starts nginx proxying every path to `upstream` with up to 64 idle upstream connections,
/// its process started by `launcher` (e.g. `taskset -c 1`) when given; `None` (the reason
/// printed) when nginx is not installed or does not start.
pub async fn start(upstream: SocketAddr, launcher: &[&str]) -> Option<Nginx> {
    if !std::path::Path::new(BINARY).exists() {
        eprintln!("nginx is not installed at {BINARY}: not measured (scripts/test installs it)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("sdk-bench-nginx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|probe| probe.local_addr())
        .ok()?
        .port();
    let root = dir.display();
    let config = format!(
        "worker_processes 1;\nmaster_process off;\ndaemon off;\npid {root}/nginx.pid;\n\
         error_log {root}/error.log;\nevents {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {root}; proxy_temp_path {root};\n  \
         fastcgi_temp_path {root}; uwsgi_temp_path {root}; scgi_temp_path {root};\n  \
         upstream service {{ server {upstream}; keepalive 64; }}\n  \
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
         proxy_pass http://service;\n      proxy_http_version 1.1;\n      \
         proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, config).ok()?;
    let child = launched(launcher, BINARY)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let nginx = Nginx { child, addr, dir };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Some(nginx);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(nginx.dir.join("error.log")).unwrap_or_default();
    eprintln!("nginx did not start on {addr}: {log}");
    None
}
