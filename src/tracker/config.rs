//! The tracker's `config.ini`, read the way Roundup's `configuration.py` reads it
//! (Python `configparser`: `[section]`, `key = value`, `#`/`;` comment lines,
//! case-insensitive option names, `%%` and `%(name)s` interpolation), with typed
//! fields for the settings this daemon honours, plus [`write_settings`] for
//! `--set KEY=VALUE` at install time.
//!
//! Missing file, sections or options give Roundup's defaults; options Roundup knows
//! but we do not use are ignored, as Roundup ignores unknown ones. Our own options live
//! in `[xmlrpc_server]`, a section Roundup ignores.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ini::{Ini, ParseOption};

/// The file name of the configuration inside a tracker directory.
pub const CONFIG_FILE: &str = "config.ini";

/// The section holding this daemon's own options (Roundup ignores it).
pub const SERVER_SECTION: &str = "xmlrpc_server";

/// Smallest PBKDF2 round count Roundup can hash with (`password.py` refuses fewer).
pub const MIN_PBKDF2_ROUNDS: u32 = 1000;

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
    #[error("{file}:{line}:{column}: {message}")]
    Syntax {
        /// The path.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
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

/// `[xmlrpc_server] password_default_scheme`: how new passwords are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordScheme {
    /// `PBKDF2S5` (PBKDF2-HMAC-SHA512; Roundup's default, readable by Roundup).
    Pbkdf2S5,
    /// `BCRYPT` (not understood by Roundup itself).
    Bcrypt,
}

impl PasswordScheme {
    /// The scheme's name as written in `{SCHEME}` password prefixes and config.ini.
    pub fn as_str(self) -> &'static str {
        match self {
            PasswordScheme::Pbkdf2S5 => "PBKDF2S5",
            PasswordScheme::Bcrypt => "BCRYPT",
        }
    }
}

/// An IP address or network (`192.0.2.0/24`, `::1`) from `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    /// The network address (as written).
    pub addr: IpAddr,
    /// Prefix length in bits (32 or 128 for a single address).
    pub prefix: u8,
}

impl IpNetwork {
    /// Parses `addr` or `addr/prefix`.
    pub fn parse(text: &str) -> Option<IpNetwork> {
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|&n| n <= max)?,
        };
        Some(IpNetwork { addr, prefix })
    }

    /// True if `ip` is inside this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `[main]`: where the database lives and general defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct MainConfig {
    /// `database` (default `db`), resolved against the tracker directory.
    pub database: PathBuf,
    /// `admin_email` as written (default `roundup-admin`); see [`Config::admin_email`].
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
    /// `email` as written (default `issue_tracker`); see [`Config::tracker_email`].
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

/// `[rdbms]`: the database backend and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct RdbmsConfig {
    /// `backend`: sqlite or postgresql.
    pub backend: Backend,
    /// PostgreSQL connection options (`name`, `host`, `port`, `user`, `password`,
    /// `service`, `template`, and our `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`, `connect_timeout`, `pool_size`); unused for sqlite.
    pub postgresql: crate::store::postgres::ConnSettings,
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
/// process-wide options are `None` so the command line and built-in defaults apply.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// `password_default_scheme`: `PBKDF2S5` (default) or `BCRYPT`.
    pub password_default_scheme: PasswordScheme,
    /// `bcrypt_cost` (default 12, 4..=16: the highest cost we verify is
    /// [`crate::auth::password::MAX_BCRYPT_COST`]).
    pub bcrypt_cost: u32,
    /// `bind`: listen address, e.g. `127.0.0.1:8000`.
    pub bind: Option<SocketAddr>,
    /// `trusted_proxies`: comma/space separated addresses or networks whose
    /// `X-Forwarded-For` is believed (default: none).
    pub trusted_proxies: Vec<IpNetwork>,
    /// `max_connections`: simultaneous connections.
    pub max_connections: Option<usize>,
    /// `max_request_bytes`: largest accepted request body.
    pub max_request_bytes: Option<usize>,
    /// `request_timeout_sec`: time allowed to receive a request.
    pub request_timeout_sec: Option<u64>,
}

