//! `--set KEY=VALUE` at install time: Roundup's option names and aliases
//! ([`resolve_setting`]) and editing a `config.ini` in place ([`write_settings`]),
//! keeping its comments.

use std::path::Path;

use super::{parse_config, ConfigError, SERVER_OPTIONS, SERVER_SECTION};

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
}
