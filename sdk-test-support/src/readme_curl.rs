//! The documentation's `curl` lines (the README and the guide under `docs/guide/`), run as
//! written against the real servers, so they stay true:
//! each crate's tests take the lines of their section, put their servers' addresses and
//! tokens in, run them with the real `curl` through `sh`, and check the status each line's
//! comment promises (a 2xx where it promises none). Shared by the registry's, the event
//! bus's and the gateway's tests.

use std::path::Path;

/// One `curl` command of the README, and the status its comment promises.
#[derive(Debug, Clone)]
pub struct Curl {
    /// The command, continuation lines joined.
    pub command: String,
    /// The status the comment after it (or on the next line) names, if any.
    pub expect: Option<u16>,
}

/// The workspace's documentation as one text: the README, then every chapter of the guide
/// (`docs/guide/*.md`) in name order. Tests that run what the documentation shows (its
/// `curl` lines, its example files) find it here, wherever it moves.
pub fn docs() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut chapters: Vec<_> = std::fs::read_dir(root.join("docs/guide"))
        .expect("docs/guide")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    chapters.sort();
    for chapter in chapters {
        text.push('\n');
        text.push_str(&std::fs::read_to_string(&chapter).expect("a chapter of the guide"));
    }
    text
}

/// The `curl` commands of the first `sh` block after the line `heading` in the README or
/// the guide ([`docs`]).
pub fn curls(heading: &str) -> Vec<Curl> {
    let readme = docs();
    let at = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the documentation has no line {heading:?}"));
    let rest = &readme[at..];
    let start = rest
        .find("\n```sh\n")
        .expect("a sh block after the heading")
        + 7;
    let block = &rest[start..start + rest[start..].find("\n```").expect("closing fence")];
    let mut found: Vec<Curl> = Vec::new();
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(comment) = line.trim_start().strip_prefix('#') {
            // A comment line under a command names what it answers.
            if let (Some(last), Some(status)) = (found.last_mut(), status_in(comment)) {
                last.expect.get_or_insert(status);
            }
            continue;
        }
        if !line.trim_start().starts_with("curl ") {
            continue;
        }
        let mut command = String::new();
        let mut current = line.to_owned();
        loop {
            let (code, comment) = split_comment(&current);
            let continued = code.trim_end().ends_with('\\');
            command.push_str(code.trim_end().trim_end_matches('\\'));
            command.push(' ');
            let open_quote = command.matches('\'').count() % 2 == 1;
            if !(continued || open_quote) {
                found.push(Curl {
                    command: command.trim().to_owned(),
                    expect: comment.and_then(status_in),
                });
                break;
            }
            match lines.next() {
                Some(next) => current = next.to_owned(),
                None => panic!("a curl line never ends: {command}"),
            }
        }
    }
    assert!(!found.is_empty(), "no curl line under {heading:?}");
    found
}

/// The code before a `#` that is outside quotes, and the comment after it.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let (mut single, mut double) = (false, false);
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && (i == 0 || line[..i].ends_with(' ')) => {
                return (&line[..i], Some(&line[i + 1..]));
            }
            _ => {}
        }
    }
    (line, None)
}

/// The status a comment starts with (`# 401 {...}`, `# 200: ...`).
fn status_in(comment: &str) -> Option<u16> {
    let word: String = comment
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    word.parse().ok().filter(|s| (100..600).contains(s))
}

/// Runs `curl` (its text with each `(from, to)` of `replace` put in) through `sh` with
/// `env`: the status and the body. A command that pipes its output (`| grep ...`) gives
/// 0 and its output, after checking it succeeded.
pub fn run(curl: &Curl, replace: &[(&str, &str)], env: &[(&str, &str)]) -> (u16, String) {
    let mut command = curl.command.clone();
    for (from, to) in replace {
        command = command.replace(from, to);
    }
    let piped = command.contains(" | ");
    let streams = command.contains(" -N ");
    // The status after the body, and a bound on a streaming request.
    let options = if piped {
        "--max-time 5 "
    } else {
        "--max-time 5 -w '\\n%{http_code}' "
    };
    let command = command.replacen("curl ", &format!("curl {options}"), 1);
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .envs(env.iter().copied())
        .output()
        .expect("run sh");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let code = output.status.code().unwrap_or(-1);
    // 28: the time ran out, as it does for a stream (`-N`) that stays open.
    assert!(
        code == 0 || (streams && code == 28),
        "`{command}` failed ({code}): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if piped {
        return (0, text);
    }
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// Runs every command and checks its status: the one its comment names, else a 2xx.
pub fn run_all(curls: &[Curl], replace: &[(&str, &str)], env: &[(&str, &str)]) -> Vec<String> {
    curls
        .iter()
        .map(|curl| {
            let (status, body) = run(curl, replace, env);
            match curl.expect {
                Some(expected) => assert_eq!(status, expected, "{}: {body}", curl.command),
                None if status != 0 => {
                    assert!(
                        (200..300).contains(&status),
                        "{}: {status} {body}",
                        curl.command
                    )
                }
                None => {}
            }
            body
        })
        .collect()
}
