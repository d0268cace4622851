//! A tracker directory: `schema.toml`, `config.ini`, `initial_data.toml` and the
//! database under `db/`. [`Tracker::open`] loads and validates it once at start-up.

use crate::config::{load_config, Backend, Settings};
use crate::postgres::PgStore;
use crate::schema::{load_schema, Schema};
use crate::security::Security;
use crate::sqlite::{Options, SqliteStore};
use crate::store::{Store, StoreError};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Why a tracker could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory does not exist or has no schema.toml.
    #[error("{0}: not a tracker directory (no schema.toml; `roundup-xmlrpc-server init` creates trackers)")]
    Missing(PathBuf),
    /// The directory does not exist.
    #[error("{0}: does not exist")]
    NotFound(PathBuf),
    /// The path is not a directory.
    #[error("{0}: is not a directory")]
    NotADirectory(PathBuf),
    /// A Roundup tracker (schema.py) whose schema.toml has not been written yet.
    #[error(
        "{0}: a Roundup tracker without schema.toml: run `roundup-xmlrpc-server convert-schema {0}` first"
    )]
    Unconverted(PathBuf),
    /// schema.toml is invalid.
    #[error("{0}")]
    Schema(String),
    /// config.ini is invalid.
    #[error("{0}")]
    Config(String),
    /// There is no database (`db/` missing or empty: an unmounted volume?).
    /// Serving never creates one.
    #[error("{0}")]
    NoDatabase(String),
    /// The daemon cannot write the database.
    #[error("{0}")]
    ReadOnly(String),
    /// The database server cannot be reached (PostgreSQL down or refusing).
    #[error("{0}")]
    Unreachable(String),
    /// The tracker's Python detectors cannot run (no Python, no Roundup, a
    /// detector file that does not load).
    #[error("{0}")]
    Python(String),
    /// The database could not be opened or brought up to date.
    #[error("{path}: cannot open database: {source}")]
    Database {
        /// The database directory.
        path: PathBuf,
        /// What went wrong.
        source: crate::store::StoreError,
    },
}

/// An open tracker: its schema, permissions, settings and database.
pub struct Tracker {
    /// The name it is served under (the directory name, or NAME of NAME=DIR).
    pub name: String,
    /// The tracker directory.
    pub dir: PathBuf,
    /// The schema.
    pub schema: Arc<Schema>,
    /// The permission index built from the schema.
    pub security: Security,
    /// Its settings (config.ini, read once when it was opened).
    pub settings: Settings,
    /// The database.
    pub store: Box<dyn Store>,
    /// The mail outbox (`db/outbox/`) and its delivery thread.
    pub outbox: crate::mail::Outbox,
    /// The worker running the tracker's own Python detectors, when schema.toml
    /// lists any (`[detectors] python`).
    pub python: Option<Arc<crate::pyworker::Runtime>>,
    /// The detector registry. The item layer (a floor above this one) owns its
    /// type and fills it: use `items::detectors::Registry::of` to read it and
    /// `Registry::install` to attach one before the tracker serves.
    pub detectors: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish()
    }
}

impl Tracker {
    /// Builds a tracker from already loaded parts, opening its database (sqlite
    /// or PostgreSQL, `[rdbms] backend`); `create` (for `init` only) creates the
    /// database if there is none.
    pub fn from_parts(
        name: &str,
        dir: &Path,
        schema: Schema,
        settings: Settings,
        create: bool,
    ) -> Result<Tracker, OpenError> {
        let schema = Arc::new(schema);
        // config.ini's database path is already resolved against the tracker directory.
        let db_dir = settings.main.database.clone();
        let store: Box<dyn Store> = if settings.rdbms.backend == Backend::Postgresql {
            Box::new(open_postgres(dir, &db_dir, &schema, &settings, create)?)
        } else {
            Box::new(open_sqlite(&db_dir, &schema, &settings, create)?)
        };
        let python = start_python(name, dir, &schema, &settings)?;
        Ok(Tracker {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            security: Security::new(&schema),
            schema,
            settings,
            store,
            outbox: crate::mail::Outbox::new(&db_dir),
            python,
            detectors: OnceLock::new(),
        })
    }
}

