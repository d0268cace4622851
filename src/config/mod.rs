//! A tracker's settings: its `config.ini`, read once when the tracker is opened,
//! the way Roundup's `configuration.py` reads it ([`ini`]: Python `configparser`
//! syntax and interpolation), into one typed [`Settings`] with the domain types
//! (password [`Scheme`], [`IpNet`], the `[nosy]` enums). Also [`set`] (`--set
//! KEY=VALUE` at install time) and [`serve`] (the process-wide front-end settings
//! of `serve`: the flags merged with the trackers' `[xmlrpc_server]` options).
//!
//! Missing file, sections or options give Roundup's defaults; options Roundup knows
//! but we do not use are ignored, as Roundup ignores unknown ones. Our own options live
//! in `[xmlrpc_server]`, a section Roundup ignores.

pub mod ini;
pub mod serve;
pub mod set;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use self::ini::{read_ini, RawIni};
use crate::auth::password::{HashPolicy, Scheme, BCRYPT_COST, MAX_BCRYPT_COST, MIN_BCRYPT_COST};
use crate::log::Format as LogFormat;
use crate::server::{parse_net, IpNet};

pub use crate::auth::password::MIN_PBKDF2_ROUNDS;
pub use set::{parse_setting_arg, resolve_setting, write_settings};

/// The file name of the configuration inside a tracker directory.
pub const CONFIG_FILE: &str = "config.ini";

/// The section holding this daemon's own options (Roundup ignores it).
pub const SERVER_SECTION: &str = "xmlrpc_server";

/// An error reading or updating `config.ini`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The path.
        file: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid ini file.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// The path.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong, in plain words (quoting the line).
        message: String,
    },
    /// An option has an unusable value (or the file's structure is wrong there).
    #[error("{file}: {}: {message}", place(section, option))]
    Invalid {
        /// The path.
        file: String,
        /// The section.
        section: String,
        /// The option name.
        option: String,
        /// What is wrong, including the offending value.
        message: String,
    },
    /// A `--set` key names no known option.
    #[error("unknown setting \"{0}\" (use a Roundup option name such as mail_domain or admin_email, or section.option)")]
    UnknownSetting(String),
    /// A `--set` item is not of the form `KEY=VALUE` or its value cannot be written.
    #[error("invalid setting \"{0}\": {1}")]
    BadSetting(String, String),
}

/// `[section] option`, `[section]` or `option` for error messages.
fn place(section: &str, option: &str) -> String {
    match (section.is_empty(), option.is_empty()) {
        (true, _) => option.to_string(),
        (false, true) => format!("[{section}]"),
        (false, false) => format!("[{section}] {option}"),
    }
}

/// `[nosy] messages_to_author`: when the author of a message gets the nosy mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagesToAuthor {
    /// Never (`no`, the default).
    No,
    /// Always (`yes`).
    Yes,
    /// Only for the message that creates an issue (`new`).
    New,
    /// When the author is on the nosy list (`nosy`).
    Nosy,
}

/// `[nosy] add_author` / `add_recipients`: when the nosy auditor adds people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NosyAdd {
    /// Never (`no`).
    No,
    /// On create and on every set (`yes`).
    Yes,
    /// Only when the issue is created (`new`, the default).
    New,
}

/// `[nosy] email_sending`: one mail with everyone in Cc, or one mail per recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailSending {
    /// `single` (the default).
    Single,
    /// `multiple`.
    Multiple,
}

/// `[nosy] signature_position`: where the tracker signature goes in nosy mails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignaturePosition {
    /// `top`.
    Top,
    /// `bottom` (the default).
    Bottom,
    /// `none`.
    None,
}

/// `[mailgw] keep_quoted_text` (and `leave_body_unchanged`): Roundup's
/// `EmailBodyOption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailBody {
    /// `yes` (keep_quoted_text's default).
    Yes,
    /// `no`.
    No,
    /// `new`: only for a message that creates an issue (never the case for the
    /// summary messagesummary makes, so it acts as `no` there, as in Roundup).
    New,
}

