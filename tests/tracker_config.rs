//! config.ini: typed values, errors naming file and option, and `--set` settings.

use std::path::{Path, PathBuf};

use roundup_xmlrpc::auth::Scheme;
use roundup_xmlrpc::config::{
    load_config, parse_config, parse_setting_arg, write_settings, ConfigError, EmailSending,
    MessagesToAuthor, NosyAdd, SignaturePosition,
};
use roundup_xmlrpc::server::parse_net;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tracker_config_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn template_ini() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tracker-template/config.ini"),
    )
    .unwrap()
}

fn parse(text: &str) -> Result<roundup_xmlrpc::config::Settings, ConfigError> {
    parse_config(text, Path::new("/trackers/demo"), "config.ini")
}

#[test]
fn typed_values() {
    let c = parse(
        "[main]\nDatabase = /var/db\nadmin_email = boss\ntimezone = Europe/Berlin\n\
         password_pbkdf2_default_rounds = 1000\n\
         [tracker]\nname = Demo\nweb = https://example.com/demo/\nemail = tracker@example.com\n\
         [web]\napi_failed_login_limit = 0\napi_failed_login_interval_in_sec = 60\n\
         api_calls_per_interval = 100\napi_interval_in_sec = 10\nmigrate_passwords = no\n\
         login_empty_passwords = TRUE\n\
         [rdbms]\nbackend = sqlite\nsqlite_timeout = 5\nallow_drop = off\n\
         [mail]\ndomain = example.com\nhost = smtp.example.com\nport = 587\nusername = u\n\
         password = p%%w\ntls = yes\ndebug = mail.log\n\
         [nosy]\nmessages_to_author = nosy\nadd_author = yes\nadd_recipients = no\n\
         email_sending = multiple\nsignature_position = none\n\
         [xmlrpc_server]\npassword_default_scheme = bcrypt\nbcrypt_cost = 10\n\
         bind = 127.0.0.1:9000\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8 ::1\nmax_connections = 64\n\
         max_connections_per_address = 0\nmax_body_bytes_in_flight = 1000000\nrequest_deadline_sec = 5\n\
         python = /opt/py/bin/python3\ndetector_timeout_sec = 7\n\
         log_format = JSON\nmetrics_allow = 10.0.0.0/8, ::1\n",
    )
    .unwrap();
    assert_eq!(c.main.database, PathBuf::from("/var/db"));
    assert_eq!(c.main.timezone, "Europe/Berlin");
    assert_eq!(c.main.password_pbkdf2_default_rounds, 1000);
    assert_eq!(c.admin_email().unwrap(), "boss@example.com");
    assert_eq!(c.tracker_email().unwrap(), "tracker@example.com");
    assert_eq!(c.tracker.web.as_deref(), Some("https://example.com/demo/"));
    assert_eq!(c.web.api_failed_login_limit, 0);
    assert_eq!(c.web.api_failed_login_interval_in_sec, 60);
    assert_eq!(c.web.api_calls_per_interval, 100);
    assert_eq!(c.web.api_interval_in_sec, 10);
    assert!(!c.web.migrate_passwords);
    assert!(c.web.login_empty_passwords);
    assert_eq!(c.rdbms.sqlite_timeout, 5);
    assert!(!c.rdbms.allow_drop && c.rdbms.allow_create);
    assert_eq!(c.mail.host.as_deref(), Some("smtp.example.com"));
    assert_eq!(c.mail.port, 587);
    assert_eq!(c.mail.password.as_deref(), Some("p%w"));
    assert!(c.mail.tls);
    assert_eq!(c.mail.debug, Some(PathBuf::from("/trackers/demo/mail.log")));
    assert_eq!(c.nosy.messages_to_author, MessagesToAuthor::Nosy);
    assert_eq!(c.nosy.add_author, NosyAdd::Yes);
    assert_eq!(c.nosy.add_recipients, NosyAdd::No);
    assert_eq!(c.nosy.email_sending, EmailSending::Multiple);
    assert_eq!(c.nosy.signature_position, SignaturePosition::None);
    assert_eq!(c.server.password_default_scheme, Scheme::Bcrypt);
    assert_eq!(c.server.bcrypt_cost, 10);
    assert_eq!(c.server.bind, Some("127.0.0.1:9000".parse().unwrap()));
    assert_eq!(
        c.server.trusted_proxies,
        vec![
            parse_net("127.0.0.1").unwrap(),
            parse_net("10.0.0.0/8").unwrap(),
            parse_net("::1").unwrap()
        ]
    );
    assert_eq!(c.server.max_connections, Some(64));
    assert_eq!(c.server.max_request_bytes, None);
    assert_eq!(c.server.max_connections_per_address, Some(0));
    assert_eq!(c.server.max_body_bytes_in_flight, Some(1_000_000));
    assert_eq!(c.server.request_deadline_sec, Some(5));
    assert_eq!(c.server.python.as_deref(), Some("/opt/py/bin/python3"));
    assert_eq!(c.server.detector_timeout_sec, 7);
    assert_eq!(c.server.log_format, Some(roundup_xmlrpc::log::Format::Json));
    assert_eq!(
        c.server.metrics_allow,
        vec![parse_net("10.0.0.0/8").unwrap(), parse_net("::1").unwrap()]
    );
}

