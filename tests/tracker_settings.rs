//! The settings audit: every config.ini option that tracker-template/README.md
//! lists as used reaches [`Settings`] with its value (the behaviour behind each is
//! tested end to end; see the README's table), and `[rdbms] allow_create` /
//! `allow_alter` protect the database as in Roundup.

use std::path::{Path, PathBuf};

use roundup_xmlrpc::admin::init::init;
use roundup_xmlrpc::auth::Scheme;
use roundup_xmlrpc::config::{parse_config, EmailBody, MessagesToAuthor, NosyAdd, Settings};
use roundup_xmlrpc::tracker::Tracker;

fn settings(text: &str) -> Settings {
    parse_config(text, Path::new("/trackers/demo"), "config.ini").unwrap()
}

#[test]
fn defaults_are_roundups() {
    let s = settings("");
    assert_eq!(s.tracker.name, "Roundup issue tracker");
    // Roundup's MailAddressOption: the mail domain is added to a bare name.
    assert_eq!(s.tracker_address(), "issue_tracker");
    let s2 = settings("[mail]\ndomain = example.com\n");
    assert_eq!(s2.tracker_address(), "issue_tracker@example.com");
    assert_eq!(s.main.timezone, "0");
    assert_eq!(s.main.password_pbkdf2_default_rounds, 250_000);
    assert_eq!(s.server.password_default_scheme, Scheme::Pbkdf2S5);
    assert_eq!(s.server.bcrypt_cost, 12);
    assert_eq!(
        (s.server.python.as_deref(), s.server.detector_timeout_sec),
        (None, 30)
    );
    assert!(s.web.migrate_passwords);
    assert!(!s.web.login_empty_passwords);
    assert_eq!(
        (
            s.web.api_failed_login_limit,
            s.web.api_failed_login_interval_in_sec
        ),
        (4, 600)
    );
    assert_eq!(
        (s.web.api_calls_per_interval, s.web.api_interval_in_sec),
        (0, 3600)
    );
    assert_eq!(s.rdbms.sqlite_timeout, 30);
    assert!(s.rdbms.allow_create && s.rdbms.allow_alter);
    assert_eq!(s.main.database, PathBuf::from("/trackers/demo/db"));
    assert_eq!(
        (s.nosy.messages_to_author, s.nosy.add_author),
        (MessagesToAuthor::No, NosyAdd::New)
    );
    assert_eq!(s.nosy.add_recipients, NosyAdd::New);
    assert_eq!(s.mailgw.keep_quoted_text, EmailBody::Yes);
    assert_eq!(
        (s.mailgw.eol_re.0.as_str(), s.mailgw.blankline_re.0.as_str()),
        (r"[\r\n]+", r"[\r\n]+\s*[\r\n]+")
    );
    assert_eq!((s.mail.port, s.mail.tls), (25, false));
    let p = s.hash_policy();
    assert_eq!(
        (p.scheme, p.pbkdf2_rounds, p.bcrypt_cost),
        (Scheme::Pbkdf2S5, 250_000, 12)
    );
}