/// A tracker's configuration, with Roundup's defaults for everything not set.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
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
    pub server: ServerConfig,
}

impl Config {
    /// `[main] admin_email` with `@<[mail] domain>` added when it has no `@`
    /// (Roundup's `MailAddressOption`); an error if that is needed and no domain is set.
    pub fn admin_email(&self) -> Result<String, ConfigError> {
        self.mail_address("main", "admin_email", &self.main.admin_email)
    }

    /// `[tracker] email` completed like [`Config::admin_email`].
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
pub fn load_config(tracker_dir: &Path) -> Result<Config, ConfigError> {
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

/// The sections and options of an ini text: option names lower-cased, values raw.
struct RawIni {
    file: String,
    home: PathBuf,
    sections: HashMap<String, HashMap<String, String>>,
}

fn read_ini(text: &str, file: &str, home: &Path) -> Result<RawIni, ConfigError> {
    let opt = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    let ini = Ini::load_from_str_opt(text, opt).map_err(|e| ConfigError::Syntax {
        file: file.to_string(),
        line: e.line,
        column: e.col,
        message: e.msg.to_string(),
    })?;
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    for (name, props) in ini.iter() {
        let Some(name) = name else {
            if let Some((k, _)) = props.iter().next() {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    section: String::new(),
                    option: k.to_string(),
                    message: "option before the first [section] header".into(),
                });
            }
            continue;
        };
        if sections.contains_key(name) {
            return Err(ConfigError::Invalid {
                file: file.to_string(),
                section: name.to_string(),
                option: String::new(),
                message: "section appears twice".into(),
            });
        }
        let mut opts = HashMap::new();
        for (k, v) in props.iter() {
            let key = k.trim().to_lowercase();
            if opts.insert(key.clone(), v.to_string()).is_some() {
                return Err(ConfigError::Invalid {
                    file: file.to_string(),
                    section: name.to_string(),
                    option: key,
                    message: "option set twice in this section".into(),
                });
            }
        }
        sections.insert(name.to_string(), opts);
    }
    Ok(RawIni {
        file: file.to_string(),
        home: home.to_path_buf(),
        sections,
    })
}

