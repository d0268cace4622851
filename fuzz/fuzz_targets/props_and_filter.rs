//! Fuzz target: the `prop=value` parser (`props_from_args`) and the Roundup
//! methods built on it (create, set, filter, display, list, lookup, action), with
//! arbitrary client values, against a real classic tracker.
//!
//! The tracker is created once per process (in /dev/shm when available) and seeded
//! with a few users, issues, messages and a query. Every fuzz input then runs one
//! call exactly as the server does (through `api::Caller`, in a read or write
//! transaction), as admin, as a User-role user or as anonymous, and rolls the
//! transaction back (`Caller::rolled_back`), so the database never grows. Errors are fine; panics are bugs.
//!
//! Two input forms:
//! * `A`, `U`, `N` or `B` (admin, alice [User], anonymous, bob [User,Anonymous])
//!   followed by an XML-RPC `<methodCall>` document: decoded with
//!   `xmlrpc::decode_request` and run through `Caller::dispatch` (so
//!   `system.multicall` too), as the server does. The seed corpus uses this form.
//! * anything else: the bytes drive a generator (`arbitrary::Unstructured`) that
//!   picks the user, the method and its params from the schema's class and property
//!   names, Roundup's special value forms (`+`/`-`/`,` lists, `-1`, dates, ranges,
//!   intervals, `@current_user`), dotted filterspec keys and sort/group arrays,
//!   with the odd wrongly typed or missing argument. One in eight inputs calls
//!   `api::args::props_from_args` directly.
//!
//! `PF_TRACE=1 fuzz/target/x86_64-unknown-linux-gnu/release/props_and_filter FILE...`
//! prints each call and its outcome.
#![no_main]

use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use roundup_xmlrpc::api::{self, Caller};
use roundup_xmlrpc::api::args::props_from_args;
use roundup_xmlrpc::error::Error;
use roundup_xmlrpc::security::UserCtx;
use roundup_xmlrpc::admin::init;
use roundup_xmlrpc::tracker::Tracker;
use roundup_xmlrpc::xmlrpc::{decode_request, encode_fault, encode_response, Limits, Value};
use std::path::PathBuf;
use std::sync::OnceLock;

struct World {
    tracker: Tracker,
    users: Vec<UserCtx>,
    /// Every class name and every property name of the schema (automatic ones too).
    classes: Vec<String>,
    props: Vec<String>,
    /// `PF_TRACE=1` prints every call and its outcome (for checking what runs).
    trace: bool,
}

static WORLD: OnceLock<World> = OnceLock::new();

/// Runs one method as `user` through `api::Caller`, as the server does, in a
/// transaction that is rolled back (`write` runs a reading method in a write
/// transaction too).
fn call(
    tracker: &Tracker,
    user: &UserCtx,
    name: &str,
    params: &[Value],
    write: bool,
) -> Result<Value, Error> {
    let mut caller = Caller::new(tracker, user).rolled_back();
    match api::method(name) {
        Some(method) if write => caller.transaction(true, |ctx| (method.run)(ctx, params)),
        _ => caller.run(name, params),
    }
}

/// Runs one method as `user` and commits it (for seeding).
fn seed(tracker: &Tracker, user: &UserCtx, name: &str, params: &[Value]) -> Result<Value, Error> {
    Caller::new(tracker, user).run(name, params)
}

fn s(x: &str) -> Value {
    Value::String(x.to_string())
}

