//! The storage contract (`store::Store` / `store::Tx`) on the SQLite backend, used
//! directly: transactions (commit, rollback on drop, snapshots), ids, keys, the
//! automatic properties, filter and sort, content files and outbox files that exist
//! exactly when their transaction committed.

mod tracker_common;

use std::sync::Arc;
use std::time::Duration;

use roundup_xmlrpc::hyperdb::date::Date;
use roundup_xmlrpc::schema::load_schema;
use roundup_xmlrpc::sqlite::{Options, SqliteStore};
use roundup_xmlrpc::store::{
    Cond, FilterQuery, Multilinks, PropValue, SortKey, Store, StoreError, Values, OUTBOX_DIR,
};
use tracker_common::{classic, files_in, TestTracker};

fn values(pairs: &[(&str, PropValue)]) -> Values {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.clone())))
        .collect()
}

fn text(v: &str) -> PropValue {
    PropValue::String(v.into())
}

fn store(t: &TestTracker) -> &dyn Store {
    &*t.tracker.store
}

fn class<'a>(t: &'a TestTracker, name: &str) -> &'a roundup_xmlrpc::schema::ClassDef {
    t.tracker.schema.class(name).expect("a classic class")
}

/// Inserts a keyword in its own committed transaction; its id.
fn keyword(t: &TestTracker, name: &str) -> i64 {
    let kw = class(t, "keyword");
    let mut tx = store(t).write().unwrap();
    let id = tx.new_id(kw).unwrap();
    tx.insert(kw, id, &values(&[("name", text(name))]), 1, Date::now())
        .unwrap();
    tx.commit().unwrap();
    id
}

#[test]
fn a_transaction_lands_whole_or_not_at_all() {
    let t = classic("store-tx", &[]);
    let kw = class(&t, "keyword");
    let a = keyword(&t, "a");
    {
        let mut tx = store(&t).write().unwrap();
        let id = tx.new_id(kw).unwrap();
        tx.insert(kw, id, &values(&[("name", text("gone"))]), 1, Date::now())
            .unwrap();
        assert!(tx.exists(kw, id).unwrap(), "visible inside its transaction");
        // Dropped without commit: rolled back.
    }
    let mut read = store(&t).read().unwrap();
    assert_eq!(read.list(kw).unwrap(), [a]);
    assert_eq!(read.lookup(kw, "name", "gone").unwrap(), None);
    // A read transaction is a snapshot and cannot write.
    let b = keyword(&t, "b");
    assert_eq!(read.list(kw).unwrap(), [a], "the snapshot does not move");
    assert!(matches!(
        read.insert(kw, 99, &values(&[("name", text("x"))]), 1, Date::now()),
        Err(StoreError::ReadOnly)
    ));
    assert!(read.interrupter().is_some(), "reads can be interrupted");
    drop(read);
    assert_eq!(store(&t).read().unwrap().list(kw).unwrap(), [a, b]);
    assert!(store(&t).write().unwrap().interrupter().is_none());
}

#[test]
fn ids_keys_retirement_and_automatic_properties() {
    let t = classic("store-ids", &[]);
    let kw = class(&t, "keyword");
    let a = keyword(&t, "a");
    {
        let mut tx = store(&t).write().unwrap();
        let burned = tx.new_id(kw).unwrap();
        assert_eq!(burned, a + 1);
        tx.consume_id(kw, burned).unwrap();
        tx.commit().unwrap();
    }
    let b = keyword(&t, "b");
    assert_eq!(b, a + 2, "a consumed id is not handed out again");
    let mut tx = store(&t).write().unwrap();
    assert_eq!(tx.lookup(kw, "name", "b").unwrap(), Some(b));
    assert_eq!(tx.lookup(kw, "name", "B").unwrap(), None, "keys are exact");
    tx.set_retired(kw, b, true).unwrap();
    assert_eq!(tx.lookup(kw, "name", "b").unwrap(), None);
    assert_eq!(tx.list(kw).unwrap(), [a]);
    let item = tx.get(kw, b, Multilinks::All).unwrap().unwrap();
    assert!(item.retired, "retired items can still be read");
    assert_eq!(item.get("creator"), Some(&PropValue::Link(1)));
    // An update with `touch` moves activity and actor.
    let later = Date::now();
    tx.update(kw, a, &values(&[("name", text("a2"))]), 2, later, true)
        .unwrap();
    let item = tx.get(kw, a, Multilinks::All).unwrap().unwrap();
    assert_eq!(item.get("actor"), Some(&PropValue::Link(2)));
    assert_eq!(item.get("creator"), Some(&PropValue::Link(1)));
    assert_eq!(
        tx.column(kw, "name").unwrap(),
        [(a, Some(text("a2")))],
        "column lists live items only"
    );
    assert_eq!(tx.get(kw, 999, Multilinks::All).unwrap(), None);
}

