//! `convert-schema`: writes `schema.toml` for an existing Roundup tracker, so that
//! the daemon can serve it (its `config.ini` and `db/db` are used as they are).
//!
//! The conversion itself is `scripts/convert-schema.py`, which loads the tracker
//! with the installed Roundup (its `schema.py`, detectors and extensions run) and
//! writes what they set up in our format. This module runs that script with the
//! Python named by [`PYTHON_ENV`] (default `python3`), validates its output with
//! the schema loader and only then writes `TRACKER_DIR/schema.toml`.

use crate::schema::{parse_schema, SchemaError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The conversion script, embedded so that an installed binary can run it
/// without the source tree (it is fed to Python on standard input).
pub const SCRIPT: &str = include_str!("../../scripts/convert-schema.py");

/// Environment variable naming the Python interpreter to run the script with;
/// `python3` (from `PATH`) when unset. Roundup must be importable by it.
pub const PYTHON_ENV: &str = "ROUNDUP_PYTHON";

/// The script's exit status when some items could not be converted.
const EXIT_UNCONVERTED: i32 = 1;

/// Why a tracker could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The directory has no `schema.py`.
    #[error("{0}: not a Roundup tracker directory (no schema.py)")]
    NotRoundupTracker(PathBuf),
    /// `schema.toml` exists already; it is never overwritten.
    #[error("{0} already exists; remove or rename it to convert again")]
    SchemaExists(PathBuf),
    /// Python could not be started.
    #[error(
        "cannot run {python}: {source} (set {PYTHON_ENV} to a Python 3 that can import roundup)"
    )]
    Python {
        /// The interpreter that was tried.
        python: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Some items (check functions, detectors, extensions, property options)
    /// cannot be expressed in schema.toml; nothing was written.
    #[error(
        "some of the tracker could not be converted; nothing written (convert with \
         --allow-unconverted to write the schema without those items):\n{report}"
    )]
    Unconverted {
        /// The script's report (`file:line: message` lines).
        report: String,
    },
    /// The script failed (Roundup missing, the tracker does not load, ...).
    #[error("the conversion failed ({status}):\n{report}")]
    Failed {
        /// How the script ended, e.g. `exit status: 2`.
        status: String,
        /// What it printed on standard error.
        report: String,
    },
    /// The script's output is not a valid schema.toml (a conversion bug).
    #[error("the converted schema does not load: {error}\n{report}")]
    Invalid {
        /// The loader's error.
        error: SchemaError,
        /// The script's report.
        report: String,
    },
    /// `schema.toml` could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the script is looked for on disk before the embedded copy is used: next
/// to the executable's `../../scripts/` (a `target/<profile>/` build of the source
/// tree), then the source tree this binary was built from.
fn script_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            out.push(dir.join("../../scripts/convert-schema.py"));
        }
    }
    out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/convert-schema.py"));
    out
}

/// Converts the Roundup tracker in `tracker_dir`: runs `convert-schema.py`,
/// validates the result with [`parse_schema`] and writes
/// `tracker_dir/schema.toml` (refusing to replace an existing one). With
/// `allow_unconverted`, items that cannot be converted are left out (and still
/// reported) instead of failing. Returns the conversion report: one
/// `file:line: ...` line per item not converted or worth a note, a summary line
/// and the path written.
pub fn convert_schema(tracker_dir: &Path, allow_unconverted: bool) -> Result<String, ConvertError> {
    let on_disk = script_candidates().into_iter().find(|p| p.is_file());
    convert_with(tracker_dir, allow_unconverted, on_disk.as_deref())
}

