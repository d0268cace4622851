//! The tracker's own Python detectors (schema.toml `[detectors] python`), run by
//! the worker process through `api::call`: values as Roundup's types, changes to
//! newvalues checked as Roundup checks them, nested writes with their detectors
//! and journal, Roundup's fault texts, the order among built-in detectors, mail
//! through the outbox, and isolation: a detector that raises, crashes or hangs
//! fails its own call only (rolled back), and the next call works with a new
//! worker. Reads never borrow the worker.
//!
//! Needs a Python 3 with Roundup 2.x: `ROUNDUP_PYTHON`, else `python3` (CI
//! installs tests/requirements.txt); without it the tests fail.

mod tracker_common;

use std::time::{Duration, Instant};

use roundup_xmlrpc::config::set::write_settings;
use roundup_xmlrpc::mail::from_queue_file;
use roundup_xmlrpc::tracker::Tracker;
use roundup_xmlrpc::xmlrpc::Value;
use tracker_common::{admin, classic, fault, list, s, TestTracker};

const USAGE: &str = "<class 'roundup.exceptions.UsageError'>:";

/// A classic tracker whose `detectors/` holds `files` (name, source), all listed
/// in schema.toml's `python = [...]`, reopened so that the worker loads them.
fn with_detectors(name: &str, settings: &[&str], files: &[(&str, &str)]) -> TestTracker {
    let t = classic(name, settings);
    let dir = t.dir.clone();
    let (listed, schema) = install(&dir, files);
    assert!(!listed.is_empty());
    std::fs::write(dir.join("schema.toml"), schema).expect("write schema.toml");
    let tracker = Tracker::open(&dir, name).unwrap_or_else(|e| panic!("open: {e}"));
    // Keep the directory: `t` (dropped here) would remove it.
    std::mem::forget(t);
    TestTracker { dir, tracker }
}

/// Writes the detector files and returns them with the new schema.toml text.
fn install(dir: &std::path::Path, files: &[(&str, &str)]) -> (Vec<String>, String) {
    std::fs::create_dir_all(dir.join("detectors")).expect("detectors/");
    let mut listed = Vec::new();
    for (file, source) in files {
        std::fs::write(dir.join("detectors").join(file), source).expect("write detector");
        listed.push(format!("\"detectors/{file}\""));
    }
    let schema = std::fs::read_to_string(dir.join("schema.toml")).expect("schema.toml");
    let schema = schema.replacen(
        "[detectors]\n",
        &format!("[detectors]\npython = [{}]\n", listed.join(", ")),
        1,
    );
    (listed, schema)
}

fn python() -> String {
    std::env::var("ROUNDUP_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn set_python(settings: &mut Vec<String>) {
    settings.push(format!("xmlrpc_server_python={}", python()));
}

fn tracker(name: &str, extra: &[&str], files: &[(&str, &str)]) -> TestTracker {
    let mut settings: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    set_python(&mut settings);
    let refs: Vec<&str> = settings.iter().map(String::as_str).collect();
    with_detectors(name, &refs, files)
}

fn text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => panic!("not a string: {other:?}"),
    }
}

const CUSTOM: &str = r#"
from roundup.exceptions import Reject

def no_spam(db, cl, nodeid, newvalues):
    if 'spam' in (newvalues.get('title') or ''):
        raise Reject('no spam, please')

def default_priority(db, cl, nodeid, newvalues):
    if not newvalues.get('priority'):
        newvalues['priority'] = db.priority.lookup('bug')

def add_keyword(db, cl, nodeid, newvalues):
    ids = db.keyword.stringFind(name='AUTO')
    kw = ids[0] if ids else db.keyword.create(name='auto')
    newvalues['keyword'] = list(newvalues.get('keyword') or []) + [kw]

def note(db, cl, nodeid, oldvalues):
    m = db.msg.create(content='issue %s created by %s' % (
        nodeid, db.user.get(db.getuid(), 'username')), author=db.getuid())
    cl.set(nodeid, messages=cl.get(nodeid, 'messages') + [m])