#[test]
fn admin_email_needs_a_domain() {
    let c = parse("").unwrap();
    assert_eq!(
        c.admin_email().unwrap_err().to_string(),
        "/trackers/demo/config.ini: [main] admin_email: \"roundup-admin\" has no domain and [mail] domain is not set"
    );
}

#[test]
fn invalid_values_name_file_and_option() {
    let cases = [
        ("[main]\npassword_pbkdf2_default_rounds = many\n",
         "config.ini: [main] password_pbkdf2_default_rounds: \"many\": an integer of at least 1000 is required"),
        ("[main]\npassword_pbkdf2_default_rounds = 999\n",
         "config.ini: [main] password_pbkdf2_default_rounds: \"999\": an integer of at least 1000 is required"),
        ("[main]\ntimezone = not a zone\n",
         "config.ini: [main] timezone: \"not a zone\": a time zone name or an hour offset is required"),
        ("[tracker]\nweb = example.com\n",
         "config.ini: [tracker] web: \"example.com\": the URL must start with http:// or https:// and end with /"),
        ("[web]\napi_failed_login_limit = -1\n",
         "config.ini: [web] api_failed_login_limit: \"-1\": an integer of at least 0 is required"),
        ("[web]\napi_interval_in_sec = 0\n",
         "config.ini: [web] api_interval_in_sec: \"0\": an integer of at least 1 is required"),
        ("[web]\nmigrate_passwords = maybe\n",
         "config.ini: [web] migrate_passwords: \"maybe\": allowed values are yes and no"),
        ("[rdbms]\nbackend = mysql\n",
         "config.ini: [rdbms] backend: \"mysql\": only sqlite and postgresql are supported"),
        ("[main]\nindexer = native-fts\n[rdbms]\nbackend = postgresql\n",
         "config.ini: [main] indexer: \"native-fts\": not supported (the native indexer's __words is)"),
        ("[rdbms]\npool_size = 1\n",
         "config.ini: [rdbms] pool_size: \"1\": an integer of at least 2 is required"),
        ("[mail]\nport = 25 # smtp\n",
         "config.ini: [mail] port: \"25 # smtp\": an integer of at least 0 is required"),
        ("[mail]\nusername = joe\n",
         "config.ini: [mail] password: must be set because [mail] username is set"),
        ("[nosy]\nadd_author = always\n",
         "config.ini: [nosy] add_author: \"always\": allowed values are yes, no, new"),
        ("[xmlrpc_server]\npassword_default_scheme = SHA\n",
         "config.ini: [xmlrpc_server] password_default_scheme: \"SHA\": allowed values are PBKDF2S5, BCRYPT"),
        ("[xmlrpc_server]\ndetector_timeout_sec = 0\n",
         "config.ini: [xmlrpc_server] detector_timeout_sec: \"0\": an integer from 1 to 86400 is required"),
        ("[xmlrpc_server]\nbcrypt_cost = 40\n",
         "config.ini: [xmlrpc_server] bcrypt_cost: \"40\": an integer from 4 to 16 is required"),
        ("[xmlrpc_server]\ntrusted_proxies = 10.0.0.0/40\n",
         "config.ini: [xmlrpc_server] trusted_proxies: \"10.0.0.0/40\" is not an IP address or network (a.b.c.d/len)"),
        ("[xmlrpc_server]\nbind = localhost\n",
         "config.ini: [xmlrpc_server] bind: \"localhost\": an address:port such as 127.0.0.1:8000 or [::1]:8000 is required"),
        ("[xmlrpc_server]\nbindd = 127.0.0.1:80\n",
         "config.ini: [xmlrpc_server] bindd: unknown option (known: password_default_scheme, bcrypt_cost, bind, trusted_proxies, max_connections, max_request_bytes, request_timeout_sec, max_connections_per_address, max_body_bytes_in_flight, request_deadline_sec, python, detector_timeout_sec, log_format, metrics_allow)"),
        ("[xmlrpc_server]\nlog_format = xml\n",
         "config.ini: [xmlrpc_server] log_format: \"xml\": allowed values are text, json"),
        ("[xmlrpc_server]\nmetrics_allow = everyone\n",
         "config.ini: [xmlrpc_server] metrics_allow: \"everyone\" is not an IP address or network (a.b.c.d/len)"),
        ("[main]\ndatabase = a\nDATABASE = b\n",
         "config.ini: [main] database: option set twice in this section"),
        ("[main]\n[main]\n", "config.ini: [main]: section appears twice"),
        ("timezone = 1\n[main]\n", "config.ini:1: `timezone = 1`: an option before the first `[section]` header"),
    ];
    for (text, want) in cases {
        assert_eq!(parse(text).unwrap_err().to_string(), want, "for {text:?}");
    }
}

