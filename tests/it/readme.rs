//! The README's "Use it in your own project" section, as a newcomer would use it: its
//! `Cargo.toml`, `services.toml` and `src/main.rs` copied into a fresh crate outside this
//! workspace, built, and run.
//!
//! The crate builds against a copy of this workspace's lockfile (crates.io for anything the
//! workspace's own build did not download), in a target directory of its own
//! (`target/readme-project`), so the first run compiles its dependencies once.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The body of the first fenced block after the line starting with `label` in `readme`.
fn block_after<'a>(readme: &'a str, label: &str) -> &'a str {
    let at = readme
        .find(&format!("\n{label}"))
        .unwrap_or_else(|| panic!("README has no line starting with {label}"));
    let rest = &readme[at..];
    let fence = rest.find("\n```").expect("a code block after the label");
    let body = &rest[fence + 1..];
    let body = &body[body.find('\n').expect("fence line") + 1..];
    &body[..body.find("```\n").expect("closing fence")]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[test]
fn the_getting_started_project_builds_and_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let manifest = block_after(&readme, "`Cargo.toml`:");
    let services = block_after(&readme, "`services.toml`");
    let main = block_after(&readme, "`src/main.rs`:");

    let sdk_path = root.join("sdk");
    let manifest = manifest.replace(
        r#"sdk = { path = "../sdk-workspace/sdk" }"#,
        &format!("sdk = {{ path = {:?} }}", sdk_path.display().to_string()),
    );
    assert!(manifest.contains("sdk = { path = \"/"), "{manifest}");
    let work: PathBuf = root.join("target/readme-project");
    let krate = work.join("my-service");
    std::fs::create_dir_all(krate.join("src")).expect("crate directory");
    // Its own workspace: it lives under this one's directory but is not a member.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!("{manifest}\n[workspace]\n"),
    )
    .expect("Cargo.toml");
    std::fs::write(krate.join("services.toml"), services).expect("services.toml");
    std::fs::write(krate.join("src/main.rs"), main).expect("main.rs");
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).expect("Cargo.lock");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = work.join("target");
    let built = Command::new(&cargo)
        // Not `--offline`: on a fresh machine the crate's dependencies with their default
        // features (axum's) may need crates the workspace's own build never downloaded.
        .args(["build", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .expect("cargo runs");
    assert!(built.success(), "the README's project does not build");

    let mut child = Command::new(target.join("debug/my-service"))
        .current_dir(&krate)
        .env("GREETER_ADDR", format!("127.0.0.1:{}", free_port()))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the program starts");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the README's program did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("output");
    assert!(status.success(), "the README's program failed: {out}");
    assert_eq!(out, "Hello, Ada!\nHello, Grace!\n");
}

/// The guide's `[server.*]` block is part of the platform's one file: the SDK reads a file
/// holding it (the binaries' own tests start them from it).
#[test]
fn the_server_flags_block_is_part_of_the_sdks_file() {
    let readme = sdk_test_support::readme_curl::docs();
    let block = block_after(&readme, "All three also read their flags");
    assert!(block.contains("[server.registry]"), "{block}");
    let file = format!("[services.users]\ninstances = [\"http://127.0.0.1:1\"]\n\n{block}");
    sdk::SdkConfig::from_toml_str(&file).expect("the SDK takes the servers' tables");
}

/// Every chapter of the guide is compiled as the `sdk` crate's doctests (its Rust examples
/// stay true), and the guide's index and the README link every chapter.
#[test]
fn every_chapter_of_the_guide_is_doctested_and_linked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("sdk/src/lib.rs")).expect("sdk/src/lib.rs");
    let index = std::fs::read_to_string(root.join("docs/guide/README.md")).expect("the index");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut chapters = 0;
    for entry in std::fs::read_dir(root.join("docs/guide")).expect("docs/guide") {
        let name = entry.expect("an entry").file_name();
        let name = name.to_string_lossy();
        if !name.ends_with(".md") || name == "README.md" {
            continue;
        }
        chapters += 1;
        assert!(
            lib.contains(&format!("\"docs/guide/{name}\"")),
            "docs/guide/{name} is not among sdk's doctests (sdk/src/lib.rs, mod docs)"
        );
        assert!(
            index.contains(&format!("]({name})")),
            "the guide's index has no link to {name}"
        );
        assert!(
            readme.contains(&format!("](docs/guide/{name}")),
            "the README has no link to {name}"
        );
    }
    assert!(chapters >= 10, "{chapters} chapters");
    assert!(
        readme.lines().count() <= 250,
        "the README is {} lines: what is not needed in the first five minutes goes in the guide",
        readme.lines().count()
    );
}