def keyword_audit(db, cl, nodeid, newvalues):
    newvalues['name'] = newvalues['name'].lower()

def init(db):
    db.issue.audit('create', no_spam, priority=50)
    db.issue.audit('create', default_priority)
    db.issue.audit('create', add_keyword)
    db.issue.react('create', note)
    db.keyword.audit('create', keyword_audit)
"#;

#[test]
fn detectors_refuse_default_add_and_create_with_nested_detectors_and_journal() {
    let t = tracker("py-custom", &[], &[("custom.py", CUSTOM)]);
    let (code, text_) = fault(t.call(&admin(), "create", &["issue", "title=some spam"]));
    assert_eq!(
        (code, text_.as_str()),
        (1, "<class 'roundup.exceptions.Reject'>:no spam, please")
    );
    assert_eq!(
        t.call(&admin(), "list", &["issue"]).unwrap(),
        list(&[]),
        "rolled back"
    );

    let id = t.create("issue", &["title=first"]);
    let d = format!("issue{id}");
    assert_eq!(t.prop(&d, "priority"), s("3"), "defaulted by lookup('bug')");
    // presetunread (built-in) made it unread, then the reactor's set adding a
    // message made chatty (built-in) move it to chatting.
    assert_eq!(t.prop(&d, "status"), s("3"));
    // The nested keyword create ran the keyword auditor (lower-cased name).
    assert_eq!(t.prop(&d, "keyword"), list(&["1"]));
    assert_eq!(t.prop("keyword1", "name"), s("auto"));
    // The reactor's msg and its set of the issue (which fires the issue's set
    // detectors: updatenosy adds no author on a set, add_author being `new`).
    assert_eq!(t.prop(&d, "messages"), list(&["1"]));
    assert_eq!(
        t.prop("msg1", "content"),
        s(&format!("issue {id} created by admin"))
    );
    assert_eq!(t.prop(&d, "nosy"), list(&[]));
    // Journal rows in execution order, as Roundup writes them.
    let j = t.journal("issue", &id);
    let actions: Vec<&str> = j.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["create", "set"], "{j:?}");
    assert_eq!(j[1].1, "{'messages': (('+', ['1']),), 'status': '1'}");
    assert_eq!(
        t.journal("keyword", "1"),
        [
            ("create".to_string(), "{}".to_string()),
            ("link".to_string(), format!("('issue', '{id}', 'keyword')")),
        ]
    );
    // The second issue finds the keyword (stringFind is caseless).
    let id2 = t.create("issue", &["title=second", "priority=critical"]);
    assert_eq!(t.prop(&format!("issue{id2}"), "keyword"), list(&["1"]));
    assert_eq!(
        t.prop(&format!("issue{id2}"), "priority"),
        s("1"),
        "given: critical"
    );
}

const ERRORS: &str = r#"
import os
from roundup import roundupdb
from roundup.exceptions import Reject

class MyError(Exception):
    pass

def audit(db, cl, nodeid, newvalues):
    what = newvalues.get('name', '')
    if what == 'value':
        raise ValueError('bad value')
    if what == 'key':
        raise KeyError('kk')
    if what == 'zero':
        1/0
    if what == 'oserror':
        open('/nonexistent/x')
    if what == 'mine':
        raise MyError('mine')
    if what == 'exit':
        raise SystemExit(3)
    if what == 'detector':
        raise roundupdb.DetectorError('dd')
    if what == 'lookup':
        db.status.lookup('nope')
    if what == 'caught':
        try:
            db.status.lookup('nope')
        except KeyError as e:
            newvalues['name'] = 'caught %s' % e
    if what == 'badlink':
        newvalues['name'] = 5
    if what == 'attr':
        None.foo

def retire(db, cl, nodeid, newvalues):
    if cl.get(nodeid, 'name') == 'noretire':
        raise ValueError('not this one')

def init(db):
    db.keyword.audit('create', audit)
    db.keyword.audit('retire', retire)