/// A regular-expression option of config.ini (Roundup's `RegExpOption`), compiled
/// once when the file is read. Python's `re` syntax is mostly the `regex` crate's;
/// a pattern the crate cannot compile (look-around, back-references) is an error.
#[derive(Debug, Clone)]
pub struct ConfigRegex(pub regex::Regex);

impl PartialEq for ConfigRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// `[mailgw]`: the options Roundup's `parseContent` reads when the messagesummary
/// detector makes a message's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct MailgwConfig {
    /// `keep_quoted_text` (default yes): a section mixing quoted lines and a reply
    /// is kept whole (yes) or loses its quoted lines (no, new).
    pub keep_quoted_text: EmailBody,
    /// `eol_re` (default `[\r\n]+`): what ends a line.
    pub eol_re: ConfigRegex,
    /// `blankline_re` (default `[\r\n]+\s*[\r\n]+`): what separates sections.
    pub blankline_re: ConfigRegex,
}

/// `[main]`: where the database lives and general defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MainConfig {
    /// `database` (default `db`), resolved against the tracker directory.
    pub database: PathBuf,
    /// `admin_email` as written (default `roundup-admin`); see [`Settings::admin_email`].
    pub admin_email: String,
    /// `timezone` (default `0`): an hour offset or a zone name, for users without one.
    pub timezone: String,
    /// `password_pbkdf2_default_rounds` (default 250000, at least 1000).
    pub password_pbkdf2_default_rounds: u32,
}

/// `[tracker]`: the tracker's name and addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerConfig {
    /// `name` (default `Roundup issue tracker`), used in mails.
    pub name: String,
    /// `web`: the base URL (`http(s)://…/`); Roundup has no default.
    pub web: Option<String>,
    /// `email` as written (default `issue_tracker`); see [`Settings::tracker_email`].
    pub email: String,
}

/// `[web]`: the login and API settings this daemon honours.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    /// `api_failed_login_limit` (default 4; 0 switches the limiter off).
    pub api_failed_login_limit: u32,
    /// `api_failed_login_interval_in_sec` (default 600).
    pub api_failed_login_interval_in_sec: u64,
    /// `api_calls_per_interval` (default 0 = off).
    pub api_calls_per_interval: u32,
    /// `api_interval_in_sec` (default 3600).
    pub api_interval_in_sec: u64,
    /// `migrate_passwords` (default yes): rehash weak or deprecated hashes on login.
    pub migrate_passwords: bool,
    /// `login_empty_passwords` (default no).
    pub login_empty_passwords: bool,
}

/// `[rdbms] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `sqlite` (the default): `<database>/db`.
    #[default]
    Sqlite,
    /// `postgresql`: the server and database of the connection options.
    Postgresql,
}

/// The `[rdbms]` PostgreSQL connection options as config.ini gives them (`None` =
/// not given or empty: libpq's fallbacks apply); `postgres::connect` uses them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnSettings {
    /// `name`: the database, or `database.schema`.
    pub name: Option<String>,
    /// `host`: a host name or address, or a Unix-socket directory (starts with `/`).
    pub host: Option<String>,
    /// `port`.
    pub port: Option<String>,
    /// `user`.
    pub user: Option<String>,
    /// `password` (a `file://` value already read).
    pub password: Option<String>,
    /// `service`: an entry of the libpq service file.
    pub service: Option<String>,
    /// `template`: the template database `init` creates the database from.
    pub template: Option<String>,
    /// `sslmode` (ours, libpq's name): disable, allow, prefer, require, verify-ca,
    /// verify-full.
    pub sslmode: Option<String>,
    /// `sslrootcert` (ours): trusted CA certificates (PEM).
    pub sslrootcert: Option<PathBuf>,
    /// `sslcert` (ours): client certificate (PEM).
    pub sslcert: Option<PathBuf>,
    /// `sslkey` (ours): client key (PEM).
    pub sslkey: Option<PathBuf>,
    /// `connect_timeout` (ours, seconds; default 10).
    pub connect_timeout: Option<u64>,
    /// `pool_size` (ours): most connections one daemon keeps (default 24).
    pub pool_size: Option<usize>,
}

