//! The PostgreSQL store against a private cluster (tests/pg_common): Roundup's
//! layout made by `init`, value conversions of the layout's types, several
//! "daemons" (independently opened trackers, each with its own connection pool)
//! writing one database at once, the shared failed-login limiter state, and the
//! content-file recovery that asks PostgreSQL which transactions committed.

mod pg_common;

use pg_common::{cluster, tracker_dir};
use roundup_xmlrpc::admin::init::init;
use roundup_xmlrpc::api;
use roundup_xmlrpc::security::UserCtx;
use roundup_xmlrpc::tracker::{OpenError, Tracker};
use roundup_xmlrpc::xmlrpc::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn admin() -> UserCtx {
    UserCtx {
        id: 1,
        username: "admin".into(),
        roles: vec!["admin".into()],
    }
}

/// Runs one API method as admin in its own transaction, as the server does
/// (`api::call`); a fault's string as the error.
fn call(t: &Tracker, method: &str, params: &[&str]) -> Result<Value, String> {
    let params: Vec<Value> = params.iter().map(|p| Value::str(*p)).collect();
    call_v(t, method, &params)
}

fn call_v(t: &Tracker, method: &str, params: &[Value]) -> Result<Value, String> {
    api::call(t, &admin(), method, params).map_err(|f| f.string)
}

const THING: &str = r#"
[class.thing]
key = "name"
[class.thing.properties]
name = "String"
num = "Number"
count = "Integer"
flag = "Boolean"
when = "Date"
dur = "Interval"
owner = { type = "Link", to = "user" }
tags = { type = "Multilink", to = "keyword" }
"#;

/// A new PostgreSQL tracker in database `db` (the classic schema, plus the class
/// `thing` with every property type when `thing`).
fn make(name: &str, db: &str, thing: bool) -> PathBuf {
    let dir = tracker_dir(name);
    init(&dir, "sekrit", None, &cluster().settings(db)).expect("init");
    if thing {
        let schema = dir.join("schema.toml");
        let text = std::fs::read_to_string(&schema).expect("read schema");
        let at = text.find("[[role]]").expect("roles");
        let text = format!("{}{THING}\n{}", &text[..at], &text[at..]);
        std::fs::write(&schema, text).expect("write schema");
    }
    dir
}

fn open(dir: &Path) -> Tracker {
    Tracker::open(dir, "demo").expect("open tracker")
}

fn s(v: &Value) -> String {
    format!("{v:?}")
}

