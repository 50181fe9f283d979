//! A real browser for the dashboard's tests: Debian's Chromium, headless, driven over the
//! DevTools protocol (a WebSocket, JSON commands) with no library in between.

use std::{process::Stdio, time::Duration};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt as _, BufReader},
    process::{Child, Command},
};
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

/// Where Chromium is: `SDK_TEST_CHROMIUM`, else Debian's `/usr/bin/chromium`.
fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("SDK_TEST_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    path.exists().then_some(path)
}

/// A headless Chromium showing one page (killed, its profile removed, when dropped).
pub(crate) struct Browser {
    _child: Child,
    profile: std::path::PathBuf,
    page: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Chromium showing `url` at 1280×860, or `None` (after saying why) when Chromium is not
    /// installed; with `CI` set, a missing Chromium fails the test.
    pub(crate) async fn open(url: &str) -> Option<Browser> {
        let Some(binary) = chromium() else {
            sdk_test_support::skip("Chromium is not installed (apt-get install chromium)");
            return None;
        };
        let profile = std::env::temp_dir().join(format!(
            "sdk-registry-chromium-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,860",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let endpoint = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(ws) = line.strip_prefix("DevTools listening on ") {
                    return ws.to_owned();
                }
            }
            panic!("chromium exited without opening DevTools");
        })
        .await
        .expect("chromium starts within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let port = endpoint
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .expect("a port")
            .to_owned();
        let targets: Vec<Value> = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .expect("DevTools answers")
            .json()
            .await
            .expect("a target list");
        let page = targets
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (page, _) = tokio_tungstenite::connect_async(page)
            .await
            .expect("attach to the page");
        Some(Browser {
            _child: child,
            profile,
            page,
            next_id: 0,
        })
    }

    /// Sends a DevTools command and returns its result.
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(command.to_string()))
            .await
            .expect("send a command");
        loop {
            let message = tokio::time::timeout(Duration::from_secs(30), self.page.next())
                .await
                .expect("an answer within 30 s")
                .expect("the page is open")
                .expect("a message");
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("JSON");
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression in the page.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits (up to `limit`) until `expression` is true in the page.
    pub(crate) async fn wait_for(&mut self, expression: &str, limit: Duration) {
        let started = std::time::Instant::now();
        while self.eval(expression).await != Value::Bool(true) {
            assert!(
                started.elapsed() < limit,
                "`{expression}` still false after {limit:?}; the page shows: {}",
                self.eval("document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of what the page shows.
    pub(crate) async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let shot = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("image data"))
            .expect("base64")
    }
}
