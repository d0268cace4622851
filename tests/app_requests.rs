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
