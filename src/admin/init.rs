//! `init`: creating a tracker directory from a template, as `roundup-admin install`
//! followed by `initialise` does. Nothing is left half-made: the tracker is built
//! in a temporary sibling directory and renamed into place at the end.

use crate::api::args::props_from_args;
use crate::config::{load_config, parse_setting_arg, write_settings};
use crate::items::{self, Ctx};
use crate::schema::initial_data::load_initial_data;
use crate::schema::load_schema;
use crate::security::UserCtx;
use crate::tracker::{OpenError, Tracker};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The built-in classic template.
pub const CLASSIC: [(&str, &str); 3] = [
    (
        "schema.toml",
        include_str!("../../tracker-template/schema.toml"),
    ),
    (
        "config.ini",
        include_str!("../../tracker-template/config.ini"),
    ),
    (
        "initial_data.toml",
        include_str!("../../tracker-template/initial_data.toml"),
    ),
];

/// Why `init` failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The target exists and is not an empty directory.
    #[error("{0}: already exists and is not empty; refusing to touch it")]
    Exists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A `--set` setting or config.ini is invalid.
    #[error("{0}")]
    Config(String),
    /// schema.toml or initial_data.toml is invalid.
    #[error("{0}")]
    Schema(String),
    /// Opening the new database failed.
    #[error("{0}")]
    Open(#[from] OpenError),
    /// Creating the initial data failed.
    #[error("initial data: {0}")]
    Data(String),
    /// The admin password file could not be used.
    #[error("{0}: {1}")]
    PasswordFile(PathBuf, String),
}

/// The most `--admin-password-file` reads: a password is one line.
const PASSWORD_FILE_MAX: u64 = 64 * 1024;