"#;

#[test]
fn exceptions_become_roundups_faults() {
    let t = tracker("py-errors", &[], &[("errors.py", ERRORS)]);
    let create =
        |name: &str| fault(t.call(&admin(), "create", &["keyword", &format!("name={name}")])).1;
    assert_eq!(create("value"), format!("{USAGE}bad value"));
    assert_eq!(create("key"), "<class 'KeyError'>:'kk'");
    assert_eq!(
        create("zero"),
        "<class 'roundup.cgi.exceptions.DetectorError'>:Error: division by zero"
    );
    assert_eq!(
        create("oserror"),
        "<class 'roundup.cgi.exceptions.DetectorError'>:Error: [Errno 2] No such file or \
         directory: '/nonexistent/x'"
    );
    assert_eq!(create("mine"), "<class 'MyError'>:mine");
    assert_eq!(create("exit"), "<class 'SystemExit'>:3");
    assert_eq!(
        create("detector"),
        "<class 'roundup.roundupdb.DetectorError'>:dd"
    );
    // A Rust error raised into Python and not caught comes back as itself.
    assert_eq!(
        create("lookup"),
        "<class 'KeyError'>:'No key (name) value \"nope\" for \"status\"'"
    );
    assert_eq!(
        create("badlink"),
        format!("{USAGE}new property \"name\" not a string")
    );
    assert_eq!(
        create("attr"),
        "<class 'AttributeError'>:'NoneType' object has no attribute 'foo'"
    );
    // Nothing of the failed creates was kept; the worker survived them all.
    assert_eq!(t.call(&admin(), "list", &["keyword"]).unwrap(), list(&[]));
    let id = t.create("keyword", &["name=caught"]);
    assert_eq!(
        t.prop(&format!("keyword{id}"), "name"),
        s("caught 'No key (name) value \"nope\" for \"status\"'")
    );
    // Retire (action) does not wrap ValueError.
    let k = t.create("keyword", &["name=noretire"]);
    let (_, f) = fault(t.call(&admin(), "action", &["retire", &format!("keyword{k}")]));
    assert_eq!(f, "<class 'ValueError'>:not this one");
    t.call(&admin(), "action", &["retire", &format!("keyword{id}")])
        .expect("retire another");
}

const ORDER: &str = r#"
def aaa(db, cl, nodeid, newvalues):
    newvalues['title'] += ' aaa:%s' % newvalues.get('status')

def zzz(db, cl, nodeid, newvalues):
    newvalues['title'] += ' zzz:%s' % newvalues.get('status')

def first(db, cl, nodeid, newvalues):
    newvalues['title'] += ' first'

def init(db):
    db.issue.audit('create', zzz)
    db.issue.audit('create', aaa)
    db.issue.audit('create', first, priority=1)
"#;

#[test]
fn python_and_builtin_detectors_fire_in_roundups_order() {
    let t = tracker("py-order", &[], &[("order.py", ORDER)]);
    // (1, first) < (100, aaa) < (100, presetunread: status unread) < (100, zzz)
    let id = t.create("issue", &["title=x"]);
    assert_eq!(
        t.prop(&format!("issue{id}"), "title"),
        s("x first aaa:None zzz:1")
    );
}

const TYPES: &str = r#"
from roundup import date, password, hyperdb

def check(cond, what):
    if not cond:
        raise ValueError('wrong: ' + what)

def msg_audit(db, cl, nodeid, newvalues):
    check(isinstance(newvalues['date'], date.Date), 'date %r' % newvalues['date'])
    check(newvalues['author'] == '1', 'author %r' % newvalues['author'])
    check(newvalues['recipients'] == ['1', '3'], 'recipients %r' % newvalues['recipients'])
    check(newvalues['content'] == 'hello', 'content %r' % newvalues['content'])
    check(isinstance(cl, hyperdb.FileClass), 'FileClass')

