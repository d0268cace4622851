//! The man page `man/roundup-xmlrpc-server.1` is generated: clap_mangen renders the
//! command-line definitions of `src/cli.rs` (options of the server and of each
//! subcommand), and the hand-written sections of `man/extra-sections.roff` (tracker
//! layout, signals, exit status, files, examples, ...) are appended.
//!
//! This test fails when the checked-in page differs from what the generator
//! produces. Regenerate it with:
//!
//! ```text
//! REGENERATE_MAN=1 cargo test --test man_page
//! ```

mod require;

use clap::CommandFactory;
use roundup_xmlrpc::cli::{exit, Cli};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const REGENERATE: &str = "REGENERATE_MAN=1 cargo test --test man_page";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn man_path() -> PathBuf {
    repo().join("man").join("roundup-xmlrpc-server.1")
}

/// Renders the whole page.
fn render_man() -> Vec<u8> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    let man = clap_mangen::Man::new(cmd.clone());
    // clap_mangen writes an empty date as nothing, which shifts the later .TH
    // arguments; no date keeps the page reproducible.
    writeln!(
        out,
        ".TH ROUNDUP-XMLRPC-SERVER 1 \"\" \"roundup-xmlrpc-server {}\" \"User Commands\"",
        env!("CARGO_PKG_VERSION")
    )
    .expect("write to Vec");
    man.render_name_section(&mut out).expect("write to Vec");
    man.render_synopsis_section(&mut out).expect("write to Vec");
    man.render_description_section(&mut out)
        .expect("write to Vec");
    man.render_options_section(&mut out).expect("write to Vec");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_subcommand(&mut out, sub);
    }
    let extra = std::fs::read(repo().join("man").join("extra-sections.roff"))
        .expect("man/extra-sections.roff is readable");
    out.extend_from_slice(&extra);
    man.render_version_section(&mut out).expect("write to Vec");
    out
}

/// One section per subcommand: its synopsis, description and options (clap_mangen
/// would instead refer to separate roundup-xmlrpc-server-NAME(1) pages).
fn render_subcommand(out: &mut Vec<u8>, sub: &clap::Command) {
    let name = sub.get_name();
    let full = format!("roundup-xmlrpc-server {name}");
    let man = clap_mangen::Man::new(sub.clone().bin_name(full.clone()));
    let mut body = Vec::new();
    man.render_synopsis_section(&mut body)
        .expect("write to Vec");
    man.render_description_section(&mut body)
        .expect("write to Vec");
    man.render_options_section(&mut body).expect("write to Vec");
    let body = String::from_utf8(body).expect("clap_mangen writes UTF-8");
    writeln!(out, ".SH \"{} COMMAND\"", name.to_uppercase()).expect("write to Vec");
    for line in body.lines() {
        match line {
            ".SH SYNOPSIS" => {}
            ".SH DESCRIPTION" => writeln!(out, ".PP").expect("write to Vec"),
            ".SH OPTIONS" => {
                writeln!(out, ".SS \"Options of {name}\"").expect("write to Vec");
            }
            other if other.starts_with(".SH") => {
                panic!("unexpected section in the {name} subcommand: {other}")
            }
            other => writeln!(out, "{other}").expect("write to Vec"),
        }
    }
}

#[test]
fn checked_in_man_page_is_up_to_date() {
    let want = render_man();
    let path = man_path();
    if std::env::var_os("REGENERATE_MAN").is_some_and(|v| !v.is_empty()) {
        std::fs::write(&path, &want).expect("write the man page");
        eprintln!("wrote {}", path.display());
        return;
    }
    let have = std::fs::read(&path).unwrap_or_default();
    if have != want {
        let have = String::from_utf8_lossy(&have);
        let want = String::from_utf8_lossy(&want);
        let first_diff = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| have.lines().count().min(want.lines().count()));
        panic!(
            "{} is out of date (first difference at line {}:\n  checked in: {:?}\n  generated:  {:?}).\n\
             Regenerate it with:\n\n    {REGENERATE}\n",
            path.display(),
            first_diff + 1,
            have.lines().nth(first_diff).unwrap_or("<end of file>"),
            want.lines().nth(first_diff).unwrap_or("<end of file>"),
        );
    }
}

/// The page documents every option of every command and every exit code.
#[test]
fn man_page_covers_options_and_exit_codes() {
    let page = String::from_utf8(render_man()).expect("UTF-8");
    let mut cmd = Cli::command();
    cmd.build();
    let mut commands = vec![&cmd];
    commands.extend(cmd.get_subcommands());
    for c in commands {
        for arg in c.get_arguments() {
            if let Some(long) = arg.get_long() {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&roff), "--{long} of {} missing", c.get_name());
            }
        }
    }
    for section in [
        "TRACKER LAYOUT",
        "SIGNALS",
        "EXIT STATUS",
        "FILES",
        "EXAMPLES",
        "SEE ALSO",
        "INIT COMMAND",
        "DEMO COMMAND",
        "CONVERT-SCHEMA COMMAND",
        "COMPLETIONS COMMAND",
        "ENVIRONMENT",
    ] {
        assert!(
            page.contains(&format!(".SH \"{section}\""))
                || page.contains(&format!(".SH {section}\n")),
            "section {section} missing"
        );
    }
    // Every subcommand has its line in the SYNOPSIS.
    let synopsis = page
        .split(".SH SYNOPSIS")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH").next())
        .expect("SYNOPSIS section");
    for sub in cmd.get_subcommands() {
        let name = sub.get_name().replace('-', "\\-");
        assert!(
            synopsis.contains(&format!("roundup\\-xmlrpc\\-server\\fR {name} ")),
            "{} missing from the SYNOPSIS:\n{synopsis}",
            sub.get_name()
        );
    }
    let status = page
        .split(".SH \"EXIT STATUS\"")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH").next())
        .expect("EXIT STATUS section");
    for code in [
        exit::OK,
        exit::FAILURE,
        exit::USAGE,
        exit::NO_TRACKER,
        exit::BAD_SCHEMA,
        exit::BIND,
        exit::DATABASE,
        exit::BAD_CONFIG,
        exit::DB_UNREACHABLE,
    ] {
        assert!(
            status.contains(&format!(".B {code}\n")),
            "exit status {code} not documented"
        );
    }
}

/// `man -l` renders the checked-in page without warnings (skipped without man).
#[test]
fn man_renders_the_page() {
    if which("man").is_none() {
        require::missing("`man` (apt-get install man-db)");
        return;
    }
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(man_path())
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("run man");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man failed: {stderr}");
    assert!(stderr.trim().is_empty(), "man/groff warnings:\n{stderr}");
    for needle in [
        "roundup-xmlrpc-server - Serve Roundup trackers over XML-RPC",
        "--trusted-proxy",
        "EXIT STATUS",
        "Options of init",
        "--admin-password",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} not in the rendered page:\n{stdout}"
        );
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
