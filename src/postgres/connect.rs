//! Where and how to connect: the `[rdbms]` options Roundup passes to libpq, with
//! libpq's own fallbacks (service file, `PG*` environment variables, `~/.pgpass`,
//! default socket directories), and TLS through rustls with libpq's `sslmode`
//! meanings.
//!
//! Resolution order for every parameter, as libpq does it: the config.ini value
//! (Roundup passes only non-empty ones; a missing option has Roundup's default:
//! `name = roundup`, `host = localhost`, `user = roundup`, `password = roundup`),
//! then the `[rdbms] service` entry of the service file, then the environment
//! variable (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`,
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGCONNECT_TIMEOUT`,
//! `PGAPPNAME`), then libpq's default. A tracker configured for Roundup thus
//! reaches the same server, database and role.
//!
//! TLS (never over a Unix socket): `disable`; `allow`/`prefer` (libpq's default:
//! encrypt if the server offers it) and `require` encrypt without checking the
//! certificate — unless a root certificate file exists, in which case `require`
//! checks the chain like libpq; `verify-ca` checks the chain against `sslrootcert`
//! (default `~/.postgresql/root.crt`); `verify-full` also checks the host name.
//! A client certificate is sent when `sslcert` and `sslkey` (default
//! `~/.postgresql/postgresql.crt` / `.key`) exist.

use crate::store::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::ConnSettings;

/// The default number of pooled connections: two per request handler (the login
/// snapshot and a write, or the shared failed-login limiter) plus the outbox and
/// maintenance.
pub const DEFAULT_POOL_SIZE: usize = 24;

/// How long a connection attempt may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it (`allow`, `prefer`), certificate unchecked.
    Prefer,
    /// TLS required, certificate unchecked unless a root certificate exists.
    Require,
    /// TLS required, chain checked.
    VerifyCa,
    /// TLS required, chain and host name checked.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

/// Everything needed to open connections to one tracker database.
#[derive(Clone)]
pub struct Target {
    /// Connection parameters (database included).
    pub config: tokio_postgres::Config,
    /// TLS, `None` when disabled.
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// The database name.
    pub dbname: String,
    /// The schema inside it (`name = database.schema`), if any.
    pub schema: Option<String>,
    /// The role connected as.
    pub user: String,
    /// `[rdbms] template`.
    pub template: Option<String>,
    /// Most pooled connections.
    pub pool_size: usize,
    /// A description for messages: `database "x" on host:port as user`.
    pub describe: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe)
    }
}

impl Target {
    /// The same server with another database (to create the tracker's database).
    pub fn with_dbname(&self, dbname: &str) -> Target {
        let mut t = self.clone();
        t.config.dbname(dbname);
        t.dbname = dbname.to_string();
        t.schema = None;
        t
    }
}

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::Incompatible(format!("[rdbms] {}", msg.into()))
}

/// A lookup of libpq's environment (a function so that tests can supply one).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, empty values ignored.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolves the connection settings of a tracker (`home` resolves relative paths).
pub fn resolve(s: &ConnSettings, home: &Path, env: Env<'_>) -> Result<Target, StoreError> {
    let service_name = s.service.clone().or_else(|| env("PGSERVICE"));
    let service = match &service_name {
        Some(name) => service_entry(name, env)?,
        None => Vec::new(),
    };
    let svc = |key: &str| {
        service
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let pick = |given: &Option<String>, key: &str, var: &str| -> Option<String> {
        given.clone().or_else(|| svc(key)).or_else(|| env(var))
    };
    let home_dir = env("HOME").map(PathBuf::from);

    let host = pick(&s.host, "host", "PGHOST");
    let port = match pick(&s.port, "port", "PGPORT") {
        Some(p) => p
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(format!("port: \"{p}\" is not a port number")))?,
        None => 5432,
    };
    let user = match pick(&s.user, "user", "PGUSER") {
        Some(u) => u,
        None => env("USER")
            .or_else(|| env("LOGNAME"))
            .ok_or_else(|| bad("user: no user given and none in the environment"))?,
    };
    let full_name = pick(&s.name, "dbname", "PGDATABASE").unwrap_or_else(|| user.clone());
    let (dbname, schema) = match full_name.split_once('.') {
        Some((db, schema)) => {
            let ok = !schema.is_empty()
                && schema
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && schema
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(format!(
                    "name: schema \"{schema}\" must be lower-case letters, digits and _"
                )));
            }
            (db.to_string(), Some(schema.to_string()))
        }
        None => (full_name, None),
    };
    if dbname.is_empty() {
        return Err(bad("name: empty database name"));
    }
    let connect_timeout = match s.connect_timeout {
        Some(t) => Duration::from_secs(t.max(1)),
        None => match svc("connect_timeout").or_else(|| env("PGCONNECT_TIMEOUT")) {
            Some(t) => Duration::from_secs(
                t.trim()
                    .parse::<u64>()
                    .map_err(|_| bad(format!("connect_timeout: \"{t}\" is not a number")))?
                    .max(2),
            ),
            None => DEFAULT_CONNECT_TIMEOUT,
        },
    };

    let mut config = tokio_postgres::Config::new();
    let hosts: Vec<String> = match &host {
        Some(h) => h
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(String::from)
            .collect(),
        // libpq's compiled-in socket directories (Debian's, then upstream's).
        None => vec!["/var/run/postgresql".into(), "/tmp".into()],
    };
    if hosts.is_empty() {
        return Err(bad("host: no host given"));
    }
    for h in &hosts {
        if h.starts_with('/') {
            config.host_path(h);
        } else {
            config.host(h);
        }
    }
    config
        .port(port)
        .user(user.clone())
        .dbname(dbname.clone())
        .connect_timeout(connect_timeout)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30))
        .application_name(env("PGAPPNAME").unwrap_or_else(|| "roundup-xmlrpc-server".to_string()));
    // Bounds on waits inside the server: a statement, a lock wait, an idle
    // transaction. The search_path for `name = database.schema`.
    let mut options = "-c statement_timeout=30000 -c lock_timeout=20000 \
                       -c idle_in_transaction_session_timeout=120000"
        .to_string();
    if let Some(schema) = &schema {
        options.push_str(&format!(" -c search_path={schema}"));
    }
    config.options(options);

    let password = s
        .password
        .clone()
        .or_else(|| svc("password"))
        .or_else(|| env("PGPASSWORD"))
        .or_else(|| pgpass(&hosts, port, &dbname, &user, env, home_dir.as_deref()));
    if let Some(p) = &password {
        config.password(p.as_bytes());
    }

    let mode_text = pick(&s.sslmode, "sslmode", "PGSSLMODE").unwrap_or_else(|| "prefer".into());
    let mode = SslMode::parse(&mode_text).ok_or_else(|| {
        bad(format!(
            "sslmode: \"{mode_text}\" (allowed: disable, allow, prefer, require, verify-ca, verify-full)"
        ))
    })?;
    let in_home = |rel: &str| home_dir.as_ref().map(|h| h.join(".postgresql").join(rel));
    let path_opt = |given: &Option<PathBuf>, key: &str, var: &str| -> Option<PathBuf> {
        given
            .clone()
            .or_else(|| svc(key).or_else(|| env(var)).map(PathBuf::from))
            .map(|p| if p.is_relative() { home.join(p) } else { p })
    };
    let rootcert =
        path_opt(&s.sslrootcert, "sslrootcert", "PGSSLROOTCERT").or_else(|| in_home("root.crt"));
    let cert = path_opt(&s.sslcert, "sslcert", "PGSSLCERT").or_else(|| in_home("postgresql.crt"));
    let key = path_opt(&s.sslkey, "sslkey", "PGSSLKEY").or_else(|| in_home("postgresql.key"));
    let tcp = hosts.iter().any(|h| !h.starts_with('/'));
    let tls = if mode == SslMode::Disable || !tcp {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
        None
    } else {
        config.ssl_mode(match mode {
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Some(tls_connector(
            mode,
            rootcert.as_deref(),
            cert.as_deref(),
            key.as_deref(),
        )?)
    };

    let pool_size = s.pool_size.unwrap_or(DEFAULT_POOL_SIZE).clamp(2, 1000);
    let describe = format!(
        "database \"{dbname}\" on {}:{port} as {user}",
        hosts.join(",")
    );
    Ok(Target {
        config,
        tls,
        dbname,
        schema,
        user,
        template: s.template.clone(),
        pool_size,
        describe,
    })
}

/// The entry `name` of the libpq service file (`PGSERVICEFILE`, else
/// `~/.pg_service.conf`, then `PGSYSCONFDIR/pg_service.conf` or
/// `/etc/postgresql-common/pg_service.conf`): `(key, value)` pairs.
fn service_entry(name: &str, env: Env<'_>) -> Result<Vec<(String, String)>, StoreError> {
    let mut files: Vec<PathBuf> = Vec::new();
    match env("PGSERVICEFILE") {
        Some(f) => files.push(f.into()),
        None => {
            if let Some(h) = env("HOME") {
                files.push(Path::new(&h).join(".pg_service.conf"));
            }
        }
    }
    files.push(
        Path::new(&env("PGSYSCONFDIR").unwrap_or_else(|| "/etc/postgresql-common".into()))
            .join("pg_service.conf"),
    );
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let mut in_section = false;
        let mut found = false;
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                in_section = section == name;
                found |= in_section;
                continue;
            }
            if in_section {
                if let Some((k, v)) = line.split_once('=') {
                    out.push((k.trim().to_lowercase(), v.trim().to_string()));
                }
            }
        }
        if found {
            return Ok(out);
        }
    }
    Err(bad(format!(
        "service: definition of service \"{name}\" not found"
    )))
}

/// The password `~/.pgpass` (or `PGPASSFILE`) holds for this connection, as
/// libpq looks it up: `hostname:port:database:username:password`, `*` matches
/// anything, `\` escapes, a socket directory matches `localhost`.
fn pgpass(
    hosts: &[String],
    port: u16,
    db: &str,
    user: &str,
    env: Env<'_>,
    home: Option<&Path>,
) -> Option<String> {
    let file = env("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = hosts.first()?;
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let ok = |f: &str, v: &str| f == "*" || f == v;
        if ok(&fields[0], host)
            && ok(&fields[1], &port)
            && ok(&fields[2], db)
            && ok(&fields[3], user)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// The crypto provider (ring: small and needs no C toolchain beyond cc).
#[allow(deprecated)] // rustls 0.23.48 deprecates ring only for lacking post-quantum key exchange
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_connector(
    mode: SslMode,
    rootcert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let provider = provider();
    let tls_err = |e: rustls::Error| bad(format!("TLS: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let root_file = rootcert.filter(|p| p.is_file());
    let verify = match mode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        SslMode::Require => root_file.is_some(),
        _ => false,
    };
    let builder = if verify {
        let Some(path) = root_file else {
            return Err(bad(format!(
                "sslmode {}: root certificate file {} does not exist",
                if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                },
                rootcert
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.postgresql/root.crt".into())
            )));
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?
        {
            let c = c.map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
            roots
                .add(c)
                .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
        if mode == SslMode::VerifyFull {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly { inner: webpki }))
        }
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked { provider }))
    };
    let client_cert = match (cert.filter(|p| p.is_file()), key.filter(|p| p.is_file())) {
        (Some(c), Some(k)) => {
            let certs = CertificateDer::pem_file_iter(c)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| bad(format!("sslcert {}: {e}", c.display())))?;
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| bad(format!("sslkey {}: {e}", k.display())))?;
            Some((certs, key))
        }
        _ => None,
    };
    let config = match client_cert {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(tls_err)?,
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// `sslmode=prefer/require` without a root certificate: any certificate is
/// accepted (libpq does the same), handshake signatures are still verified.
#[derive(Debug)]
struct Unchecked {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `sslmode=verify-ca`: the chain must lead to a trusted root; the name in the
/// certificate is not compared with the host.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn config_values_win_over_the_environment() {
        let s = ConnSettings {
            name: Some("tracker".into()),
            host: Some("/run/pg".into()),
            user: Some("rt".into()),
            password: Some("pw".into()),
            ..Default::default()
        };
        let env = env_of(&[
            ("PGHOST", "db.example"),
            ("PGPORT", "6543"),
            ("PGUSER", "x"),
        ]);
        let t = resolve(&s, Path::new("/t"), &env).expect("resolves");
        assert_eq!(t.dbname, "tracker");
        assert_eq!(t.user, "rt");
        assert_eq!(t.config.get_ports(), &[6543]);
        assert!(t.tls.is_none(), "no TLS over a Unix socket");
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
    }

    #[test]
    fn empty_options_fall_back_to_libpq_defaults() {
        let env = env_of(&[("USER", "me")]);
        let t = resolve(&ConnSettings::default(), Path::new("/t"), &env).expect("resolves");
        assert_eq!(t.dbname, "me");
        assert_eq!(t.config.get_ports(), &[5432]);
        assert_eq!(t.config.get_hosts().len(), 2);
        assert!(t.schema.is_none());
    }

    #[test]
    fn database_dot_schema_and_bad_values() {
        let s = ConnSettings {
            name: Some("db.trk_1".into()),
            user: Some("u".into()),
            host: Some("localhost".into()),
            sslmode: Some("disable".into()),
            ..Default::default()
        };
        let t = resolve(&s, Path::new("/t"), &env_of(&[])).expect("resolves");
        assert_eq!(
            (t.dbname.as_str(), t.schema.as_deref()),
            ("db", Some("trk_1"))
        );
        assert!(t.tls.is_none());
        let bad_schema = ConnSettings {
            name: Some("db.Bad-Name".into()),
            ..s.clone()
        };
        assert!(resolve(&bad_schema, Path::new("/t"), &env_of(&[])).is_err());
        let bad_mode = ConnSettings {
            sslmode: Some("sometimes".into()),
            ..s.clone()
        };
        assert!(resolve(&bad_mode, Path::new("/t"), &env_of(&[])).is_err());
        let verify = ConnSettings {
            sslmode: Some("verify-full".into()),
            sslrootcert: Some("/nonexistent/ca.crt".into()),
            ..s
        };
        let e = resolve(&verify, Path::new("/t"), &env_of(&[])).expect_err("no root file");
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn pgpass_is_matched_like_libpq() {
        let dir = std::env::temp_dir().join(format!("rxs-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("pgpass");
        std::fs::write(
            &file,
            "# comment\nother:5432:*:*:no\nlocalhost:5432:db:u:p\\:w\n*:*:*:*:fallback\n",
        )
        .expect("write");
        let path = file.display().to_string();
        let env = move |k: &str| (k == "PGPASSFILE").then(|| path.clone());
        let hosts = vec!["/run/pg".to_string()];
        assert_eq!(
            pgpass(&hosts, 5432, "db", "u", &env, None).as_deref(),
            Some("p:w")
        );
        assert_eq!(
            pgpass(&hosts, 5432, "x", "u", &env, None).as_deref(),
            Some("fallback")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn service_file_entries_fill_gaps() {
        let dir = std::env::temp_dir().join(format!("rxs-pgsvc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = dir.join("services");
        std::fs::write(
            &file,
            "[trk]\nhost=/run/x\nport=7000\ndbname=svcdb\nuser=svc\n",
        )
        .expect("write");
        let path = file.display().to_string();
        let env = move |k: &str| (k == "PGSERVICEFILE").then(|| path.clone());
        let s = ConnSettings {
            service: Some("trk".into()),
            user: Some("explicit".into()),
            ..Default::default()
        };
        let t = resolve(&s, Path::new("/t"), &env).expect("resolves");
        assert_eq!((t.dbname.as_str(), t.user.as_str()), ("svcdb", "explicit"));
        assert_eq!(t.config.get_ports(), &[7000]);
        let missing = ConnSettings {
            service: Some("nope".into()),
            ..Default::default()
        };
        assert!(resolve(&missing, Path::new("/t"), &env).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