/// `[rdbms]`: the database backend and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct RdbmsConfig {
    /// `backend`: sqlite or postgresql.
    pub backend: Backend,
    /// PostgreSQL connection options (`name`, `host`, `port`, `user`, `password`,
    /// `service`, `template`, and our `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`, `connect_timeout`, `pool_size`); unused for sqlite.
    pub postgresql: ConnSettings,
    /// `sqlite_timeout` in seconds (default 30): the busy timeout.
    pub sqlite_timeout: u64,
    /// `allow_create` (default yes): schema migration may create tables.
    pub allow_create: bool,
    /// `allow_alter` (default yes): schema migration may alter tables.
    pub allow_alter: bool,
    /// `allow_drop` (default yes): schema migration may drop tables.
    pub allow_drop: bool,
}

/// `[mail]`: outgoing mail for nosy messages.
#[derive(Debug, Clone, PartialEq)]
pub struct MailConfig {
    /// `domain`: added to addresses without `@`; no default.
    pub domain: Option<String>,
    /// `host`: the SMTP server; no default.
    pub host: Option<String>,
    /// `port` (default 25).
    pub port: u16,
    /// `username` for SMTP AUTH (empty = none).
    pub username: Option<String>,
    /// `password` for SMTP AUTH (a `file://` value is read from that file's first line).
    pub password: Option<String>,
    /// `local_hostname` for HELO/EHLO (empty = automatic).
    pub local_hostname: Option<String>,
    /// `tls` (default no): use STARTTLS.
    pub tls: bool,
    /// `tls_keyfile`, resolved against the tracker directory.
    pub tls_keyfile: Option<PathBuf>,
    /// `tls_certfile`, resolved against the tracker directory.
    pub tls_certfile: Option<PathBuf>,
    /// `charset` for headers (default `utf-8`).
    pub charset: String,
    /// `debug`: write mails to this file instead of sending them.
    pub debug: Option<PathBuf>,
    /// `add_authorinfo` (default yes).
    pub add_authorinfo: bool,
    /// `add_authoremail` (default yes).
    pub add_authoremail: bool,
}

/// `[nosy]`: who gets nosy mails and who is added to nosy lists.
#[derive(Debug, Clone, PartialEq)]
pub struct NosyConfig {
    /// `messages_to_author` (default no).
    pub messages_to_author: MessagesToAuthor,
    /// `add_author` (default new).
    pub add_author: NosyAdd,
    /// `add_recipients` (default new).
    pub add_recipients: NosyAdd,
    /// `email_sending` (default single).
    pub email_sending: EmailSending,
    /// `signature_position` (default bottom).
    pub signature_position: SignaturePosition,
    /// `max_attachment_size` in bytes (default: unlimited, 2^63-1).
    pub max_attachment_size: u64,
}