/// Removes tracker directories left by earlier fuzz processes that are gone.
fn sweep(base: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("roundup-fuzz-tracker-") {
            if !PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn setup() -> World {
    let base = if PathBuf::from("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    sweep(&base);
    let dir = base.join(format!("roundup-fuzz-tracker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    init::init(
        &dir,
        "pw",
        None,
        &[
            "admin_email=a@example.com".into(),
            "mail_domain=example.com".into(),
            "password_pbkdf2_default_rounds=1000".into(),
        ],
    )
    .expect("init tracker");
    let tracker = Tracker::open(&dir, "fuzz").expect("open tracker");
    let admin = UserCtx {
        id: 1,
        username: "admin".into(),
        roles: vec!["admin".into()],
    };
    let mk = |class: &str, props: &[&str]| -> String {
        let mut params = vec![s(class)];
        params.extend(props.iter().map(|p| s(p)));
        match seed(&tracker, &admin, "create", &params) {
            Ok(Value::String(id)) => id,
            other => panic!("seeding {class} {props:?}: {other:?}"),
        }
    };
    let alice = mk(
        "user",
        &[
            "username=alice",
            "password=secret",
            "address=alice@example.com",
            "realname=Alice A",
            "roles=User",
            "timezone=2",
        ],
    );
    let bob = mk(
        "user",
        &[
            "username=bob",
            "address=bob@example.com",
            "roles=User,Anonymous",
            "timezone=-5",
        ],
    );
    mk("keyword", &["name=rust"]);
    mk("keyword", &["name=xml"]);
    mk(
        "query",
        &[
            "klass=issue",
            "name=mine",
            "url=@filter=assignedto",
            &format!("private_for={alice}"),
        ],
    );
    mk("query", &["klass=issue", "name=public", "url=@sort=id"]);
    let m1 = mk(
        "msg",
        &[
            "content=first message\nwith two lines",
            &format!("author={alice}"),
            "date=2024-03-01.10:00:00",
        ],
    );
    mk("file", &["name=a.txt", "type=text/plain", "content=hello"]);
    mk(
        "issue",
        &[
            "title=first issue",
            "priority=bug",
            "status=unread",
            &format!("assignedto={alice}"),
            &format!("nosy={alice},{bob}"),
            "keyword=rust",
            &format!("messages={m1}"),
        ],
    );
    mk(
        "issue",
        &[
            "title=second issue about xml",
            "priority=urgent",
            "status=in-progress",
            "keyword=rust,xml",
            "superseder=1",
        ],
    );
    mk("issue", &["title=third", "status=resolved"]);
    let retired = mk("issue", &["title=retired one"]);
    seed(
        &tracker,
        &admin,
        "action",
        &[s("retire"), s(&format!("issue{retired}"))],
    )
    .expect("retire");

    let users = vec![
        admin,
        UserCtx {
            id: alice.parse().unwrap(),
            username: "alice".into(),
            roles: vec!["user".into()],
        },
        UserCtx {
            id: 2,
            username: "anonymous".into(),
            roles: vec!["anonymous".into()],
        },
        UserCtx {
            id: bob.parse().unwrap(),
            username: "bob".into(),
            roles: vec!["user".into(), "anonymous".into()],
        },
    ];
    let mut classes: Vec<String> = tracker
        .schema
        .classes
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let mut props: Vec<String> = [
        "id", "creation", "activity", "creator", "actor", "content", "type",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect();
    for c in &tracker.schema.classes {
        for p in &c.properties {
            if !props.contains(&p.name) {
                props.push(p.name.clone());
            }
        }
    }
    classes.sort();
    props.sort();
    World {
        tracker,
        users,
        classes,
        props,
        trace: std::env::var_os("PF_TRACE").is_some(),
    }
}

/// Value fragments Roundup's parsers treat specially.
const FRAGMENTS: &[&str] = &[
    "",
    "1",
    "2",
    "3",
    "4",
    "5",
    "0",
    "-1",
    "-2",
    "-3",
    "-4",
    "+1",
    "+2",
    "-1,-2,-3",
    "1,2",
    "+2,-1",
    "1,,2",
    " 1 , 2 ",
    "+",
    "-",
    ",",
    "=",
    "admin",
    "anonymous",
    "alice",
    "bob",
    "critical",
    "urgent",
    "bug",
    "unread",
    "chatting",
    "resolved",
    "rust",
    "xml",
    "@current_user",
    "true",
    "yes",
    "no",
    "on",
    "checked",
    "1.5",
    "1e308",
    "-1e-308",
    "nan",
    "inf",
    "-infinity",
    "1_000",
    "_1",
    "99999999999999999999999",
    "9223372036854775807",
    "2024-01-01",
    "2024-02-29.23:59:59",
    "2024-13-45",
    "2024-01-01.25:61:61",
    "1970-01-01",
    "0001-01-01",
    "9999-12-31.23:59:59",
    "2024-01-01;2024-12-31",
    ";2024-01-01",
    "2024-01-01;",
    "-1d;",
    ";now",
    "now",
    ".",
    "-1d",
    "+1w",
    "-2m",
    "3y",
    "1:00",
    "-0:30",
    "+1m 2d",
    "3w 1d 2:00:00",
    "1y-1d",
    "from -1d to now",
    "from 2024-01-01 to 2024-02-01",
    "-",
    "2024-01",
    "2024",
    "12:00",
    "08:00:00",
    "-1y 1d",
    "- 1d",
    "1d;2d",
    "0:00;1:00",
    "-5",
    "Europe/Berlin",
    "US/Eastern",
    "EST",
    "UTC",
    "23",
    "-24",
    "+14",
    "-12",
    "Admin",
    "User,Admin",
    "issue1",
    "user1",
    "msg1",
    "file1",
    "id",
    "title",
    "status.name",
    "a.b.c.d.e.f.g.h.i",
    "\u{0}",
    "\r\n",
    "\t",
    "é",
    "\u{202e}",
    "\u{fffd}",
    "%",
    "_",
    "*",
    "'",
    "\"",
    "\\",
];

/// True about once in `d` draws (false when the input is used up, so short inputs
/// take the ordinary paths).
fn rare(u: &mut Unstructured<'_>, d: u32) -> AResult<bool> {
    Ok(u.int_in_range(0..=d - 1)? == d - 1)
}

fn pick(u: &mut Unstructured<'_>, xs: &[&'static str]) -> AResult<&'static str> {
    Ok(xs[u.choose_index(xs.len())?])
}

/// A short arbitrary string (bounded, so an input cannot build a huge value).
fn raw_str(u: &mut Unstructured<'_>) -> AResult<String> {
    let n = u.int_in_range(0..=24)?;
    let bytes = u.bytes(n.min(u.len()))?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// A value text: fragments, joined with separators, sometimes random text.
fn value_text(u: &mut Unstructured<'_>) -> AResult<String> {
    let parts = u.int_in_range(1..=3)?;
    let mut out = String::new();
    for i in 0..parts {
        if i > 0 {
            out.push_str(pick(u, &[",", ";", " ", "", "+", "-", ".", ":"])?);
        }
        if rare(u, 5)? {
            out.push_str(&raw_str(u)?);
        } else {
            out.push_str(pick(u, FRAGMENTS)?);
        }
    }
    Ok(out)
}

fn class_name(u: &mut Unstructured<'_>, w: &World) -> AResult<String> {
    Ok(match u.int_in_range(0..=15)? {
        13 => raw_str(u)?,
        14 => String::new(),
        15 => "Issue".into(),
        _ => w.classes[u.choose_index(w.classes.len())?].clone(),
    })
}

fn prop_name(u: &mut Unstructured<'_>, w: &World) -> AResult<String> {
    Ok(match u.int_in_range(0..=15)? {
        14 => raw_str(u)?,
        15 => format!(" {} ", w.props[u.choose_index(w.props.len())?]),
        _ => w.props[u.choose_index(w.props.len())?].clone(),
    })
}

/// A (possibly dotted) property path.
fn prop_path(u: &mut Unstructured<'_>, w: &World) -> AResult<String> {
    let steps = if rare(u, 12)? {
        u.int_in_range(1..=12)?
    } else {
        u.int_in_range(1..=3)?
    };
    let mut path = Vec::new();
    for _ in 0..steps {
        path.push(prop_name(u, w)?);
    }
    Ok(path.join("."))
}

fn designator(u: &mut Unstructured<'_>, w: &World) -> AResult<String> {
    let class = class_name(u, w)?;
    let id = match u.int_in_range(0..=9)? {
        4 => String::new(),
        5 => "0".into(),
        6 => "007".into(),
        7 => "99999999999999999999999".into(),
        8 => u.int_in_range(1..=100u32)?.to_string(),
        9 => raw_str(u)?,
        _ => u.int_in_range(1..=6u32)?.to_string(),
    };
    Ok(format!("{class}{id}"))
}

/// An arbitrary client value of any XML-RPC type (bounded depth and width).
fn any_value(u: &mut Unstructured<'_>, w: &World, depth: u32) -> AResult<Value> {
    let top = if depth == 0 { 7 } else { 9 };
    Ok(match u.int_in_range(0..=top)? {
        0 => Value::Int(match u.int_in_range(0..=3)? {
            0 => u.arbitrary()?,
            1 => -u.int_in_range(1..=4i64)?,
            _ => u.int_in_range(0..=8i64)?,
        }),
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Double(u.arbitrary()?),
        3 => Value::DateTime(pick(u, &["20240101T12:00:00", "2024-01-01T00:00:00", "x"])?.into()),
        4 => Value::Base64(value_text(u)?.into_bytes()),
        5 => Value::Nil,
        6 => Value::String(prop_path(u, w)?),
        7 => Value::String(value_text(u)?),
        8 => {
            let n = u.int_in_range(0..=4)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(any_value(u, w, depth - 1)?);
            }
            Value::Array(v)
        }
        _ => {
            let n = u.int_in_range(0..=3)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push((prop_path(u, w)?, any_value(u, w, depth - 1)?));
            }
            Value::Struct(v)
        }
    })
}

/// A `prop=value` argument (usually a string, sometimes Base64 or another type).
fn prop_arg(u: &mut Unstructured<'_>, w: &World) -> AResult<Value> {
    let text = match u.int_in_range(0..=19)? {
        18 => value_text(u)?,
        19 => format!("{}={}", prop_name(u, w)?, raw_str(u)?),
        _ => format!("{}={}", prop_name(u, w)?, value_text(u)?),
    };
    Ok(match u.int_in_range(0..=19)? {
        18 => Value::Base64(text.into_bytes()),
        19 => any_value(u, w, 1)?,
        _ => Value::String(text),
    })
}

fn prop_args(u: &mut Unstructured<'_>, w: &World) -> AResult<Vec<Value>> {
    let n = u.int_in_range(1..=5)?;
    (0..n).map(|_| prop_arg(u, w)).collect()
}

/// A filterspec value: link ids and expressions, dates, ranges, strings, lists.
fn spec_value(u: &mut Unstructured<'_>, w: &World) -> AResult<Value> {
    Ok(match u.int_in_range(0..=9)? {
        0..=3 => Value::String(value_text(u)?),
        4 | 5 => {
            let n = u.int_in_range(0..=6)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(match u.int_in_range(0..=3)? {
                    0 => Value::Int(u.int_in_range(-5..=6i64)?),
                    1 => Value::String(u.int_in_range(-5..=6i64)?.to_string()),
                    2 => Value::String(value_text(u)?),
                    _ => any_value(u, w, 0)?,
                });
            }
            Value::Array(v)
        }
        6 => Value::Int(u.int_in_range(-5..=6i64)?),
        _ => any_value(u, w, 2)?,
    })
}

fn filterspec(u: &mut Unstructured<'_>, w: &World) -> AResult<Value> {
    if rare(u, 25)? {
        return any_value(u, w, 1);
    }
    let n = u.int_in_range(0..=4)?;
    let mut members = Vec::new();
    for _ in 0..n {
        members.push((prop_path(u, w)?, spec_value(u, w)?));
    }
    Ok(Value::Struct(members))
}

/// A sort or group argument: `[[dir, prop], ...]`, with the odd malformed entry.
fn sort_arg(u: &mut Unstructured<'_>, w: &World) -> AResult<Value> {
    if rare(u, 10)? {
        return any_value(u, w, 2);
    }
    let n = u.int_in_range(0..=3)?;
    let mut items = Vec::new();
    for _ in 0..n {
        items.push(match u.int_in_range(0..=9)? {
            7 => Value::String(format!("{}{}", pick(u, &["+", "-", ""])?, prop_name(u, w)?)),
            8 => any_value(u, w, 1)?,
            9 => Value::Array(vec![Value::Nil, Value::Nil]),
            _ => Value::Array(vec![
                s(pick(u, &["+", "-", "", "x"])?),
                Value::String(prop_path(u, w)?),
            ]),
        });
    }
    Ok(Value::Array(items))
}

fn search_matches(u: &mut Unstructured<'_>, w: &World) -> AResult<Value> {
    Ok(match u.int_in_range(0..=5)? {
        0..=2 => Value::Nil,
        3 => Value::Array(Vec::new()),
        4 => {
            let n = u.int_in_range(1..=5)?;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push(match u.int_in_range(0..=2)? {
                    0 => Value::Int(u.int_in_range(-2..=8i64)?),
                    1 => Value::String(u.int_in_range(0..=8i64)?.to_string()),
                    _ => any_value(u, w, 0)?,
                });
            }
            Value::Array(v)
        }
        _ => any_value(u, w, 1)?,
    })
}

