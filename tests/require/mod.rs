//! What an integration test needs from the machine beyond Rust (python3 with
//! Roundup, `man`): without it the test is skipped with a message, unless
//! `RXS_REQUIRE_TOOLS` is set — CI sets it, so no test passes there by skipping.

/// Reports that `what` is missing: panics when `RXS_REQUIRE_TOOLS` is set,
/// otherwise prints why the test is skipped. The caller returns afterwards.
pub fn missing(what: &str) {
    assert!(
        std::env::var_os("RXS_REQUIRE_TOOLS").is_none(),
        "required tool missing (RXS_REQUIRE_TOOLS is set): {what}"
    );
    eprintln!("skipped: {what}");
}
