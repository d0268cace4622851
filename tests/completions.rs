//! The shell completion scripts in `completions/` (installed by the Debian
//! package) are what `roundup-xmlrpc-server completions SHELL` prints. This test
//! fails when they are out of date; regenerate them with:
//!
//! ```text
//! REGENERATE_COMPLETIONS=1 cargo test --test completions
//! ```
//!
//! `tests/e2e/test_operator.py` runs the scripts in bash, zsh and fish.

use roundup_xmlrpc::cli::{write_completions, CompletionShell};
use std::path::PathBuf;

const REGENERATE: &str = "REGENERATE_COMPLETIONS=1 cargo test --test completions";

/// Each shell's script and where it lives in the repository.
fn scripts() -> [(CompletionShell, PathBuf); 3] {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("completions");
    [
        (
            CompletionShell::Bash,
            dir.join("roundup-xmlrpc-server.bash"),
        ),
        (CompletionShell::Zsh, dir.join("_roundup-xmlrpc-server")),
        (
            CompletionShell::Fish,
            dir.join("roundup-xmlrpc-server.fish"),
        ),
    ]
}

#[test]
fn checked_in_completions_are_up_to_date() {
    let regenerate = std::env::var_os("REGENERATE_COMPLETIONS").is_some_and(|v| !v.is_empty());
    for (shell, path) in scripts() {
        let mut want = Vec::new();
        write_completions(shell, &mut want);
        if regenerate {
            std::fs::write(&path, &want).expect("write the script");
            eprintln!("wrote {}", path.display());
            continue;
        }
        let have = std::fs::read(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is out of date ({shell:?}). Regenerate the scripts with:\n\n    {REGENERATE}\n",
            path.display()
        );
    }
}
