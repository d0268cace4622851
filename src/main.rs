//! The `roundup-xmlrpc-server` binary: parses flags, opens the trackers, binds
//! the socket (or takes the one systemd passes) and runs the server until SIGTERM
//! or SIGINT, telling systemd when it is ready and when it stops. Errors print one
//! line and map to the exit codes in [`roundup_xmlrpc::cli::exit`].

use clap::Parser;
use roundup_xmlrpc::app::App;
use roundup_xmlrpc::cli::{
    exit, Cli, Command, ConvertArgs, DemoArgs, ForwardedHeaderArg, InitArgs, ServeArgs,
};
use roundup_xmlrpc::server::{self, ForwardedHeader, IpNet, ServerConfig};
use roundup_xmlrpc::tracker::{config, demo, init, OpenError, Tracker};
use roundup_xmlrpc::xmlrpc::Limits;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// After [`server::run`] has returned (its own grace period for in-flight requests
/// is over), how long handlers still running on blocking threads get before the
/// process exits without them. Keep `TimeoutStopSec` of the systemd unit above the
/// sum of both.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a mail being sent at shutdown may still take.
const MAIL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// A failure that ends the process with a message and an exit code.
struct Fatal {
    code: i32,
    message: String,
}

impl Fatal {
    fn new(code: i32, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
        }
    }
}

impl From<OpenError> for Fatal {
    fn from(e: OpenError) -> Self {
        let code = match &e {
            OpenError::Missing(_) => exit::NO_TRACKER,
            OpenError::Schema(_) => exit::BAD_SCHEMA,
            OpenError::Config(_) => exit::BAD_CONFIG,
            OpenError::Database { .. } | OpenError::NoDatabase(_) | OpenError::ReadOnly(_) => {
                exit::DATABASE
            }
            OpenError::Unreachable(_) => exit::DB_UNREACHABLE,
        };
        Fatal::new(code, e.to_string())
    }
}

/// Logs go to stderr; colours only on a terminal, and not with `NO_COLOR` set
/// (journald, files and pipes get plain text).
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.serve.verbose);
    let result = match cli.command {
        Some(Command::Init(args)) => run_init(&args),
        Some(Command::ConvertSchema(args)) => run_convert(&args),
        Some(Command::Demo(args)) => inherited_listener().and_then(|l| run_demo(&args, l)),
        None => inherited_listener().and_then(|l| run_serve(&cli.serve, l)),
    };
    if let Err(f) = result {
        eprintln!("roundup-xmlrpc-server: {}", f.message);
        std::process::exit(f.code);
    }
}

/// The socket passed by systemd socket activation, if any. Called while the
/// process is still single-threaded (it edits the environment).
fn inherited_listener() -> Result<Option<std::net::TcpListener>, Fatal> {
    server::take_inherited_listener().map_err(|e| {
        Fatal::new(
            exit::BIND,
            format!("socket activation (LISTEN_FDS): cannot use fd 3: {e}"),
        )
    })
}

fn run_convert(args: &ConvertArgs) -> Result<(), Fatal> {
    use roundup_xmlrpc::tracker::convert::{convert_schema, ConvertError};
    match convert_schema(&args.dir, args.allow_unconverted) {
        Ok(report) => {
            eprint!("{report}");
            Ok(())
        }
        Err(e) => {
            let code = match &e {
                ConvertError::NotRoundupTracker(..) => exit::NO_TRACKER,
                ConvertError::Unconverted { .. } | ConvertError::Invalid { .. } => exit::BAD_SCHEMA,
                _ => exit::FAILURE,
            };
            Err(Fatal::new(code, e.to_string()))
        }
    }
}

fn run_init(args: &InitArgs) -> Result<(), Fatal> {
    init::init(
        &args.dir,
        &args.admin_password,
        args.template.as_deref(),
        &args.settings,
    )
    .map_err(|e| {
        let code = match &e {
            init::InitError::Exists(_) => exit::FAILURE,
            init::InitError::Config(_) => exit::BAD_CONFIG,
            init::InitError::Schema(_) => exit::BAD_SCHEMA,
            init::InitError::Open(OpenError::Unreachable(_)) => exit::DB_UNREACHABLE,
            init::InitError::Open(o) => Fatal::from(OpenError::Schema(o.to_string())).code,
            _ => exit::FAILURE,
        };
        Fatal::new(code, e.to_string())
    })?;
    println!("created tracker {}", args.dir.display());
    Ok(())
}