const METHODS: &[&str] = &[
    "create", "set", "filter", "display", "list", "lookup", "action",
];

fn one_input(u: &mut Unstructured<'_>, w: &World) -> AResult<()> {
    let user = &w.users[u.choose_index(w.users.len())?];
    let mode = u.int_in_range(0..=7)?;
    let tracker = &w.tracker;
    if mode == 7 {
        // props_from_args directly, for a class and an optional existing item.
        let cn = w.classes[u.choose_index(w.classes.len())?].clone();
        let class = tracker.schema.class(&cn).expect("schema class").clone();
        let itemid = if u.arbitrary()? {
            Some(u.int_in_range(0..=8u32)? as i64)
        } else {
            None
        };
        let args = prop_args(u, w)?;
        let write: bool = u.arbitrary()?;
        let result = Caller::new(tracker, user)
            .rolled_back()
            .transaction(write, |ctx| props_from_args(ctx, &class, &args, itemid));
        if w.trace {
            eprintln!(
                "[{}] props_from_args({cn}, {args:?}, {itemid:?}) -> {:?}",
                user.username,
                result.map(|c| c.props.len())
            );
        }
        return Ok(());
    }
    let name = pick(u, METHODS)?;
    let mut params: Vec<Value> = match name {
        "create" => {
            let mut p = vec![Value::String(class_name(u, w)?)];
            p.extend(prop_args(u, w)?);
            p
        }
        "set" => {
            let mut p = vec![Value::String(designator(u, w)?)];
            p.extend(prop_args(u, w)?);
            p
        }
        "filter" => {
            let mut p = vec![
                Value::String(class_name(u, w)?),
                search_matches(u, w)?,
                filterspec(u, w)?,
            ];
            if u.arbitrary()? {
                p.push(sort_arg(u, w)?);
                if u.arbitrary()? {
                    p.push(sort_arg(u, w)?);
                }
            }
            p
        }
        "display" => {
            let mut p = vec![Value::String(designator(u, w)?)];
            for _ in 0..u.int_in_range(0..=3)? {
                p.push(Value::String(prop_name(u, w)?));
            }
            p
        }
        "list" => {
            let mut p = vec![Value::String(class_name(u, w)?)];
            if u.arbitrary()? {
                p.push(Value::String(prop_name(u, w)?));
            }
            p
        }
        "lookup" => vec![
            Value::String(class_name(u, w)?),
            Value::String(value_text(u)?),
        ],
        _ => vec![
            s(pick(
                u,
                &["retire", "restore", "retire", "restore", "edit"],
            )?),
            Value::String(designator(u, w)?),
        ],
    };
    // Now and then: wrong arity or a wrongly typed argument.
    match u.int_in_range(0..=15)? {
        13 => {
            let n = u.choose_index(params.len() + 1)?;
            params.truncate(n);
        }
        14 => params.push(any_value(u, w, 2)?),
        15 if !params.is_empty() => {
            let i = u.choose_index(params.len())?;
            params[i] = any_value(u, w, 2)?;
        }
        _ => {}
    }
    let write: bool = u.arbitrary()?;
    let result = call(tracker, user, name, &params, write);
    if w.trace {
        eprintln!("[{}] {name}{params:?} -> {result:?}", user.username);
    }
    if let Err(e) = result {
        let _ = encode_fault(&e.to_fault());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let w = WORLD.get_or_init(setup);
    // Text mode: a user letter then an XML-RPC document, decoded and dispatched
    // exactly as the server does (seeds are real client calls).
    if let [who @ (b'A' | b'U' | b'N' | b'B'), b'<', ..] = data {
        let user = &w.users[match who {
            b'A' => 0,
            b'U' => 1,
            b'N' => 2,
            _ => 3,
        }];
        if let Ok(call) = decode_request(&data[1..], &Limits::default()) {
            let mut caller = Caller::new(&w.tracker, user).rolled_back();
            let outcome = caller.dispatch(&call);
            if w.trace {
                eprintln!("[{}] {call:?} -> {outcome:?}", user.username);
            }
            match outcome {
                Ok(v) => drop(encode_response(&v)),
                Err(f) => drop(encode_fault(&f)),
            }
        }
        return;
    }
    // Structured mode: the bytes choose a call built from schema names and
    // Roundup's special value forms.
    let mut u = Unstructured::new(data);
    let _ = one_input(&mut u, w);
});
