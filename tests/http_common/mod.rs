//! Shared helpers for the HTTP front-end tests: a test handler, a server started on
//! 127.0.0.1:0, and a tiny raw HTTP/1 client that reads responses byte-exactly.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use roundup_xmlrpc::deadline::Deadline;
use roundup_xmlrpc::server::{run, ServerConfig};
use roundup_xmlrpc::server::{Authorization, RpcCall, RpcHandler, RpcHead, RpcResponse};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any single wait in the tests, so a bug fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(10);

/// Serves `/`, `/xmlrpc`, `/demo`, `/demo/xmlrpc`. A request with an `x-refuse`
/// header is refused by `authorize` (403, body unread). The body selects the
/// behaviour: `sleep:MS`, `panic`, `big:N` (N bytes of `a`), `commit:MS:AFTER` (sleeps
/// MS, asks the deadline for a commit, and when allowed sleeps AFTER more and answers
/// `committed`; else answers 503 `rolled back`), an XML-RPC `<methodCall>` (its params
/// are returned as the result), anything else is echoed back. Adds `x-peer`, `x-path`.
#[derive(Default)]
pub struct TestHandler {
    /// Handler calls running right now.
    pub active: AtomicUsize,
    /// The most handler calls seen running at once.
    pub max_active: AtomicUsize,
    /// Handler calls that finished.
    pub finished: AtomicUsize,
    /// `authorize` calls.
    pub authorized: AtomicUsize,
    /// `commit:` calls allowed to commit.
    pub committed: AtomicUsize,
    /// `commit:` calls refused a commit by the deadline.
    pub rolled_back: AtomicUsize,
    /// `health` calls.
    pub health_checks: AtomicUsize,
    /// What `health` answers: 0 healthy, 1 `Err("test says no")`, 2 healthy after
    /// 3 s.
    pub health_mode: AtomicUsize,
}

impl RpcHandler for TestHandler {
    fn is_rpc_path(&self, path: &str) -> bool {
        matches!(path, "/" | "/xmlrpc" | "/demo" | "/demo/xmlrpc")
    }

    fn health(&self) -> Result<(), String> {
        self.health_checks.fetch_add(1, Ordering::SeqCst);
        match self.health_mode.load(Ordering::SeqCst) {
            0 => Ok(()),
            1 => Err("test says no".into()),
            _ => {
                std::thread::sleep(Duration::from_secs(3));
                Ok(())
            }
        }
    }

    fn authorize(self: Arc<Self>, head: RpcHead) -> Authorization {
        self.authorized.fetch_add(1, Ordering::SeqCst);
        if head.headers.contains_key("x-refuse") {
            return Authorization::Refuse(RpcResponse {
                status: hyper::StatusCode::FORBIDDEN,
                headers: hyper::HeaderMap::new(),
                content_type: "text/plain",
                body: b"refused\n".to_vec(),
            });
        }
        Authorization::Call(Box::new(TestCall {
            handler: self,
            head,
        }))
    }
}

/// A request [`TestHandler`] accepted.
struct TestCall {
    handler: Arc<TestHandler>,
    head: RpcHead,
}

impl RpcCall for TestCall {
    fn call(self: Box<Self>, body: Bytes, deadline: &Deadline) -> RpcResponse {
        let TestCall { handler, head: req } = *self;
        handler.handle(req, body, deadline)
    }
}