impl RawIni {
    fn invalid(&self, section: &str, option: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            section: section.into(),
            option: option.into(),
            message: message.into(),
        }
    }

    fn raw(&self, section: &str, option: &str) -> Option<&str> {
        self.sections
            .get(section)
            .and_then(|s| s.get(option))
            .or_else(|| self.sections.get("DEFAULT").and_then(|s| s.get(option)))
            .map(String::as_str)
    }

    /// The interpolated value, if the option is present (configparser's
    /// BasicInterpolation: `%%` → `%`, `%(name)s` → that option of the same section,
    /// of `[DEFAULT]`, or `home` = the tracker directory).
    fn get(&self, section: &str, option: &str) -> Result<Option<String>, ConfigError> {
        match self.raw(section, option) {
            None => Ok(None),
            Some(v) => self.interpolate(section, option, v, 0).map(Some),
        }
    }

    fn interpolate(
        &self,
        section: &str,
        option: &str,
        v: &str,
        depth: usize,
    ) -> Result<String, ConfigError> {
        if depth > 10 {
            return Err(self.invalid(section, option, "interpolation nested too deeply"));
        }
        let mut out = String::new();
        let mut rest = v;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(t) = after.strip_prefix('%') {
                out.push('%');
                rest = t;
            } else if let Some(t) = after.strip_prefix('(') {
                let Some(end) = t.find(")s") else {
                    return Err(self.invalid(
                        section,
                        option,
                        format!("bad interpolation in \"{v}\" (write %% for a literal %)"),
                    ));
                };
                let name = t[..end].to_lowercase();
                let sub = if name == "home" && self.raw(section, "home").is_none() {
                    self.home.display().to_string()
                } else {
                    match self.raw(section, &name) {
                        Some(r) => self.interpolate(section, option, r, depth + 1)?,
                        None => {
                            return Err(self.invalid(
                                section,
                                option,
                                format!("\"{v}\" refers to unknown option \"{name}\""),
                            ))
                        }
                    }
                };
                out.push_str(&sub);
                rest = &t[end + 2..];
            } else {
                return Err(self.invalid(
                    section,
                    option,
                    format!("bad interpolation in \"{v}\" (write %% for a literal %)"),
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn string(&self, s: &str, o: &str, default: &str) -> Result<String, ConfigError> {
        Ok(self.get(s, o)?.unwrap_or_else(|| default.to_string()))
    }

    /// Empty or missing → None.
    fn opt_string(&self, s: &str, o: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.get(s, o)?.filter(|v| !v.is_empty()))
    }

    fn boolean(&self, s: &str, o: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(s, o)? {
            None => Ok(default),
            Some(v) => match v.to_lowercase().as_str() {
                "yes" | "true" | "on" | "1" => Ok(true),
                "no" | "false" | "off" | "0" => Ok(false),
                _ => Err(self.invalid(s, o, format!("\"{v}\": allowed values are yes and no"))),
            },
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        s: &str,
        o: &str,
        default: T,
        min: T,
        max: Option<T>,
    ) -> Result<T, ConfigError> {
        let Some(v) = self.get(s, o)? else {
            return Ok(default);
        };
        let range = match max {
            Some(m) => format!("an integer from {min} to {m}"),
            None => format!("an integer of at least {min}"),
        };
        match v.trim().parse::<T>() {
            Ok(n) if n >= min && max.is_none_or(|m| n <= m) => Ok(n),
            _ => Err(self.invalid(s, o, format!("\"{v}\": {range} is required"))),
        }
    }

    fn opt_number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        s: &str,
        o: &str,
        min: T,
    ) -> Result<Option<T>, ConfigError> {
        match self.opt_string(s, o)? {
            None => Ok(None),
            Some(_) => self.number(s, o, min, min, None).map(Some),
        }
    }

    fn choice<T: Copy>(
        &self,
        s: &str,
        o: &str,
        default: T,
        allowed: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let Some(v) = self.get(s, o)? else {
            return Ok(default);
        };
        let lower = v.to_lowercase();
        allowed
            .iter()
            .find(|(n, _)| n.to_lowercase() == lower)
            .map(|(_, t)| *t)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                self.invalid(
                    s,
                    o,
                    format!("\"{v}\": allowed values are {}", names.join(", ")),
                )
            })
    }

    /// Empty or missing → None; relative paths are resolved against the tracker dir.
    fn path(&self, s: &str, o: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.opt_string(s, o)?.map(|v| self.home.join(v)))
    }

    /// Roundup's SecretOption: `file://path` means the first line of that file.
    fn secret(&self, s: &str, o: &str) -> Result<Option<String>, ConfigError> {
        let Some(v) = self.opt_string(s, o)? else {
            return Ok(None);
        };
        let Some(p) = v.strip_prefix("file://") else {
            return Ok(Some(v));
        };
        let path = self.home.join(p.trim());
        let text = std::fs::read_to_string(&path)
            .map_err(|e| self.invalid(s, o, format!("cannot read {}: {e}", path.display())))?;
        Ok(Some(
            text.lines().next().unwrap_or("").trim_end().to_string(),
        ))
    }
}

/// Parses config.ini text; `tracker_dir` resolves relative paths and `%(HOME)s`,
/// `file_name` prefixes errors.
pub fn parse_config(
    text: &str,
    tracker_dir: &Path,
    file_name: &str,
) -> Result<Config, ConfigError> {
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
    Ok(Config {
        tracker_dir: tracker_dir.to_path_buf(),
        main,
        tracker,
        web,
        rdbms,
        mail,
        nosy,
        server,
    })
}