/// `[xmlrpc_server]`: options of this daemon that Roundup does not have. Unset
/// process-wide options are `None` so the command line and built-in defaults apply
/// ([`serve::server_config`]).
#[derive(Debug, Clone, PartialEq)]
pub struct XmlrpcServerConfig {
    /// `password_default_scheme`: [`Scheme::Pbkdf2S5`] (default) or [`Scheme::Bcrypt`].
    pub password_default_scheme: Scheme,
    /// `bcrypt_cost` (default 12, 4..=16: the highest cost we verify is
    /// [`MAX_BCRYPT_COST`]).
    pub bcrypt_cost: u32,
    /// `bind`: listen address, e.g. `127.0.0.1:8000`.
    pub bind: Option<SocketAddr>,
    /// `trusted_proxies`: comma/space separated addresses or networks whose
    /// `X-Forwarded-For` is believed (default: none).
    pub trusted_proxies: Vec<IpNet>,
    /// `max_connections`: simultaneous connections.
    pub max_connections: Option<usize>,
    /// `max_request_bytes`: largest accepted request body.
    pub max_request_bytes: Option<usize>,
    /// `request_timeout_sec`: time allowed to receive a request.
    pub request_timeout_sec: Option<u64>,
    /// `max_connections_per_address`: simultaneous connections from one client
    /// address (0: no cap).
    pub max_connections_per_address: Option<usize>,
    /// `max_body_bytes_in_flight`: request bodies held in memory at once, in bytes.
    pub max_body_bytes_in_flight: Option<usize>,
    /// `request_deadline_sec`: time a call may take once its body is in.
    pub request_deadline_sec: Option<u64>,
    /// `python`: the interpreter that runs the tracker's Python detectors (default:
    /// the `ROUNDUP_PYTHON` environment variable, else `python3`).
    pub python: Option<String>,
    /// `detector_timeout_sec`: time a run of Python detectors (with what is nested
    /// in it) may take (default 30; the call's deadline applies too).
    pub detector_timeout_sec: u64,
    /// `log_format`: `text` or `json` (unset: the command line's, else text).
    pub log_format: Option<LogFormat>,
    /// `metrics_allow`: addresses or networks that may read `/metrics` (empty: the
    /// command line's, else loopback).
    pub metrics_allow: Vec<IpNet>,
}

/// A tracker's settings: its config.ini, typed, with Roundup's defaults for
/// everything not set.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The tracker directory (Roundup's `HOME`); relative paths are resolved against it.
    pub tracker_dir: PathBuf,
    /// `[main]`.
    pub main: MainConfig,
    /// `[tracker]`.
    pub tracker: TrackerConfig,
    /// `[web]`.
    pub web: WebConfig,
    /// `[rdbms]`.
    pub rdbms: RdbmsConfig,
    /// `[mail]`.
    pub mail: MailConfig,
    /// `[nosy]`.
    pub nosy: NosyConfig,
    /// `[xmlrpc_server]`.
    pub server: XmlrpcServerConfig,
    /// `[mailgw]`.
    pub mailgw: MailgwConfig,
}

impl Default for Settings {
    /// Roundup's defaults (an empty config.ini) for a tracker in the current directory.
    fn default() -> Self {
        parse_config("", Path::new(""), CONFIG_FILE)
            .unwrap_or_else(|e| unreachable!("the defaults are valid: {e}"))
    }
}

impl Settings {
    /// How new passwords are hashed (scheme and work factors), which also decides
    /// which stored hashes `[web] migrate_passwords` re-hashes.
    pub fn hash_policy(&self) -> HashPolicy {
        HashPolicy {
            scheme: self.server.password_default_scheme,
            pbkdf2_rounds: self.main.password_pbkdf2_default_rounds,
            bcrypt_cost: self.server.bcrypt_cost,
        }
    }

    /// `[mail] domain`, empty when it is not set.
    pub fn mail_domain(&self) -> &str {
        self.mail.domain.as_deref().unwrap_or_default()
    }

    /// The tracker's own address for mail: `[tracker] email` completed like
    /// [`Settings::tracker_email`], or as written when there is no domain to add.
    pub fn tracker_address(&self) -> String {
        self.tracker_email()
            .unwrap_or_else(|_| self.tracker.email.clone())
    }

    /// `[main] admin_email` with `@<[mail] domain>` added when it has no `@`
    /// (Roundup's `MailAddressOption`); an error if that is needed and no domain is set.
    pub fn admin_email(&self) -> Result<String, ConfigError> {
        self.mail_address("main", "admin_email", &self.main.admin_email)
    }

