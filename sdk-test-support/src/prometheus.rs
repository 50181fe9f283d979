//! Prometheus text exposition read back with a real parser (Python's `prometheus_client`,
//! Debian's python3-prometheus-client, which `scripts/test` installs). Shared by the SDK's
//! and the registry's tests.

/// Parses Prometheus text exposition with a real parser (Python's `prometheus_client`) and
/// returns every sample as `(name, labels as "k=v,k=v" sorted, value)`; `None` (after saying
/// why) when the parser is missing outside CI. With `CI` set a missing parser fails.
pub fn parse(text: &str) -> Option<Vec<(String, String, f64)>> {
    use std::io::Write as _;
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value}")
"#;
    // Debian's python3-prometheus-client is in the system Python, which may not be the
    // first python3 on PATH (pyenv); try both.
    let mut why = String::from("python3 did not start");
    for python in ["/usr/bin/python3", "python3"] {
        let spawned = std::process::Command::new(python)
            .args(["-c", SCRIPT])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = spawned else { continue };
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write exposition");
        let output = child.wait_with_output().expect("parser ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No module named 'prometheus_client'") {
            why = "python3-prometheus-client is not installed".into();
            continue;
        }
        assert!(
            output.status.success(),
            "the Prometheus parser refused the exposition: {stderr}\n{text}"
        );
        return Some(samples(&output.stdout));
    }
    missing_parser(&why)
}

fn samples(stdout: &[u8]) -> Vec<(String, String, f64)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, labels, value) = (fields.next()?, fields.next()?, fields.next()?);
            Some((name.to_owned(), labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn missing_parser(reason: &str) -> Option<Vec<(String, String, f64)>> {
    crate::skip(format_args!(
        "the exposition check: {reason} (scripts/test installs it)"
    ));
    None
}

/// The sum of the samples named `name` whose labels include every `k=v` in `labels`.
pub fn value(samples: &[(String, String, f64)], name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(n, l, _)| {
            n == name && labels.iter().all(|want| l.split(',').any(|kv| kv == *want))
        })
        .map(|(_, _, v)| v)
        .sum()
}
