//! Command-line flags (clap). The same definitions generate the `--help` text and
//! the man page (`man/roundup-xmlrpc-server.1`, see `tests/man_page.rs`).
//!
//! Doc comments are help text: the first paragraph is the short help (`-h`), the
//! whole comment the long help (`--help`, the man page).

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The usage lines of `--help` and the man page's SYNOPSIS (clap's own would
/// mix the serving options with the subcommands).
const USAGE: &str = "roundup-xmlrpc-server [OPTIONS] -i DIR
       roundup-xmlrpc-server [OPTIONS] NAME=DIR...
       roundup-xmlrpc-server init [OPTIONS] --admin-password-file FILE DIR
       roundup-xmlrpc-server demo [OPTIONS] [DIR]
       roundup-xmlrpc-server convert-schema [OPTIONS] DIR
       roundup-xmlrpc-server completions SHELL";

/// Shown after the options by `--help` (the man page has fuller sections instead).
const AFTER_LONG_HELP: &str = "\
Examples:
  roundup-xmlrpc-server init /var/lib/roundup/tracker --admin-password-file pw.txt \\
      --set mail_domain=example.com
  roundup-xmlrpc-server -i /var/lib/roundup/tracker
  roundup-xmlrpc-server --port 8080 support=/srv/support bugs=/srv/bugs
  roundup-xmlrpc-server -i /srv/tracker --trusted-proxy 127.0.0.1 --trusted-proxy ::1
  roundup-xmlrpc-server demo
  roundup-xmlrpc-server convert-schema /srv/roundup/tracker
  roundup-xmlrpc-server completions bash > /etc/bash_completion.d/roundup-xmlrpc-server

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 other failure, 2 bad
command line, 3 missing tracker, 4 invalid schema.toml, 5 cannot listen (or resolve
the --bind name), 6 cannot open the database, 7 invalid config.ini.

See roundup-xmlrpc-server(1) for the tracker layout, signals, systemd and proxy setup.";

