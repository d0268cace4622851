//! End-to-end tests of routing, methods, keep-alive, pipelining, gzip, panics and the
//! Python client, over loopback with raw HTTP bytes.

mod http_common;

mod require;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use http_common::{fast_config, TestServer};
use roundup_xmlrpc::server::{IpNet, ServerConfig};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn post_is_echoed_with_standard_headers() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.post("/demo/xmlrpc", "", b"hello world").await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert_eq!(r.header("content-length"), Some("11"));
    assert_eq!(r.header("server"), Some("roundup-xmlrpc-server"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.header("date").is_some());
    assert_eq!(r.header("x-path"), Some("/demo/xmlrpc"));
    assert!(r.header("x-peer").unwrap().starts_with("127.0.0.1:"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn rpc_paths_and_404() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    for path in ["/", "/xmlrpc", "/demo", "/demo/xmlrpc"] {
        c.post(path, "", b"x").await.unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("x-path"), Some(path));
    }
    // The query string is not part of the path.
    c.post("/demo?a=b&c", "", b"x").await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-path"), Some("/demo"));
    for path in ["/other", "/demo/", "/DEMO", "/health/x", "/xmlrpc/x"] {
        c.post(path, "", b"").await.unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.body, b"not found\n");
    }
    // GET on an unknown path is also 404, not 405.
    c.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_response().await.unwrap().status, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    for method in ["GET", "PUT", "DELETE", "OPTIONS", "PATCH", "HEAD"] {
        let req = format!("{method} /demo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
        c.send(req.as_bytes()).await.unwrap();
        let r = if method == "HEAD" {
            c.read_head_response().await.unwrap()
        } else {
            c.read_response().await.unwrap()
        };
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("POST"), "{method}");
    }
    // A PUT with a body it will not read closes the connection after answering.
    c.send(b"PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed_within(http_common::WAIT).await);
    drop(c);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_endpoint() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"ok\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    c.send(b"GET /health?probe=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(c.read_response().await.unwrap().status, 200);
    // HEAD: same headers, no body (the next response must parse cleanly).
    c.send(b"HEAD /health HTTP/1.1\r\nHost: t\r\n\r\nGET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_head_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3"));
    let r = c.read_response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
    c.post("/health", "", b"").await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    for path in ["/healthz", "/health/", "/Health"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        c.send(req.as_bytes()).await.unwrap();
        assert_eq!(c.read_response().await.unwrap().status, 404, "{path}");
    }
    server.stop().await.unwrap();
}

/// GETs `path` on a new connection.
async fn get(server: &TestServer, path: &str) -> http_common::RawResponse {
    let mut c = server.connect().await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(req.as_bytes()).await.unwrap();
    c.read_response().await.unwrap()
}