#[test]
fn every_used_option_reaches_the_settings() {
    let s = settings(
        "[main]\ndatabase = data\ntimezone = Europe/Berlin\npassword_pbkdf2_default_rounds = 5000\n\
         [tracker]\nname = Demo\nweb = https://example.com/demo/\nemail = tracker@example.com\n\
         [web]\napi_failed_login_limit = 7\napi_failed_login_interval_in_sec = 70\n\
         api_calls_per_interval = 100\napi_interval_in_sec = 10\nmigrate_passwords = no\n\
         login_empty_passwords = yes\n\
         [rdbms]\nbackend = sqlite\nsqlite_timeout = 5\nallow_create = no\nallow_alter = no\n\
         [mail]\ndomain = example.com\nhost = smtp.example.com\nport = 587\nusername = u\n\
         password = p%%w\ntls = yes\ndebug = mail.log\n\
         [nosy]\nmessages_to_author = nosy\nadd_author = yes\nadd_recipients = no\n\
         [mailgw]\nkeep_quoted_text = New\neol_re = \\n\nblankline_re = \\n\\n+\n\
         [xmlrpc_server]\npassword_default_scheme = BCRYPT\nbcrypt_cost = 9\n\
         python = /usr/bin/python3.11\ndetector_timeout_sec = 12\n",
    );
    assert_eq!(s.main.database, PathBuf::from("/trackers/demo/data"));
    assert_eq!(s.main.timezone, "Europe/Berlin");
    assert_eq!(s.main.password_pbkdf2_default_rounds, 5000);
    assert_eq!(s.tracker.name, "Demo");
    assert_eq!(s.tracker.web.as_deref(), Some("https://example.com/demo/"));
    assert_eq!(s.tracker_address(), "tracker@example.com");
    assert_eq!(
        (
            s.web.api_failed_login_limit,
            s.web.api_failed_login_interval_in_sec
        ),
        (7, 70)
    );
    assert_eq!(
        (s.web.api_calls_per_interval, s.web.api_interval_in_sec),
        (100, 10)
    );
    assert!(!s.web.migrate_passwords);
    assert!(s.web.login_empty_passwords);
    assert_eq!(s.rdbms.sqlite_timeout, 5);
    assert!(!s.rdbms.allow_create && !s.rdbms.allow_alter);
    assert_eq!(s.mail_domain(), "example.com");
    assert_eq!(s.mail.host.as_deref(), Some("smtp.example.com"));
    assert_eq!(s.mail.port, 587);
    assert_eq!(
        (s.mail.username.as_deref(), s.mail.password.as_deref()),
        (Some("u"), Some("p%w"))
    );
    assert!(s.mail.tls);
    assert_eq!(s.mail.debug, Some(PathBuf::from("/trackers/demo/mail.log")));
    assert_eq!(s.nosy.messages_to_author, MessagesToAuthor::Nosy);
    assert_eq!(s.nosy.add_author, NosyAdd::Yes);
    assert_eq!(s.nosy.add_recipients, NosyAdd::No);
    assert_eq!(s.mailgw.keep_quoted_text, EmailBody::New);
    assert_eq!(
        (s.mailgw.eol_re.0.as_str(), s.mailgw.blankline_re.0.as_str()),
        ("\\n", "\\n\\n+")
    );
    assert_eq!(s.server.password_default_scheme, Scheme::Bcrypt);
    assert_eq!(s.server.bcrypt_cost, 9);
    assert_eq!(s.server.python.as_deref(), Some("/usr/bin/python3.11"));
    assert_eq!(s.server.detector_timeout_sec, 12);
    let p = s.hash_policy();
    assert_eq!(
        (p.scheme, p.pbkdf2_rounds, p.bcrypt_cost),
        (Scheme::Bcrypt, 5000, 9)
    );
    assert!(p.hash("x").starts_with("{BCRYPT}$2b$09$"));
}

#[test]
fn postgresql_options_reach_the_settings() {
    use roundup_xmlrpc::config::Backend;
    let s = settings(
        "[rdbms]\nbackend = postgresql\nname = trk\nhost = /run/pg\nport = 5433\nuser = rt\n\
         password = pw\nservice = svc\ntemplate = template0\nsslmode = verify-ca\n\
         sslrootcert = ca.crt\nsslcert = c.crt\nsslkey = c.key\nconnect_timeout = 3\n\
         pool_size = 6\n",
    );
    assert_eq!(s.rdbms.backend, Backend::Postgresql);
    let pg = &s.rdbms.postgresql;
    assert_eq!(
        (
            pg.name.as_deref(),
            pg.host.as_deref(),
            pg.port.as_deref(),
            pg.user.as_deref(),
            pg.password.as_deref()
        ),
        (
            Some("trk"),
            Some("/run/pg"),
            Some("5433"),
            Some("rt"),
            Some("pw")
        )
    );
    assert_eq!(
        (
            pg.service.as_deref(),
            pg.template.as_deref(),
            pg.sslmode.as_deref()
        ),
        (Some("svc"), Some("template0"), Some("verify-ca"))
    );
    assert_eq!(
        pg.sslrootcert.as_deref(),
        Some(Path::new("/trackers/demo/ca.crt"))
    );
    assert_eq!(
        pg.sslcert.as_deref(),
        Some(Path::new("/trackers/demo/c.crt"))
    );
    assert_eq!(
        pg.sslkey.as_deref(),
        Some(Path::new("/trackers/demo/c.key"))
    );
    assert_eq!((pg.connect_timeout, pg.pool_size), (Some(3), Some(6)));
}