    /// `[tracker] email` completed like [`Settings::admin_email`].
    pub fn tracker_email(&self) -> Result<String, ConfigError> {
        self.mail_address("tracker", "email", &self.tracker.email)
    }

    fn mail_address(&self, section: &str, option: &str, v: &str) -> Result<String, ConfigError> {
        if v.contains('@') {
            return Ok(v.to_string());
        }
        match &self.mail.domain {
            Some(d) => Ok(format!("{v}@{d}")),
            None => Err(ConfigError::Invalid {
                file: self.tracker_dir.join(CONFIG_FILE).display().to_string(),
                section: section.into(),
                option: option.into(),
                message: format!("\"{v}\" has no domain and [mail] domain is not set"),
            }),
        }
    }
}

/// Reads `<tracker_dir>/config.ini`; a missing file gives the defaults.
pub fn load_config(tracker_dir: &Path) -> Result<Settings, ConfigError> {
    let path = tracker_dir.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(ConfigError::Io {
                file: path.display().to_string(),
                source,
            })
        }
    };
    parse_config(&text, tracker_dir, &path.display().to_string())
}

/// Parses config.ini text; `tracker_dir` resolves relative paths and `%(HOME)s`,
/// `file_name` prefixes errors.
pub fn parse_config(
    text: &str,
    tracker_dir: &Path,
    file_name: &str,
) -> Result<Settings, ConfigError> {
    let r = read_ini(text, file_name, tracker_dir)?;

    let timezone = r.string("main", "timezone", "0")?;
    let tz_ok = timezone.trim().parse::<i64>().is_ok()
        || (timezone.starts_with(|c: char| c.is_ascii_alphabetic())
            && timezone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+-/".contains(c)));
    if !tz_ok {
        return Err(r.invalid(
            "main",
            "timezone",
            format!("\"{timezone}\": a time zone name or an hour offset is required"),
        ));
    }
    let main = MainConfig {
        database: tracker_dir.join(
            r.opt_string("main", "database")?
                .unwrap_or_else(|| "db".into()),
        ),
        admin_email: r.string("main", "admin_email", "roundup-admin")?,
        timezone,
        password_pbkdf2_default_rounds: r.number(
            "main",
            "password_pbkdf2_default_rounds",
            250_000,
            MIN_PBKDF2_ROUNDS,
            None,
        )?,
    };

    let web_url = r.get("tracker", "web")?;
    if let Some(w) = &web_url {
        let mut problems = Vec::new();
        if !(w.starts_with("http://") || w.starts_with("https://")) {
            problems.push("start with http:// or https://");
        }
        if !w.ends_with('/') {
            problems.push("end with /");
        }
        if !problems.is_empty() {
            return Err(r.invalid(
                "tracker",
                "web",
                format!("\"{w}\": the URL must {}", problems.join(" and ")),
            ));
        }
    }
    let tracker = TrackerConfig {
        name: r.string("tracker", "name", "Roundup issue tracker")?,
        web: web_url,
        email: r.string("tracker", "email", "issue_tracker")?,
    };

    let web = WebConfig {
        api_failed_login_limit: r.number("web", "api_failed_login_limit", 4, 0, None)?,
        api_failed_login_interval_in_sec: r.number(
            "web",
            "api_failed_login_interval_in_sec",
            600,
            1,
            None,
        )?,
        api_calls_per_interval: r.number("web", "api_calls_per_interval", 0, 0, None)?,
        api_interval_in_sec: r.number("web", "api_interval_in_sec", 3600, 1, None)?,
        migrate_passwords: r.boolean("web", "migrate_passwords", true)?,
        login_empty_passwords: r.boolean("web", "login_empty_passwords", false)?,
    };

    let backend = match r.opt_string("rdbms", "backend")?.as_deref() {
        None | Some("sqlite") => Backend::Sqlite,
        Some("postgresql") => Backend::Postgresql,
        Some(b) => {
            return Err(r.invalid(
                "rdbms",
                "backend",
                format!("\"{b}\": only sqlite and postgresql are supported"),
            ))
        }
    };
    if backend == Backend::Postgresql
        && r.opt_string("main", "indexer")?.as_deref() == Some("native-fts")
    {
        // Roundup would search __fts, which this server does not write.
        return Err(r.invalid(
            "main",
            "indexer",
            "\"native-fts\": not supported (the native indexer's __words is)",
        ));
    }
    let rdbms = RdbmsConfig {
        backend,
        postgresql: pg_settings(&r)?,
        sqlite_timeout: r.number("rdbms", "sqlite_timeout", 30, 0, None)?,
        allow_create: r.boolean("rdbms", "allow_create", true)?,
        allow_alter: r.boolean("rdbms", "allow_alter", true)?,
        allow_drop: r.boolean("rdbms", "allow_drop", true)?,
    };

    let mail = MailConfig {
        domain: r.opt_string("mail", "domain")?,
        host: r.opt_string("mail", "host")?,
        port: r.number("mail", "port", 25, 0, None)?,
        username: r.opt_string("mail", "username")?,
        password: r.secret("mail", "password")?,
        local_hostname: r.opt_string("mail", "local_hostname")?,
        tls: r.boolean("mail", "tls", false)?,
        tls_keyfile: r.path("mail", "tls_keyfile")?,
        tls_certfile: r.path("mail", "tls_certfile")?,
        charset: r.string("mail", "charset", "utf-8")?,
        debug: r.path("mail", "debug")?,
        add_authorinfo: r.boolean("mail", "add_authorinfo", true)?,
        add_authoremail: r.boolean("mail", "add_authoremail", true)?,
    };
    if mail.username.is_some() && mail.password.is_none() {
        return Err(r.invalid(
            "mail",
            "password",
            "must be set because [mail] username is set",
        ));
    }

    let add = [
        ("yes", NosyAdd::Yes),
        ("no", NosyAdd::No),
        ("new", NosyAdd::New),
    ];
    let nosy = NosyConfig {
        messages_to_author: r.choice(
            "nosy",
            "messages_to_author",
            MessagesToAuthor::No,
            &[
                ("yes", MessagesToAuthor::Yes),
                ("no", MessagesToAuthor::No),
                ("new", MessagesToAuthor::New),
                ("nosy", MessagesToAuthor::Nosy),
            ],
        )?,
        add_author: r.choice("nosy", "add_author", NosyAdd::New, &add)?,
        add_recipients: r.choice("nosy", "add_recipients", NosyAdd::New, &add)?,
        email_sending: r.choice(
            "nosy",
            "email_sending",
            EmailSending::Single,
            &[
                ("single", EmailSending::Single),
                ("multiple", EmailSending::Multiple),
            ],
        )?,
        signature_position: r.choice(
            "nosy",
            "signature_position",
            SignaturePosition::Bottom,
            &[
                ("top", SignaturePosition::Top),
                ("bottom", SignaturePosition::Bottom),
                ("none", SignaturePosition::None),
            ],
        )?,
        max_attachment_size: r.number("nosy", "max_attachment_size", i64::MAX as u64, 0, None)?,
    };

    let server = parse_server(&r)?;
    let mailgw = parse_mailgw(&r)?;
    Ok(Settings {
        tracker_dir: tracker_dir.to_path_buf(),
        main,
        tracker,
        web,
        rdbms,
        mail,
        nosy,
        server,
        mailgw,
    })
}

fn parse_mailgw(r: &RawIni) -> Result<MailgwConfig, ConfigError> {
    let regex = |option: &str, default: &str| -> Result<ConfigRegex, ConfigError> {
        let pattern = r.string("mailgw", option, default)?;
        regex::Regex::new(&pattern).map(ConfigRegex).map_err(|e| {
            r.invalid(
                "mailgw",
                option,
                format!("\"{pattern}\": not a regular expression this server can use: {e}"),
            )
        })
    };
    Ok(MailgwConfig {
        keep_quoted_text: r.choice(
            "mailgw",
            "keep_quoted_text",
            EmailBody::Yes,
            &[
                ("yes", EmailBody::Yes),
                ("no", EmailBody::No),
                ("new", EmailBody::New),
            ],
        )?,
        eol_re: regex("eol_re", r"[\r\n]+")?,
        blankline_re: regex("blankline_re", r"[\r\n]+\s*[\r\n]+")?,
    })
}

/// The PostgreSQL connection options of `[rdbms]`. As in Roundup, a missing
/// `name`, `host`, `user` or `password` has Roundup's default (`roundup`,
/// `localhost`, `roundup`, `roundup`), while an empty one is not passed, leaving
/// it to libpq's fallbacks (environment, service file, defaults).
fn pg_settings(r: &RawIni) -> Result<ConnSettings, ConfigError> {
    let roundup_default = |o: &str, default: &str| -> Result<Option<String>, ConfigError> {
        Ok(match r.get("rdbms", o)? {
            None => Some(default.to_string()),
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_string()),
        })
    };
    let password = match r.get("rdbms", "password")? {
        None => Some("roundup".to_string()),
        Some(_) => r.secret("rdbms", "password")?,
    };
    let trimmed = |o: &str| -> Result<Option<String>, ConfigError> {
        Ok(r.opt_string("rdbms", o)?
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()))
    };
    Ok(ConnSettings {
        name: roundup_default("name", "roundup")?,
        host: roundup_default("host", "localhost")?,
        port: trimmed("port")?,
        user: roundup_default("user", "roundup")?,
        password,
        service: trimmed("service")?,
        template: trimmed("template")?,
        sslmode: trimmed("sslmode")?,
        sslrootcert: r.path("rdbms", "sslrootcert")?,
        sslcert: r.path("rdbms", "sslcert")?,
        sslkey: r.path("rdbms", "sslkey")?,
        connect_timeout: r.opt_number("rdbms", "connect_timeout", 1)?,
        pool_size: r.opt_number("rdbms", "pool_size", 2usize)?,
    })
}

