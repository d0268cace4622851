//! The `roundup-xmlrpc-server` binary: parses flags, opens the trackers, binds
//! the socket (or takes the one systemd passes) and runs the server until SIGTERM
//! or SIGINT, telling systemd when it is ready and when it stops. Errors print one
//! line and map to the exit codes in [`roundup_xmlrpc::cli::exit`].

use clap::Parser;
use roundup_xmlrpc::admin::{demo, init};
use roundup_xmlrpc::app::App;
use roundup_xmlrpc::cli::{
    exit, write_completions, Cli, Command, CompletionsArgs, ConvertArgs, DemoArgs, InitArgs,
    LogFormatArg, ServeArgs,
};
use roundup_xmlrpc::config::serve::{log_format, server_config};
use roundup_xmlrpc::config::Settings;
use roundup_xmlrpc::log::Format as LogFormat;
use roundup_xmlrpc::server::{self, BindAddr, ServerConfig};
use roundup_xmlrpc::tracker::{OpenError, Tracker};
use roundup_xmlrpc::xmlrpc::Limits;
use std::io::{IsTerminal, Write};
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
            OpenError::Missing(_)
            | OpenError::NotFound(_)
            | OpenError::NotADirectory(_)
            | OpenError::Unconverted(_) => exit::NO_TRACKER,
            OpenError::Schema(_) => exit::BAD_SCHEMA,
            OpenError::Config(_) => exit::BAD_CONFIG,
            OpenError::Database { .. } | OpenError::NoDatabase(_) | OpenError::ReadOnly(_) => {
                exit::DATABASE
            }
            OpenError::Unreachable(_) => exit::DB_UNREACHABLE,
            OpenError::Python(_) => exit::FAILURE,
        };
        Fatal::new(code, e.to_string())
    }
}

/// Logs go to stderr, as text or JSON ([`roundup_xmlrpc::log`]); colours only on a
/// terminal, and not with `NO_COLOR` set (journald, files and pipes get plain text).
fn init_logging(verbose: u8, format: Option<LogFormatArg>) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let ansi = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let format = match format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) | None => LogFormat::Text,
    };
    roundup_xmlrpc::log::init(default, format, ansi);
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.serve.verbose, cli.serve.log_format);
    let result = match cli.command {
        Some(Command::Init(args)) => run_init(&args),
        Some(Command::ConvertSchema(args)) => run_convert(&args),
        Some(Command::Completions(args)) => run_completions(&args),
        Some(Command::Demo(args)) => inherited_listener().and_then(|l| run_demo(&args, l)),
        None => inherited_listener().and_then(|l| run_serve(&cli.serve, l)),
    };
    if let Err(f) = result {
        match roundup_xmlrpc::log::format() {
            LogFormat::Text => eprintln!("roundup-xmlrpc-server: {}", f.message),
            // Every line on stderr is a JSON object.
            LogFormat::Json => {
                tracing::error!(exit_status = f.code, "roundup-xmlrpc-server: {}", f.message)
            }
        }
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
    use roundup_xmlrpc::admin::convert::{convert_schema, ConvertError};
    if let Err(e) = std::fs::metadata(&args.dir) {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "does not exist".to_string(),
            _ => e.to_string(),
        };
        return Err(Fatal::new(
            exit::NO_TRACKER,
            format!("{}: {why}", args.dir.display()),
        ));
    }
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

fn run_completions(args: &CompletionsArgs) -> Result<(), Fatal> {
    let mut out = Vec::new();
    write_completions(args.shell, &mut out);
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|e| Fatal::new(exit::FAILURE, format!("cannot write the script: {e}")))
}

/// The environment variable `init` takes the admin password from when neither
/// `--admin-password-file` nor `--admin-password` is given.
const ADMIN_PASSWORD_ENV: &str = "ROUNDUP_ADMIN_PASSWORD";

fn run_init(args: &InitArgs) -> Result<(), Fatal> {
    let password = match (&args.admin_password_file, &args.admin_password) {
        (Some(file), _) => init::read_password_file(file)
            .map_err(|e| Fatal::new(exit::FAILURE, format!("--admin-password-file {e}")))?,
        (None, Some(password)) => password.clone(),
        (None, None) => match std::env::var(ADMIN_PASSWORD_ENV) {
            Ok(password) => password,
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Fatal::new(
                    exit::USAGE,
                    format!("{ADMIN_PASSWORD_ENV} is not valid UTF-8"),
                ))
            }
            Err(std::env::VarError::NotPresent) => {
                return Err(Fatal::new(
                    exit::USAGE,
                    format!(
                        "init needs the admin password: --admin-password-file FILE, \
                         {ADMIN_PASSWORD_ENV} in the environment, or --admin-password PASSWORD"
                    ),
                ))
            }
        },
    };
    if password.is_empty() {
        return Err(Fatal::new(exit::USAGE, "the admin password is empty"));
    }
    init::init(
        &args.dir,
        &password,
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
    let addr = BindAddr {
        host: args.bind.clone(),
        port: args.port,
    };
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
        if matches!(
            spec.as_str(),
            "init" | "demo" | "convert-schema" | "completions"
        ) {
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
    let settings: Vec<&Settings> = trackers.iter().map(|t| &t.settings).collect();
    roundup_xmlrpc::log::set_format(log_format(args, &settings));
    let (config, addr) =
        server_config(args, &settings).map_err(|e| Fatal::new(exit::USAGE, e.to_string()))?;
    let default_root = args.instance.is_some();
    let listen = Listen {
        addr,
        inherited,
        demo: None,
    };
    serve(trackers, default_root, listen, config)
}

/// Where to listen: the socket systemd passed, or else a new one bound to `addr`.
struct Listen {
    addr: BindAddr,
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
    let app = Arc::new(
        App::new(trackers, default_root, limits).with_metrics(Arc::clone(&config.metrics)),
    );
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
            None => server::listen::bind(&addr).await.map_err(|e| match e {
                server::BindError::Resolve { .. } => {
                    Fatal::new(exit::BIND, format!("--bind {}: {e}", addr.host))
                }
                server::BindError::Bind { .. } => Fatal::new(exit::BIND, e.to_string()),
            })?,
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
