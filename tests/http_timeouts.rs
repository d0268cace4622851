//! End-to-end tests of timeouts (slowloris, idle keep-alive, slow bodies), the
//! connection cap, the request deadline, the blocking-handler cap and graceful shutdown.
//! Timeouts are configured in the hundreds of milliseconds so that this runs in seconds.

mod http_common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http_common::{fast_config, TestServer, WAIT};
use roundup_xmlrpc::server::{parse_net, ServerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_header_timeout() {
    let server = TestServer::start(fast_config()).await; // header timeout 500 ms
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut c = server.connect().await;
        tasks.push(tokio::spawn(async move {
            // One byte every 100 ms, forever: the head never completes in 500 ms.
            let head =
                b"POST /demo HTTP/1.1\r\nHost: t\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            for byte in head.iter() {
                if c.send(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if c.closed_within(Duration::from_millis(1)).await {
                    return Instant::now();
                }
            }
            assert!(c.closed_within(WAIT).await);
            Instant::now()
        }));
    }
    // Meanwhile an ordinary client is served promptly.
    let mut c = server.connect().await;
    c.post("/demo", "", b"not blocked").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"not blocked");
    for task in tasks {
        let closed_at = task.await.unwrap();
        let after = closed_at.duration_since(start);
        assert!(
            after >= Duration::from_millis(400),
            "closed too early: {after:?}"
        );
        assert!(
            after < Duration::from_millis(2500),
            "closed too late: {after:?}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn silent_connection_is_closed_by_the_header_timeout() {
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    let start = Instant::now();
    assert!(c.closed_within(WAIT).await);
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(2),
        "{after:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn keep_alive_idle_timeout_is_separate_from_the_header_timeout() {
    // Header timeout 500 ms, keep-alive 1500 ms.
    let server = TestServer::start(fast_config()).await;
    let mut c = server.connect().await;
    c.post("/demo", "", b"one").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"one");
    // Idle longer than the header timeout: still open.
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.post("/demo", "", b"two").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().body, b"two");
    // Then closed once idle for the keep-alive timeout.
    let start = Instant::now();
    assert!(c.closed_within(WAIT).await);
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(1300) && after < Duration::from_secs(3),
        "{after:?}"
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn slow_body_gets_408() {
    let server = TestServer::start(fast_config()).await; // body timeout 500 ms
    let mut c = server.connect().await;
    let start = Instant::now();
    c.send(b"POST /demo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nten bytes.")
        .await
        .unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
    let after = start.elapsed();
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(2),
        "{after:?}"
    );
    assert!(c.closed_within(WAIT).await);
    drop(c);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_deadline_gives_503_and_blocking_calls_are_bounded() {
    let config = ServerConfig {
        request_deadline: Duration::from_millis(300),
        max_blocking_handlers: 2,
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut c = server.connect().await;
        tasks.push(tokio::spawn(async move {
            c.post("/demo", "", b"sleep:800").await.unwrap();
            let r = c.read_response().await.unwrap();
            (r.status, r.header("retry-after").map(str::to_owned))
        }));
    }
    for task in tasks {
        let (status, retry_after) = task.await.unwrap();
        assert_eq!(status, 503);
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    assert!(
        start.elapsed() < Duration::from_millis(700),
        "{:?}",
        start.elapsed()
    );
    // The abandoned calls keep running, but never more than two at once.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(server.handler.max_active.load(Ordering::SeqCst), 2);
    // Only the two that got a slot ran; the queued ones were dropped at the deadline.
    assert_eq!(server.handler.finished.load(Ordering::SeqCst), 2);
    // A fast request works again.
    let mut c = server.connect().await;
    c.post("/demo", "", b"quick").await.unwrap();
    assert_eq!(c.read_response().await.unwrap().status, 200);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_rejects_extra_connections() {
    let config = ServerConfig {
        max_connections: 3,
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = server.connect().await;
        c.post("/demo", "", format!("held {i}").as_bytes())
            .await
            .unwrap();
        assert_eq!(c.read_response().await.unwrap().status, 200);
        held.push(c);
    }
    // The fourth is accepted and closed at once, with a best-effort 503.
    let mut extra = server.connect().await;
    let _ = extra.post("/demo", "", b"over the cap").await;
    if let Some(r) = extra.read_response().await {
        assert_eq!(r.status, 503);
        assert_eq!(r.header("connection"), Some("close"));
    }
    assert!(extra.closed_within(WAIT).await);
    assert_eq!(server.handler.finished.load(Ordering::SeqCst), 3);
    // Once a held connection goes away, a new one is served.
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = server.connect().await;
        let _ = c.post("/demo", "", b"after").await;
        match c.read_response().await {
            Some(r) if r.status == 200 => break,
            _ => {
                assert!(Instant::now() < deadline, "slot never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut server = TestServer::start(fast_config()).await; // grace 3 s
    let addr = server.addr;
    let mut idle = server.connect().await;
    idle.post("/demo", "", b"idle").await.unwrap();
    assert_eq!(idle.read_response().await.unwrap().status, 200);
    let mut busy = server.connect().await;
    busy.post("/demo", "", b"sleep:700").await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let start = Instant::now();
    server.signal_shutdown();
    // The idle keep-alive connection is closed right away.
    assert!(idle.closed_within(Duration::from_millis(500)).await);
    // New connections are refused once the listener is gone.
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "listener still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The in-flight request completes, then its connection is closed.
    let r = busy.read_response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"slept"[..]));
    assert!(busy.closed_within(WAIT).await);
    server.stop().await.unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_expiry_drops_stragglers() {
    let config = ServerConfig {
        shutdown_grace: Duration::from_millis(300),
        request_deadline: Duration::from_secs(10),
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let mut busy = server.connect().await;
    busy.post("/demo", "", b"sleep:1200").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    server.stop().await.unwrap();
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1000),
        "run() took {took:?} to return"
    );
    // The client sees the connection go away without a response.
    assert!(busy.read_response().await.is_none());
}

#[tokio::test]
async fn shutdown_with_no_connections_is_immediate() {
    let server = TestServer::start(ServerConfig::default()).await;
    let start = Instant::now();
    server.stop().await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_started_before_the_deadline_is_answered() {
    let config = ServerConfig {
        request_deadline: Duration::from_millis(300),
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    // Commits at 100 ms, finishes at 700 ms: past the deadline, and still answered.
    let start = Instant::now();
    let mut c = server.connect().await;
    c.post("/demo", "", b"commit:100:600").await.unwrap();
    let r = c.read_response().await.unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"committed"[..]));
    assert!(start.elapsed() >= Duration::from_millis(600));
    assert_eq!(server.handler.committed.load(Ordering::SeqCst), 1);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_after_the_deadline_is_refused_and_answered_503() {
    let config = ServerConfig {
        request_deadline: Duration::from_millis(300),
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let start = Instant::now();
    let mut c = server.connect().await;
    c.post("/demo", "", b"commit:700:0").await.unwrap();
    let r = c.read_response().await.unwrap();
    // 503 at the deadline, not when the handler gets to its commit.
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(
        start.elapsed() < Duration::from_millis(650),
        "{:?}",
        start.elapsed()
    );
    // The handler, reaching its commit later, is told to roll back.
    let deadline = Instant::now() + WAIT;
    while server.handler.rolled_back.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "handler never asked to commit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.handler.committed.load(Ordering::SeqCst), 0);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_address_cap_rejects_extra_connections_from_one_address() {
    let config = ServerConfig {
        max_connections_per_address: 2,
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for i in 0..2 {
        let mut c = server.connect().await;
        c.post("/demo", "", format!("held {i}").as_bytes())
            .await
            .unwrap();
        assert_eq!(c.read_response().await.unwrap().status, 200);
        held.push(c);
    }
    let mut extra = server.connect().await;
    let _ = extra.post("/demo", "", b"over the cap").await;
    let r = extra.read_response().await.expect("a 503 before the close");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.body, b"too many connections from this address\n");
    assert!(extra.closed_within(WAIT).await);
    assert_eq!(server.handler.finished.load(Ordering::SeqCst), 2);
    drop(held.pop());
    let deadline = Instant::now() + WAIT;
    loop {
        let mut c = server.connect().await;
        let _ = c.post("/demo", "", b"after").await;
        match c.read_response().await {
            Some(r) if r.status == 200 => break,
            _ => {
                assert!(Instant::now() < deadline, "address slot never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_are_exempt_from_the_per_address_cap() {
    let config = ServerConfig {
        max_connections_per_address: 1,
        trusted_proxies: vec![parse_net("127.0.0.1").unwrap()],
        ..fast_config()
    };
    let server = TestServer::start(config).await;
    let mut held = Vec::new();
    for i in 0..5 {
        let mut c = server.connect().await;
        c.post("/demo", "", format!("via proxy {i}").as_bytes())
            .await
            .unwrap();
        assert_eq!(c.read_response().await.unwrap().status, 200);
        held.push(c);
    }
    server.stop().await.unwrap();
}
