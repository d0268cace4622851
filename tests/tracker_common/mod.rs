//! Shared helpers for the Rust tests of the Roundup side (api, items, detectors,
//! store, security, app): a classic tracker made by `init` in a fresh temporary
//! directory (cheap password hashing), and calls through `api::call`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use roundup_xmlrpc::admin::init::init;
use roundup_xmlrpc::api;
use roundup_xmlrpc::security::UserCtx;
use roundup_xmlrpc::tracker::Tracker;
use roundup_xmlrpc::xmlrpc::{Fault, Value};

/// A tracker in its own directory, removed on drop.
pub struct TestTracker {
    /// The tracker directory.
    pub dir: PathBuf,
    /// The open tracker.
    pub tracker: Tracker,
}

impl Drop for TestTracker {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new classic tracker named `name` (admin password `pw`), with extra `--set`
/// settings.
pub fn classic(name: &str, settings: &[&str]) -> TestTracker {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "rxs-{name}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut all = vec![
        "password_pbkdf2_default_rounds=1000".to_string(),
        "admin_email=admin@example.com".to_string(),
        "mail_domain=example.com".to_string(),
    ];
    all.extend(settings.iter().map(|s| s.to_string()));
    init(&dir, "pw", None, &all).expect("init a classic tracker");
    let tracker = Tracker::open(&dir, name).expect("open the new tracker");
    TestTracker { dir, tracker }
}

/// A new tracker named `name` from the given schema.toml and initial_data.toml
/// texts (the classic config.ini, with extra `--set` settings). The initial data
/// should create the admin (`${admin_password}`) and anonymous users first.
pub fn custom(name: &str, schema: &str, initial_data: &str, settings: &[&str]) -> TestTracker {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir().join(format!(
        "rxs-{name}-{}-c{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&base);
    let template = base.with_extension("template");
    let _ = std::fs::remove_dir_all(&template);
    std::fs::create_dir_all(&template).expect("template directory");
    std::fs::write(template.join("schema.toml"), schema).expect("schema.toml");
    std::fs::write(template.join("initial_data.toml"), initial_data).expect("initial_data");
    let config = roundup_xmlrpc::admin::init::CLASSIC
        .iter()
        .find(|(f, _)| *f == "config.ini")
        .map(|(_, text)| *text)
        .expect("the classic config.ini");
    std::fs::write(template.join("config.ini"), config).expect("config.ini");
    let mut all = vec![
        "password_pbkdf2_default_rounds=1000".to_string(),
        "admin_email=admin@example.com".to_string(),
        "mail_domain=example.com".to_string(),
    ];
    all.extend(settings.iter().map(|s| s.to_string()));
    init(&base, "pw", Some(&template), &all).expect("init the custom tracker");
    let _ = std::fs::remove_dir_all(&template);
    let tracker = Tracker::open(&base, name).expect("open the new tracker");
    TestTracker { dir: base, tracker }
}

/// The admin user (user1) as the permission checks see it.
pub fn admin() -> UserCtx {
    UserCtx {
        id: 1,
        username: "admin".into(),
        roles: vec!["admin".into()],
    }
}

/// The anonymous user (user2).
pub fn anonymous() -> UserCtx {
    UserCtx {
        id: 2,
        username: "anonymous".into(),
        roles: vec!["anonymous".into()],
    }
}

/// A string value.
pub fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

/// String params.
pub fn strs(params: &[&str]) -> Vec<Value> {
    params.iter().map(|p| s(p)).collect()
}

/// The fault of a call that must fail, as `(code, text)`.
pub fn fault(result: Result<Value, Fault>) -> (i32, String) {
    match result {
        Ok(v) => panic!("expected a fault, got {v:?}"),
        Err(f) => (f.code, f.string),
    }
}

impl TestTracker {
    /// `api::call` with string params.
    pub fn call(&self, user: &UserCtx, name: &str, params: &[&str]) -> Result<Value, Fault> {
        api::call(&self.tracker, user, name, &strs(params))
    }

    /// `api::call` with any params.
    pub fn call_v(&self, user: &UserCtx, name: &str, params: &[Value]) -> Result<Value, Fault> {
        api::call(&self.tracker, user, name, params)
    }

    /// Creates an item as admin; its id.
    pub fn create(&self, class: &str, props: &[&str]) -> String {
        let mut params = vec![class];
        params.extend_from_slice(props);
        match self.call(&admin(), "create", &params) {
            Ok(Value::String(id)) => id,
            other => panic!("create {class} {props:?}: {other:?}"),
        }
    }

    /// Creates a user with `roles` (e.g. `User`) as admin; the user as the
    /// permission checks see them.
    pub fn user(&self, username: &str, roles: &str) -> UserCtx {
        let id = self.create(
            "user",
            &[
                &format!("username={username}"),
                "password=secret",
                &format!("address={username}@example.com"),
                &format!("roles={roles}"),
            ],
        );
        UserCtx {
            id: id.parse().expect("numeric id"),
            username: username.into(),
            roles: roles.split(',').map(|r| r.trim().to_lowercase()).collect(),
        }
    }

    /// One property of an item as `display` (as admin) answers it.
    pub fn prop(&self, designator: &str, prop: &str) -> Value {
        match self.call(&admin(), "display", &[designator, prop]) {
            Ok(Value::Struct(members)) => members
                .into_iter()
                .find(|(k, _)| k == prop)
                .map(|(_, v)| v)
                .expect("the property"),
            other => panic!("display {designator} {prop}: {other:?}"),
        }
    }

    /// The database, opened beside the daemon's connections (for journal rows).
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.join("db/db")).expect("open db/db")
    }

    /// `(action, params)` of the journal of `class<id>`, oldest first.
    pub fn journal(&self, class: &str, id: &str) -> Vec<(String, String)> {
        let db = self.db();
        let mut stmt = db
            .prepare(&format!(
                "select action, params from {class}__journal where nodeid = ?1 order by date, rowid"
            ))
            .expect("journal table");
        let rows = stmt
            .query_map([id.parse::<i64>().expect("numeric id")], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    }

    /// The files in the database's outbox (queued nosy mail).
    pub fn outbox(&self) -> Vec<PathBuf> {
        files_in(&self.dir.join("db/outbox"))
    }
}

/// The files (not directories) directly in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// A string list value.
pub fn list(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|i| s(i)).collect())
}

/// A struct value from `(name, value)` pairs.
pub fn record(members: &[(&str, Value)]) -> Value {
    Value::Struct(
        members
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}