def user_audit(db, cl, nodeid, newvalues):
    if 'password' in newvalues:
        check(isinstance(newvalues['password'], password.Password), 'password')
        check(newvalues['password'] == 'sekrit', 'password verifies')

def issue_react(db, cl, nodeid, oldvalues):
    check(isinstance(oldvalues['creation'], date.Date), 'creation')
    check(oldvalues['creator'] == '1', 'creator %r' % oldvalues['creator'])
    check(oldvalues['nosy'] == [], 'nosy %r' % oldvalues['nosy'])
    check(oldvalues['assignedto'] is None, 'assignedto')
    check(oldvalues['title'] == 'before', 'title')
    check(isinstance(cl.getprops()['nosy'], hyperdb.Multilink), 'getprops')
    check(cl.get(nodeid, 'title') == 'after', 'get after')
    check(cl.getnode(nodeid).title == 'after', 'getnode')
    check(db.issue.labelprop() == 'title', 'labelprop')
    check(db.getuid() == '1' and db.tx_Source == 'xmlrpc', 'uid/tx_Source')
    check(db.user.lookup('admin') == '1', 'lookup')
    check(db.security.hasPermission('Edit', '2', 'issue') is False, 'perm anonymous')
    check(db.security.hasPermission('Edit', '1', 'issue') is True, 'perm admin')
    check('user' in db.security.role, 'roles')
    check(db.issue.filter(None, {'title': 'aft'}) == [nodeid], 'filter')
    check(db.issue.find(status='1') == [nodeid], 'find')
    check(db.status.filter(None, {}, sort=[('-', 'order')])[0] == '8', 'sort')
    check(db.config.TRACKER_NAME == 'Roundup issue tracker', 'config')
    check(db.config.detectors['STATUSAUDITOR_CHATTING_REQUIRES_TWO_USERS'] == 'no', 'detectors config')
    h = cl.history(nodeid)
    check([e[3] for e in h] == ['create', 'set'], 'history %r' % (h,))
    check(h[1][4] == {'title': 'before'}, 'history params %r' % (h,))
    check(db.getjournal('issue', nodeid)[0][2] == '1', 'journal tag')
    check(cl.getnodeids() == [nodeid], 'getnodeids')
    check(cl.is_retired(nodeid) is False, 'is_retired')
    check(db.hasnode('issue', nodeid) == 1 and db.hasnode('issue', '99') == 0
          and type(db.hasnode('issue', '99')) is int, 'hasnode is 1 or 0, as rdbms_common')

def init(db):
    db.msg.audit('create', msg_audit)
    db.user.audit('set', user_audit)
    db.issue.react('set', issue_react)
"#;

#[test]
fn values_cross_as_roundups_types_and_the_db_answers_like_roundups() {
    let t = classic("py-types", &[&format!("xmlrpc_server_python={}", python())]);
    std::fs::write(
        t.dir.join("detectors-config.tmp"),
        "[statusauditor]\nchatting_requires_two_users = no\n",
    )
    .expect("write");
    std::fs::create_dir_all(t.dir.join("detectors")).expect("detectors/");
    std::fs::rename(
        t.dir.join("detectors-config.tmp"),
        t.dir.join("detectors/config.ini"),
    )
    .expect("config.ini");
    let (_, schema) = install(&t.dir, &[("types.py", TYPES)]);
    std::fs::write(t.dir.join("schema.toml"), schema).expect("schema.toml");
    let tracker = Tracker::open(&t.dir, "py-types").unwrap_or_else(|e| panic!("open: {e}"));
    let t = TestTracker {
        dir: t.dir.clone(),
        tracker,
    };
    let joe = t.user("joe", "User");
    assert_eq!(joe.id, 3);
    t.create(
        "msg",
        &[
            "content=hello",
            "author=1",
            "recipients=1,3",
            "date=2020-01-02.03:04:05",
        ],
    );
    t.call(&admin(), "set", &["user1", "password=sekrit"])
        .expect("password set");
    let id = t.create("issue", &["title=before"]);
    t.call(&admin(), "set", &[&format!("issue{id}"), "title=after"])
        .expect("the reactor's checks pass");
}

