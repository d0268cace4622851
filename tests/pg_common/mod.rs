//! A private PostgreSQL cluster for the tests of one test binary, started on
//! first use with `scripts/pg-cluster run` (initdb into a temporary directory,
//! Unix socket only) and gone when the test process exits: the script stops the
//! server and deletes the directory once the pipe to its stdin closes.
//!
//! PostgreSQL missing is a failure, not a skip (`PG_BIN`, default
//! `/usr/lib/postgresql/15/bin`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The running cluster.
pub struct Cluster {
    /// The socket directory (also holds the data directory).
    pub dir: PathBuf,
    _child: Mutex<(Child, ChildStdin)>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cluster, started on first call.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rxs-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(repo().join("scripts").join("pg-cluster"))
            .arg("run")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/pg-cluster");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the ready line");
        assert!(
            line.starts_with("ready "),
            "scripts/pg-cluster did not start PostgreSQL (is it installed? PG_BIN): {line:?}"
        );
        Cluster {
            dir,
            _child: Mutex::new((child, stdin)),
        }
    })
}

impl Cluster {
    /// `--set` values making `init` create a tracker in database `db`.
    pub fn settings(&self, db: &str) -> Vec<String> {
        vec![
            "rdbms.backend=postgresql".into(),
            format!("rdbms.host={}", self.dir.display()),
            "rdbms.user=rxs".into(),
            "rdbms.password=rxs".into(),
            format!("rdbms.name={db}"),
            "password_pbkdf2_default_rounds=1000".into(),
        ]
    }

    /// A superuser connection to database `db`.
    pub fn connect(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.dir)
            .user("postgres")
            .dbname(db)
            .connect(postgres::NoTls)
            .expect("connect as postgres")
    }

    /// Stops the server (fast shutdown: sessions are terminated).
    pub fn stop(&self) {
        run(&["stop"], &self.dir);
    }

    /// Starts it again.
    pub fn start(&self) {
        run(&["start"], &self.dir);
    }

    /// Starts it again with more server options (`PG_OPTS`).
    pub fn start_with(&self, opts: &str) {
        let status = Command::new(repo().join("scripts").join("pg-cluster"))
            .arg("start")
            .arg(&self.dir)
            .env("PG_OPTS", opts)
            .status()
            .expect("run scripts/pg-cluster");
        assert!(status.success(), "pg-cluster start with {opts:?} failed");
    }
}

fn run(args: &[&str], dir: &Path) {
    let status = Command::new(repo().join("scripts").join("pg-cluster"))
        .args(args)
        .arg(dir)
        .status()
        .expect("run scripts/pg-cluster");
    assert!(status.success(), "pg-cluster {args:?} failed");
}

/// A fresh tracker directory name under the temp dir.
pub fn tracker_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rxs-pgt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
