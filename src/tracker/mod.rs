//! A tracker directory: `schema.toml`, `config.ini`, `initial_data.toml` and the
//! database under `db/`. [`Tracker::open`] loads and validates it once at start-up.

pub mod config;
pub mod convert;
pub mod demo;
pub mod init;
pub mod load;
pub mod schema;

use crate::security::Security;
use crate::store::sqlite::{Options, SqliteStore};
use crate::store::{Store, StoreError};
use schema::Schema;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a tracker could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory does not exist or has no schema.toml.
    #[error("{0}: not a tracker directory (no schema.toml)")]
    Missing(PathBuf),
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
    /// The database could not be opened or brought up to date.
    #[error("{path}: cannot open database: {source}")]
    Database {
        /// The database directory.
        path: PathBuf,
        /// What went wrong.
        source: crate::store::StoreError,
    },
}

/// Settings from config.ini that the server uses.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[tracker] name`.
    pub tracker_name: String,
    /// `[tracker] web`.
    pub tracker_web: String,
    /// `[tracker] email`, the tracker's own address (`@<[mail] domain>` added when
    /// it has no `@`).
    pub tracker_email: String,
    /// `[main] timezone`: the default time zone for Date input.
    pub timezone: String,
    /// `[main] password_pbkdf2_default_rounds`.
    pub pbkdf2_rounds: u32,
    /// `[xmlrpc_server] password_default_scheme` (ours): `PBKDF2S5` or `BCRYPT`.
    pub password_scheme: String,
    /// `[xmlrpc_server] bcrypt_cost` (ours): cost of new `{BCRYPT}` hashes.
    pub bcrypt_cost: u32,
    /// `[web] migrate_passwords`: re-hash an outdated hash after a successful login.
    pub migrate_passwords: bool,
    /// `[web] login_empty_passwords`: a user without a password may log in with an
    /// empty one.
    pub login_empty_passwords: bool,
    /// `[nosy] messages_to_author`: `yes`, `no`, `new` or `nosy`.
    pub nosy_messages_to_author: String,
    /// `[nosy] add_author`: `yes`, `no` or `new`.
    pub nosy_add_author: String,
    /// `[nosy] add_recipients`: `yes`, `no` or `new`.
    pub nosy_add_recipients: String,
    /// `[mail] domain`.
    pub mail_domain: String,
    /// `[mail] debug`: write mail to this file instead of sending it.
    pub mail_debug: Option<PathBuf>,
    /// `[mail] host` (empty: no SMTP).
    pub mail_host: String,
    /// `[mail] port`.
    pub mail_port: u16,
    /// `[mail] username` (empty: no SMTP authentication).
    pub mail_username: String,
    /// `[mail] password`.
    pub mail_password: String,
    /// `[mail] tls`: use STARTTLS.
    pub mail_tls: bool,
    /// `[web] api_failed_login_limit` (0 = off).
    pub api_failed_login_limit: u32,
    /// `[web] api_failed_login_interval_in_sec`.
    pub api_failed_login_interval: u64,
    /// `[web] api_calls_per_interval`: calls allowed per user (0 = no limit).
    pub api_calls_per_interval: u32,
    /// `[web] api_interval_in_sec`.
    pub api_interval: u64,
    /// `[rdbms] sqlite_timeout` in seconds.
    pub sqlite_timeout: u64,
    /// `[rdbms] allow_create`: schema.toml may add classes (tables) to the database.
    pub allow_create: bool,
    /// `[rdbms] allow_alter`: schema.toml may change classes (columns, indexes).
    pub allow_alter: bool,
    /// `[main] database`: the database directory (resolved against the tracker).
    pub database: PathBuf,
    /// `[rdbms] backend`.
    pub backend: config::Backend,
    /// `[rdbms]` PostgreSQL connection options.
    pub postgresql: crate::store::postgres::ConnSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tracker_name: "Roundup issue tracker".into(),
            tracker_web: String::new(),
            tracker_email: String::new(),
            timezone: "0".into(),
            pbkdf2_rounds: 250_000,
            password_scheme: "PBKDF2S5".into(),
            bcrypt_cost: crate::auth::password::BCRYPT_COST,
            migrate_passwords: true,
            login_empty_passwords: false,
            nosy_messages_to_author: "no".into(),
            nosy_add_author: "new".into(),
            nosy_add_recipients: "new".into(),
            mail_domain: String::new(),
            mail_debug: None,
            mail_host: String::new(),
            mail_port: 25,
            mail_username: String::new(),
            mail_password: String::new(),
            mail_tls: false,
            api_failed_login_limit: 4,
            api_failed_login_interval: 600,
            api_calls_per_interval: 0,
            api_interval: 3600,
            sqlite_timeout: 30,
            allow_create: true,
            allow_alter: true,
            database: PathBuf::from("db"),
            backend: config::Backend::Sqlite,
            postgresql: Default::default(),
        }
    }
}

