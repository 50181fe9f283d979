//! The registry binary under disk faults: a full disk, a disk turned read-only, two servers
//! on one data file, and writes that must survive kill -9. Every acknowledged write is
//! counted against what a restart finds.
//!
//! The disk faults need root (a small tmpfs, a read-only remount): they run as root (as CI
//! does) and say why they skip elsewhere, unless `CI` is set, where they fail.
#![cfg(feature = "server")]

use crate::support;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use crate::support::{data_file, start_server, Server};
use serde_json::{json, Value};

/// A tmpfs of `size` mounted on a fresh directory, unmounted when dropped; None (after
/// saying why) when this process may not mount.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(name: &str, size: &str) -> Option<Tmpfs> {
        let dir =
            std::env::temp_dir().join(format!("sdk-registry-fault-{}-{name}", std::process::id()));
        let _ = Command::new("umount")
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status();
        std::fs::create_dir_all(&dir).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Tmpfs { dir });
        }
        let reason = "mounting a tmpfs needs root (CI runs as root)";
        sdk_test_support::skip(format_args!("the disk-fault test: {reason}"));
        None
    }

    fn data(&self) -> PathBuf {
        self.dir.join("registry.db")
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .expect("mount");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the killed server may not have closed its files yet.
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn instance(id: &str, padding: usize) -> Value {
    json!({
        "id": id, "service": "orders", "host": "127.0.0.1", "port": 8080,
        "metadata": { "padding": "x".repeat(padding) }
    })
}

async fn register(http: &reqwest::Client, server: &Server, body: &Value) -> (u16, Value) {
    let (status, answer) = server
        .send(http, reqwest::Method::POST, "/v1/instances", Some(body))
        .await;
    assert!(answer.is_object(), "every answer is JSON: {answer}");
    (status, answer)
}

/// `orders`' instances as the server lists them.
async fn records(http: &reqwest::Client, server: &Server) -> Value {
    let path = "/v1/services/orders/instances";
    server.send(http, reqwest::Method::GET, path, None).await.1
}

async fn listed(http: &reqwest::Client, server: &Server) -> BTreeSet<String> {
    records(http, server)
        .await
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["instance"]["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn start(data: &Path) -> Server {
    start_server(data, 90, "127.0.0.1:0", &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_writes_and_loses_no_acknowledged_one() {
    let Some(disk) = Tmpfs::mount("full", "160k") else {
        return;
    };
    let mut server = start(&disk.data()).await;
    let http = reqwest::Client::new();
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    for i in 0..300 {
        let id = format!("i{i:03}");
        match register(&http, &server, &instance(&id, 1000)).await {
            (201, _) => {
                acknowledged.insert(id);
            }
            (507, body) => {
                refused += 1;
                let message = body["error"].as_str().expect("message");
                assert!(message.contains("disk is full"), "{message}");
            }
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    assert!(refused > 0, "the disk filled up");
    assert!(!acknowledged.is_empty(), "some writes fit");
    assert_eq!(
        listed(&http, &server).await,
        acknowledged,
        "refused writes are not served"
    );
    assert!(
        server.logged().contains("could not be saved"),
        "failed saves are logged:\n{}",
        server.logged()
    );

    server.child.kill().await.expect("kill -9");
    disk.remount("size=4m"); // the operator frees space
    let server = start(&disk.data()).await;
    assert_eq!(
        listed(&http, &server).await,
        acknowledged,
        "every acknowledged registration survived kill -9 on a full disk"
    );
}

/// Fills the disk with registrations until one is refused; returns the ones acknowledged.
async fn fill(http: &reqwest::Client, server: &Server) -> BTreeSet<String> {
    let mut acknowledged = BTreeSet::new();
    for i in 0..1000 {
        let id = format!("f{i:03}");
        match register(http, server, &instance(&id, 1000)).await {
            (201, _) => {
                acknowledged.insert(id);
            }
            (507, _) => return acknowledged,
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    panic!("the disk never filled up");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_writes_change_nothing_and_writes_resume_when_space_returns() {
    // A read-only remount is refused while the server holds its files open, so the write
    // failure here is a full disk: the same commit fails, the same way.
    let Some(disk) = Tmpfs::mount("resume", "160k") else {
        return;
    };
    let mut server = start(&disk.data()).await;
    let http = reqwest::Client::new();
    for id in ["kept", "marked"] {
        assert_eq!(register(&http, &server, &instance(id, 10)).await.0, 201);
    }
    let mut acknowledged = fill(&http, &server).await;
    acknowledged.extend(["kept".to_owned(), "marked".to_owned()]);

    // On the full disk: a removal and a health mark either fail with 507 and change
    // nothing, or are saved and served.
    let removed = server.remove(&http, "orders", "kept").await;
    if removed == 507 {
        assert!(
            listed(&http, &server).await.contains("kept"),
            "an unsaved removal did not happen"
        );
    } else {
        assert_eq!(
            removed, 204,
            "a removal may fit where a registration did not"
        );
        acknowledged.remove("kept");
    }
    let marked = server.mark(&http, "orders", "marked", "unhealthy").await;
    let expected = match marked {
        507 => "unknown",
        status => {
            assert_eq!(
                status, 204,
                "a health mark may fit where a registration did not"
            );
            "unhealthy"
        }
    };
    assert_eq!(
        health_of(&http, &server, "marked").await,
        expected,
        "mark {marked}"
    );
    assert_eq!(listed(&http, &server).await, acknowledged);

    // Room again: writes resume without a restart, and what they change is served.
    disk.remount("size=4m");
    assert_eq!(
        register(&http, &server, &instance("later", 10)).await.0,
        201,
        "writes resume"
    );
    acknowledged.insert("later".to_owned());
    assert_eq!(server.mark(&http, "orders", "marked", "healthy").await, 204);
    assert_eq!(health_of(&http, &server, "marked").await, "healthy");

    // And all of it survives a kill -9.
    server.child.kill().await.expect("kill -9");
    let server = start(&disk.data()).await;
    assert_eq!(listed(&http, &server).await, acknowledged);
    assert_eq!(
        health_of(&http, &server, "marked").await,
        "healthy",
        "an acknowledged health mark outlives the restart"
    );
}

/// The health the server serves for `orders/<id>`.
async fn health_of(http: &reqwest::Client, server: &Server, id: &str) -> String {
    let records = records(http, server).await;
    let record = records
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["instance"]["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is listed: {records}"));
    record["health"].as_str().expect("a health").to_owned()
}

/// The registry's epoch part of a watch version.
async fn epoch(http: &reqwest::Client, server: &Server) -> u64 {
    let path = "/v1/services/orders/watch?after=0&wait=0";
    let (status, answer) = server.send(http, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "{answer}");
    answer["version"].as_u64().expect("a version") >> 32
}

async fn health(http: &reqwest::Client, server: &Server) -> Value {
    server
        .send(http, reqwest::Method::GET, "/health", None)
        .await
        .1
}

/// As etcd does with its NOSPACE alarm: a registry whose disk is full starts again after a
/// clean stop, serves reads and watches from what is stored, refuses writes with a JSON
/// 507 while the disk is full (and says so in `/health` and a metric), and takes writes
/// again once there is room, without a restart; a watcher never sees a version go back.
#[tokio::test(flavor = "multi_thread")]
async fn a_registry_on_a_full_disk_starts_serves_reads_and_resumes_writes() {
    let Some(disk) = Tmpfs::mount("restart", "160k") else {
        return;
    };
    let mut server = start(&disk.data()).await;
    let http = reqwest::Client::new();
    let acknowledged = fill(&http, &server).await;
    let first = epoch(&http, &server).await;
    assert!(server.terminate().await.success(), "a clean stop");

    let mut server = start(&disk.data()).await;
    assert_eq!(
        listed(&http, &server).await,
        acknowledged,
        "reads served from what is stored"
    );
    let degraded = epoch(&http, &server).await;
    assert_ne!(
        degraded, first,
        "a new epoch: a watcher takes the whole set again"
    );
    assert_eq!(health(&http, &server).await["storage"], "full");
    let (status, body) = register(&http, &server, &instance("refused", 1000)).await;
    assert_eq!(status, 507, "{body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("disk is full")));
    let text = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(text.contains("sdk_registry_storage_full 1"), "{text}");

    disk.remount("size=4m"); // the operator frees space
    let (status, body) = register(&http, &server, &instance("later", 10)).await;
    assert_eq!(status, 201, "writes taken again without a restart: {body}");
    assert_eq!(health(&http, &server).await["storage"], "ok");
    let mut expected = acknowledged;
    expected.insert("later".to_owned());
    assert!(server.terminate().await.success());

    let server = start(&disk.data()).await;
    assert_eq!(listed(&http, &server).await, expected);
    let counted = epoch(&http, &server).await;
    assert!(
        counted != degraded && counted != first,
        "three runs, three epochs: {first}, {degraded}, {counted}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_stop_merges_the_write_ahead_log() {
    let data = data_file("checkpoint");
    let mut server = start(&data).await;
    let http = reqwest::Client::new();
    assert_eq!(register(&http, &server, &instance("a", 10)).await.0, 201);
    let wal = PathBuf::from(format!("{}-wal", data.display()));
    assert!(
        std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0),
        "the write went to the log first"
    );
    assert!(server.terminate().await.success());
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "merged into the data file at the clean stop"
    );
    let server = start(&data).await;
    assert_eq!(
        listed(&http, &server).await,
        BTreeSet::from(["a".to_owned()])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_server_on_the_same_data_file_refuses_to_start() {
    let data = data_file("two-servers");
    let first = start(&data).await;
    let (status, stderr) = support::run_binary(
        &[
            "--listen",
            "127.0.0.1:0",
            "--token",
            "s3cret",
            "--data",
            data.to_str().expect("utf-8 path"),
        ],
        &[],
    )
    .await;
    assert!(!status.success());
    assert!(
        stderr.contains("in use") && stderr.contains(&format!("pid {}", first.pid())),
        "names the holder: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_removals_are_saved_too() {
    let data = data_file("health-saved");
    let mut server = start(&data).await;
    let http = reqwest::Client::new();
    for id in ["a", "b"] {
        assert_eq!(register(&http, &server, &instance(id, 10)).await.0, 201);
    }
    assert_eq!(server.mark(&http, "orders", "a", "unhealthy").await, 204);
    assert_eq!(server.remove(&http, "orders", "b").await, 204);
    server.child.kill().await.expect("kill -9");

    let server = start(&data).await;
    let records = records(&http, &server).await;
    assert_eq!(records.as_array().expect("array").len(), 1);
    assert_eq!(records[0]["instance"]["id"], "a");
    assert_eq!(
        records[0]["health"], "unhealthy",
        "the health mark was saved"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_json_snapshot_is_imported() {
    let data = data_file("upgrade");
    let old = json!([{ "id": "a", "service": "orders", "host": "127.0.0.1", "port": 8080 }]);
    std::fs::write(&data, old.to_string()).expect("write the old snapshot");
    let server = start(&data).await;
    let http = reqwest::Client::new();
    assert_eq!(
        listed(&http, &server).await,
        BTreeSet::from(["a".to_owned()])
    );
    let mut backup = data.into_os_string();
    backup.push(".json-backup");
    assert!(PathBuf::from(backup).exists(), "the old file is kept");
}
