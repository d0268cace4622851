//! The Roundup methods through `api::call`, the way the server runs them (one
//! transaction per call, committed when it writes): results and the exact faults
//! Roundup 2.6 answers, permissions, filter and sort, retire/restore, and what a
//! failed call leaves behind.

mod tracker_common;

use roundup_xmlrpc::api::dispatch::MAX_MULTICALL;
use roundup_xmlrpc::api::Caller;
use roundup_xmlrpc::deadline::Deadline;
use roundup_xmlrpc::xmlrpc::Value;
use std::time::{Duration, Instant};
use tracker_common::{admin, anonymous, classic, fault, list, record, s, strs};

const USAGE: &str = "<class 'roundup.exceptions.UsageError'>:";
const UNAUTH: &str = "<class 'roundup.exceptions.Unauthorised'>:";

#[test]
fn schema_list_and_lookup() {
    let t = classic("api-schema", &[]);
    let Ok(Value::Struct(schema)) = t.call(&admin(), "schema", &[]) else {
        panic!("schema is a struct");
    };
    let status = schema.iter().find(|(k, _)| k == "status").unwrap();
    assert_eq!(
        status.1,
        Value::Array(vec![
            list(&["name", "<roundup.hyperdb.String>"]),
            list(&["order", "<roundup.hyperdb.Number>"]),
        ])
    );
    assert_eq!(
        t.call(&admin(), "list", &["priority"]),
        Ok(list(&["critical", "urgent", "bug", "feature", "wish"]))
    );
    assert_eq!(
        t.call(&admin(), "list", &["user"]),
        Ok(list(&["admin", "anonymous"]))
    );
    assert_eq!(
        t.call(&admin(), "lookup", &["status", "chatting"]),
        Ok(s("3"))
    );
    assert_eq!(
        fault(t.call(&admin(), "lookup", &["status", "UNREAD"])),
        (
            1,
            "<class 'KeyError'>:'No key (name) value \"UNREAD\" for \"status\"'".into()
        )
    );
    assert_eq!(
        fault(t.call(&admin(), "lookup", &["issue", "x"])),
        (
            1,
            "<class 'TypeError'>:No key property set for class issue".into()
        )
    );
    assert_eq!(
        fault(t.call(&admin(), "list", &["nosuch"])),
        (
            1,
            "<class 'KeyError'>:'There is no class called \"nosuch\"'".into()
        )
    );
    assert_eq!(
        fault(t.call(&admin(), "list", &["status", "bogus"])),
        (1, "<class 'KeyError'>:'bogus'".into())
    );
}

#[test]
fn create_display_and_set() {
    let t = classic("api-crud", &[]);
    let id = t.create("issue", &["title=first", "priority=bug", "keyword="]);
    let d = format!("issue{id}");
    // The status auditor presets `unread`; the creator is the acting user.
    assert_eq!(
        t.call(
            &admin(),
            "display",
            &[&d, "title", "status", "priority", "creator"]
        ),
        Ok(record(&[
            ("creator", s("1")),
            ("priority", s("3")),
            ("status", s("1")),
            ("title", s("first")),
        ]))
    );
    // `set` answers the properties that changed, nothing for an unchanged value.
    assert_eq!(
        t.call(&admin(), "set", &[&d, "title=second", "priority=bug"]),
        Ok(record(&[("title", s("second"))]))
    );
    assert_eq!(
        t.call(&admin(), "set", &[&d, "title=second"]),
        Ok(record(&[]))
    );
    assert_eq!(t.prop(&d, "title"), s("second"));
    // Multilinks: ids, keys, + and -.
    let k1 = t.create("keyword", &["name=k1"]);
    let k2 = t.create("keyword", &["name=k2"]);
    assert_eq!(
        t.call(&admin(), "set", &[&d, "keyword=k1,k2"]),
        Ok(record(&[("keyword", list(&[&k1, &k2]))]))
    );
    assert_eq!(
        t.call(&admin(), "set", &[&d, &format!("keyword=-{k1}")]),
        Ok(record(&[("keyword", list(&[&k2]))]))
    );
    assert_eq!(
        fault(t.call(&admin(), "display", &["status99"])),
        (1, "<class 'IndexError'>:no such status 99".into())
    );
    assert_eq!(
        fault(t.call(&admin(), "display", &["status"])),
        (
            1,
            "<class 'roundup.hyperdb.DesignatorError'>:\"status\" not a node designator".into()
        )
    );
}