/// Opens the tracker's sqlite database (`<database>/db`).
fn open_sqlite(
    db_dir: &Path,
    schema: &Arc<Schema>,
    settings: &Settings,
    create: bool,
) -> Result<SqliteStore, OpenError> {
    let options = Options {
        busy_timeout: std::time::Duration::from_secs(settings.rdbms.sqlite_timeout),
        allow_create: settings.rdbms.allow_create,
        allow_alter: settings.rdbms.allow_alter,
        create,
    };
    SqliteStore::open(db_dir, schema.clone(), options).map_err(|source| match source {
        StoreError::Missing(_) => OpenError::NoDatabase(source.to_string()),
        StoreError::NotWritable { .. } => OpenError::ReadOnly(source.to_string()),
        source => OpenError::Database {
            path: db_dir.to_path_buf(),
            source,
        },
    })
}

/// Opens the tracker's PostgreSQL database (`[rdbms]` connection options); FileClass
/// content and the outbox stay under `<database>/`.
fn open_postgres(
    dir: &Path,
    db_dir: &Path,
    schema: &Arc<Schema>,
    settings: &Settings,
    create: bool,
) -> Result<PgStore, OpenError> {
    let options = crate::postgres::Options {
        allow_create: settings.rdbms.allow_create,
        allow_alter: settings.rdbms.allow_alter,
        create,
    };
    PgStore::open(&settings.rdbms.postgresql, dir, db_dir, schema.clone(), options).map_err(
        |source| match source {
            StoreError::Unavailable(m) => OpenError::Unreachable(m),
            StoreError::Missing(what) => OpenError::NoDatabase(format!(
                "{}: does not exist; `roundup-xmlrpc-server init` creates a tracker, serving never creates a database",
                what.display()
            )),
            source => OpenError::Database {
                path: db_dir.to_path_buf(),
                source,
            },
        },
    )
}

/// Starts the worker of the tracker's Python detectors, when schema.toml lists
/// any: they are loaded now, so that a missing interpreter or Roundup, or a
/// detector that fails to load, stops the daemon at start with the reason.
fn start_python(
    name: &str,
    dir: &Path,
    schema: &Schema,
    settings: &Settings,
) -> Result<Option<Arc<crate::pyworker::Runtime>>, OpenError> {
    let files = &schema.detectors.python;
    if files.is_empty() {
        return Ok(None);
    }
    let fail = |why: String| {
        OpenError::Python(format!(
            "{}: tracker {name}: [detectors] python lists {} Python detector file(s), \
             which need Python 3 with Roundup 2.x: {why}",
            dir.display(),
            files.len()
        ))
    };
    for f in files {
        if !dir.join(f).is_file() {
            return Err(fail(format!("{f}: no such file in the tracker directory")));
        }
    }
    let spawn = crate::pyworker::Spawn {
        tracker: name.to_string(),
        python: crate::pyworker::interpreter(settings.server.python.as_deref()),
        home: dir.to_path_buf(),
        hello: crate::pyworker::hello(schema, files),
    };
    let runtime = crate::pyworker::Runtime::start(spawn).map_err(fail)?;
    tracing::info!(
        tracker = %name,
        python = %crate::log::field(runtime.python()),
        versions = %runtime.about(),
        files = files.len(),
        registrations = runtime.registrations().len(),
        "python detectors loaded"
    );
    Ok(Some(Arc::new(runtime)))
}

impl Tracker {
    /// Opens the tracker in `dir`, served as `name`: loads and validates
    /// config.ini and schema.toml, then opens (and if needed upgrades) the database.
    pub fn open(dir: &Path, name: &str) -> Result<Tracker, OpenError> {
        let dir = &std::path::absolute(dir).map_err(|_| OpenError::Missing(dir.to_path_buf()))?;
        let schema_path = dir.join("schema.toml");
        if !schema_path.is_file() {
            return Err(match std::fs::metadata(dir) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    OpenError::NotFound(dir.to_path_buf())
                }
                Ok(m) if !m.is_dir() => OpenError::NotADirectory(dir.to_path_buf()),
                _ if dir.join("schema.py").is_file() => OpenError::Unconverted(dir.to_path_buf()),
                _ => OpenError::Missing(dir.to_path_buf()),
            });
        }
        let settings = load_config(dir).map_err(|e| OpenError::Config(e.to_string()))?;
        let schema = load_schema(&schema_path).map_err(|e| OpenError::Schema(e.to_string()))?;
        Tracker::from_parts(name, dir, schema, settings, false)
    }
}