#[test]
fn multilinks_filter_and_sort() {
    let t = classic("store-filter", &[]);
    let issue = class(&t, "issue");
    let k1 = keyword(&t, "k1");
    let k2 = keyword(&t, "k2");
    let mut tx = store(&t).write().unwrap();
    let mut ids = Vec::new();
    for (title, kws) in [("b", vec![k1]), ("a", vec![k1, k2]), ("c", vec![])] {
        let id = tx.new_id(issue).unwrap();
        let mut v = values(&[("title", text(title))]);
        v.insert("keyword".into(), Some(PropValue::Multilink(kws)));
        tx.insert(issue, id, &v, 1, Date::now()).unwrap();
        ids.push(id);
    }
    let got = tx
        .get(issue, ids[1], Multilinks::Only(&["keyword"]))
        .unwrap()
        .unwrap();
    assert_eq!(
        got.get("keyword"),
        Some(&PropValue::Multilink(vec![k1, k2]))
    );
    let none = tx.get(issue, ids[1], Multilinks::None).unwrap().unwrap();
    assert_eq!(none.get("keyword"), None, "not loaded when not asked for");
    let query = |conds: Vec<Cond>, sort: Vec<SortKey>| FilterQuery {
        search_matches: None,
        conds,
        sort,
    };
    let by = |prop: &str, descending| SortKey {
        path: vec![prop.to_string()],
        descending,
    };
    assert_eq!(
        tx.filter(issue, &query(vec![], vec![by("title", false)]))
            .unwrap(),
        [ids[1], ids[0], ids[2]]
    );
    let has = |ids: Vec<i64>, empty| Cond::MultilinkIn {
        prop: "keyword".into(),
        ids,
        empty,
    };
    assert_eq!(
        tx.filter(issue, &query(vec![has(vec![k2], false)], vec![]))
            .unwrap(),
        [ids[1]]
    );
    assert_eq!(
        tx.filter(
            issue,
            &query(vec![has(vec![k1], true)], vec![by("id", true)])
        )
        .unwrap(),
        [ids[2], ids[1], ids[0]]
    );
    let contains = Cond::Contains {
        prop: "title".into(),
        needles: vec!["A".into()],
    };
    assert_eq!(
        tx.filter(issue, &query(vec![contains], vec![])).unwrap(),
        [ids[1]],
        "case-insensitive"
    );
    let restricted = FilterQuery {
        search_matches: Some(vec![ids[0], ids[2]]),
        ..query(vec![], vec![by("id", false)])
    };
    assert_eq!(tx.filter(issue, &restricted).unwrap(), [ids[0], ids[2]]);
    tx.set_retired(issue, ids[0], true).unwrap();
    assert_eq!(tx.filter(issue, &restricted).unwrap(), [ids[2]]);
}

#[test]
fn content_and_outbox_files_exist_once_committed() {
    let t = classic("store-files", &[]);
    let file = class(&t, "file");
    let mut tx = store(&t).write().unwrap();
    let id = tx.new_id(file).unwrap();
    tx.insert(file, id, &values(&[("name", text("f"))]), 1, Date::now())
        .unwrap();
    tx.set_content(file, id, b"v1").unwrap();
    tx.put_file_on_commit(OUTBOX_DIR, "m1.mail", b"mail")
        .unwrap();
    assert_eq!(tx.content(file, id).unwrap(), Some(b"v1".to_vec()));
    drop(tx);
    let outbox = t.dir.join("db").join(OUTBOX_DIR);
    assert!(files_in(&outbox).is_empty(), "rolled back: no mail file");
    let mut tx = store(&t).write().unwrap();
    let id = tx.new_id(file).unwrap();
    tx.insert(file, id, &values(&[("name", text("f"))]), 1, Date::now())
        .unwrap();
    tx.set_content(file, id, b"v1").unwrap();
    tx.put_file_on_commit(OUTBOX_DIR, "m1.mail", b"mail")
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(files_in(&outbox), [outbox.join("m1.mail")]);
    assert_eq!(std::fs::read(outbox.join("m1.mail")).unwrap(), b"mail");
    // New content replaces the old only when its transaction commits.
    let mut tx = store(&t).write().unwrap();
    tx.set_content(file, id, b"v2").unwrap();
    drop(tx);
    assert_eq!(
        store(&t).read().unwrap().content(file, id).unwrap(),
        Some(b"v1".to_vec())
    );
    let mut tx = store(&t).write().unwrap();
    tx.set_content(file, id, b"v2").unwrap();
    tx.commit().unwrap();
    assert_eq!(
        store(&t).read().unwrap().content(file, id).unwrap(),
        Some(b"v2".to_vec())
    );
    // Only the outbox area takes files.
    let mut tx = store(&t).write().unwrap();
    assert!(tx.put_file_on_commit("files", "x", b"").is_err());
    assert!(tx.put_file_on_commit(OUTBOX_DIR, "../x", b"").is_err());
}

#[test]
fn serving_never_creates_a_database() {
    let t = classic("store-open", &[]);
    let schema = Arc::new(load_schema(&t.dir.join("schema.toml")).unwrap());
    let options = |create| Options {
        busy_timeout: Duration::from_secs(1),
        allow_create: true,
        allow_alter: true,
        create,
    };
    let elsewhere = t.dir.join("elsewhere");
    assert!(matches!(
        SqliteStore::open(&elsewhere, schema.clone(), options(false)),
        Err(StoreError::Missing(_))
    ));
    assert!(!elsewhere.exists());
    // The tracker's own database opens a second time (another store on it).
    let again = SqliteStore::open(&t.dir.join("db"), schema, options(false)).unwrap();
    let kw = class(&t, "keyword");
    assert!(again.read().unwrap().list(kw).unwrap().is_empty());
}