impl TestHandler {
    fn handle(&self, req: RpcHead, req_body: Bytes, deadline: &Deadline) -> RpcResponse {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        struct Done<'a>(&'a TestHandler);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.active.fetch_sub(1, Ordering::SeqCst);
                self.0.finished.fetch_add(1, Ordering::SeqCst);
            }
        }
        let _done = Done(self);
        let text = String::from_utf8_lossy(&req_body).into_owned();
        let mut status = hyper::StatusCode::OK;
        let body: Vec<u8> = if let Some(spec) = text.strip_prefix("commit:") {
            let (ms, after) = spec.trim().split_once(':').unwrap_or((spec, "0"));
            std::thread::sleep(Duration::from_millis(ms.parse().unwrap_or(0)));
            if deadline.begin_commit() {
                self.committed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(after.parse().unwrap_or(0)));
                b"committed".to_vec()
            } else {
                self.rolled_back.fetch_add(1, Ordering::SeqCst);
                status = hyper::StatusCode::SERVICE_UNAVAILABLE;
                b"rolled back".to_vec()
            }
        } else if let Some(ms) = text.strip_prefix("sleep:") {
            let ms: u64 = ms.trim().parse().unwrap_or(0);
            std::thread::sleep(Duration::from_millis(ms));
            b"slept".to_vec()
        } else if text == "panic" {
            panic!("test handler asked to panic");
        } else if let Some(n) = text.strip_prefix("big:") {
            vec![b'a'; n.trim().parse().unwrap_or(0)]
        } else if let (Some(start), Some(end)) = (text.find("<params>"), text.rfind("</params>")) {
            format!(
                "<?xml version='1.0'?>\n<methodResponse>\n{}</params>\n</methodResponse>\n",
                &text[start..end]
            )
            .into_bytes()
        } else if text.contains("<methodCall>") {
            b"<?xml version='1.0'?>\n<methodResponse><params><param><value><string>noargs</string></value></param></params></methodResponse>\n".to_vec()
        } else {
            req_body.to_vec()
        };
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-peer", req.peer.to_string().parse().unwrap());
        headers.insert("x-path", req.path.parse().unwrap());
        RpcResponse {
            status,
            headers,
            content_type: "text/xml",
            body,
        }
    }
}

/// A running server and the means to stop it.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The handler (for its counters).
    pub handler: Arc<TestHandler>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    /// Starts a server with `config` on 127.0.0.1:0.
    pub async fn start(config: ServerConfig) -> Self {
        init_tracing();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(TestHandler::default());
        let (tx, rx) = oneshot::channel::<()>();
        let dyn_handler: Arc<dyn RpcHandler> = handler.clone();
        let task = tokio::spawn(run(listener, dyn_handler, config, async {
            let _ = rx.await;
        }));
        Self {
            addr,
            handler,
            shutdown: Some(tx),
            task,
        }
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits (at most [`WAIT`]) for `run` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.signal_shutdown();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("run() did not return")
            .expect("server task panicked")
    }

    /// A new raw connection.
    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }
}

/// Small timeouts so that timeout tests finish in about a second.
pub fn fast_config() -> ServerConfig {
    ServerConfig {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        keep_alive_timeout: Duration::from_millis(1500),
        request_deadline: Duration::from_secs(3),
        shutdown_grace: Duration::from_secs(3),
        ..ServerConfig::default()
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

/// A parsed response.
#[derive(Debug)]
pub struct RawResponse {
    /// The status line's version, e.g. `HTTP/1.1`.
    pub version: String,
    /// The status code.
    pub status: u16,
    /// Header (lower-cased name, value) pairs in order.
    pub headers: Vec<(String, String)>,
    /// The body (exactly Content-Length bytes).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1 client over one TCP connection.
pub struct Client {
    /// The buffered stream (responses can be pipelined).
    pub stream: BufReader<TcpStream>,
}

impl Client {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// Writes raw bytes (errors such as a reset connection are returned).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.get_mut().write_all(bytes).await
    }

    /// Writes a POST with a Content-Length body and extra header lines.
    pub async fn post(&mut self, path: &str, extra: &str, body: &[u8]) -> std::io::Result<()> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n{extra}\r\n",
            body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes).await
    }

    /// Reads one response; `None` on EOF or reset before a status line. Panics after
    /// [`WAIT`].
    pub async fn read_response(&mut self) -> Option<RawResponse> {
        tokio::time::timeout(WAIT, self.read_response_inner(false))
            .await
            .expect("timed out waiting for a response")
    }

    /// Reads the response to a HEAD request (headers only, whatever Content-Length says).
    pub async fn read_head_response(&mut self) -> Option<RawResponse> {
        tokio::time::timeout(WAIT, self.read_response_inner(true))
            .await
            .expect("timed out waiting for a response")
    }

    async fn read_response_inner(&mut self, head: bool) -> Option<RawResponse> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let mut parts = line.trim_end().splitn(3, ' ');
        let version = parts.next()?.to_owned();
        let status: u16 = parts.next()?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await.ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let len = if head { 0 } else { len };
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(RawResponse {
            version,
            status,
            headers,
            body,
        })
    }

    /// True when the server closes the connection (EOF or reset) within `within`,
    /// discarding anything it sends first.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
            }
        }
    }
}
