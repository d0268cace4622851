//! What Python detectors cost a write (`cargo bench --bench python_detectors`;
//! needs a Python 3 with Roundup: `ROUNDUP_PYTHON`, else `python3`).
//!
//! Two classic trackers made by `init`, one with a detector file of its own. Each
//! write is one API call through `api::call` as admin, in its own committed
//! transaction, so the figures include SQLite's commit; the difference between
//! the trackers is the cost of the Python detectors (frames to the worker, the
//! worker's Python, its database calls). Reads never involve the worker.

use roundup_xmlrpc::admin::init::init;
use roundup_xmlrpc::api;
use roundup_xmlrpc::security::UserCtx;
use roundup_xmlrpc::tracker::Tracker;
use roundup_xmlrpc::xmlrpc::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const DETECTORS: &str = r#"
def check_name(db, cl, nodeid, newvalues):
    if newvalues.get('name') == 'forbidden':
        raise ValueError('no')

def note(db, cl, nodeid, newvalues):
    newvalues.setdefault('name', 'x')

def status_reader(db, cl, nodeid, newvalues):
    if cl.get(nodeid, 'status') is None:
        raise ValueError('no status')

def react(db, cl, nodeid, oldvalues):
    pass

def init(db):
    db.keyword.audit('create', check_name)
    db.keyword.audit('create', note)
    db.issue.audit('set', status_reader)
    db.issue.react('set', react)
"#;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tracker(name: &str, python: bool) -> (TempDir, Tracker, Duration) {
    let dir = std::env::temp_dir().join(format!("rxs-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let interpreter = std::env::var("ROUNDUP_PYTHON").unwrap_or_else(|_| "python3".into());
    init(
        &dir,
        "pw",
        None,
        &[
            "password_pbkdf2_default_rounds=1000".into(),
            "admin_email=admin@example.com".into(),
            "mail_domain=example.com".into(),
            format!("xmlrpc_server_python={interpreter}"),
        ],
    )
    .expect("init");
    if python {
        std::fs::create_dir_all(dir.join("detectors")).expect("detectors/");
        std::fs::write(dir.join("detectors/bench.py"), DETECTORS).expect("write");
        let schema = std::fs::read_to_string(dir.join("schema.toml")).expect("schema");
        let schema = schema.replacen(
            "[detectors]\n",
            "[detectors]\npython = [\"detectors/bench.py\"]\n",
            1,
        );
        std::fs::write(dir.join("schema.toml"), schema).expect("schema");
    }
    let start = Instant::now();
    let t = Tracker::open(&dir, name).unwrap_or_else(|e| panic!("open: {e}"));
    (TempDir(dir), t, start.elapsed())
}

fn admin() -> UserCtx {
    UserCtx {
        id: 1,
        username: "admin".into(),
        roles: vec!["admin".into()],
    }
}

fn call(t: &Tracker, method: &str, params: &[&str]) {
    let params: Vec<Value> = params
        .iter()
        .map(|p| Value::String(p.to_string()))
        .collect();
    api::call(t, &admin(), method, &params).expect("call");
}

/// (mean, p50, p90) of `n` runs of `f(i)` after `n / 10` warm-up runs.
fn time(n: usize, mut f: impl FnMut(usize)) -> (Duration, Duration, Duration) {
    for i in 0..n / 10 {
        f(1_000_000 + i);
    }
    let mut v: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    v.sort();
    let mean = v.iter().sum::<Duration>() / n as u32;
    (mean, v[n / 2], v[n * 9 / 10])
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let (_a, plain, _) = tracker("plain", false);
    let (_b, py, start) = tracker("python", true);
    println!("worker start (Tracker::open with Python detectors): {start:?}");
    for t in [&plain, &py] {
        call(t, "create", &["issue", "title=bench"]);
    }
    let mut rows = Vec::new();
    for (label, t) in [("no Python detectors", &plain), ("Python detectors", &py)] {
        let create = time(n, |i| {
            call(t, "create", &["keyword", &format!("name=k{i}")])
        });
        let set = time(n, |i| call(t, "set", &["issue1", &format!("title=t{i}")]));
        let read = time(n, |_| call(t, "display", &["issue1"]));
        rows.push((label, create, set, read));
    }
    println!("{n} calls each; mean / p50 / p90 in µs per call:");
    for (label, c, s, r) in &rows {
        println!(
            "  {label:<22} create keyword {:>7.1} {:>7.1} {:>7.1} | set issue title {:>7.1} {:>7.1} {:>7.1} | display {:>6.1} {:>6.1}",
            us(c.0), us(c.1), us(c.2), us(s.0), us(s.1), us(s.2), us(r.0), us(r.1)
        );
    }
    let (c0, s0) = (rows[0].1, rows[0].2);
    let (c1, s1) = (rows[1].1, rows[1].2);
    println!(
        "Python cost (p50): create with 2 trivial auditors {:+.1} µs; set with an auditor doing one cl.get + a reactor {:+.1} µs",
        us(c1.1) - us(c0.1),
        us(s1.1) - us(s0.1)
    );
}