/// A new classic tracker in a fresh directory (cheap password hashing).
fn new_tracker(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rxs-settings-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    init(
        &dir,
        "pw",
        None,
        &["password_pbkdf2_default_rounds=1000".to_string()],
    )
    .unwrap();
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn open_error(dir: &Path) -> String {
    Tracker::open(dir, "demo").unwrap_err().to_string()
}

fn columns(dir: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("db/db")).unwrap();
    let mut stmt = conn
        .prepare(&format!("select name from pragma_table_info('{table}')"))
        .unwrap();
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    names
}

#[test]
fn allow_alter_no_refuses_a_changed_class() {
    let dir = new_tracker("alter");
    edit(
        &dir.join("config.ini"),
        "allow_alter = yes",
        "allow_alter = no",
    );
    // Unchanged schema: opens.
    drop(Tracker::open(&dir, "demo").unwrap());
    edit(
        &dir.join("schema.toml"),
        "properties = { name = \"String\" }",
        "properties = { name = \"String\", colour = \"String\" }",
    );
    let e = open_error(&dir);
    assert!(
        e.ends_with("ALTER operation disallowed: \"keyword\" ([rdbms] allow_alter = no)"),
        "{e}"
    );
    assert!(!columns(&dir, "_keyword").contains(&"_colour".to_string()));
    edit(
        &dir.join("config.ini"),
        "allow_alter = no",
        "allow_alter = yes",
    );
    drop(Tracker::open(&dir, "demo").unwrap());
    assert!(columns(&dir, "_keyword").contains(&"_colour".to_string()));
}

#[test]
fn allow_create_no_refuses_a_new_class() {
    let dir = new_tracker("create");
    edit(
        &dir.join("config.ini"),
        "allow_create = yes",
        "allow_create = no",
    );
    edit(
        &dir.join("schema.toml"),
        "# Keywords\n",
        "[class.colour]\nkey = \"name\"\nproperties = { name = \"String\" }\n\n# Keywords\n",
    );
    let e = open_error(&dir);
    assert!(
        e.ends_with("CREATE operation disallowed: \"colour\" ([rdbms] allow_create = no)"),
        "{e}"
    );
    assert!(columns(&dir, "_colour").is_empty());
    edit(
        &dir.join("config.ini"),
        "allow_create = no",
        "allow_create = yes",
    );
    drop(Tracker::open(&dir, "demo").unwrap());
    assert!(columns(&dir, "_colour").contains(&"_name".to_string()));
}

/// The options of a README table: `(section, option)` from first cells such as
/// "`[web] api_calls_per_interval` / `api_interval_in_sec`".
fn table_options(table: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or_default();
        let mut section = String::new();
        for (i, quoted) in cell.split('`').enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let name = match quoted.strip_prefix('[').and_then(|r| r.split_once("] ")) {
                Some((s, o)) => {
                    section = s.to_string();
                    o
                }
                None => quoted,
            };
            out.push((section.clone(), name.to_string()));
        }
    }
    out.sort();
    out
}