#[test]
fn init_makes_roundups_layout_and_refuses_a_used_database() {
    let c = cluster();
    let dir = make("layout", "rxs_layout", false);
    let t = open(&dir);
    assert_eq!(
        s(&call(&t, "list", &["status"]).unwrap())
            .matches("String")
            .count(),
        8
    );
    let mut db = c.connect("rxs_layout");
    let rels: Vec<String> = db
        .query(
            "select relname::text from pg_class c join pg_namespace n on n.oid=c.relnamespace \
             where n.nspname='public' and relkind in ('r','S') order by 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for want in [
        "___textids_ids",
        "__fts",
        "__textids",
        "__words",
        "_issue",
        "_issue_ids",
        "_user",
        "dual",
        "issue__journal",
        "issue_nosy",
        "otks",
        "schema",
        "sessions",
    ] {
        assert!(
            rels.iter().any(|r| r == want),
            "{want} missing from {rels:?}"
        );
    }
    let row: String = db
        .query_one("select schema from schema", &[])
        .unwrap()
        .get(0);
    assert!(
        row.starts_with("{'version': 8, 'tables': {'priority': ('name', "),
        "{row}"
    );
    let dual: i64 = db
        .query_one("select count(*) from dual", &[])
        .unwrap()
        .get(0);
    assert_eq!(dual, 1);
    // Ids come from the sequences: admin and anonymous are 1 and 2.
    let users: i64 = db
        .query_one("select last_value from _user_ids", &[])
        .unwrap()
        .get(0);
    assert_eq!(users, 2);

    // A second init on the same database is refused and leaves it alone.
    let again = tracker_dir("layout-again");
    let e = init(&again, "x", None, &c.settings("rxs_layout")).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
    assert!(!again.exists());
    let n: i64 = db
        .query_one("select count(*) from _user", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

#[test]
fn serving_never_creates_a_database_and_an_unreachable_server_is_its_own_error() {
    let c = cluster();
    let dir = make("missing", "rxs_missing", false);
    let cfg = dir.join("config.ini");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("name = rxs_missing", "name = rxs_nosuch"),
    )
    .unwrap();
    match Tracker::open(&dir, "demo") {
        Err(OpenError::NoDatabase(m)) => assert!(m.contains("rxs_nosuch"), "{m}"),
        other => panic!("expected NoDatabase, got {other:?}"),
    }
    let nosock = format!("host = {}", dir.display());
    std::fs::write(
        &cfg,
        text.replace(&format!("host = {}", c.dir.display()), &nosock),
    )
    .unwrap();
    match Tracker::open(&dir, "demo") {
        Err(OpenError::Unreachable(m)) => {
            assert!(m.contains("cannot connect to PostgreSQL"), "{m}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let mut db = c.connect("postgres");
    let n: i64 = db
        .query_one(
            "select count(*) from pg_database where datname='rxs_nosuch'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[test]
fn values_keep_the_layouts_types_and_answers_match_sqlite() {
    let c = cluster();
    let dir = make("values", "rxs_values", true);
    let t = open(&dir);
    let id = call(
        &t,
        "create",
        &[
            "thing",
            "name=a",
            "num=0.30000000000000004",
            "count=7",
            "flag=yes",
            "when=2024-01-02.03:04:05",
            "dur=1d 2:03:04",
            "owner=admin",
        ],
    )
    .unwrap();
    assert_eq!(id, Value::str("1"));
    let shown = s(&call(
        &t,
        "display",
        &["thing1", "num", "count", "flag", "when", "dur"],
    )
    .unwrap());
    assert!(
        shown.contains("Double(0.3)"),
        "float4 like Roundup: {shown}"
    );
    assert!(
        shown.contains("Int(7)") && shown.contains("(\"flag\", Int(1))"),
        "{shown}"
    );
    assert!(shown.contains("<Date 2024-01-02.03:04:05.000>"), "{shown}");
    assert!(shown.contains("+ 1d 2:03:04"), "{shown}");
    call(
        &t,
        "set",
        &["thing1", "flag=no", "count=8", "when=2025-02-03.04:05:06"],
    )
    .unwrap();
    let mut db = c.connect("rxs_values");
    let params: String = db
        .query_one(
            "select params from thing__journal where action='set' order by date desc limit 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        params, "{'count': 7, 'flag': 'TRUE', 'when': '2024-01-02 03:04:05.000'}",
        "PostgreSQL's journal format"
    );
    // Values the layout cannot hold are refused in plain words (ids consumed).
    for (arg, want) in [
        ("count=2147483648", "out of range for type integer"),
        ("num=1e39", "out of range for type real"),
    ] {
        let e = call(&t, "create", &["thing", "name=big", arg]).unwrap_err();
        assert!(e.to_string().contains(want), "{arg}: {e}");
    }
    let long = format!("name={}", "k".repeat(2100));
    let e = call(&t, "create", &["keyword", &long]).unwrap_err();
    assert!(e.to_string().contains("longer than 2000 bytes"), "{e}");
    // Reads of what cannot exist find nothing, as on SQLite.
    assert!(call(&t, "display", &["thing99999999999"])
        .unwrap_err()
        .to_string()
        .contains("no such thing"));
    let none = |q: Value| s(&call_v(&t, "filter", &[Value::str("thing"), Value::Nil, q]).unwrap());
    let st = |k: &str, v: &str| Value::Struct(vec![(k.into(), Value::str(v))]);
    assert_eq!(none(st("count", "3000000000")), "Array([])");
    assert_eq!(none(st("id", "99999999999")), "Array([])");
    assert_eq!(
        none(st("num", "0.30000000000000004")),
        "Array([String(\"1\")])"
    );
    assert_eq!(none(st("num", "1e39")), "Array([])");
    // Substring search and sorting fold ASCII only, bytewise, as SQLite does.
    for n in ["b", "B", "Émile", "émile", "apple"] {
        call(&t, "create", &["thing", &format!("name={n}")]).unwrap();
    }
    let order = call_v(
        &t,
        "filter",
        &[
            Value::str("thing"),
            Value::Nil,
            Value::Struct(vec![]),
            Value::Array(vec![Value::Array(vec![
                Value::str("+"),
                Value::str("name"),
            ])]),
        ],
    )
    .unwrap();
    let names: Vec<String> = match order {
        Value::Array(ids) => ids
            .iter()
            .map(|i| {
                let d = call(
                    &t,
                    "display",
                    &[&format!("thing{}", i.as_str().unwrap()), "name"],
                )
                .unwrap();
                match d {
                    Value::Struct(m) => m[0].1.as_str().unwrap().to_string(),
                    _ => unreachable!(),
                }
            })
            .collect(),
        other => panic!("{other:?}"),
    };
    assert_eq!(names, ["a", "apple", "b", "B", "Émile", "émile"]);
    assert_eq!(
        none(st("name", "MILE")),
        "Array([String(\"6\"), String(\"7\")])"
    );
    assert_eq!(none(st("name", "éMILE")), "Array([String(\"7\")])");
}

#[test]
fn two_daemons_keep_keys_unique_and_lose_no_update() {
    let dir = make("daemons", "rxs_daemons", false);
    let a = Arc::new(open(&dir));
    let b = Arc::new(open(&dir));
    // 16 writers, two "daemons", 4 names: each name is created exactly once and
    // every other attempt gets Roundup's key-clash answer.
    let mut handles = Vec::new();
    for i in 0..16 {
        let t = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(std::thread::spawn(move || {
            let name = format!("k{}", i % 4);
            call(&t, "create", &["keyword", &format!("name={name}")])
        }));
    }
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        4,
        "{results:?}"
    );
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            r.contains("node with key \"k") && r.ends_with("exists"),
            "{r}"
        );
    }
    let kws = s(&call(&a, "list", &["keyword"]).unwrap());
    for n in 0..4 {
        assert_eq!(kws.matches(&format!("\"k{n}\"")).count(), 1, "{kws}");
    }
    // Ids from the sequence: unique across daemons, failed creates consumed.
    let users: Vec<String> = (0..6)
        .map(|i| {
            let t = if i % 2 == 0 { &a } else { &b };
            match call(t, "create", &["user", &format!("username=u{i}")]).unwrap() {
                Value::String(id) => id,
                v => panic!("{v:?}"),
            }
        })
        .collect();
    let mut sorted = users.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 6);
    // Concurrent "+user" changes of one nosy list through both daemons: every
    // addition lands (the item's row lock serialises the read-modify-write).
    call(&a, "create", &["issue", "title=shared"]).unwrap();
    let mut handles = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let t = if i % 2 == 0 { a.clone() } else { b.clone() };
        let u = u.clone();
        handles.push(std::thread::spawn(move || {
            call(&t, "set", &["issue1", &format!("nosy=+{u}")])
        }));
    }
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let nosy = s(&call(&b, "display", &["issue1", "nosy"]).unwrap());
    for u in &users {
        assert!(nosy.contains(&format!("\"{u}\"")), "{u} lost: {nosy}");
    }
    let mut db = cluster().connect("rxs_daemons");
    let sets: i64 = db
        .query_one(
            "select count(*) from issue__journal where nodeid=1 and action='set'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(sets, 6, "one journal entry per change");
}

#[test]
fn the_failed_login_state_is_shared_through_otks() {
    let dir = make("limits", "rxs_limits", false);
    let a = open(&dir);
    let b = open(&dir);
    let sa = a.store.shared_limits().expect("shared on PostgreSQL");
    let sb = b.store.shared_limits().expect("shared on PostgreSQL");
    assert_eq!(sb.tats(&["LOGIN-APIjoe"]).unwrap(), vec![None]);
    assert!(sa
        .update("LOGIN-APIjoe", 600.0, &mut |t| Some(t.unwrap_or(0.0) + 2e9))
        .unwrap());
    assert_eq!(
        sb.tats(&["x", "LOGIN-APIjoe"]).unwrap(),
        vec![None, Some(2e9)]
    );
    // Refused updates store nothing.
    assert!(!sb.update("LOGIN-APIjoe", 600.0, &mut |_| None).unwrap());
    assert!(sb
        .update("LOGIN-APIjoe", 600.0, &mut |t| Some(t.unwrap() + 150.0))
        .unwrap());
    assert_eq!(sa.tats(&["LOGIN-APIjoe"]).unwrap(), vec![Some(2e9 + 150.0)]);
    let mut db = cluster().connect("rxs_limits");
    let rows = db
        .query(
            "select otk_value from otks where otk_key='LOGIN-APIjoe'",
            &[],
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    let v: String = rows[0].get(0);
    assert!(
        v.starts_with("{'tat': '2033-05-18T03:35:50+00:00', '__timestamp': "),
        "Roundup's format: {v}"
    );
    // Keys longer than otk_key's 255 characters are kept too.
    let long = format!("LOGIN-API{}", "x".repeat(400));
    assert!(sa.update(&long, 600.0, &mut |_| Some(5.0)).unwrap());
    assert_eq!(sb.tats(&[&long]).unwrap(), vec![Some(5.0)]);
}

#[test]
fn content_recovery_asks_postgresql_which_transactions_committed() {
    let c = cluster();
    let dir = make("files", "rxs_files", false);
    {
        let t = open(&dir);
        call(&t, "create", &["file", "name=a", "content=one"]).unwrap();
        call(&t, "create", &["file", "name=b", "content=two"]).unwrap();
        call(&t, "create", &["file", "name=c", "content=three"]).unwrap();
    }
    let mut db = c.connect("rxs_files");
    let xid = |db: &mut postgres::Client, commit: bool| -> i64 {
        db.batch_execute("begin").unwrap();
        let x: i64 = db.query_one("select txid_current()", &[]).unwrap().get(0);
        db.batch_execute(if commit { "commit" } else { "rollback" })
            .unwrap();
        x
    };
    let committed = xid(&mut db, true);
    let aborted = xid(&mut db, false);
    let mut other = c.connect("rxs_files");
    other.batch_execute("begin").unwrap();
    let running: i64 = other
        .query_one("select txid_current()", &[])
        .unwrap()
        .get(0);
    let files = dir.join("db").join("files").join("file").join("0");
    let staged = |n: u32, token: i64, text: &str| {
        let p = files.join(format!("file{n}.rxs-{token}.tmp"));
        std::fs::write(&p, text).unwrap();
        p
    };
    let a = staged(1, committed, "one, committed later");
    let b = staged(2, aborted, "two, never committed");
    let r = staged(3, running, "three, still running elsewhere");
    let t = open(&dir);
    assert!(!a.exists() && !b.exists());
    assert_eq!(
        std::fs::read_to_string(files.join("file1")).unwrap(),
        "one, committed later"
    );
    assert_eq!(std::fs::read_to_string(files.join("file2")).unwrap(), "two");
    assert!(
        r.exists(),
        "another daemon's running transaction is left alone"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("file3")).unwrap(),
        "three"
    );
    other.batch_execute("rollback").unwrap();
    // The next write of the item settles it (aborted now: deleted).
    call(&t, "set", &["file3", "content=three again"]).unwrap();
    assert!(!r.exists());
    assert_eq!(
        std::fs::read_to_string(files.join("file3")).unwrap(),
        "three again"
    );
    // A failed call leaves no staged file behind.
    let e = call(
        &t,
        "create",
        &["file", "content=x", "name=y", "type=a/b", "nosuch=1"],
    );
    assert!(e.is_err());
    let left: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".rxs-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// What Python detectors read besides items: every id with its retired flag, and
/// an item's journal as stored (PostgreSQL's params format: dates with a space,
/// a true Boolean as 'TRUE').
#[test]
fn all_ids_and_journal_rows_for_python_detectors() {
    let dir = make("journal", "rxs_journal", true);
    let t = open(&dir);
    call(
        &t,
        "create",
        &["thing", "name=a", "flag=yes", "when=2024-01-02.03:04:05"],
    )
    .unwrap();
    call(&t, "create", &["thing", "name=b"]).unwrap();
    call(&t, "set", &["thing1", "flag=no", "when=2025-01-01"]).unwrap();
    call(&t, "action", &["retire", "thing2"]).unwrap();
    let class = t.schema.class("thing").expect("class thing").clone();
    let mut tx = t.store.read().unwrap();
    assert_eq!(tx.all_ids(&class).unwrap(), vec![(1, false), (2, true)]);
    let rows = tx.journal_rows(&class, 1).unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["create", "set"]);
    assert!(
        rows.iter().all(|r| r.nodeid == 1 && r.tag == "1"),
        "{rows:?}"
    );
    assert!(rows[0].date <= rows[1].date);
    let params = &rows[1].params;
    assert!(params.contains("'2024-01-02 03:04:05.000'"), "{params}");
    assert!(params.contains("'TRUE'"), "{params}");
    assert_eq!(tx.journal_rows(&class, 2).unwrap().len(), 2);
    assert!(tx.journal_rows(&class, 99).unwrap().is_empty());
    assert!(tx.journal_rows(&class, 1 << 40).unwrap().is_empty());
}

/// A read's interrupter (what a call's deadline fires) cancels the statement the
/// read waits in; the cancelled connection is not pooled again, and the next read
/// works.
#[test]
fn a_reads_interrupter_cancels_its_statement() {
    let c = cluster();
    let dir = make("cancel", "rxs_cancel", false);
    let t = open(&dir);
    let issue = t.schema.class("issue").expect("class issue").clone();
    let mut locker = c.connect("rxs_cancel");
    let mut lock = locker.transaction().unwrap();
    lock.batch_execute("LOCK TABLE _issue IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let mut tx = t.store.read().unwrap();
    let interrupter = tx.interrupter().expect("reads can be interrupted");
    let fire = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        interrupter.interrupt();
    });
    let started = std::time::Instant::now();
    let e = tx
        .list(&issue)
        .expect_err("cancelled while waiting for the lock");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(e.to_string().contains("cancel"), "{e}");
    fire.join().unwrap();
    drop(tx);
    lock.rollback().unwrap();
    assert!(t.store.read().unwrap().list(&issue).unwrap().is_empty());
    assert!(
        t.store.write().unwrap().interrupter().is_none(),
        "writes are not"
    );
}