/// Serve Roundup trackers over XML-RPC.
///
/// roundup-xmlrpc-server is a fast, hardened drop-in replacement for Roundup's
/// standalone roundup-xmlrpc-server. It serves one or more trackers (made with
/// `roundup-xmlrpc-server init`) over HTTP/1.1: a POST of an XML-RPC call to
/// /NAME/xmlrpc (or /NAME) runs Roundup's schema, list, display, create, set,
/// lookup, filter or action method as the user named in the Basic Authorization
/// header (anonymous without one). GET /health answers "ok" for load balancers (503
/// when a tracker cannot read its database); GET /metrics answers Prometheus
/// metrics to local clients (see --metrics-allow).
///
/// It speaks plain HTTP and listens on 127.0.0.1 by default: put a TLS proxy such
/// as nginx or Apache in front of it (see --trusted-proxy). Under systemd it
/// reports readiness (Type=notify) and accepts a listening socket from a .socket
/// unit. Each request is logged on stderr as one line, as text or JSON
/// (--log-format); passwords never are.
#[derive(Debug, Parser)]
#[command(
    name = "roundup-xmlrpc-server",
    version,
    override_usage = USAGE,
    after_long_help = AFTER_LONG_HELP,
    args_conflicts_with_subcommands = true,
    disable_version_flag = true,
    disable_help_subcommand = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print the version and exit.
    #[arg(long, action = ArgAction::Version, display_order = 1000)]
    pub version: Option<bool>,
    /// What to do; without a subcommand, serve trackers.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serving options (used when no subcommand is given).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new tracker.
    ///
    /// Creates DIR with schema.toml, config.ini and initial_data.toml copied from
    /// the built-in classic template (or from --template), and a SQLite database
    /// in DIR/db holding the initial data and the admin user. The tracker can then
    /// be served with `roundup-xmlrpc-server -i DIR`.
    #[command(
        override_usage = "roundup-xmlrpc-server init [OPTIONS] --admin-password-file FILE DIR\n       \
                          ROUNDUP_ADMIN_PASSWORD=PASSWORD roundup-xmlrpc-server init [OPTIONS] DIR",
        after_long_help = "Example:\n  roundup-xmlrpc-server init /var/lib/roundup/tracker \\\n      --admin-password-file /root/tracker-admin.txt --set mail_domain=example.com \\\n      --set tracker_web=https://tracker.example.com/"
    )]
    Init(InitArgs),
    /// Create (if missing) and serve a demo tracker, like roundup-demo.
    ///
    /// The first time, creates DIR as a classic tracker with the users admin
    /// (password admin) and demo (password demo) and one issue, so that the sample
    /// session of Roundup's XML-RPC documentation works as printed. Then serves it
    /// at http://localhost:8917/DIRNAME/xmlrpc until SIGTERM or SIGINT. For trying
    /// things out only: the passwords are well known.
    #[command(
        override_usage = "roundup-xmlrpc-server demo [OPTIONS] [DIR]",
        after_long_help = "Example:\n  roundup-xmlrpc-server demo\n  python3 -c \"import xmlrpc.client as x; print(x.ServerProxy('http://admin:admin@localhost:8917/demo/xmlrpc').list('user'))\""
    )]
    Demo(DemoArgs),
    /// Write schema.toml for an existing Roundup tracker.
    ///
    /// Loads the tracker's schema.py and detectors with the installed Python Roundup
    /// (python3, or $ROUNDUP_PYTHON) and writes the equivalent DIR/schema.toml, so
    /// that this server can serve the tracker next to Roundup's web UI and mail
    /// gateway. Check functions and detectors it cannot express are reported by
    /// name and file:line and nothing is written, unless --allow-unconverted is
    /// given (then they are left out: a grant whose check cannot be expressed is
    /// dropped, never widened).
    #[command(override_usage = "roundup-xmlrpc-server convert-schema [OPTIONS] DIR")]
    ConvertSchema(ConvertArgs),
    /// Print a shell completion script.
    ///
    /// Writes the completion script for SHELL on stdout. The Debian package
    /// installs them; otherwise, for example:
    /// `roundup-xmlrpc-server completions bash > /etc/bash_completion.d/roundup-xmlrpc-server`,
    /// `roundup-xmlrpc-server completions zsh > /usr/local/share/zsh/site-functions/_roundup-xmlrpc-server`,
    /// `roundup-xmlrpc-server completions fish > ~/.config/fish/completions/roundup-xmlrpc-server.fish`.
    #[command(override_usage = "roundup-xmlrpc-server completions SHELL")]
    Completions(CompletionsArgs),
}

/// Options of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: CompletionShell,
}

/// The shells `completions` writes scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU Bash (bash-completion).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