/// The options of `[xmlrpc_server]` (an unknown one there is an error: it is ours).
pub const SERVER_OPTIONS: [&str; 14] = [
    "password_default_scheme",
    "bcrypt_cost",
    "bind",
    "trusted_proxies",
    "max_connections",
    "max_request_bytes",
    "request_timeout_sec",
    "max_connections_per_address",
    "max_body_bytes_in_flight",
    "request_deadline_sec",
    "python",
    "detector_timeout_sec",
    "log_format",
    "metrics_allow",
];

fn parse_server(r: &RawIni) -> Result<XmlrpcServerConfig, ConfigError> {
    let s = SERVER_SECTION;
    if let Some(opts) = r.sections.get(s) {
        let mut names: Vec<&String> = opts.keys().collect();
        names.sort();
        if let Some(bad) = names
            .into_iter()
            .find(|k| !SERVER_OPTIONS.contains(&k.as_str()))
        {
            return Err(r.invalid(
                s,
                bad,
                format!("unknown option (known: {})", SERVER_OPTIONS.join(", ")),
            ));
        }
    }
    let bind = match r.opt_string(s, "bind")? {
        None => None,
        Some(b) => Some(b.parse::<SocketAddr>().map_err(|_| {
            r.invalid(
                s,
                "bind",
                format!(
                    "\"{b}\": an address:port such as 127.0.0.1:8000 or [::1]:8000 is required"
                ),
            )
        })?),
    };
    let trusted_proxies = nets(r, "trusted_proxies")?;
    let metrics_allow = nets(r, "metrics_allow")?;
    let log_format = match r.opt_string(s, "log_format")? {
        None => None,
        Some(_) => Some(r.choice(
            s,
            "log_format",
            LogFormat::Text,
            &[("text", LogFormat::Text), ("json", LogFormat::Json)],
        )?),
    };
    Ok(XmlrpcServerConfig {
        password_default_scheme: r.choice(
            s,
            "password_default_scheme",
            Scheme::Pbkdf2S5,
            &[("PBKDF2S5", Scheme::Pbkdf2S5), ("BCRYPT", Scheme::Bcrypt)],
        )?,
        bcrypt_cost: r.number(
            s,
            "bcrypt_cost",
            BCRYPT_COST,
            MIN_BCRYPT_COST,
            Some(MAX_BCRYPT_COST),
        )?,
        bind,
        trusted_proxies,
        max_connections: r.opt_number(s, "max_connections", 1)?,
        max_request_bytes: r.opt_number(s, "max_request_bytes", 1)?,
        request_timeout_sec: r.opt_number(s, "request_timeout_sec", 1)?,
        max_connections_per_address: r.opt_number(s, "max_connections_per_address", 0)?,
        max_body_bytes_in_flight: r.opt_number(s, "max_body_bytes_in_flight", 1)?,
        request_deadline_sec: r.opt_number(s, "request_deadline_sec", 1)?,
        python: r.opt_string(s, "python")?.filter(|p| !p.is_empty()),
        detector_timeout_sec: r.number(s, "detector_timeout_sec", 30, 1, Some(86_400))?,
        log_format,
        metrics_allow,
    })
}

