//! Every mistake `#[service_interface]` reports is a compile error pointing at the offending
//! tokens, with a message saying how to fix it (trybuild UI tests, `tests/ui/*.rs`).

#[test]
fn compile_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
