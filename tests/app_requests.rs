//! The application behind the front end, driven as the HTTP layer drives it: a
//! request head is authorized (path rules, Basic login, limiters, `Xmlrpc Access`)
//! before its body, then the call runs under the request deadline. The answers are
//! checked byte for byte where Roundup fixes them.

mod tracker_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use hyper::StatusCode;
use roundup_xmlrpc::app::App;
use roundup_xmlrpc::deadline::Deadline;
use roundup_xmlrpc::metrics::Metrics;
use roundup_xmlrpc::server::{Authorization, RpcHandler, RpcHead, RpcResponse};
use roundup_xmlrpc::tracker::Tracker;
use roundup_xmlrpc::xmlrpc::{encode_call, Limits, MethodCall, Value};
use tracker_common::{classic, TestTracker};

fn app(t: TestTracker) -> (Arc<App>, TestTracker) {
    // The tracker is shared with the app; the test keeps the directory alive.
    let tracker = Tracker::open(&t.dir, "demo").unwrap();
    (
        Arc::new(App::new(vec![Arc::new(tracker)], true, Limits::default())),
        t,
    )
}

fn head(path: &str, login: Option<(&str, &str)>) -> RpcHead {
    let mut headers = HeaderMap::new();
    if let Some((user, password)) = login {
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
    }
    RpcHead {
        path: path.to_string(),
        headers,
        peer: "192.0.2.7:4000".parse::<SocketAddr>().unwrap(),
        tcp_peer: "192.0.2.7:4000".parse::<SocketAddr>().unwrap(),
    }
}

fn body(name: &str, params: &[&str]) -> Bytes {
    Bytes::from(encode_call(&MethodCall {
        name: name.into(),
        params: params
            .iter()
            .map(|p| Value::String(p.to_string()))
            .collect(),
    }))
}

/// Authorizes `head` and, when allowed, runs the call in `body`.
fn request(app: &Arc<App>, head: RpcHead, body: Bytes, deadline: &Deadline) -> RpcResponse {
    match Arc::clone(app).authorize(head) {
        Authorization::Call(call) => call.call(body, deadline),
        Authorization::Refuse(response) => response,
    }
}

fn text(r: &RpcResponse) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

fn later() -> Deadline {
    Deadline::after(Duration::from_secs(60))
}

#[test]
fn a_logged_in_call_is_answered_in_xml() {
    let (app, _t) = app(classic("app-call", &[]));
    let r = request(
        &app,
        head("/demo/xmlrpc", Some(("admin", "pw"))),
        body("lookup", &["status", "chatting"]),
        &later(),
    );
    assert_eq!((r.status, r.content_type), (StatusCode::OK, "text/xml"));
    assert!(text(&r).contains("<string>3</string>"), "{}", text(&r));
    // The default tracker answers at / and /xmlrpc too, names ignore case.
    for path in ["/", "/xmlrpc", "/DEMO", "/demo/"] {
        let r = request(
            &app,
            head(path, Some(("admin", "pw"))),
            body("schema", &[]),
            &later(),
        );
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
}

#[test]
fn refusals_from_the_head() {
    let (app, _t) = app(classic("app-refuse", &[]));
    let r = request(&app, head("/other/xmlrpc", None), Bytes::new(), &later());
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(text(&r), "no tracker at this path\n");

    let mut bad = head("/demo", None);
    bad.headers
        .insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
    let r = request(&app, bad, Bytes::new(), &later());
    assert_eq!(
        (r.status, text(&r).as_str()),
        (StatusCode::BAD_REQUEST, "malformed Authorization header\n")
    );

    // A wrong password: Python's http.server error page, and the connection closes.
    let r = request(
        &app,
        head("/demo/xmlrpc", Some(("admin", "nope"))),
        Bytes::new(),
        &later(),
    );
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.content_type, "text/html;charset=utf-8");
    assert_eq!(r.headers.get("connection").unwrap(), "close");
    assert!(text(&r).contains("<p>Message: /demo/xmlrpc (Invalid user).</p>"));

    // Anonymous has no Xmlrpc Access in the classic schema: Fault(403) in XML.
    let r = request(&app, head("/demo", None), body("schema", &[]), &later());
    assert_eq!(r.status, StatusCode::OK);
    let t = text(&r);
    assert!(
        t.contains("<int>403</int>") && t.contains("Forbidden"),
        "{t}"
    );
}