/// The options tracker-template/README.md lists as used, resp. ignored, are the
/// ones this audit covers: editing the README means revisiting these tests.
#[test]
fn readme_tables_match_the_audit() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tracker-template/README.md"),
    )
    .unwrap();
    let config = &readme[readme.find("## config.ini").unwrap()..];
    let (used, rest) = config.split_once("**ignored**").unwrap();
    let ignored = &rest[..rest.find("Every other Roundup option").unwrap()];
    let pairs = |list: &[(&str, &str)]| {
        let mut v: Vec<(String, String)> = list
            .iter()
            .map(|(s, o)| (s.to_string(), o.to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        table_options(used),
        pairs(&[
            ("main", "database"),
            ("main", "admin_email"),
            ("main", "timezone"),
            ("main", "password_pbkdf2_default_rounds"),
            ("tracker", "name"),
            ("tracker", "web"),
            ("tracker", "email"),
            ("web", "api_failed_login_limit"),
            ("web", "api_failed_login_interval_in_sec"),
            ("web", "api_calls_per_interval"),
            ("web", "api_interval_in_sec"),
            ("web", "migrate_passwords"),
            ("web", "login_empty_passwords"),
            ("rdbms", "backend"),
            ("rdbms", "sqlite_timeout"),
            ("rdbms", "allow_create"),
            ("rdbms", "allow_alter"),
            ("rdbms", "name"),
            ("rdbms", "host"),
            ("rdbms", "port"),
            ("rdbms", "user"),
            ("rdbms", "password"),
            ("rdbms", "service"),
            ("rdbms", "template"),
            ("rdbms", "sslmode"),
            ("rdbms", "sslrootcert"),
            ("rdbms", "sslcert"),
            ("rdbms", "sslkey"),
            ("rdbms", "connect_timeout"),
            ("rdbms", "pool_size"),
            ("mail", "domain"),
            ("mail", "host"),
            ("mail", "port"),
            ("mail", "username"),
            ("mail", "password"),
            ("mail", "tls"),
            ("mail", "debug"),
            ("nosy", "messages_to_author"),
            ("nosy", "add_author"),
            ("nosy", "add_recipients"),
            ("mailgw", "keep_quoted_text"),
            ("mailgw", "eol_re"),
            ("mailgw", "blankline_re"),
            ("xmlrpc_server", "password_default_scheme"),
            ("xmlrpc_server", "bcrypt_cost"),
            ("xmlrpc_server", "trusted_proxies"),
            ("xmlrpc_server", "bind"),
            ("xmlrpc_server", "max_connections"),
            ("xmlrpc_server", "max_request_bytes"),
            ("xmlrpc_server", "request_timeout_sec"),
            ("xmlrpc_server", "request_deadline_sec"),
            ("xmlrpc_server", "max_connections_per_address"),
            ("xmlrpc_server", "max_body_bytes_in_flight"),
            ("xmlrpc_server", "python"),
            ("xmlrpc_server", "detector_timeout_sec"),
            ("xmlrpc_server", "log_format"),
            ("xmlrpc_server", "metrics_allow"),
        ])
    );
    assert_eq!(
        table_options(ignored),
        pairs(&[
            ("rdbms", "allow_drop"),
            ("rdbms", "isolation_level"),
            ("rdbms", "cache_size"),
            ("rdbms", "serverside_cursor"),
            ("mail", "tls_keyfile"),
            ("mail", "tls_certfile"),
            ("mail", "local_hostname"),
            ("mail", "charset"),
            ("mail", "add_authorinfo"),
            ("mail", "add_authoremail"),
            ("nosy", "email_sending"),
            ("nosy", "signature_position"),
            ("nosy", "max_attachment_size"),
        ])
    );
}

#[test]
fn a_mailgw_pattern_our_engine_cannot_compile_is_an_error() {
    let e = parse_config(
        "[mailgw]\neol_re = (?<=x)\\n\n",
        Path::new("/t"),
        "config.ini",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("config.ini: [mailgw] eol_re: \"(?<=x)\\n\": not a regular expression this server can use"),
        "{e}"
    );
}