impl Settings {
    /// How new passwords are hashed (scheme and work factors), which also decides
    /// which stored hashes `[web] migrate_passwords` re-hashes.
    pub fn hash_policy(&self) -> crate::auth::HashPolicy {
        crate::auth::HashPolicy {
            scheme: crate::auth::Scheme::parse(&self.password_scheme)
                .unwrap_or(crate::auth::Scheme::Pbkdf2S5),
            pbkdf2_rounds: self.pbkdf2_rounds,
            bcrypt_cost: self.bcrypt_cost,
        }
    }
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
    /// Settings from config.ini.
    pub settings: Settings,
    /// The database.
    pub store: Box<dyn Store>,
    /// The mail outbox (`db/outbox/`) and its delivery thread.
    pub outbox: crate::detectors::outbox::Outbox,
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
        let db_dir = settings.database.clone();
        // --- PostgreSQL backend (src/store/postgres) ---
        if settings.backend == config::Backend::Postgresql {
            let options = crate::store::postgres::Options {
                allow_create: settings.allow_create,
                allow_alter: settings.allow_alter,
                create,
            };
            let store = crate::store::postgres::PgStore::open(
                &settings.postgresql,
                dir,
                &db_dir,
                schema.clone(),
                options,
            )
            .map_err(|source| match source {
                StoreError::Unavailable(m) => OpenError::Unreachable(m),
                StoreError::Missing(what) => OpenError::NoDatabase(format!(
                    "{}: does not exist; `roundup-xmlrpc-server init` creates a tracker, serving never creates a database",
                    what.display()
                )),
                source => OpenError::Database {
                    path: db_dir.clone(),
                    source,
                },
            })?;
            return Ok(Tracker {
                name: name.to_string(),
                dir: dir.to_path_buf(),
                security: Security::new(&schema),
                schema,
                settings,
                store: Box::new(store),
                outbox: crate::detectors::outbox::Outbox::new(&db_dir),
            });
        }
        // --- end PostgreSQL ---
        let options = Options {
            busy_timeout: std::time::Duration::from_secs(settings.sqlite_timeout),
            allow_create: settings.allow_create,
            allow_alter: settings.allow_alter,
            create,
        };
        let store =
            SqliteStore::open(&db_dir, schema.clone(), options).map_err(|source| match source {
                StoreError::Missing(_) => OpenError::NoDatabase(source.to_string()),
                StoreError::NotWritable { .. } => OpenError::ReadOnly(source.to_string()),
                source => OpenError::Database {
                    path: db_dir.clone(),
                    source,
                },
            })?;
        Ok(Tracker {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            security: Security::new(&schema),
            schema,
            settings,
            store: Box::new(store),
            outbox: crate::detectors::outbox::Outbox::new(&db_dir),
        })
    }
}

/// The server's settings from a loaded config.ini.
pub fn settings_from_config(c: &config::Config) -> Settings {
    let nosy = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
    Settings {
        tracker_name: c.tracker.name.clone(),
        tracker_web: c.tracker.web.clone().unwrap_or_default(),
        // `@<[mail] domain>` added as Roundup's MailAddressOption does (as written
        // when there is no domain to add).
        tracker_email: c
            .tracker_email()
            .unwrap_or_else(|_| c.tracker.email.clone()),
        timezone: c.main.timezone.clone(),
        pbkdf2_rounds: c.main.password_pbkdf2_default_rounds,
        password_scheme: c.server.password_default_scheme.as_str().to_string(),
        bcrypt_cost: c.server.bcrypt_cost,
        migrate_passwords: c.web.migrate_passwords,
        login_empty_passwords: c.web.login_empty_passwords,
        nosy_messages_to_author: nosy(&c.nosy.messages_to_author),
        nosy_add_author: nosy(&c.nosy.add_author),
        nosy_add_recipients: nosy(&c.nosy.add_recipients),
        mail_domain: c.mail.domain.clone().unwrap_or_default(),
        mail_debug: c.mail.debug.clone(),
        mail_host: c.mail.host.clone().unwrap_or_default(),
        mail_port: c.mail.port,
        mail_username: c.mail.username.clone().unwrap_or_default(),
        mail_password: c.mail.password.clone().unwrap_or_default(),
        mail_tls: c.mail.tls,
        api_failed_login_limit: c.web.api_failed_login_limit,
        api_failed_login_interval: c.web.api_failed_login_interval_in_sec,
        api_calls_per_interval: c.web.api_calls_per_interval,
        api_interval: c.web.api_interval_in_sec,
        sqlite_timeout: c.rdbms.sqlite_timeout,
        allow_create: c.rdbms.allow_create,
        allow_alter: c.rdbms.allow_alter,
        database: c.main.database.clone(),
        backend: c.rdbms.backend,
        postgresql: c.rdbms.postgresql.clone(),
    }
}

impl Tracker {
    /// Opens the tracker in `dir`, served as `name`: loads and validates
    /// config.ini and schema.toml, then opens (and if needed upgrades) the database.
    pub fn open(dir: &Path, name: &str) -> Result<Tracker, OpenError> {
        let dir = &std::path::absolute(dir).map_err(|_| OpenError::Missing(dir.to_path_buf()))?;
        let schema_path = dir.join("schema.toml");
        if !schema_path.is_file() {
            return Err(OpenError::Missing(dir.to_path_buf()));
        }
        let config = config::load_config(dir).map_err(|e| OpenError::Config(e.to_string()))?;
        let schema =
            load::load_schema(&schema_path).map_err(|e| OpenError::Schema(e.to_string()))?;
        Tracker::from_parts(name, dir, schema, settings_from_config(&config), false)
    }
}