const MAIL: &str = r#"
def early(db, cl, nodeid, oldvalues):
    msgs = cl.get(nodeid, 'messages')
    if msgs:
        cl.nosymessage(nodeid, msgs[-1], oldvalues)
    if cl.get(nodeid, 'title') == 'fail after mail':
        raise ValueError('no')

def init(db):
    db.issue.react('create', early)
"#;

#[test]
fn roundups_mail_goes_through_the_outbox_after_commit() {
    let t = tracker(
        "py-mail",
        &["mail_debug=mail.log", "tracker_web=http://tracker.example/"],
        &[("mail.py", MAIL)],
    );
    let joe = t.user("joe", "User");
    let m = t.create(
        "msg",
        &["content=Hello from joe", &format!("author={}", joe.id)],
    );
    let (_, f) = fault(t.call(
        &admin(),
        "create",
        &[
            "issue",
            "title=fail after mail",
            &format!("messages={m}"),
            "nosy=1",
        ],
    ));
    assert_eq!(f, format!("{USAGE}no"));
    assert!(t.outbox().is_empty(), "a rolled-back call queues nothing");
    t.create(
        "issue",
        &["title=mailed", &format!("messages={m}"), "nosy=1"],
    );
    let queued = t.outbox();
    assert_eq!(queued.len(), 1, "{queued:?}");
    let mail = from_queue_file(&std::fs::read_to_string(&queued[0]).expect("read")).expect("mail");
    assert_eq!(mail.to, ["admin@example.com"]);
    let raw = mail.raw.expect("Roundup's own message");
    assert!(raw.contains("Subject: [issue2] mailed"), "{raw}");
    assert!(raw.contains("Hello from joe"), "{raw}");
    assert!(raw.contains("X-Roundup-issue-status: unread"), "{raw}");
    // nosymessage's own writes: recipients and messageid on the msg, journalled.
    assert_eq!(t.prop(&format!("msg{m}"), "recipients"), list(&["1"]));
    assert!(!text(t.prop(&format!("msg{m}"), "messageid")).is_empty());
}

const MISBEHAVE: &str = r#"
import os, sys, time, ctypes

def audit(db, cl, nodeid, newvalues):
    what = newvalues.get('name', '')
    if what == 'exit':
        os._exit(3)
    if what == 'hang':
        time.sleep(600)
    if what == 'spin':
        while True:
            pass
    if what == 'segfault':
        ctypes.string_at(0)
    if what == 'print':
        print('x' * 200000)
        sys.stdout.write('more\n')
    if what == 'nested-exit':
        db.keyword.create(name='exit')
    if what == 'garbage':
        import __main__
        __main__._wout.write(b'\x00\x00\x00\x05notjs')
    if what == 'huge':
        import __main__
        __main__._wout.write(b'\xff\xff\xff\xff')

def init(db):
    db.keyword.audit('create', audit)
"#;