#[test]
fn create_faults_are_roundups() {
    let t = classic("api-create-faults", &[]);
    let cases: [(&[&str], &str); 6] = [
        (&["issue", "title=x", "id=5"], "<class 'KeyError'>:'\"id\" is reserved'"),
        (
            &["issue", "title=x", "creation=2020-01-01"],
            "<class 'KeyError'>:'\"creator\", \"actor\", \"creation\" and \"activity\" are reserved'",
        ),
        (&["issue", "title="], "new property \"title\" not a string"),
        (&["issue", "title=x", "status=99"], "status has no node 99"),
        (&["status", "name=x", "order=abc"], "property order: 'abc' is not a number"),
        (&["file", "name=x"], "<class 'KeyError'>:'content'"),
    ];
    for (params, want) in cases {
        let want = if want.starts_with("<class") {
            want.to_string()
        } else {
            format!("{USAGE}{want}")
        };
        assert_eq!(
            fault(t.call(&admin(), "create", params)),
            (1, want),
            "{params:?}"
        );
    }
}

#[test]
fn permissions_decide_what_a_user_may_do() {
    let t = classic("api-perms", &[]);
    let joe = t.user("joe", "User");
    let me = format!("user{}", joe.id);
    // Own record: viewable and (partly) editable.
    assert_eq!(
        t.call(&joe, "display", &[&me, "address"]),
        Ok(record(&[("address", s("joe@example.com"))]))
    );
    assert_eq!(
        t.call(&joe, "set", &[&me, "realname=Joe"]),
        Ok(record(&[("realname", s("Joe"))]))
    );
    assert_eq!(
        fault(t.call(&joe, "set", &[&me, "roles=Admin"])),
        (
            1,
            format!("{UNAUTH}Permission to edit roles of {me} denied")
        )
    );
    assert_eq!(
        fault(t.call(&joe, "display", &["user1", "address"])),
        (
            1,
            format!("{UNAUTH}Permission to view address of user1 denied")
        )
    );
    assert_eq!(
        fault(t.call(&joe, "create", &["status", "name=x"])),
        (1, format!("{UNAUTH}Permission to create status denied"))
    );
    assert_eq!(
        fault(t.call(&joe, "create", &["user", "username=x"])),
        (1, format!("{UNAUTH}Permission to create user denied"))
    );
    // Anonymous may view issues but not create them.
    let id = t.create("issue", &["title=public"]);
    assert_eq!(
        t.call(&anonymous(), "display", &[&format!("issue{id}"), "title"]),
        Ok(record(&[("title", s("public"))]))
    );
    assert_eq!(
        fault(t.call(&anonymous(), "create", &["issue", "title=x"])),
        (1, format!("{UNAUTH}Permission to create issue denied"))
    );
    // A private query is invisible to others, even in `list`.
    let alice = t.user("alice", "User");
    let q = match t.call(
        &alice,
        "create",
        &[
            "query",
            "klass=issue",
            "name=mine",
            &format!("private_for={}", alice.id),
        ],
    ) {
        Ok(Value::String(id)) => id,
        other => panic!("{other:?}"),
    };
    assert_eq!(t.call(&alice, "list", &["query"]), Ok(list(&["mine"])));
    assert_eq!(t.call(&joe, "list", &["query"]), Ok(list(&[])));
    assert_eq!(
        fault(t.call(&joe, "display", &[&format!("query{q}"), "klass"])),
        (
            1,
            format!("{UNAUTH}Permission to view klass of query{q} denied")
        )
    );
}

