//! Criterion microbenchmarks of the storage queries behind the XML-RPC methods, on a
//! temporary classic tracker seeded with 10 000 issues (`cargo bench --bench storage`).
//!
//! Each query runs in its own read transaction (as one API call does), so the figures
//! include `BEGIN`/`ROLLBACK` and the reader-pool round trip. The tracker is created
//! with `init` and filled directly through [`Tx::insert`] (no journal, no detectors):
//! this measures SQLite and the row mapping, not the item layer.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use roundup_xmlrpc::admin::init::init;
use roundup_xmlrpc::hyperdb::date::Date;
use roundup_xmlrpc::schema::ClassDef;
use roundup_xmlrpc::store::{Cond, FilterQuery, Multilinks, PropValue, SortKey, Tx, Values};
use roundup_xmlrpc::tracker::Tracker;
use std::path::PathBuf;
use std::time::Duration;

/// Issues in the seeded tracker.
const ISSUES: i64 = 10_000;
/// Users created besides admin and anonymous (nosy candidates).
const USERS: i64 = 50;
/// Title words; a title is four of them, so each word is in about 1 title in 9.
const WORDS: [&str; 32] = [
    "crash", "login", "page", "error", "slow", "search", "mail", "report", "button", "export",
    "import", "timeout", "unicode", "layout", "printer", "cache", "upgrade", "config", "backup",
    "restore", "session", "token", "index", "query", "filter", "sort", "upload", "download",
    "window", "menu", "theme", "locale",
];

/// A tiny deterministic generator (xorshift), so every run seeds the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The temporary tracker directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn class<'t>(tracker: &'t Tracker, name: &str) -> &'t ClassDef {
    tracker.schema.class(name).expect("classic schema class")
}

fn title(rng: &mut Rng) -> String {
    (0..4)
        .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// Creates and opens a classic tracker holding [`USERS`] users and [`ISSUES`] issues
/// (title, priority, status, 2–3 nosy users each).
fn seeded_tracker() -> (TempDir, Tracker) {
    let dir = std::env::temp_dir().join(format!("rxs-bench-storage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let guard = TempDir(dir.clone());
    let settings = [
        "admin_email=admin@example.com".to_string(),
        "mail_domain=example.com".to_string(),
    ];
    init(&dir, "admin", None, &settings).expect("init tracker");
    let tracker = Tracker::open(&dir, "bench").expect("open tracker");
    let (users, issues) = (class(&tracker, "user"), class(&tracker, "issue"));
    let now = Date::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tx = tracker.store.write().expect("write tx");
    for n in 0..USERS {
        let mut v = Values::new();
        v.insert(
            "username".into(),
            Some(PropValue::String(format!("user{n}"))),
        );
        v.insert("roles".into(), Some(PropValue::String("User".into())));
        let id = tx.new_id(users).expect("user id");
        tx.insert(users, id, &v, 1, now).expect("insert user");
    }
    for _ in 0..ISSUES {
        let mut nosy: Vec<i64> = (0..2 + rng.below(2))
            .map(|_| 3 + rng.below(USERS as u64) as i64)
            .collect();
        nosy.sort_unstable();
        nosy.dedup();
        let mut v = Values::new();
        v.insert("title".into(), Some(PropValue::String(title(&mut rng))));
        v.insert(
            "priority".into(),
            Some(PropValue::Link(1 + rng.below(5) as i64)),
        );
        v.insert(
            "status".into(),
            Some(PropValue::Link(1 + rng.below(8) as i64)),
        );
        v.insert("nosy".into(), Some(PropValue::Multilink(nosy)));
        let id = tx.new_id(issues).expect("issue id");
        tx.insert(issues, id, &v, 1, now).expect("insert issue");
    }
    tx.commit().expect("commit seed");
    (guard, tracker)
}

/// Runs `f` in a fresh read transaction, as one API call would.
fn read<T>(tracker: &Tracker, f: impl FnOnce(&mut dyn Tx) -> T) -> T {
    let mut tx = tracker.store.read().expect("read tx");
    f(tx.as_mut())
}

fn bench(c: &mut Criterion) {
    let (_dir, tracker) = seeded_tracker();
    let (issue, status) = (class(&tracker, "issue"), class(&tracker, "status"));
    let mut rng = Rng(42);
    let mut g = c.benchmark_group("storage");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    g.bench_function("get_issue_all_multilinks", |b| {
        b.iter(|| {
            let id = 1 + rng.below(ISSUES as u64) as i64;
            read(&tracker, |tx| tx.get(issue, id, Multilinks::All)).expect("get")
        })
    });
    g.bench_function("get_issue_no_multilinks", |b| {
        b.iter(|| {
            let id = 1 + rng.below(ISSUES as u64) as i64;
            read(&tracker, |tx| tx.get(issue, id, Multilinks::None)).expect("get")
        })
    });
    g.bench_function("list_10k_issues", |b| {
        b.iter(|| read(&tracker, |tx| tx.list(issue)).expect("list"))
    });
    g.bench_function("column_title_10k_issues", |b| {
        b.iter(|| read(&tracker, |tx| tx.column(issue, "title")).expect("column"))
    });
    g.bench_function("column_nosy_10k_issues", |b| {
        b.iter(|| read(&tracker, |tx| tx.column(issue, "nosy")).expect("column"))
    });
    g.bench_function("lookup_status", |b| {
        b.iter(|| {
            read(&tracker, |tx| {
                tx.lookup(status, "name", black_box("chatting"))
            })
            .expect("lookup")
        })
    });
    let by_title = FilterQuery {
        conds: vec![Cond::Contains {
            prop: "title".into(),
            needles: vec!["crash".into()],
        }],
        sort: vec![SortKey {
            path: vec!["id".into()],
            descending: false,
        }],
        ..FilterQuery::default()
    };
    g.bench_function("filter_title_substring_10k", |b| {
        b.iter(|| read(&tracker, |tx| tx.filter(issue, black_box(&by_title))).expect("filter"))
    });
    g.bench_function("filter_status_link_10k", |b| {
        b.iter(|| {
            let q = FilterQuery {
                conds: vec![Cond::LinkIn {
                    prop: "status".into(),
                    ids: vec![1 + rng.below(8) as i64],
                    null: false,
                }],
                sort: vec![SortKey {
                    path: vec!["id".into()],
                    descending: false,
                }],
                ..FilterQuery::default()
            };
            read(&tracker, |tx| tx.filter(issue, &q)).expect("filter")
        })
    });
    let by_status = FilterQuery {
        sort: vec![
            SortKey {
                path: vec!["status".into(), "order".into()],
                descending: false,
            },
            SortKey {
                path: vec!["id".into()],
                descending: false,
            },
        ],
        ..FilterQuery::default()
    };
    g.bench_function("sort_10k_by_status", |b| {
        b.iter(|| read(&tracker, |tx| tx.filter(issue, black_box(&by_status))).expect("sort"))
    });
    let now = Date::now();
    g.bench_function("insert_issue_commit", |b| {
        b.iter_batched(
            || {
                let mut v = Values::new();
                v.insert("title".into(), Some(PropValue::String(title(&mut rng))));
                v.insert("priority".into(), Some(PropValue::Link(3)));
                v.insert("status".into(), Some(PropValue::Link(1)));
                v.insert("nosy".into(), Some(PropValue::Multilink(vec![1, 3])));
                v
            },
            |v| {
                let mut tx = tracker.store.write().expect("write tx");
                let id = tx.new_id(issue).expect("id");
                tx.insert(issue, id, &v, 1, now).expect("insert");
                tx.commit().expect("commit");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
