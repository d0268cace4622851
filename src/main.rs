//! The `roundup-xmlrpc-server` binary: parses flags, opens the trackers, binds
//! the socket and runs the server until SIGTERM or SIGINT. Errors print one line
//! and map to the exit codes in [`roundup_xmlrpc::cli::exit`].

use clap::Parser;
use roundup_xmlrpc::app::App;
use roundup_xmlrpc::cli::{exit, Cli, Command, DemoArgs, InitArgs, ServeArgs};
use roundup_xmlrpc::server::{self, ServerConfig};
use roundup_xmlrpc::tracker::{demo, init, OpenError, Tracker};
use roundup_xmlrpc::xmlrpc::Limits;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
            OpenError::Database { .. } => exit::DATABASE,
        };
        Fatal::new(code, e.to_string())
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn main() {
    let cli = Cli::parse();
    let verbose = cli.serve.verbose;
    init_logging(verbose);
    let result = match cli.command {
        Some(Command::Init(args)) => run_init(&args),
        Some(Command::Demo(args)) => run_demo(&args),
        None => run_serve(&cli.serve),
    };
    if let Err(f) = result {
        eprintln!("roundup-xmlrpc-server: {}", f.message);
        std::process::exit(f.code);
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
            init::InitError::Open(o) => Fatal::from(OpenError::Schema(o.to_string())).code,
            _ => exit::FAILURE,
        };
        Fatal::new(code, e.to_string())
    })?;
    println!("created tracker {}", args.dir.display());
    Ok(())
}

fn run_demo(args: &DemoArgs) -> Result<(), Fatal> {
    if !args.dir.join("schema.toml").exists() {
        demo::create(&args.dir).map_err(|e| Fatal::new(exit::FAILURE, e.to_string()))?;
        println!(
            "created demo tracker {} (users admin/admin and demo/demo)",
            args.dir.display()
        );
    }
    let tracker = open_tracker(&args.dir, None)?;
    let addr = SocketAddr::new(args.bind, args.port);
    println!(
        "demo tracker at http://admin:admin@localhost:{}/{}/xmlrpc",
        args.port, tracker.name
    );
    serve(vec![Arc::new(tracker)], true, addr, ServerConfig::default())
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

fn run_serve(args: &ServeArgs) -> Result<(), Fatal> {
    let mut trackers = Vec::new();
    if let Some(dir) = &args.instance {
        trackers.push(Arc::new(open_tracker(dir, None)?));
    }
    for spec in &args.trackers {
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
    let mut config = ServerConfig::default();
    for p in &args.trusted_proxies {
        let net = p
            .parse()
            .map_err(|e| Fatal::new(exit::USAGE, format!("--trusted-proxy {p}: {e}")))?;
        config.trusted_proxies.push(net);
    }
    let default_root = args.instance.is_some();
    serve(
        trackers,
        default_root,
        SocketAddr::new(args.bind, args.port),
        config,
    )
}

fn serve(
    trackers: Vec<Arc<Tracker>>,
    default_root: bool,
    addr: SocketAddr,
    config: ServerConfig,
) -> Result<(), Fatal> {
    let limits = Limits {
        max_body_bytes: config.max_decoded_body_bytes,
        ..Limits::default()
    };
    let app = Arc::new(App::new(trackers, default_root, limits));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::new(exit::FAILURE, format!("cannot start the runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Fatal::new(exit::BIND, format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Fatal::new(exit::BIND, e.to_string()))?;
        println!("listening on http://{local}/");
        let _ = std::io::stdout().flush();
        tracing::info!(%local, "listening");
        server::run(listener, app, config, shutdown_signal())
            .await
            .map_err(|e| Fatal::new(exit::FAILURE, format!("server error: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