#[test]
fn filter_and_sort() {
    let t = classic("api-filter", &[]);
    let k = t.create("keyword", &["name=rust"]);
    let a = t.create("issue", &["title=alpha", "priority=bug", "keyword=rust"]);
    let b = t.create("issue", &["title=beta", "priority=urgent"]);
    let c = t.create("issue", &["title=gamma alpha", "priority=bug"]);
    let filter = |spec: Value, sort: Value| {
        t.call_v(&admin(), "filter", &[s("issue"), Value::Nil, spec, sort])
    };
    let by_id = Value::Array(vec![list(&["+", "id"])]);
    // Link values are ids ("bug" is priority3).
    assert_eq!(
        filter(record(&[("priority", s("3"))]), by_id.clone()),
        Ok(list(&[&a, &c]))
    );
    assert_eq!(
        filter(record(&[("priority", list(&["3", "2"]))]), by_id.clone()),
        Ok(list(&[&a, &b, &c]))
    );
    assert_eq!(
        filter(record(&[("title", s("alpha"))]), by_id.clone()),
        Ok(list(&[&a, &c]))
    );
    assert_eq!(
        filter(record(&[("keyword", s(&k))]), by_id.clone()),
        Ok(list(&[&a]))
    );
    // Keyword "-1": no keyword at all.
    assert_eq!(
        filter(record(&[("keyword", s("-1"))]), by_id),
        Ok(list(&[&b, &c]))
    );
    assert_eq!(
        filter(record(&[]), Value::Array(vec![list(&["-", "title"])])),
        Ok(list(&[&c, &b, &a]))
    );
    // Restricted to given ids.
    assert_eq!(
        t.call_v(
            &admin(),
            "filter",
            &[s("issue"), list(&[&b, &c]), record(&[("priority", s("3"))])]
        ),
        Ok(list(&[&c]))
    );
}

#[test]
fn retire_and_restore() {
    let t = classic("api-retire", &[]);
    let k = t.create("keyword", &["name=k1"]);
    let d = format!("keyword{k}");
    assert_eq!(t.call(&admin(), "action", &["retire", &d]), Ok(Value::Nil));
    assert_eq!(t.call(&admin(), "list", &["keyword"]), Ok(list(&[])));
    assert_eq!(
        fault(t.call(&admin(), "lookup", &["keyword", "k1"])),
        (
            1,
            "<class 'KeyError'>:'No key (name) value \"k1\" for \"keyword\"'".into()
        )
    );
    // The key is free again; restoring the old item then clashes.
    let k2 = t.create("keyword", &["name=k1"]);
    assert_ne!(k, k2);
    let (code, text) = fault(t.call(&admin(), "action", &["restore", &d]));
    assert_eq!(code, 1);
    assert!(
        text.starts_with("<class 'KeyError'>:'Key property (name) of retired node clashes with"),
        "{text}"
    );
    assert_eq!(
        t.call(&admin(), "action", &["retire", &format!("keyword{k2}")]),
        Ok(Value::Nil)
    );
    assert_eq!(t.call(&admin(), "action", &["restore", &d]), Ok(Value::Nil));
    assert_eq!(t.call(&admin(), "lookup", &["keyword", "k1"]), Ok(s(&k)));
    assert_eq!(
        fault(t.call(&admin(), "action", &["retire", "user1"])),
        (
            1,
            "<class 'ValueError'>:You may not retire the admin or anonymous user".into()
        )
    );
    assert_eq!(
        fault(t.call(&admin(), "action", &["bogus", &d])),
        (
            1,
            "<class 'Exception'>:action \"bogus\" is not supported ".into()
        )
    );
}

#[test]
fn a_failed_call_leaves_nothing_but_its_id() {
    let t = classic("api-rollback", &[]);
    let before = t.create("keyword", &["name=a"]);
    // The link check fails after the id was allocated: nothing is written, and like
    // Roundup the id stays used.
    assert!(t
        .call(&admin(), "create", &["issue", "title=x", "status=99"])
        .is_err());
    assert_eq!(t.call(&admin(), "list", &["issue"]), Ok(list(&[])));
    let first = t.create("issue", &["title=y"]);
    assert_eq!(first, "2", "issue1 was burned by the failed create");
    // A rolled-back caller answers as usual but changes nothing.
    let answer = Caller::new(&t.tracker, &admin())
        .rolled_back()
        .run("create", &strs(&["keyword", "name=ghost"]));
    assert!(matches!(answer, Ok(Value::String(_))), "{answer:?}");
    assert_eq!(t.call(&admin(), "list", &["keyword"]), Ok(list(&["a"])));
    assert_eq!(before, "1");
}