#[test]
fn failed_logins_are_limited() {
    let (app, _t) = app(classic("app-limit", &["web.api_failed_login_limit=2"]));
    for _ in 0..2 {
        let r = request(
            &app,
            head("/demo", Some(("admin", "x"))),
            Bytes::new(),
            &later(),
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // Locked out, even with the right password.
    let r = request(
        &app,
        head("/demo", Some(("admin", "pw"))),
        Bytes::new(),
        &later(),
    );
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0);
    assert_eq!(
        text(&r),
        format!("Logins occurring too fast. Please wait: {retry} seconds.\n")
    );
    assert_eq!(r.headers["x-ratelimit-limit"], "2");
    assert_eq!(r.headers["x-ratelimit-remaining"], "0");
    // Another user from the same address is not locked out.
    let r = request(
        &app,
        head("/demo", Some(("anonymous", ""))),
        Bytes::new(),
        &later(),
    );
    assert_ne!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[test]
fn the_call_rate_limit_answers_429() {
    let (app, _t) = app(classic(
        "app-rate",
        &["web.api_calls_per_interval=2", "web.api_interval_in_sec=60"],
    ));
    for _ in 0..2 {
        let r = request(
            &app,
            head("/demo", Some(("admin", "pw"))),
            body("schema", &[]),
            &later(),
        );
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = request(
        &app,
        head("/demo", Some(("admin", "pw"))),
        body("schema", &[]),
        &later(),
    );
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(text(&r).starts_with("Api rate limits exceeded. Please wait: "));
    assert_eq!(r.headers["x-ratelimit-limit-period"], "60");
}

#[test]
fn bad_documents_and_overdue_calls() {
    let (app, t) = app(classic("app-deadline", &[]));
    let r = request(
        &app,
        head("/demo", Some(("admin", "pw"))),
        Bytes::from_static(b"<methodCall>"),
        &later(),
    );
    assert!(text(&r).contains("<int>-32700</int>"), "{}", text(&r));
    // A write past its deadline is rolled back and answered 503.
    let passed = Deadline::new(Instant::now());
    let r = request(
        &app,
        head("/demo", Some(("admin", "pw"))),
        body("create", &["keyword", "name=late"]),
        &passed,
    );
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(&r), "request deadline exceeded\n");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(
        t.call(&tracker_common::admin(), "list", &["keyword"]),
        Ok(Value::Array(vec![]))
    );
}

/// The value of the sample line starting with `name{labels}` in the metrics text.
fn sample(metrics: &Metrics, series: &str) -> f64 {
    let (text, _) = metrics.render(false);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn calls_logins_and_storage_errors_are_counted_and_health_reads_the_database() {
    let t = classic("app-metrics", &["web.api_failed_login_limit=2"]);
    let tracker = Tracker::open(&t.dir, "demo").unwrap();
    let metrics = Arc::new(Metrics::new());
    let app = Arc::new(
        App::new(vec![Arc::new(tracker)], true, Limits::default())
            .with_metrics(Arc::clone(&metrics)),
    );
    let calls = |method: &str, outcome: &str| {
        sample(
            &metrics,
            &format!(
                "roundup_xmlrpc_calls_total{{tracker=\"demo\",method=\"{method}\",outcome=\"{outcome}\"}}"
            ),
        )
    };
    let failed = "roundup_xmlrpc_failed_logins_total{tracker=\"demo\"}";
    let limited = "roundup_xmlrpc_limiter_refusals_total{tracker=\"demo\",limit=\"logins\"}";
    let storage = "roundup_xmlrpc_storage_errors_total{tracker=\"demo\"}";
    assert_eq!(sample(&metrics, failed), 0.0);
    assert!(app.health().is_ok());

    let admin = || head("/demo", Some(("admin", "pw")));
    request(
        &app,
        admin(),
        body("lookup", &["status", "chatting"]),
        &later(),
    );
    request(
        &app,
        admin(),
        body("lookup", &["status", "nosuch"]),
        &later(),
    );
    // A made-up method name is counted as "other", never as itself.
    request(&app, admin(), body("made.up\nname", &[]), &later());
    request(&app, admin(), Bytes::from_static(b"<methodCall>"), &later());
    assert_eq!(calls("lookup", "ok"), 1.0);
    assert_eq!(calls("lookup", "fault"), 1.0);
    assert_eq!(calls("other", "fault"), 1.0);
    assert_eq!(calls("none", "invalid"), 1.0);
    assert!(!metrics.render(false).0.contains("made.up"));

    for _ in 0..2 {
        request(
            &app,
            head("/demo", Some(("jo\"e x", "x"))),
            Bytes::new(),
            &later(),
        );
    }
    let r = request(
        &app,
        head("/demo", Some(("jo\"e x", "x"))),
        Bytes::new(),
        &later(),
    );
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sample(&metrics, failed), 2.0);
    assert_eq!(sample(&metrics, limited), 1.0);
    assert_eq!(calls("none", "refused"), 3.0);
    assert_eq!(sample(&metrics, "roundup_xmlrpc_calls_in_flight"), 0.0);

    // The user table gone (renamed away): health fails without naming a file,
    // logins are storage errors.
    let db = t.dir.join("db").join("db");
    let con = rusqlite::Connection::open(&db).unwrap();
    con.execute_batch("ALTER TABLE _user RENAME TO _user_away")
        .unwrap();
    let reason = app.health().unwrap_err();
    assert_eq!(reason, "cannot read the database of tracker demo");
    let r = request(&app, admin(), body("schema", &[]), &later());
    assert!(text(&r).contains("database error"), "{}", text(&r));
    assert_eq!(calls("none", "error"), 1.0);
    assert_eq!(
        sample(&metrics, storage),
        2.0,
        "the health check's and the login's"
    );
    con.execute_batch("ALTER TABLE _user_away RENAME TO _user")
        .unwrap();
    assert!(app.health().is_ok());
    let r = request(&app, admin(), body("schema", &[]), &later());
    assert_eq!(r.status, StatusCode::OK);
}