/// A list of addresses or networks (comma or space separated) of `[xmlrpc_server]`.
fn nets(r: &RawIni, option: &str) -> Result<Vec<IpNet>, ConfigError> {
    let mut nets = Vec::new();
    for item in r
        .string(SERVER_SECTION, option, "")?
        .split(|c: char| c == ',' || c.is_whitespace())
    {
        if item.is_empty() {
            continue;
        }
        match parse_net(item) {
            Ok(n) => nets.push(n),
            Err(_) => {
                return Err(r.invalid(
                    SERVER_SECTION,
                    option,
                    format!("\"{item}\" is not an IP address or network (a.b.c.d/len)"),
                ))
            }
        }
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        let c = parse_config(
            "[mail]\ndebug = %(HOME)s/mail%%.txt\n[tracker]\nname = 100%% %(x)s\nx = y\n",
            Path::new("/t"),
            "c.ini",
        )
        .unwrap();
        assert_eq!(c.mail.debug, Some(PathBuf::from("/t/mail%.txt")));
        assert_eq!(c.tracker.name, "100% y");
        let e = parse_config("[tracker]\nname = 5%\n", Path::new("/t"), "c.ini").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.ini: [tracker] name: bad interpolation"),
            "{e}"
        );
    }

    #[test]
    fn trusted_proxies_are_networks() {
        let c = parse_config(
            "[xmlrpc_server]\ntrusted_proxies = 10.1.0.0/16, ::1\n",
            Path::new("/t"),
            "c.ini",
        )
        .unwrap();
        assert_eq!(
            c.server.trusted_proxies,
            vec![parse_net("10.1.0.0/16").unwrap(), parse_net("::1").unwrap()]
        );
        for bad in ["10.0.0.0/33", "nope"] {
            let e = parse_config(
                &format!("[xmlrpc_server]\ntrusted_proxies = {bad}\n"),
                Path::new("/t"),
                "c.ini",
            )
            .unwrap_err();
            assert!(
                e.to_string().contains("is not an IP address or network"),
                "{e}"
            );
        }
    }

    #[test]
    fn defaults_parse() {
        let s = Settings::default();
        assert_eq!(s.main.password_pbkdf2_default_rounds, 250_000);
        assert_eq!(s.hash_policy(), HashPolicy::default());
    }
}