#[test]
fn multicall_runs_each_call_in_its_own_transaction() {
    let t = classic("api-multicall", &[]);
    let call =
        |name: &str, params: &[&str]| record(&[("methodName", s(name)), ("params", list(params))]);
    let answer = t.call_v(
        &admin(),
        "system.multicall",
        &[Value::Array(vec![
            call("create", &["keyword", "name=m1"]),
            call("create", &["keyword", "name=m1"]),
            call("lookup", &["keyword", "m1"]),
            Value::Int(1),
            call("system.multicall", &[]),
        ])],
    );
    let Ok(Value::Array(results)) = answer else {
        panic!("{answer:?}")
    };
    assert_eq!(results[0], Value::Array(vec![s("1")]));
    let fault_of = |v: &Value| match v {
        Value::Struct(m) => (m[0].1.clone(), m[1].1.clone()),
        other => panic!("not a fault struct: {other:?}"),
    };
    assert_eq!(
        fault_of(&results[1]),
        (
            Value::Int(1),
            s(&format!("{USAGE}node with key \"m1\" exists"))
        )
    );
    // The failed second create did not undo the first.
    assert_eq!(results[2], Value::Array(vec![s("1")]));
    assert_eq!(
        fault_of(&results[3]),
        (
            Value::Int(1),
            s("<class 'TypeError'>:multicall entries must be structs")
        )
    );
    assert_eq!(
        fault_of(&results[4]),
        (
            Value::Int(-32600),
            s("recursive system.multicall forbidden")
        )
    );
    let too_many = Value::Array(vec![call("schema", &[]); MAX_MULTICALL + 1]);
    assert_eq!(
        fault(t.call_v(&admin(), "system.multicall", &[too_many])).0,
        -32600
    );
    assert_eq!(
        fault(t.call_v(&admin(), "system.multicall", &[s("x")])),
        (-32602, "system.multicall expects one array of calls".into())
    );
}

#[test]
fn introspection() {
    let t = classic("api-introspection", &[]);
    let Ok(Value::Array(names)) = t.call(&admin(), "system.listMethods", &[]) else {
        panic!("listMethods is an array");
    };
    let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
    assert_eq!(
        names,
        [
            "schema",
            "list",
            "display",
            "create",
            "set",
            "lookup",
            "filter",
            "action",
            "system.listMethods",
            "system.methodHelp",
            "system.methodSignature",
            "system.multicall"
        ]
    );
    let Ok(Value::String(help)) = t.call(&admin(), "system.methodHelp", &["lookup"]) else {
        panic!("help is a string");
    };
    assert!(help.starts_with("lookup(classname, keyvalue)"), "{help}");
    assert_eq!(
        t.call(&admin(), "system.methodSignature", &["lookup"]),
        Ok(Value::Array(vec![list(&["string", "string", "string"])]))
    );
    for method in ["system.methodHelp", "system.methodSignature"] {
        assert_eq!(
            fault(t.call(&admin(), method, &["nosuch"])),
            (-32601, "method \"nosuch\" is not supported".into())
        );
        assert_eq!(
            fault(t.call(&admin(), method, &[])),
            (-32602, "expected one method name".into())
        );
    }
    assert_eq!(
        fault(t.call(&admin(), "nosuch", &[])),
        (
            1,
            "<class 'Exception'>:method \"nosuch\" is not supported".into()
        )
    );
}

#[test]
fn nothing_runs_or_commits_past_the_deadline() {
    let t = classic("api-deadline", &[]);
    let passed = Deadline::new(Instant::now());
    let user = admin();
    let mut caller = Caller::new(&t.tracker, &user).with_deadline(&passed);
    let answer = caller.run("create", &strs(&["keyword", "name=late"]));
    assert!(answer.is_err());
    assert!(caller.overdue());
    assert_eq!(t.call(&admin(), "list", &["keyword"]), Ok(list(&[])));
    // Before the deadline, the commit is allowed and the call is committed.
    let open = Deadline::after(Duration::from_secs(60));
    let mut caller = Caller::new(&t.tracker, &user).with_deadline(&open);
    assert_eq!(
        caller.run("create", &strs(&["keyword", "name=early"])),
        Ok(s("1"))
    );
    assert!(open.committed() && !caller.overdue());
    assert_eq!(t.call(&admin(), "list", &["keyword"]), Ok(list(&["early"])));
}