#[tokio::test]
async fn health_checks_are_shared_cached_and_bounded() {
    use std::sync::atomic::Ordering::SeqCst;
    let server = TestServer::start(fast_config()).await;
    let h = Arc::clone(&server.handler);
    h.health_mode.store(1, SeqCst);
    let r = get(&server, "/health").await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (503, &b"unavailable: test says no\n"[..])
    );
    // A burst shares the (cached) result: no check per request.
    let burst: Vec<_> = (0..30)
        .map(|_| {
            let addr = server.addr;
            tokio::spawn(async move {
                let mut c = http_common::Client::connect(addr).await;
                c.send(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
                    .await
                    .unwrap();
                c.read_response().await.unwrap().status
            })
        })
        .collect();
    for task in burst {
        assert_eq!(task.await.unwrap(), 503);
    }
    assert!(h.health_checks.load(SeqCst) <= 2, "{:?}", h.health_checks);
    // Healthy again once the cached answer is old.
    h.health_mode.store(0, SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&server, "/health").await.status, 200);

    // A check that hangs: 503 after the timeout, and the next request waits for
    // the same check instead of starting another.
    h.health_mode.store(2, SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = h.health_checks.load(SeqCst);
    let started = std::time::Instant::now();
    let r = get(&server, "/health").await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (503, &b"unavailable: the health check timed out\n"[..])
    );
    assert!(started.elapsed() < Duration::from_millis(2900));
    h.health_mode.store(0, SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The hanging check finishes (healthy) within this request's wait.
    assert_eq!(get(&server, "/health").await.status, 200);
    assert_eq!(h.health_checks.load(SeqCst), before + 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_for_allowed_clients_only() {
    let server = TestServer::start(fast_config()).await;
    assert_eq!(get(&server, "/nowhere").await.status, 404);
    let r = get(&server, "/metrics").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8(r.body).unwrap();
    assert!(
        text.contains("roundup_xmlrpc_http_responses_total{code=\"404\"} 1\n"),
        "{text}"
    );
    let open: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("roundup_xmlrpc_open_connections "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no open_connections in {text}"));
    assert!(open >= 1.0, "the scraping connection is open: {text}");
    server.stop().await.unwrap();

    let config = ServerConfig {
        metrics_allow: vec![roundup_xmlrpc::server::parse_net("10.0.0.0/8").unwrap()],
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let r = get(&server, "/metrics").await;
    assert_eq!(r.status, 403);
    assert!(!String::from_utf8_lossy(&r.body).contains("roundup_xmlrpc"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn http_1_0_request_is_answered_and_closed() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.send(b"POST /demo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert!(c.closed_within(http_common::WAIT).await);
    // HTTP/1.0 with explicit keep-alive stays open.
    let mut c = server.connect().await;
    for _ in 0..2 {
        c.send(b"POST /demo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    for i in 0..5 {
        let body = format!("request {i}");
        c.post("/xmlrpc", "", body.as_bytes()).await.unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, body.as_bytes());
        assert_eq!(r.header("connection"), None);
    }
    // Connection: close is honoured.
    c.post("/xmlrpc", "Connection: close\r\n", b"last")
        .await
        .unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"last");
    assert!(c.closed_within(http_common::WAIT).await);
    drop(c);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    let mut batch = Vec::new();
    for i in 0..10 {
        let body = format!("pipelined {i}");
        batch.extend_from_slice(
            format!(
                "POST /demo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    batch.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(&batch).await.unwrap();
    for i in 0..10 {
        let r = c.read_response().await.unwrap();
        assert_eq!(r.body, format!("pipelined {i}").as_bytes());
    }
    assert_eq!(c.read_response().await.unwrap().body, b"ok\n");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn chunked_request_body() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.send(b"POST /demo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world"[..]));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn gzip_request_body_is_decoded() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    let plain = "<methodCall>".repeat(500);
    for coding in ["gzip", "x-gzip", "GZIP"] {
        let extra = format!("Content-Encoding: {coding}\r\n");
        c.post("/demo", &extra, &gzip(plain.as_bytes()))
            .await
            .unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 200, "{coding}");
        assert!(r.body.starts_with(b"<?xml"), "{coding}");
    }
    // Echo shows the handler got the decoded bytes.
    c.post("/demo", "Content-Encoding: gzip\r\n", &gzip(b"decoded!"))
        .await
        .unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"decoded!");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bad_request_encodings() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    for coding in ["br", "deflate", "gzip, gzip", "compress"] {
        let extra = format!("Content-Encoding: {coding}\r\n");
        c.post("/demo", &extra, b"xxxx").await.unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.status, 415, "{coding}");
        // The body was not read, so the connection is closed.
        assert!(c.closed_within(http_common::WAIT).await);
        c = server.connect().await;
    }
    // Corrupt gzip: 400, connection stays usable (the body was read).
    c.post("/demo", "Content-Encoding: gzip\r\n", b"this is not gzip")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.body, b"corrupt gzip request body\n");
    let mut truncated = gzip(&[b'z'; 5000]);
    truncated.truncate(truncated.len() - 10);
    c.post("/demo", "Content-Encoding: gzip\r\n", &truncated)
        .await
        .unwrap();
    assert_eq!(c.read_response().await.unwrap().status, 400);
    c.post("/demo", "", b"still alive").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"still alive");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn gzip_response_above_threshold_only() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    // Above 1400 bytes with Accept-Encoding: gzip -> compressed.
    c.post("/demo", "Accept-Encoding: gzip\r\n", b"big:5000")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert!(r.body.len() < 5000);
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert_eq!(gunzip(&r.body), vec![b'a'; 5000]);
    // Exactly 1400 bytes is not compressed (Python: strictly greater).
    c.post("/demo", "Accept-Encoding: gzip\r\n", b"big:1400")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body.len(), 1400);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    c.post("/demo", "Accept-Encoding: gzip\r\n", b"big:1401")
        .await
        .unwrap();
    assert_eq!(
        c.read_response().await.unwrap().header("content-encoding"),
        Some("gzip")
    );
    // Without Accept-Encoding, or with gzip refused, the body is plain.
    for extra in [
        "",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: gzip;q=0\r\n",
    ] {
        c.post("/demo", extra, b"big:5000").await.unwrap();
        let r = c.read_response().await.unwrap();
        assert_eq!(r.header("content-encoding"), None, "{extra:?}");
        assert_eq!(r.body.len(), 5000);
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn panicking_handler_gives_500_and_server_survives() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.post("/demo", "", b"panic").await.unwrap();
    let r = c
        .read_response()
        .await
        .expect("a response, not a dropped connection");
    assert_eq!(r.status, 500);
    assert_eq!(r.body, b"internal server error\n");
    // Same connection still works, and so do new ones.
    c.post("/demo", "", b"after").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"after");
    let mut c2 = server.connect().await;
    c2.post("/demo", "", b"new").await.unwrap();
    assert_eq!(c2.read_response().await.unwrap().body, b"new");
    assert_eq!(
        server
            .handler
            .active
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn forwarded_for_only_from_trusted_proxies() {
    let trusted = ServerConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse::<IpNet>().unwrap()],
        ..fast_config()
    };
    let server = TestServer::start(trusted).await;
    let mut c = server.connect().await;
    c.post(
        "/demo",
        "X-Forwarded-For: 6.6.6.6, 203.0.113.7, 127.0.0.5\r\n",
        b"x",
    )
    .await
    .unwrap();
    assert_eq!(
        c.read_response().await.unwrap().header("x-peer"),
        Some("203.0.113.7:0")
    );
    server.stop().await.unwrap();

    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.post("/demo", "X-Forwarded-For: 203.0.113.7\r\n", b"x")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert!(r.header("x-peer").unwrap().starts_with("127.0.0.1:"));
    server.stop().await.unwrap();
}

/// Python's own client (keep-alive, gzip negotiation) against the echo handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_xmlrpc_client_interoperates() {
    let python_ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("import xmlrpc.client")
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_ok {
        require::missing("python3");
        return;
    }
    let server = TestServer::start(fast_config()).await;
    let script = format!(
        r#"
import xmlrpc.client, sys
class GzipTransport(xmlrpc.client.Transport):
    encode_threshold = 0
p = xmlrpc.client.ServerProxy("http://{addr}/demo/xmlrpc")
assert p.echo("hi", 3) == ("hi", 3)
assert p.echo("hi") == "hi"
big = "x" * 20000
assert p.echo(big) == big
assert p.echo(big) == big  # keep-alive reuse
g = xmlrpc.client.ServerProxy("http://{addr}/demo", transport=GzipTransport())
assert g.echo(big) == big
try:
    xmlrpc.client.ServerProxy("http://{addr}/nope").echo(1)
    sys.exit("expected ProtocolError")
except xmlrpc.client.ProtocolError as e:
    assert e.errcode == 404, e.errcode
print("python ok")
"#,
        addr = server.addr
    );
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "python failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("python ok"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn expect_100_continue() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.send(b"POST /demo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    let interim = c.read_response().await.unwrap();
    assert_eq!(interim.status, 100);
    c.send(b"hello").await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    server.stop().await.unwrap();
}
