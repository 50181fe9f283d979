//! nginx (Debian's package, which `scripts/test` installs) as a real upstream: a process of
//! the test's own on a free loopback port, with a config the test writes. nginx decodes a
//! path (`%2f` included) and resolves its dot segments before it picks a `location`, as
//! many upstreams do: what a gateway forwards is judged by it.

use std::{process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use super::TempDir;

/// A running nginx (stopped when dropped).
pub struct Nginx {
    /// `127.0.0.1:port`.
    pub addr: String,
    _child: Child,
    _dir: TempDir,
}

/// Where Debian installs it.
const BINARY: &str = "/usr/sbin/nginx";

impl Nginx {
    /// Starts nginx serving `locations` (the body of a `server` block, without `listen`),
    /// or `None` (the reason printed) when nginx is not installed and `CI` is not set.
    pub async fn start(locations: &str) -> Option<Nginx> {
        if !std::path::Path::new(BINARY).exists() {
            sdk_test_support::skip(format_args!(
                "nginx is not installed at {BINARY} (scripts/test installs it)"
            ));
            return None;
        }
        let dir = TempDir::new("nginx");
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            probe.local_addr().expect("addr").port()
        };
        let root = dir.path.display();
        let config = format!(
            "worker_processes 1;\npid {root}/nginx.pid;\nerror_log {root}/error.log;\ndaemon off;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {root}; proxy_temp_path {root};\n  \
             fastcgi_temp_path {root}; uwsgi_temp_path {root}; scgi_temp_path {root};\n  \
             server {{\n    listen 127.0.0.1:{port};\n{locations}\n  }}\n}}\n"
        );
        let file = dir.path.join("nginx.conf");
        std::fs::write(&file, config).expect("write nginx.conf");
        let child = Command::new(BINARY)
            .arg("-p")
            .arg(&dir.path)
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start nginx");
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return Some(Nginx {
                    addr,
                    _child: child,
                    _dir: dir,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::read_to_string(dir.path.join("error.log")).unwrap_or_default();
        panic!("nginx did not start on {addr}: {log}");
    }
}
