//! Fault injection for the crash tests: named points on the write path where a
//! test can kill the process, make the step fail, or pause it.
//!
//! `RXS_FAILPOINTS=name=action[,name=action...]`, where action is `kill` (SIGKILL
//! to the own process through kill(1): exactly `kill -9`, no destructor runs), `error` (the step
//! fails with an I/O error), or `sleep:MS`. Only debug builds read the variable
//! (the e2e tests run the debug binary); in release builds [`hit`] is an empty
//! inline function. The points are listed where they are placed
//! (`src/store/files.rs` documents the content-file ones).

/// Runs the action configured for `name`, if any.
#[cfg(debug_assertions)]
pub fn hit(name: &str) -> std::io::Result<()> {
    use std::sync::OnceLock;
    static POINTS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let points = POINTS.get_or_init(|| {
        std::env::var("RXS_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.split_once('='))
            .map(|(n, a)| (n.trim().to_string(), a.trim().to_string()))
            .collect()
    });
    let Some((_, action)) = points.iter().find(|(n, _)| n == name) else {
        return Ok(());
    };
    eprintln!("failpoint {name}: {action}");
    match action.as_str() {
        "kill" => {
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            // kill(1) is missing or failed: die without running anything else.
            std::process::abort()
        }
        "error" => Err(std::io::Error::other(format!("failpoint {name}"))),
        other => {
            if let Some(ms) = other.strip_prefix("sleep:").and_then(|m| m.parse().ok()) {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            Ok(())
        }
    }
}

/// Runs the action configured for `name`, if any (release build: nothing).
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn hit(_name: &str) -> std::io::Result<()> {
    Ok(())
}