#[test]
fn a_crashing_or_hanging_detector_fails_only_its_call() {
    let t = tracker(
        "py-isolation",
        &["xmlrpc_server_detector_timeout_sec=2"],
        &[("bad.py", MISBEHAVE)],
    );
    let rt = t.tracker.python.clone().expect("a worker");
    let ok = |name: &str| t.create("keyword", &[&format!("name={name}")]);
    ok("before");
    let cases: [(&str, &str, Duration); 7] = [
        ("exit", "exited with status 3", Duration::from_secs(2)),
        ("garbage", "not a JSON frame", Duration::from_secs(2)),
        ("huge", "is over the limit", Duration::from_secs(2)),
        (
            "nested-exit",
            "exited with status 3",
            Duration::from_secs(2),
        ),
        ("segfault", "killed by signal 11", Duration::from_secs(2)),
        (
            "hang",
            "ran past the call's deadline",
            Duration::from_secs(5),
        ),
        (
            "spin",
            "ran past the call's deadline",
            Duration::from_secs(5),
        ),
    ];
    for (name, why, within) in cases {
        let start = Instant::now();
        let (code, f) = fault(t.call(&admin(), "create", &["keyword", &format!("name={name}")]));
        let took = start.elapsed();
        assert_eq!(code, 1);
        assert!(
            f.starts_with("<class 'roundup.roundupdb.DetectorError'>:") && f.contains(why),
            "{name}: {f}"
        );
        assert!(f.ends_with("the call was rolled back"), "{f}");
        assert!(took < within, "{name} took {took:?}");
        // The next call works (with a new worker), and nothing of the failed one stayed.
        let id = ok(&format!("after-{name}"));
        assert_eq!(
            t.prop(&format!("keyword{id}"), "name"),
            s(&format!("after-{name}"))
        );
    }
    let names = t.call(&admin(), "list", &["keyword"]).unwrap();
    assert_eq!(
        names,
        list(&[
            "before",
            "after-exit",
            "after-garbage",
            "after-huge",
            "after-nested-exit",
            "after-segfault",
            "after-hang",
            "after-spin"
        ])
    );
    // print() goes to the log, not into the protocol.
    ok("print");
    assert!(rt.leases() > 0);
}

#[test]
fn reads_never_use_the_worker() {
    let t = tracker("py-reads", &[], &[("custom.py", CUSTOM)]);
    let rt = t.tracker.python.clone().expect("a worker");
    t.create("issue", &["title=x"]);
    let before = rt.leases();
    for (m, p) in [
        ("display", vec!["issue1"]),
        ("list", vec!["issue"]),
        ("filter", vec!["issue"]),
        ("lookup", vec!["keyword", "auto"]),
        ("schema", vec![]),
    ] {
        let mut params = vec![m];
        params.extend(p);
        let _ = t.call(&admin(), params[0], &params[1..]);
    }
    t.call_v(
        &admin(),
        "filter",
        &[s("issue"), Value::Nil, Value::Struct(vec![])],
    )
    .expect("filter");
    assert_eq!(rt.leases(), before, "reads borrowed the worker");
    // A write on a class without Python detectors does not either.
    t.create("status", &["name=new-status", "order=9"]);
    assert_eq!(rt.leases(), before);
    t.create("keyword", &["name=kw"]);
    assert_eq!(rt.leases(), before + 1);
}

#[test]
fn a_tracker_whose_detectors_cannot_run_does_not_open() {
    let t = classic("py-start", &[]);
    let (_, schema) = install(
        &t.dir,
        &[(
            "broken.py",
            "def init(db):\n    db.nosuchclass.audit('create', init)\n",
        )],
    );
    std::fs::write(t.dir.join("schema.toml"), &schema).expect("schema.toml");
    let config = t.dir.join("config.ini");
    let python_is = |p: &str| {
        write_settings(&config, &[("xmlrpc_server_python".into(), p.into())]).expect("config.ini")
    };

    python_is("/nonexistent/python3");
    let e = Tracker::open(&t.dir, "py-start")
        .expect_err("no interpreter")
        .to_string();
    assert!(
        e.contains("cannot run the Python interpreter /nonexistent/python3"),
        "{e}"
    );

    python_is(&python());
    let e = Tracker::open(&t.dir, "py-start")
        .expect_err("broken init")
        .to_string();
    assert!(e.contains("loading the Python detectors failed"), "{e}");
    assert!(e.contains("AttributeError: nosuchclass"), "{e}");

    std::fs::write(t.dir.join("detectors/broken.py"), "def init(db:\n").expect("write");
    let e = Tracker::open(&t.dir, "py-start")
        .expect_err("syntax error")
        .to_string();
    assert!(e.contains("SyntaxError"), "{e}");

    std::fs::remove_file(t.dir.join("detectors/broken.py")).expect("rm");
    let e = Tracker::open(&t.dir, "py-start")
        .expect_err("missing file")
        .to_string();
    assert!(e.contains("detectors/broken.py: no such file"), "{e}");
}
