//! Command-line flags (clap). The same definitions generate the man page.

use clap::{ArgAction, Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

/// Serve Roundup trackers over XML-RPC: a fast, hardened drop-in replacement for
/// Roundup's roundup-xmlrpc-server.
#[derive(Debug, Parser)]
#[command(name = "roundup-xmlrpc-server", version, about, long_about = None, args_conflicts_with_subcommands = true, disable_version_flag = true)]
pub struct Cli {
    /// Print the version.
    #[arg(long, action = ArgAction::Version)]
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
    /// Create a new tracker (the classic template unless --template is given).
    Init(InitArgs),
    /// Create (if missing) and serve a demo tracker on 127.0.0.1:8917, like roundup-demo.
    Demo(DemoArgs),
}

/// Options for serving trackers.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Tracker directory to serve (at /, /xmlrpc, /NAME and /NAME/xmlrpc, NAME being
    /// the directory name).
    #[arg(short = 'i', long = "instance", value_name = "DIR")]
    pub instance: Option<PathBuf>,
    /// Trackers to serve as NAME=DIR (at /NAME and /NAME/xmlrpc), as Roundup's server takes them.
    #[arg(value_name = "NAME=DIR")]
    pub trackers: Vec<String>,
    /// TCP port to listen on (0 picks a free one and prints it).
    #[arg(short = 'p', long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on. Loopback by default: put a TLS proxy in front and
    /// use --bind 0.0.0.0 only when clients must reach this server directly.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Peers whose X-Forwarded-For / Forwarded headers are believed (address or CIDR; repeatable).
    #[arg(long = "trusted-proxy", value_name = "ADDR[/BITS]")]
    pub trusted_proxies: Vec<String>,
    /// Accepted for compatibility with Roundup; requests are always UTF-8.
    #[arg(short = 'e', long, value_name = "ENCODING")]
    pub encoding: Option<String>,
    /// More logging (-V: debug, -VV: trace). RUST_LOG overrides.
    #[arg(short = 'V', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
}

/// Options of `init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The tracker directory to create (must not exist, or be empty).
    pub dir: PathBuf,
    /// Password of the admin user.
    #[arg(long, value_name = "PASSWORD")]
    pub admin_password: String,
    /// A template directory (schema.toml, config.ini, initial_data.toml) instead of the built-in classic one.
    #[arg(long, value_name = "DIR")]
    pub template: Option<PathBuf>,
    /// config.ini settings, as roundup-admin install takes them (admin_email, mail_domain,
    /// mail_debug, tracker_web, password_pbkdf2_default_rounds, or section.option).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
}

/// Options of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the demo tracker lives.
    #[arg(default_value = "demo")]
    pub dir: PathBuf,
    /// TCP port to listen on.
    #[arg(short = 'p', long, default_value_t = 8917)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
}

/// Exit codes (documented in the man page).
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
}