#[test]
fn unknown_roundup_options_are_ignored() {
    let c =
        parse("[web]\ncsrf_enforce_header_origin = whatever\n[pgp]\nenable = no\n[other]\nx = 1\n")
            .unwrap();
    assert_eq!(c.web.api_failed_login_limit, 4);
}

#[test]
fn continuation_lines_and_comments() {
    let c =
        parse("[tracker]\n# a comment\n; another\nname = Multi\n  line\nemail = x@y\n").unwrap();
    assert_eq!(c.tracker.name, "Multi\nline");
    assert_eq!(c.tracker.email, "x@y");
}

#[test]
fn secret_from_file() {
    let d = temp_dir("secret");
    std::fs::write(d.join("smtp.pw"), "s3cret  \nsecond line\n").unwrap();
    std::fs::write(
        d.join("config.ini"),
        "[mail]\nusername = u\npassword = file://smtp.pw\n",
    )
    .unwrap();
    let c = load_config(&d).unwrap();
    assert_eq!(c.mail.password.as_deref(), Some("s3cret"));
    std::fs::write(
        d.join("config.ini"),
        "[mail]\nusername = u\npassword = file://missing.pw\n",
    )
    .unwrap();
    let e = load_config(&d).unwrap_err().to_string();
    assert!(e.contains("[mail] password: cannot read "), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn write_settings_on_the_template() {
    let d = temp_dir("write");
    let ini = d.join("config.ini");
    let original = template_ini();
    std::fs::write(&ini, &original).unwrap();
    let settings: Vec<(String, String)> = [
        "tracker_web=http://localhost:8080/demo/",
        "mail_domain=example.com",
        "MAIL_DEBUG=mail.txt",
        "admin_email=admin@example.com",
        "password_pbkdf2_default_rounds=1000",
        "nosy.messages_to_author=yes",
        "xmlrpc_server_bind=127.0.0.1:8917",
        "web_http_auth=no",
        "mailhost=smtp.example.com",
    ]
    .iter()
    .map(|a| parse_setting_arg(a).unwrap())
    .collect();
    write_settings(&ini, &settings).unwrap();
    let text = std::fs::read_to_string(&ini).unwrap();
    assert!(text.contains("# URL MUST start with http/https scheme and end with '/'\n# Default: NO DEFAULT\nweb = http://localhost:8080/demo/\n"), "{text}");
    assert!(text.contains("\ndomain = example.com\n") && !text.contains("#domain"));
    assert!(text.contains("\nhost = smtp.example.com\n"));
    assert!(text.contains("\ndebug = mail.txt\n"));
    assert!(text.contains("\nbind = 127.0.0.1:8917\n") && !text.contains("#bind"));
    assert!(
        text.contains("migrate_passwords = yes\nhttp_auth = no\n"),
        "appended after the last [web] option"
    );
    assert!(text.starts_with("# Roundup issue tracker configuration file\n"));
    assert_eq!(text.lines().count(), original.lines().count() + 1);
    let c = load_config(&d).unwrap();
    assert_eq!(
        c.tracker.web.as_deref(),
        Some("http://localhost:8080/demo/")
    );
    assert_eq!(c.mail.debug, Some(d.join("mail.txt")));
    assert_eq!(c.admin_email().unwrap(), "admin@example.com");
    assert_eq!(c.main.password_pbkdf2_default_rounds, 1000);
    assert_eq!(c.nosy.messages_to_author, MessagesToAuthor::Yes);
    assert_eq!(c.server.bind, Some("127.0.0.1:8917".parse().unwrap()));

    // Unknown keys and invalid values are refused and leave the file alone.
    let e = write_settings(&ini, &[("mail_domian".into(), "x".into())]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown setting \"mail_domian\" (use a Roundup option name such as mail_domain or admin_email, or section.option)"
    );
    let e = write_settings(
        &ini,
        &[("password_pbkdf2_default_rounds".into(), "lots".into())],
    )
    .unwrap_err();
    assert!(e.to_string().ends_with("[main] password_pbkdf2_default_rounds: \"lots\": an integer of at least 1000 is required"), "{e}");
    let e = write_settings(&ini, &[("tracker_name".into(), "a\nb".into())]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid setting \"tracker_name\": the value must be a single line"
    );
    assert_eq!(std::fs::read_to_string(&ini).unwrap(), text);
    assert!(parse_setting_arg("novalue").is_err());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn write_settings_creates_a_missing_file() {
    let d = temp_dir("create");
    let ini = d.join("config.ini");
    write_settings(
        &ini,
        &[
            ("mail_domain".into(), "example.org".into()),
            ("timezone".into(), "2".into()),
        ],
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&ini).unwrap(),
        "[mail]\ndomain = example.org\n\n[main]\ntimezone = 2\n"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// `[rdbms]` PostgreSQL options are read as Roundup reads them: a missing option
/// has Roundup's default, an empty one is left to libpq (None), `password` may be
/// `file://`.
#[test]
fn postgresql_connection_options() {
    use roundup_xmlrpc::config::Backend;
    let c = parse("[rdbms]\n").unwrap();
    assert_eq!(c.rdbms.backend, Backend::Sqlite);
    let pg = &c.rdbms.postgresql;
    assert_eq!(pg.name.as_deref(), Some("roundup"));
    assert_eq!(pg.host.as_deref(), Some("localhost"));
    assert_eq!(pg.user.as_deref(), Some("roundup"));
    assert_eq!(pg.password.as_deref(), Some("roundup"));
    assert_eq!(pg.port, None);

    let c = parse(
        "[rdbms]\nbackend = postgresql\nname = trk.s1\nhost = \nuser = rt\nport = 6543\n\
         password = \nservice = svc\ntemplate = template0\nsslmode = verify-full\n\
         sslrootcert = certs/ca.pem\nconnect_timeout = 3\npool_size = 8\n",
    )
    .unwrap();
    assert_eq!(c.rdbms.backend, Backend::Postgresql);
    let pg = &c.rdbms.postgresql;
    assert_eq!(pg.name.as_deref(), Some("trk.s1"));
    assert_eq!(pg.host, None, "empty: libpq's fallbacks");
    assert_eq!(pg.password, None);
    assert_eq!(pg.port.as_deref(), Some("6543"));
    assert_eq!(pg.service.as_deref(), Some("svc"));
    assert_eq!(pg.template.as_deref(), Some("template0"));
    assert_eq!(pg.sslmode.as_deref(), Some("verify-full"));
    assert!(pg.sslrootcert.as_ref().unwrap().ends_with("certs/ca.pem"));
    assert_eq!((pg.connect_timeout, pg.pool_size), (Some(3), Some(8)));

    let dir = temp_dir("pgsecret");
    std::fs::write(dir.join("pgpw"), "s3cret\nignored\n").unwrap();
    let c = parse_config(
        "[rdbms]\nbackend = postgresql\npassword = file://pgpw\n",
        &dir,
        "config.ini",
    )
    .unwrap();
    assert_eq!(c.rdbms.postgresql.password.as_deref(), Some("s3cret"));
}

/// Syntax errors name the file and line, quote the line, and say what is wrong in
/// words (not the ini parser's internals).
#[test]
fn syntax_errors_in_plain_words() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "[main]\nx = 1\n[tracker\n",
            3,
            "`[tracker`: a section header must end with `]`",
        ),
        (
            "[main]\njust words\n",
            2,
            "`just words`: expected `name = value`, a `[section]` header or a comment",
        ),
        ("[main]\n= 1\n", 2, "`= 1`: the option name is missing"),
        (
            "x = 1\n[main]\n",
            1,
            "`x = 1`: an option before the first `[section]` header",
        ),
        (
            "[main]\n\n  indented = 1\n",
            3,
            "`  indented = 1`: indented, but there is no option above it to continue",
        ),
        (
            "[main]\nx = 1\n  # note\n",
            3,
            "`  # note`: a comment must start at the beginning of the line",
        ),
        ("[]\n", 1, "`[]`: not a valid section name"),
    ];
    for (text, line, message) in cases {
        let err = parse(text).expect_err(text).to_string();
        let want = format!("config.ini:{line}: {message}");
        assert!(
            err.starts_with(&want),
            "{text:?}:\n  got  {err}\n  want {want}"
        );
    }
    // What configparser accepts stays accepted: `:` as delimiter, blank lines
    // between a value's lines, CRLF line ends.
    let c = parse("[tracker]\r\nname: Multi\r\n\r\n  line\r\nemail = x@y\r\n").unwrap();
    assert_eq!(c.tracker.email, "x@y");
}
