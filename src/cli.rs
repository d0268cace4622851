//! Command-line flags (clap). The same definitions generate the `--help` text and
//! the man page (`man/roundup-xmlrpc-server.1`, see `tests/man_page.rs`).
//!
//! Doc comments are help text: the first paragraph is the short help (`-h`), the
//! whole comment the long help (`--help`, the man page).

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;

/// The usage lines of `--help` and the man page's SYNOPSIS (clap's own would
/// mix the serving options with the subcommands).
const USAGE: &str = "roundup-xmlrpc-server [OPTIONS] -i DIR
       roundup-xmlrpc-server [OPTIONS] NAME=DIR...
       roundup-xmlrpc-server init [OPTIONS] --admin-password PASSWORD DIR
       roundup-xmlrpc-server demo [OPTIONS] [DIR]";

/// Shown after the options by `--help` (the man page has fuller sections instead).
const AFTER_LONG_HELP: &str = "\
Examples:
  roundup-xmlrpc-server init /var/lib/roundup/tracker --admin-password 'S3cret!' \\
      --set mail_domain=example.com
  roundup-xmlrpc-server -i /var/lib/roundup/tracker
  roundup-xmlrpc-server --port 8080 support=/srv/support bugs=/srv/bugs
  roundup-xmlrpc-server -i /srv/tracker --trusted-proxy 127.0.0.1 --trusted-proxy ::1
  roundup-xmlrpc-server demo

Exit status: 0 after a clean shutdown (SIGTERM, SIGINT), 1 other failure, 2 bad
command line, 3 missing tracker, 4 invalid schema.toml, 5 cannot listen, 6 cannot
open the database, 7 invalid config.ini.

See roundup-xmlrpc-server(1) for the tracker layout, signals, systemd and proxy setup.";

/// Serve Roundup trackers over XML-RPC.
///
/// roundup-xmlrpc-server is a fast, hardened drop-in replacement for Roundup's
/// standalone roundup-xmlrpc-server. It serves one or more trackers (made with
/// `roundup-xmlrpc-server init`) over HTTP/1.1: a POST of an XML-RPC call to
/// /NAME/xmlrpc (or /NAME) runs Roundup's schema, list, display, create, set,
/// lookup, filter or action method as the user named in the Basic Authorization
/// header (anonymous without one). GET /health answers "ok" for load balancers.
///
/// It speaks plain HTTP and listens on 127.0.0.1 by default: put a TLS proxy such
/// as nginx or Apache in front of it (see --trusted-proxy). Under systemd it
/// reports readiness (Type=notify) and accepts a listening socket from a .socket
/// unit. Each request is logged on stderr as one line; passwords never are.
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
        override_usage = "roundup-xmlrpc-server init [OPTIONS] --admin-password PASSWORD DIR",
        after_long_help = "Example:\n  roundup-xmlrpc-server init /var/lib/roundup/tracker \\\n      --admin-password 'S3cret!' --set mail_domain=example.com \\\n      --set tracker_web=https://tracker.example.com/"
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
    /// IP address to listen on.
    ///
    /// Default: the address of the first tracker's config.ini [xmlrpc_server] bind,
    /// else 127.0.0.1 (loopback): put a TLS proxy in front, and use 0.0.0.0 or ::
    /// only when clients must reach this server directly (it speaks plain HTTP, so
    /// passwords would cross the network in clear text). Ignored when systemd passes
    /// a listening socket.
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,
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
    /// Accepted for compatibility with Roundup's server, and ignored.
    ///
    /// Requests and answers are always UTF-8.
    #[arg(short = 'e', long, value_name = "ENCODING")]
    pub encoding: Option<String>,
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
    /// Password of the admin user (user1).
    ///
    /// It is stored hashed (PBKDF2, or bcrypt when config.ini says so). Note that
    /// command lines are visible to other local users while the command runs.
    #[arg(long, value_name = "PASSWORD")]
    pub admin_password: String,
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
    /// IP address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,
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
    /// The address could not be bound (port in use, no permission).
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
    fn verbose_applies_to_subcommands() {
        let cli = Cli::try_parse_from(["x", "demo", "-V"]).expect("valid command line");
        assert_eq!(cli.serve.verbose, 1);
    }
}