/// [`convert_schema`] with the script at `script`, or the embedded one (fed on
/// standard input) when None.
fn convert_with(
    tracker_dir: &Path,
    allow_unconverted: bool,
    on_disk: Option<&Path>,
) -> Result<String, ConvertError> {
    if !tracker_dir.join("schema.py").is_file() {
        return Err(ConvertError::NotRoundupTracker(tracker_dir.to_path_buf()));
    }
    let target = tracker_dir.join("schema.toml");
    if target.exists() {
        return Err(ConvertError::SchemaExists(target));
    }
    let python = std::env::var(PYTHON_ENV).unwrap_or_else(|_| "python3".to_string());
    let mut cmd = Command::new(&python);
    match on_disk {
        Some(path) => cmd.arg(path),
        None => cmd.arg("-"),
    };
    cmd.arg(tracker_dir);
    if allow_unconverted {
        cmd.arg("--allow-unconverted");
    }
    cmd.env("PYTHONIOENCODING", "utf-8")
        .stdin(if on_disk.is_some() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_err = |source| ConvertError::Python {
        python: python.clone(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // Python reads the whole program before running it, so this cannot
        // deadlock on the output pipes.
        stdin.write_all(SCRIPT.as_bytes()).map_err(spawn_err)?;
    }
    let output = child.wait_with_output().map_err(spawn_err)?;
    let report = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    if !output.status.success() {
        return Err(match output.status.code() {
            Some(EXIT_UNCONVERTED) => ConvertError::Unconverted { report },
            _ => ConvertError::Failed {
                status: output.status.to_string(),
                report,
            },
        });
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if let Err(error) = parse_schema(&text, &target.display().to_string()) {
        return Err(ConvertError::Invalid { error, report });
    }
    let write_err = |source| ConvertError::Write {
        path: target.clone(),
        source,
    };
    // create_new: never replace a schema.toml that appeared meanwhile.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(ConvertError::SchemaExists(target))
        }
        Err(e) => return Err(write_err(e)),
    };
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err)?;
    let mut out = report;
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!("wrote {}", target.display()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::BuiltinDetector;

    #[test]
    fn refuses_non_roundup_directory() {
        let dir = std::env::temp_dir().join(format!("rxs-convert-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = convert_schema(&dir, false).unwrap_err();
        assert!(matches!(err, ConvertError::NotRoundupTracker(_)), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_to_overwrite_schema_toml() {
        let dir = std::env::temp_dir().join(format!("rxs-convert-exists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("schema.py"), "").unwrap();
        std::fs::write(dir.join("schema.toml"), "keep me").unwrap();
        let err = convert_schema(&dir, true).unwrap_err();
        assert!(matches!(err, ConvertError::SchemaExists(_)), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("schema.toml")).unwrap(),
            "keep me"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn embedded_script_is_the_one_in_scripts() {
        assert!(SCRIPT.starts_with("#!/usr/bin/env python3"));
        assert!(SCRIPT.contains("def main("));
    }

    /// A `roundup-admin install TEMPLATE sqlite` tracker in a new temporary
    /// directory, or None when Roundup is not installed (the test is skipped).
    fn roundup_tracker(template: &str) -> Option<PathBuf> {
        let ok = Command::new("python3")
            .args(["-c", "import roundup.instance"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: roundup is not importable by python3");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "rxs-convert-{template}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let status = Command::new("python3")
            .args(["-m", "roundup.scripts.roundup_admin", "-i"])
            .arg(&dir)
            .args([
                "install",
                template,
                "sqlite",
                "admin_email=admin@example.com,mail_domain=example.com",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("run roundup-admin");
        assert!(status.success(), "roundup-admin install {template} failed");
        Some(dir)
    }

    #[test]
    fn embedded_script_converts_minimal() {
        let Some(dir) = roundup_tracker("minimal") else {
            return;
        };
        let report = convert_with(&dir, false, None).unwrap();
        assert!(report.contains("converted 1 classes"), "{report}");
        let schema = crate::schema::load_schema(&dir.join("schema.toml")).unwrap();
        assert_eq!(schema.classes.len(), 1);
        assert!(
            schema.detectors.enabled(BuiltinDetector::UserAuditor)
                && !schema.detectors.enabled(BuiltinDetector::NosyReaction)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn devel_converts_with_its_detectors_on_its_classes() {
        let Some(dir) = roundup_tracker("devel") else {
            return;
        };
        let report = convert_with(&dir, false, None).unwrap();
        assert!(report.contains("0 item(s) not converted"), "{report}");
        assert!(
            report.contains(
                "extensions/spambayes.py:1: note: tracker extension (registerAction \
                 'spambayes_classify', registerUtil 'sb_is_spam'): web templating and web \
                 actions only; not needed by the XML-RPC daemon"
            ),
            "{report}"
        );
        let schema = crate::schema::load_schema(&dir.join("schema.toml")).unwrap();
        let d = &schema.detectors;
        assert_eq!(
            d.classes(BuiltinDetector::NosyReaction),
            ["bug", "task", "milestone"]
        );
        assert_eq!(d.classes(BuiltinDetector::NoTextHtml), ["file"]);
        assert!(!d.enabled(BuiltinDetector::StatusAuditor));
        assert!(!d.enabled(BuiltinDetector::PresetNew), "registers nothing");
        assert!(d.python.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unconverted_items_fail_unless_allowed() {
        let Some(dir) = roundup_tracker("minimal") else {
            return;
        };
        // A detector registered by schema.py cannot be run by the daemon.
        let mut schema_py = std::fs::read_to_string(dir.join("schema.py")).unwrap();
        schema_py.push_str(
            "\ndef stamp(db, cl, nodeid, newvalues):\n    pass\n\n\
             user.audit('create', stamp)\n",
        );
        std::fs::write(dir.join("schema.py"), schema_py).unwrap();
        let err = convert_with(&dir, false, None).unwrap_err();
        let ConvertError::Unconverted { report } = &err else {
            panic!("{err}");
        };
        assert!(
            report.contains(
                "not converted: auditor 'stamp' on user create is registered outside \
                 detectors/"
            ),
            "{report}"
        );
        assert!(!dir.join("schema.toml").exists());
        let report = convert_with(&dir, true, None).unwrap();
        assert!(report.contains("1 item(s) not converted"), "{report}");
        assert!(dir.join("schema.toml").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