impl CompletionShell {
    /// The shell as clap_complete knows it.
    pub fn generator(self) -> clap_complete::Shell {
        match self {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// The program's name, as installed.
pub const BIN_NAME: &str = "roundup-xmlrpc-server";

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: CompletionShell, out: &mut dyn std::io::Write) {
    use clap::CommandFactory;
    // Without the NAME=DIR positionals: they would take the subcommand's place in
    // the scripts (zsh then completes `init`'s arguments with subcommand names),
    // and cannot be completed anyway. clap_complete ignores `hide` on them.
    let full = Cli::command();
    let mut cmd = clap::Command::new(BIN_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .args_conflicts_with_subcommands(true)
        .disable_version_flag(true)
        .disable_help_subcommand(true);
    for arg in full.get_arguments().filter(|a| a.get_id() != "trackers") {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands() {
        cmd = cmd.subcommand(sub.clone());
    }
    let mut script = Vec::new();
    clap_complete::generate(shell.generator(), &mut cmd, BIN_NAME, &mut script);
    let mut script = String::from_utf8_lossy(&script).into_owned();
    match shell {
        // clap_complete's bash script spells the states of a hyphenated program's
        // subcommands two ways (clap issue 6421), so options after a subcommand
        // never completed: use the spelling of the dispatch loop for the labels.
        CompletionShell::Bash => {
            let sep = "__subcmd__";
            script = script.replace(
                &format!("{}{sep}", BIN_NAME.replace('-', sep)),
                &format!("{}{sep}", BIN_NAME.replace('-', "__")),
            );
        }
        // clap_complete's fish script offers no values for positional arguments.
        CompletionShell::Fish => {
            let fn_name = BIN_NAME.replace('-', "_");
            for sub in cmd.get_subcommands() {
                for arg in sub.get_positionals() {
                    let values: Vec<String> = arg
                        .get_possible_values()
                        .iter()
                        .filter(|v| !v.is_hide_set())
                        .map(|v| v.get_name().to_string())
                        .collect();
                    if !values.is_empty() {
                        script.push_str(&format!(
                            "complete -c {BIN_NAME} -n \"__fish_{fn_name}_using_subcommand {}\" -f -a \"{}\"\n",
                            sub.get_name(),
                            values.join(" ")
                        ));
                    }
                }
            }
        }
        CompletionShell::Zsh => {}
    }
    // Writing to stdout: a closed pipe is the reader's business.
    let _ = out.write_all(script.as_bytes());
}

/// Options of `convert-schema`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The Roundup tracker directory (with schema.py).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Write schema.toml even when some checks or detectors cannot be converted
    /// (they are left out and reported).
    #[arg(long)]
    pub allow_unconverted: bool,
}

/// Which proxy header carries the client address (`--forwarded-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ForwardedHeaderArg {
    /// X-Forwarded-For: client, proxy1, ... (nginx, Apache, HAProxy, most load balancers).
    #[default]
    #[value(name = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 Forwarded: for=client, for=proxy1, ...
    #[value(name = "forwarded")]
    Forwarded,
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// key=value text after the time and level.
    #[value(name = "text")]
    Text,
    /// One JSON object a line (timestamp, level, message and the same fields).
    #[value(name = "json")]
    Json,
}

/// Options for serving trackers.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve the tracker in DIR.
    ///
    /// It answers at /NAME/xmlrpc and /NAME, NAME being the directory name, and also
    /// at / and /xmlrpc (Roundup's standalone server's -i). Can be combined with
    /// NAME=DIR arguments.
    #[arg(short = 'i', long = "instance", value_name = "DIR")]
    pub instance: Option<PathBuf>,
    /// Serve the tracker in DIR at /NAME/xmlrpc and /NAME.
    ///
    /// Any number of trackers can be served by one process, as Roundup's server
    /// takes them. NAME is matched case-insensitively and must not contain '/'.
    #[arg(value_name = "NAME=DIR")]
    pub trackers: Vec<String>,
    /// TCP port to listen on.
    ///
    /// 0 picks a free port. The address actually bound is printed on stdout as
    /// "listening on http://ADDR:PORT/". Default: the port of the first tracker's
    /// config.ini [xmlrpc_server] bind, else 8000. Ignored when systemd passes a
    /// listening socket (socket activation, LISTEN_FDS).
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,
    /// IP address or host name to listen on.
    ///
    /// Default: the address of the first tracker's config.ini [xmlrpc_server] bind,
    /// else 127.0.0.1 (loopback): put a TLS proxy in front, and use 0.0.0.0 or ::
    /// only when clients must reach this server directly (it speaks plain HTTP, so
    /// passwords would cross the network in clear text). A host name (localhost) is
    /// resolved once at start-up and the server listens on one of its addresses: the
    /// first that can be bound, IPv4 addresses before IPv6 ones (so localhost is
    /// 127.0.0.1); a name that does not resolve ends the server with exit status 5.
    /// Ignored when systemd passes a listening socket.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
    /// Believe the forwarding header of requests from this proxy (repeatable).
    ///
    /// An IP address or a network in CIDR form (127.0.0.1, ::1, 10.0.0.0/8). When the
    /// TCP peer is a trusted proxy, the client address (used in the log and for the
    /// failed-login limit per address) is the rightmost address of the
    /// --forwarded-header header that is not a trusted proxy. Without this option,
    /// the trusted_proxies of the trackers' config.ini [xmlrpc_server] sections
    /// apply (all of them, when several trackers are served); by default no proxy is
    /// trusted and the headers are ignored.
    #[arg(long = "trusted-proxy", value_name = "ADDR[/BITS]")]
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies put the client address in.
    ///
    /// The other header is ignored, so that clients cannot slip a made-up address
    /// past a proxy that only rewrites one of them.
    #[arg(
        long = "forwarded-header",
        value_name = "HEADER",
        value_enum,
        default_value_t = ForwardedHeaderArg::XForwardedFor
    )]
    pub forwarded_header: ForwardedHeaderArg,
    /// Serve GET /metrics to clients of this address or network (repeatable).
    ///
    /// The client is the address after --trusted-proxy resolution, so a request
    /// forwarded by a proxy counts as its original client's. Others get 403. Without
    /// this option, the metrics_allow of the trackers' config.ini [xmlrpc_server]
    /// sections apply (all of them), else loopback only (127.0.0.0/8, ::1). The
    /// metrics show usage (calls per tracker and method, failed logins): do not
    /// forward /metrics from the internet in the proxy either.
    #[arg(long = "metrics-allow", value_name = "ADDR[/BITS]")]
    pub metrics_allow: Vec<String>,
    /// Most connections open at once from one client address (0: no cap).
    ///
    /// Counted by TCP peer address (IPv6: per /64 network) when the connection is
    /// accepted; more get "503 Service Unavailable" with Retry-After and are closed
    /// without being read. Connections from trusted proxies (--trusted-proxy) are not
    /// counted, since all their clients share their address. Default: the smallest
    /// max_connections_per_address of the trackers' config.ini [xmlrpc_server]
    /// sections, else 64.
    #[arg(long, value_name = "N")]
    pub max_connections_per_address: Option<usize>,
    /// Most request-body bytes held in memory at once, over all requests.
    ///
    /// A request's body is reserved before it is read (its Content-Length, or chunk by
    /// chunk; a gunzipped copy as it grows); a request that does not fit gets "503
    /// Service Unavailable" with Retry-After. Bodies are read only after the caller
    /// has been authenticated and found to hold the Xmlrpc Access permission. When it
    /// is below the largest accepted body, that limit is lowered to it. Default: the
    /// smallest max_body_bytes_in_flight of the trackers' config.ini [xmlrpc_server]
    /// sections, else 67108864 (64 MiB).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_body_bytes_in_flight: Option<u64>,
    /// Accepted for compatibility with Roundup's server, and ignored.
    ///
    /// Requests and answers are always UTF-8.
    #[arg(short = 'e', long, value_name = "ENCODING")]
    pub encoding: Option<String>,
    /// Write log lines as text (the default) or as JSON, one object a line.
    ///
    /// Default: the log_format of the first tracker's config.ini [xmlrpc_server],
    /// else text. The lines written while the trackers are opened are text unless
    /// this option says json. Both formats have the same fields; durations are
    /// duration_ms (milliseconds) in every line.
    #[arg(long, value_name = "FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormatArg>,
    /// Log more: -V debug, -VV trace (the default is info).
    ///
    /// Logs go to stderr, one line per event, without colours unless stderr is a
    /// terminal (and NO_COLOR is unset). The RUST_LOG environment variable, e.g.
    /// RUST_LOG=warn or RUST_LOG=roundup_xmlrpc=debug, overrides this option.
    #[arg(short = 'V', long = "verbose", action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The tracker directory to create (must not exist, or be empty).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Read the password of the admin user (user1) from FILE.
    ///
    /// The first line of FILE is the password (without its line end); `-` reads it
    /// from standard input. The password is stored hashed (PBKDF2, or bcrypt when
    /// config.ini says so). This, or the ROUNDUP_ADMIN_PASSWORD environment
    /// variable, keeps the password out of the shell history and the process list.
    #[arg(long, value_name = "FILE", conflicts_with = "admin_password")]
    pub admin_password_file: Option<PathBuf>,
    /// Password of the admin user (user1).
    ///
    /// Prefer --admin-password-file or the ROUNDUP_ADMIN_PASSWORD environment
    /// variable (used when neither option is given): command lines are visible to
    /// other local users while the command runs, and stay in the shell history. One
    /// of the three is required.
    #[arg(long, value_name = "PASSWORD")]
    pub admin_password: Option<String>,
    /// Copy the tracker from this template directory instead of the built-in
    /// classic template.
    ///
    /// The directory must hold schema.toml, config.ini and initial_data.toml.
    #[arg(long, value_name = "DIR")]
    pub template: Option<PathBuf>,
    /// Set a config.ini option (repeatable).
    ///
    /// Takes the names roundup-admin install takes (admin_email, mail_domain,
    /// mail_debug, tracker_web, password_pbkdf2_default_rounds, ...) or
    /// SECTION.OPTION, e.g. --set mail_domain=example.com --set
    /// xmlrpc_server.trusted_proxies=127.0.0.1.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo tracker lives (created if it has no schema.toml).
    #[arg(value_name = "DIR", default_value = "demo")]
    pub dir: PathBuf,
    /// TCP port to listen on.
    #[arg(short = 'p', long, value_name = "PORT", default_value_t = 8917)]
    pub port: u16,
    /// IP address or host name to listen on (see the server's --bind).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: String,
}

