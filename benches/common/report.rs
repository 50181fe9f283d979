//! `docs/benchmarks.md` is written by more than one bench: the suite writes the file, and
//! other benches (the event bus's) own a section of it each. These keep one another's
//! sections.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// The sections the suite does not write, by heading: other benches' (the event bus's, the
/// gateway's) and
/// those written by hand from several runs.
pub const OWN_SECTIONS: &[&str] = &[
    "## Event bus",
    "## Event bus: runs compared",
    "## Gateway",
    "## Gateway: where a request's instructions go",
    "## SDK hot path: instructions and allocations per call",
    "## Hedged requests",
];

/// The report's path.
pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md")
}

/// The section of `text` under `heading` (through the line before the next `## `).
pub fn section<'a>(text: &'a str, heading: &str) -> Option<&'a str> {
    let start = text.find(&format!("\n{heading}\n")).map(|i| i + 1)?;
    let rest = &text[start + heading.len()..];
    let end = rest
        .find("\n## ")
        .map_or(text.len(), |i| start + heading.len() + i + 1);
    Some(&text[start..end])
}

/// `text` with the section under `heading` replaced by `body` (or added at the end).
pub fn with_section(text: &str, heading: &str, body: &str) -> String {
    let body = format!("{}\n", body.trim_end());
    match section(text, heading) {
        Some(old) => text.replacen(old, &body, 1),
        None => format!("{}\n\n{body}", text.trim_end()),
    }
}

/// `new` (the suite's report) with the sections other benches wrote into `old` kept.
pub fn keeping_own_sections(old: &str, new: &str) -> String {
    OWN_SECTIONS.iter().fold(new.to_owned(), |text, heading| {
        match section(old, heading) {
            Some(kept) if section(&text, heading).is_none() => with_section(&text, heading, kept),
            _ => text,
        }
    })
}

/// The commit the report is written at (`git rev-parse --short HEAD`), or `unknown`.
pub fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