/// The PostgreSQL connection options of `[rdbms]`. As in Roundup, a missing
/// `name`, `host`, `user` or `password` has Roundup's default (`roundup`,
/// `localhost`, `roundup`, `roundup`), while an empty one is not passed, leaving
/// it to libpq's fallbacks (environment, service file, defaults).
fn pg_settings(r: &RawIni) -> Result<crate::store::postgres::ConnSettings, ConfigError> {
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
    Ok(crate::store::postgres::ConnSettings {
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
pub const SERVER_OPTIONS: [&str; 7] = [
    "password_default_scheme",
    "bcrypt_cost",
    "bind",
    "trusted_proxies",
    "max_connections",
    "max_request_bytes",
    "request_timeout_sec",
];

fn parse_server(r: &RawIni) -> Result<ServerConfig, ConfigError> {
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
    let mut trusted_proxies = Vec::new();
    for item in r
        .string(s, "trusted_proxies", "")?
        .split(|c: char| c == ',' || c.is_whitespace())
    {
        if item.is_empty() {
            continue;
        }
        match IpNetwork::parse(item) {
            Some(n) => trusted_proxies.push(n),
            None => {
                return Err(r.invalid(
                    s,
                    "trusted_proxies",
                    format!("\"{item}\" is not an IP address or network (a.b.c.d/len)"),
                ))
            }
        }
    }
    Ok(ServerConfig {
        password_default_scheme: r.choice(
            s,
            "password_default_scheme",
            PasswordScheme::Pbkdf2S5,
            &[
                ("PBKDF2S5", PasswordScheme::Pbkdf2S5),
                ("BCRYPT", PasswordScheme::Bcrypt),
            ],
        )?,
        bcrypt_cost: r.number(
            s,
            "bcrypt_cost",
            crate::auth::password::BCRYPT_COST,
            crate::auth::password::MIN_BCRYPT_COST,
            Some(crate::auth::password::MAX_BCRYPT_COST),
        )?,
        bind,
        trusted_proxies,
        max_connections: r.opt_number(s, "max_connections", 1)?,
        max_request_bytes: r.opt_number(s, "max_request_bytes", 1)?,
        request_timeout_sec: r.opt_number(s, "request_timeout_sec", 1)?,
    })
}

/// Every option of Roundup 2.6's config.ini, by section, in Roundup's order.
const ROUNDUP_OPTIONS: &[(&str, &[&str])] = &[
    (
        "main",
        &[
            "database",
            "template_engine",
            "templates",
            "static_files",
            "admin_email",
            "dispatcher_email",
            "email_from_tag",
            "new_web_user_roles",
            "new_email_user_roles",
            "obsolete_history_roles",
            "error_messages_to",
            "html_version",
            "timezone",
            "instant_registration",
            "email_registration_confirmation",
            "indexer",
            "indexer_language",
            "indexer_stopwords",
            "umask",
            "csv_field_size",
            "password_pbkdf2_default_rounds",
        ],
    ),
    (
        "tracker",
        &["name", "web", "email", "replyto_address", "language"],
    ),
    (
        "web",
        &[
            "allow_html_file",
            "http_auth",
            "http_auth_header",
            "dynamic_compression",
            "use_precompressed_files",
            "http_auth_convert_realm_to_lowercase",
            "cookie_takes_precedence",
            "login_attempts_min",
            "registration_delay",
            "registration_prevalidate_username",
            "samesite_cookie_setting",
            "enable_xmlrpc",
            "translate_xmlrpc",
            "enable_rest",
            "translate_rest",
            "rest_logging",
            "api_calls_per_interval",
            "api_interval_in_sec",
            "api_failed_login_limit",
            "api_failed_login_interval_in_sec",
            "use_tokenless_csrf_protection",
            "allowed_api_origins",
            "csrf_enforce_token",
            "csrf_token_lifetime",
            "csrf_enforce_header_x-requested-with",
            "csrf_enforce_header_referer",
            "csrf_enforce_header_origin",
            "csrf_enforce_header_x-forwarded-host",
            "csrf_enforce_header_host",
            "csrf_header_min_count",
            "use_browser_language",
            "debug",
            "login_empty_passwords",
            "migrate_passwords",
            "secret_key",
            "jwt_secret",
            "use_browser_date_input",
            "use_browser_number_input",
        ],
    ),
    (
        "rdbms",
        &[
            "backend",
            "debug_filter",
            "name",
            "host",
            "port",
            "user",
            "password",
            "service",
            "read_default_file",
            "read_default_group",
            "mysql_charset",
            "mysql_collation",
            "mysql_binary_collation",
            "sqlite_timeout",
            "cache_size",
            "allow_create",
            "allow_alter",
            "allow_drop",
            "template",
            "isolation_level",
            "serverside_cursor",
            // Ours (libpq's names; Roundup ignores them): PostgreSQL TLS,
            // connection timeout and pool size.
            "sslmode",
            "sslrootcert",
            "sslcert",
            "sslkey",
            "connect_timeout",
            "pool_size",
        ],
    ),
    ("sessiondb", &["backend", "redis_url"]),
    (
        "logging",
        &["config", "filename", "level", "format", "disable_loggers"],
    ),
    (
        "mail",
        &[
            "domain",
            "host",
            "username",
            "password",
            "port",
            "local_hostname",
            "tls",
            "tls_keyfile",
            "tls_certfile",
            "charset",
            "debug",
            "add_authorinfo",
            "add_authoremail",
        ],
    ),
    (
        "mailgw",
        &[
            "keep_quoted_text",
            "leave_body_unchanged",
            "default_class",
            "language",
            "subject_prefix_parsing",
            "subject_suffix_parsing",
            "subject_suffix_delimiters",
            "subject_content_match",
            "subject_updates_title",
            "refwd_re",
            "origmsg_re",
            "sign_re",
            "eol_re",
            "blankline_re",
            "unpack_rfc822",
            "ignore_alternatives",
            "convert_htmltotext",
            "keep_real_from",
        ],
    ),
    (
        "pgp",
        &["enable", "roles", "homedir", "encrypt", "require_incoming"],
    ),
    (
        "nosy",
        &[
            "messages_to_author",
            "signature_position",
            "add_author",
            "add_recipients",
            "email_sending",
            "max_attachment_size",
        ],
    ),
    ("markdown", &["break_on_newline"]),
    (SERVER_SECTION, &SERVER_OPTIONS),
];

/// Roundup's historical aliases (`configuration.py`), upper-case, to (section, option).
const ALIASES: &[(&str, &str, &str)] = &[
    ("DEFAULT_TIMEZONE", "main", "timezone"),
    ("MYSQL_DBNAME", "rdbms", "name"),
    ("MYSQL_DBHOST", "rdbms", "host"),
    ("MYSQL_DBUSER", "rdbms", "user"),
    ("MYSQL_DBPASSWORD", "rdbms", "password"),
    ("MAILHOST", "mail", "host"),
    ("EMAIL_CHARSET", "mail", "charset"),
    ("EMAIL_KEEP_QUOTED_TEXT", "mailgw", "keep_quoted_text"),
    (
        "EMAIL_LEAVE_BODY_UNCHANGED",
        "mailgw",
        "leave_body_unchanged",
    ),
    ("MAIL_DEFAULT_CLASS", "mailgw", "default_class"),
    ("EMAIL_KEEP_REAL_FROM", "mailgw", "keep_real_from"),
    ("MESSAGES_TO_AUTHOR", "nosy", "messages_to_author"),
    ("EMAIL_SIGNATURE_POSITION", "nosy", "signature_position"),
    ("ADD_AUTHOR_TO_NOSY", "nosy", "add_author"),
    ("ADD_RECIPIENTS_TO_NOSY", "nosy", "add_recipients"),
];

/// Resolves a setting name to (section, option): Roundup's names (`admin_email` for
/// `[main]` options, `<section>_<option>` for the others, e.g. `mail_domain`,
/// `tracker_web`), Roundup's historical aliases (`mailhost`), or `section.option`;
/// all case-insensitive.
pub fn resolve_setting(key: &str) -> Option<(&'static str, &'static str)> {
    let find = |section: &str, option: &str| {
        ROUNDUP_OPTIONS
            .iter()
            .find(|(s, _)| *s == section)
            .and_then(|(s, opts)| opts.iter().find(|o| **o == option).map(|o| (*s, *o)))
    };
    let lower = key.trim().to_lowercase();
    if let Some((s, o)) = lower.split_once('.') {
        return find(s, o);
    }
    if let Some(r) = find("main", &lower) {
        return Some(r);
    }
    for (s, opts) in ROUNDUP_OPTIONS {
        if let Some(rest) = lower.strip_prefix(s).and_then(|r| r.strip_prefix('_')) {
            if let Some(o) = opts.iter().find(|o| **o == rest) {
                return Some((*s, *o));
            }
        }
    }
    let upper = lower.to_uppercase();
    ALIASES
        .iter()
        .find(|(a, _, _)| *a == upper)
        .and_then(|(_, s, o)| find(s, o))
}

/// Applies `settings` (`(KEY, VALUE)`, see [`resolve_setting`]) to the config.ini at
/// `config_ini_path`, creating it if missing. An option line is replaced in place
/// (a commented-out `#option = …` line too), otherwise the option is added after
/// the section's last option (or a new section is appended); comments are kept.
/// Values are written verbatim (write `%%` for a literal `%`). The result must load
/// ([`parse_config`]), or nothing is written.
pub fn write_settings(
    config_ini_path: &Path,
    settings: &[(String, String)],
) -> Result<(), ConfigError> {
    let file = config_ini_path.display().to_string();
    let mut text = match std::fs::read_to_string(config_ini_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => return Err(ConfigError::Io { file, source }),
    };
    for (key, value) in settings {
        let (section, option) =
            resolve_setting(key).ok_or_else(|| ConfigError::UnknownSetting(key.clone()))?;
        if value.contains(['\n', '\r']) {
            return Err(ConfigError::BadSetting(
                key.clone(),
                "the value must be a single line".into(),
            ));
        }
        text = apply_setting(&text, section, option, value.trim());
    }
    let home = config_ini_path.parent().unwrap_or(Path::new("."));
    parse_config(&text, home, &file)?;
    std::fs::write(config_ini_path, text).map_err(|source| ConfigError::Io { file, source })
}

/// Splits `KEY=VALUE` (the form of `--set`) at the first `=`.
pub fn parse_setting_arg(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(ConfigError::BadSetting(
            arg.to_string(),
            "expected KEY=VALUE".into(),
        )),
    }
}

fn section_header(line: &str) -> Option<&str> {
    let rest = line.trim().strip_prefix('[')?;
    rest.find(']').map(|e| rest[..e].trim())
}

/// The lower-cased option name of an active `key = value` line.
fn option_of(line: &str) -> Option<String> {
    if line.starts_with([' ', '\t']) || line.trim_start().starts_with(['#', ';']) {
        return None;
    }
    let end = line.find(['=', ':'])?;
    Some(line[..end].trim().to_lowercase())
}

/// Sets `option = value` in `[section]` of an ini text, keeping everything else.
fn apply_setting(text: &str, section: &str, option: &str, value: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let new_line = if value.is_empty() {
        format!("{option} =")
    } else {
        format!("{option} = {value}")
    };
    let mut cur: Option<String> = None;
    let mut header_at = None;
    let mut last_option_end = None; // index after the last option (and continuation) line
    let mut active = None;
    let mut commented = None;
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if let Some(h) = section_header(line) {
            cur = Some(h.to_string());
            if h == section && header_at.is_none() {
                header_at = Some(i);
            }
            i += 1;
            continue;
        }
        if cur.as_deref() == Some(section) {
            if let Some(name) = option_of(line) {
                let mut end = i + 1;
                while end < lines.len()
                    && lines[end].starts_with([' ', '\t'])
                    && !lines[end].trim().is_empty()
                {
                    end += 1;
                }
                if name == option && active.is_none() {
                    active = Some((i, end));
                }
                last_option_end = Some(end);
                i = end;
                continue;
            }
            let t = line.trim_start();
            if commented.is_none() {
                if let Some(rest) = t.strip_prefix('#').or_else(|| t.strip_prefix(';')) {
                    if let Some(end) = rest.find(['=', ':']) {
                        if rest[..end].trim_end() == option && !rest.starts_with(' ') {
                            commented = Some(i);
                        }
                    }
                }
            }
        }
        i += 1;
    }
    if let Some((start, end)) = active {
        lines.splice(start..end, [new_line]);
    } else if let Some(c) = commented {
        lines[c] = new_line;
    } else if let Some(h) = header_at {
        lines.insert(last_option_end.unwrap_or(h + 1), new_line);
    } else {
        if lines.last().is_some_and(|l| !l.trim().is_empty()) {
            lines.push(String::new());
        }
        lines.push(format!("[{section}]"));
        lines.push(new_line);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names() {
        assert_eq!(
            resolve_setting("admin_email"),
            Some(("main", "admin_email"))
        );
        assert_eq!(resolve_setting("MAIL_DOMAIN"), Some(("mail", "domain")));
        assert_eq!(resolve_setting("tracker_web"), Some(("tracker", "web")));
        assert_eq!(resolve_setting("mail_debug"), Some(("mail", "debug")));
        assert_eq!(
            resolve_setting("password_pbkdf2_default_rounds"),
            Some(("main", "password_pbkdf2_default_rounds"))
        );
        assert_eq!(
            resolve_setting("mailgw_default_class"),
            Some(("mailgw", "default_class"))
        );
        assert_eq!(
            resolve_setting("nosy.add_author"),
            Some(("nosy", "add_author"))
        );
        assert_eq!(
            resolve_setting("add_author_to_nosy"),
            Some(("nosy", "add_author"))
        );
        assert_eq!(resolve_setting("mailhost"), Some(("mail", "host")));
        assert_eq!(
            resolve_setting("xmlrpc_server_password_default_scheme"),
            Some(("xmlrpc_server", "password_default_scheme"))
        );
        assert_eq!(
            resolve_setting("web_csrf_enforce_header_x-requested-with"),
            Some(("web", "csrf_enforce_header_x-requested-with"))
        );
        assert_eq!(resolve_setting("mail_bogus"), None);
        assert_eq!(resolve_setting("bogus.domain"), None);
    }

    #[test]
    fn apply_replaces_uncomments_appends() {
        let t = "# head\n[main]\n# Default: db\ndatabase = db\n\n# about mail\n[mail]\n#domain = NO DEFAULT\nport = 25\n";
        let t2 = apply_setting(t, "main", "database", "data");
        assert!(t2.contains("database = data\n") && !t2.contains("database = db"));
        let t3 = apply_setting(&t2, "mail", "domain", "example.com");
        assert!(
            t3.contains("[mail]\ndomain = example.com\nport = 25\n"),
            "{t3}"
        );
        let t4 = apply_setting(&t3, "main", "timezone", "2");
        assert!(
            t4.contains("database = data\ntimezone = 2\n\n# about mail"),
            "{t4}"
        );
        let t5 = apply_setting(&t4, "nosy", "add_author", "yes");
        assert!(
            t5.ends_with("port = 25\n\n[nosy]\nadd_author = yes\n"),
            "{t5}"
        );
        assert!(t5.starts_with("# head\n"));
    }

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
    fn networks() {
        let n = IpNetwork::parse("10.1.0.0/16").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        let all = IpNetwork::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = IpNetwork::parse("::1").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(IpNetwork::parse("10.0.0.0/33").is_none());
        assert!(IpNetwork::parse("nope").is_none());
    }
}