/// Exit codes (documented in the man page's EXIT STATUS section).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Any other failure.
    pub const FAILURE: i32 = 1;
    /// Bad command line (clap's own code).
    pub const USAGE: i32 = 2;
    /// The tracker directory is missing or is not a tracker.
    pub const NO_TRACKER: i32 = 3;
    /// schema.toml or initial_data.toml is invalid.
    pub const BAD_SCHEMA: i32 = 4;
    /// The address could not be bound (port in use, no permission), or the
    /// `--bind` host name could not be resolved.
    pub const BIND: i32 = 5;
    /// The database could not be opened or upgraded.
    pub const DATABASE: i32 = 6;
    /// config.ini is invalid.
    pub const BAD_CONFIG: i32 = 7;
    /// The database server (PostgreSQL) cannot be reached.
    pub const DB_UNREACHABLE: i32 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_is_documented() {
        fn check(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "{} {}: no help text",
                    cmd.get_name(),
                    arg.get_id()
                );
            }
            cmd.get_subcommands().for_each(check);
        }
        let mut cmd = Cli::command();
        cmd.build();
        check(&cmd);
    }

    #[test]
    fn forwarded_header_values() {
        let cli = Cli::try_parse_from(["x", "--forwarded-header", "forwarded", "-i", "d"])
            .expect("valid command line");
        assert_eq!(cli.serve.forwarded_header, ForwardedHeaderArg::Forwarded);
        let cli = Cli::try_parse_from(["x", "-i", "d"]).expect("valid command line");
        assert_eq!(
            cli.serve.forwarded_header,
            ForwardedHeaderArg::XForwardedFor
        );
        assert!(Cli::try_parse_from(["x", "--forwarded-header", "via"]).is_err());
    }

    #[test]
    fn completion_scripts_are_generated() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let text = String::from_utf8(out).expect("UTF-8");
            for word in ["convert-schema", "completions", "admin-password-file"] {
                assert!(text.contains(word), "{shell:?}: {word} missing");
            }
            assert!(!text.contains("trackers"), "{shell:?}: NAME=DIR offered");
        }
    }

    #[test]
    fn verbose_applies_to_subcommands() {
        let cli = Cli::try_parse_from(["x", "demo", "-V"]).expect("valid command line");
        assert_eq!(cli.serve.verbose, 1);
    }
}