fn run_demo(args: &DemoArgs, inherited: Option<std::net::TcpListener>) -> Result<(), Fatal> {
    if !args.dir.join("schema.toml").exists() {
        demo::create(&args.dir).map_err(|e| Fatal::new(exit::FAILURE, e.to_string()))?;
        println!(
            "created demo tracker {} (users admin/admin and demo/demo)",
            args.dir.display()
        );
    }
    let tracker = open_tracker(&args.dir, None)?;
    let addr = SocketAddr::new(args.bind, args.port);
    let demo = Some(tracker.name.clone());
    serve(
        vec![Arc::new(tracker)],
        true,
        Listen {
            addr,
            inherited,
            demo,
        },
        ServerConfig::default(),
    )
}

/// The name a tracker directory is served under: its last path component.
fn dir_name(dir: &Path) -> String {
    let canonical = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    canonical
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tracker".into())
}

fn open_tracker(dir: &Path, name: Option<&str>) -> Result<Tracker, Fatal> {
    let name = name.map(str::to_string).unwrap_or_else(|| dir_name(dir));
    Ok(Tracker::open(dir, &name)?)
}

fn run_serve(args: &ServeArgs, inherited: Option<std::net::TcpListener>) -> Result<(), Fatal> {
    let mut trackers = Vec::new();
    if let Some(dir) = &args.instance {
        trackers.push(Arc::new(open_tracker(dir, None)?));
    }
    for spec in &args.trackers {
        if matches!(spec.as_str(), "init" | "demo") {
            return Err(Fatal::new(
                exit::USAGE,
                format!(
                    "`{spec}` is a subcommand: put options after it \
                     (roundup-xmlrpc-server {spec} [OPTIONS] ...)"
                ),
            ));
        }
        let Some((name, dir)) = spec.split_once('=') else {
            return Err(Fatal::new(
                exit::USAGE,
                format!("{spec}: instances must be NAME=DIR"),
            ));
        };
        if name.is_empty() || name.contains('/') {
            return Err(Fatal::new(
                exit::USAGE,
                format!("{spec}: invalid tracker name"),
            ));
        }
        trackers.push(Arc::new(open_tracker(&PathBuf::from(dir), Some(name))?));
    }
    if trackers.is_empty() {
        return Err(Fatal::new(
            exit::NO_TRACKER,
            "no tracker given: use -i DIR or NAME=DIR",
        ));
    }
    let mut config = ServerConfig {
        trusted_proxies: trusted_proxies(args, &trackers)?,
        forwarded_header: match args.forwarded_header {
            ForwardedHeaderArg::XForwardedFor => ForwardedHeader::XForwardedFor,
            ForwardedHeaderArg::Forwarded => ForwardedHeader::Forwarded,
        },
        ..ServerConfig::default()
    };
    let bind = apply_daemon_options(&mut config, &trackers)?;
    let default_root = args.instance.is_some();
    let addr = SocketAddr::new(
        args.bind.or(bind.map(|b| b.ip())).unwrap_or(DEFAULT_BIND),
        args.port.or(bind.map(|b| b.port())).unwrap_or(DEFAULT_PORT),
    );
    let listen = Listen {
        addr,
        inherited,
        demo: None,
    };
    serve(trackers, default_root, listen, config)
}

/// Where `serve` listens when neither the command line nor config.ini says.
const DEFAULT_BIND: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const DEFAULT_PORT: u16 = 8000;

/// Applies the daemon-wide options of the trackers' config.ini `[xmlrpc_server]`
/// sections to `config`: the smallest `max_connections`, `max_request_bytes` and
/// `request_timeout_sec` any tracker sets (one process serves them all, so the
/// strictest wins). Returns the first tracker's `bind`, for the command line to
/// override.
fn apply_daemon_options(
    config: &mut ServerConfig,
    trackers: &[Arc<Tracker>],
) -> Result<Option<SocketAddr>, Fatal> {
    let mut bind = None;
    for (i, tracker) in trackers.iter().enumerate() {
        let conf = config::load_config(&tracker.dir)
            .map_err(|e| Fatal::new(exit::BAD_CONFIG, e.to_string()))?;
        let server = conf.server;
        if i == 0 {
            bind = server.bind;
        }
        if let Some(n) = server.max_connections {
            config.max_connections = config.max_connections.min(n);
        }
        if let Some(n) = server.max_request_bytes {
            config.max_body_bytes = config.max_body_bytes.min(n);
            config.max_decoded_body_bytes = config.max_decoded_body_bytes.min(n);
        }
        if let Some(secs) = server.request_timeout_sec {
            let t = std::time::Duration::from_secs(secs);
            config.header_read_timeout = config.header_read_timeout.min(t);
            config.body_read_timeout = config.body_read_timeout.min(t);
        }
    }
    Ok(bind)
}