/// Reads an admin password from `path` (`-`: standard input): its first line,
/// without the line end. Errors name the file.
pub fn read_password_file(path: &Path) -> Result<String, InitError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(PASSWORD_FILE_MAX)
            .read_to_end(&mut bytes)
    } else {
        fs::File::open(path).and_then(|f| f.take(PASSWORD_FILE_MAX).read_to_end(&mut bytes))
    };
    let shown = if path.as_os_str() == "-" {
        PathBuf::from("(standard input)")
    } else {
        path.to_path_buf()
    };
    read.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            InitError::PasswordFile(shown.clone(), "does not exist".into())
        }
        _ => InitError::PasswordFile(shown.clone(), format!("cannot be read: {e}")),
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| InitError::PasswordFile(shown.clone(), "is not UTF-8 text".into()))?;
    let line = text.split('\n').next().unwrap_or_default();
    let password = line.strip_suffix('\r').unwrap_or(line);
    if password.is_empty() {
        return Err(InitError::PasswordFile(
            shown,
            "holds no password (its first line is empty)".into(),
        ));
    }
    Ok(password.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InitError + '_ {
    move |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a tracker in `dir` from `template` (or the built-in classic one),
/// applies `settings` (`KEY=VALUE`) to its config.ini, creates the database and
/// the initial data with the given admin password.
pub fn init(
    dir: &Path,
    admin_password: &str,
    template: Option<&Path>,
    settings: &[String],
) -> Result<(), InitError> {
    if dir.exists() {
        let empty = dir.is_dir() && fs::read_dir(dir).map_err(io(dir))?.next().is_none();
        if !empty {
            return Err(InitError::Exists(dir.to_path_buf()));
        }
    }
    let parsed: Vec<(String, String)> = settings
        .iter()
        .map(|s| parse_setting_arg(s).map_err(|e| InitError::Config(e.to_string())))
        .collect::<Result<_, _>>()?;
    // Roundup needs a mail domain for the admin address; default it to
    // localhost instead of failing a plain first `init`.
    let mut parsed = parsed;
    let has_domain = parsed.iter().any(|(k, _)| {
        let k = k.to_lowercase().replace('.', "_");
        k == "mail_domain" || k == "domain"
    });
    if !has_domain {
        parsed.push(("mail_domain".into(), "localhost".into()));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tracker".into());
    let parent = std::path::absolute(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".{name}.init-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let result = build(&tmp, &name, admin_password, template, &parsed);
    match result {
        Ok(()) => {
            if dir.exists() {
                fs::remove_dir(dir).map_err(io(dir))?;
            }
            fs::rename(&tmp, dir).map_err(io(dir))
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(relocate(e, &tmp, dir, template))
        }
    }
}

/// `e` with the paths inside the temporary build directory `tmp` replaced by
/// what the user knows: a template file by the template's own file (that is what
/// to fix), anything else by its place in `dir`. The temporary name is never shown.
fn relocate(e: InitError, tmp: &Path, dir: &Path, template: Option<&Path>) -> InitError {
    let map_path = |p: &Path| -> PathBuf {
        match p.strip_prefix(tmp) {
            Ok(rest) => match template {
                Some(t) if CLASSIC.iter().any(|(f, _)| rest == Path::new(f)) => t.join(rest),
                _ => dir.join(rest),
            },
            Err(_) => p.to_path_buf(),
        }
    };
    let map_text = |text: String| -> String {
        let mut text = text;
        for (file, _) in CLASSIC {
            let inside = tmp.join(file);
            text = text.replace(
                &inside.display().to_string(),
                &map_path(&inside).display().to_string(),
            );
        }
        text.replace(&tmp.display().to_string(), &dir.display().to_string())
    };
    match e {
        InitError::Io { path, source } => InitError::Io {
            path: map_path(&path),
            source,
        },
        InitError::Config(m) => InitError::Config(map_text(m)),
        InitError::Schema(m) => InitError::Schema(map_text(m)),
        InitError::Data(m) => InitError::Data(map_text(m)),
        InitError::Open(o) => InitError::Open(OpenError::Schema(map_text(o.to_string()))),
        other @ (InitError::Exists(_) | InitError::PasswordFile(..)) => other,
    }
}

fn build(
    tmp: &Path,
    name: &str,
    admin_password: &str,
    template: Option<&Path>,
    settings: &[(String, String)],
) -> Result<(), InitError> {
    fs::create_dir_all(tmp).map_err(io(tmp))?;
    for (file, builtin) in CLASSIC {
        let target = tmp.join(file);
        match template {
            Some(t) => {
                let src = t.join(file);
                fs::copy(&src, &target).map_err(io(&src))?;
            }
            None => fs::write(&target, builtin).map_err(io(&target))?,
        }
    }
    write_settings(&tmp.join("config.ini"), settings)
        .map_err(|e| InitError::Config(e.to_string()))?;
    let config = load_config(tmp).map_err(|e| InitError::Config(e.to_string()))?;
    let admin_email = config
        .admin_email()
        .map_err(|e| InitError::Config(e.to_string()))?;
    let schema =
        load_schema(&tmp.join("schema.toml")).map_err(|e| InitError::Schema(e.to_string()))?;
    let vars: HashMap<String, String> = [
        ("admin_password".to_string(), admin_password.to_string()),
        ("admin_email".to_string(), admin_email),
    ]
    .into_iter()
    .collect();
    let data = load_initial_data(&tmp.join("initial_data.toml"), &vars)
        .map_err(|e| InitError::Schema(e.to_string()))?;
    // PostgreSQL: the database is created (or an existing empty one filled) by
    // opening the tracker; a database this run created is dropped again if
    // filling it fails, so that `init` can simply be run again.
    let pg = config.rdbms.backend == crate::config::Backend::Postgresql;
    let pg_existed = pg
        && crate::postgres::database_exists(&config.rdbms.postgresql, tmp).map_err(|e| {
            InitError::Open(match e {
                crate::store::StoreError::Unavailable(m) => OpenError::Unreachable(m),
                e => OpenError::Database {
                    path: tmp.to_path_buf(),
                    source: e,
                },
            })
        })?;
    let pg_settings = config.rdbms.postgresql.clone();
    let tracker = Tracker::from_parts(name, tmp, schema, config, true)?;
    let result = create_as_admin(&tracker, &data.creates);
    if result.is_err() && pg && !pg_existed {
        drop(tracker);
        crate::postgres::drop_database(&pg_settings, tmp);
    }
    result
}

/// Creates items as the admin user (id 1), each through the same argument
/// parsing, checks and detectors as an XML-RPC `create`, in one transaction.
pub fn create_as_admin(
    tracker: &Tracker,
    creates: &[(String, Vec<String>)],
) -> Result<(), InitError> {
    let admin = UserCtx {
        id: 1,
        username: "admin".into(),
        roles: vec!["admin".into()],
    };
    let data = |e: crate::error::Error| InitError::Data(e.to_string());
    let mut tx = tracker
        .store
        .write()
        .map_err(|e| InitError::Data(e.to_string()))?;
    {
        let mut ctx = Ctx::new(&mut *tx, tracker, &admin);
        for (class_name, props) in creates {
            let class = ctx.class(class_name).map_err(data)?.clone();
            let args: Vec<crate::xmlrpc::Value> = props
                .iter()
                .map(|p| crate::xmlrpc::Value::str(p.as_str()))
                .collect();
            let changes = props_from_args(&mut ctx, &class, &args, None).map_err(data)?;
            items::create(&mut ctx, &class, changes)
                .map_err(|e| InitError::Data(format!("{class_name}: {e}")))?;
        }
    }
    tx.commit().map_err(|e| InitError::Data(e.to_string()))
}