/// The proxies whose forwarding header is believed: `--trusted-proxy` if given,
/// else the `[xmlrpc_server] trusted_proxies` of every served tracker's config.ini.
fn trusted_proxies(args: &ServeArgs, trackers: &[Arc<Tracker>]) -> Result<Vec<IpNet>, Fatal> {
    let mut nets: Vec<IpNet> = Vec::new();
    let mut add = |net: IpNet| {
        if !nets.contains(&net) {
            nets.push(net);
        }
    };
    if !args.trusted_proxies.is_empty() {
        for p in &args.trusted_proxies {
            let net = p
                .parse()
                .map_err(|e| Fatal::new(exit::USAGE, format!("--trusted-proxy {p}: {e}")))?;
            add(net);
        }
    } else {
        for tracker in trackers {
            let conf = config::load_config(&tracker.dir)
                .map_err(|e| Fatal::new(exit::BAD_CONFIG, e.to_string()))?;
            for n in &conf.server.trusted_proxies {
                let net = IpNet::new(n.addr, n.prefix).map_err(|e| {
                    Fatal::new(
                        exit::BAD_CONFIG,
                        format!(
                            "{}: [xmlrpc_server] trusted_proxies: {e}",
                            tracker.dir.join("config.ini").display()
                        ),
                    )
                })?;
                add(net);
            }
        }
    }
    if !nets.is_empty() {
        let list: Vec<String> = nets.iter().map(ToString::to_string).collect();
        tracing::info!(proxies = %list.join(", "), "trusting forwarding headers of these proxies");
    }
    Ok(nets)
}

/// Where to listen: the socket systemd passed, or else a new one bound to `addr`.
struct Listen {
    addr: SocketAddr,
    inherited: Option<std::net::TcpListener>,
    /// `demo`: the tracker name, to print its URL with the demo credentials.
    demo: Option<String>,
}

fn serve(
    trackers: Vec<Arc<Tracker>>,
    default_root: bool,
    listen: Listen,
    config: ServerConfig,
) -> Result<(), Fatal> {
    let count = trackers.len();
    for t in &trackers {
        t.outbox
            .start(&t.name, &t.settings)
            .map_err(|e| Fatal::new(exit::FAILURE, format!("cannot start mail delivery: {e}")))?;
    }
    let outboxes = trackers.clone();
    let limits = Limits {
        max_body_bytes: config.max_decoded_body_bytes,
        ..Limits::default()
    };
    let app = Arc::new(App::new(trackers, default_root, limits));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::new(exit::FAILURE, format!("cannot start the runtime: {e}")))?;
    let result = runtime.block_on(async move {
        let Listen {
            addr,
            inherited,
            demo,
        } = listen;
        let shutdown = shutdown_signal().map_err(|e| {
            Fatal::new(exit::FAILURE, format!("cannot install signal handlers: {e}"))
        })?;
        let activated = inherited.is_some();
        let listener = match inherited {
            Some(std_listener) => tokio::net::TcpListener::from_std(std_listener).map_err(|e| {
                Fatal::new(exit::BIND, format!("cannot use the socket passed by systemd: {e}"))
            })?,
            None => tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Fatal::new(exit::BIND, format!("cannot listen on {addr}: {e}")))?,
        };
        let local = listener
            .local_addr()
            .map_err(|e| Fatal::new(exit::BIND, e.to_string()))?;
        println!("listening on http://{local}/");
        if let Some(name) = demo {
            let host = match local.ip() {
                ip if ip.is_loopback() || ip.is_unspecified() => "localhost".to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
                std::net::IpAddr::V4(v4) => v4.to_string(),
            };
            println!(
                "demo tracker at http://admin:admin@{host}:{}/{name}/xmlrpc",
                local.port()
            );
        }
        let _ = std::io::stdout().flush();
        if activated {
            tracing::info!(%local, "using the socket passed by systemd (--bind and --port ignored)");
        }
        let noun = if count == 1 { "tracker" } else { "trackers" };
        server::notify_ready(&format!("serving {count} {noun} on http://{local}/"));
        server::run(listener, app, config, shutdown)
            .await
            .map_err(|e| Fatal::new(exit::FAILURE, format!("server error: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    });
    // A handler that outlived the grace period of server::run is still running on a
    // blocking thread: do not wait for it forever.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    // Queued mail that is not sent by now stays in the outbox for the next start.
    for t in &outboxes {
        t.outbox.stop(MAIL_SHUTDOWN_TIMEOUT);
    }
    result
}

/// Installs the SIGTERM and SIGINT handlers at once, so that a signal sent as soon
/// as readiness is announced is neither lost nor fatal, and returns a future that
/// resolves on either, after telling systemd that the server stops.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutting down");
        server::notify_stopping();
    })
}
