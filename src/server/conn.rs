//! One connection's phases and their timeouts, and the lingering close.
//!
//! Timeouts are enforced by a small I/O wrapper (`DeadlineIo`) rather than hyper's
//! own `header_read_timeout`: hyper starts that timer as soon as a keep-alive
//! connection goes idle, so it cannot express "10 s to send the headers, but 60 s of
//! idle keep-alive". The wrapper knows which phase the connection is in (waiting for a
//! request, receiving a request head, busy with a request: `ConnActivity`, which the
//! service updates) and fails the read or write that is pending when the phase's
//! deadline passes, which makes hyper close the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::config::ServerConfig;

/// How long, at least, a connection that must be closed with request bytes still
/// unread keeps reading (and discarding) them, so the client sees the error response
/// instead of a reset ("lingering close", as Apache and nginx do). A body that was
/// declared gets [`ServerConfig::body_read_timeout`] if that is longer.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// At most this many unread request bytes are discarded during a lingering close
/// when the request did not declare its length (chunked), or declared more than
/// [`LINGER_MAX_DECLARED_BYTES`].
pub const LINGER_MAX_BYTES: usize = 1 << 20;

/// A declared body (`Content-Length`) of up to this many bytes is read to its end
/// during a lingering close. A proxy (nginx, Apache's mod_proxy) sends the whole
/// body before it reads the answer, and reports a connection closed under it as 502:
/// draining the body lets an early 413 (or 401, 404, ...) reach the client intact.
/// It costs the sender as much bandwidth as it costs us, and no memory.
pub const LINGER_MAX_DECLARED_BYTES: u64 = 64 << 20;

/// Where a connection is in its request cycle; decides which timeout applies.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Receiving a request head since the given instant (header timeout).
    Head(Instant),
    /// A request is being served (body, handler, deadline: enforced by the service).
    Busy,
    /// Between requests since the given instant (keep-alive timeout).
    Idle(Instant),
}

/// Per-connection state shared by the I/O wrapper and the service.
#[derive(Debug)]
pub(crate) struct ConnActivity {
    phase: Mutex<Phase>,
    /// Set when a response is sent without consuming the whole request body: the
    /// connection then closes with a lingering close.
    unread_input: AtomicBool,
    /// How many bytes that lingering close reads at most (see [`Self::mark_unread_input`]).
    linger_bytes: AtomicU64,
}

impl ConnActivity {
    pub(crate) fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            unread_input: AtomicBool::new(false),
            linger_bytes: AtomicU64::new(LINGER_MAX_BYTES as u64),
        }
    }

    fn with_phase<T>(&self, f: impl FnOnce(&mut Phase) -> T) -> T {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut phase)
    }

    /// The service started on a request: no connection-level deadline until it is done.
    pub(crate) fn request_started(&self) {
        self.with_phase(|p| *p = Phase::Busy);
    }

    /// The service produced its response: the keep-alive clock starts.
    pub(crate) fn request_finished(&self) {
        self.with_phase(|p| *p = Phase::Idle(Instant::now()));
    }

    /// The response leaves request bytes unread; close the connection lingering.
    /// `declared` is the request's `Content-Length`, if it had one: that much is
    /// drained (up to [`LINGER_MAX_DECLARED_BYTES`]; else [`LINGER_MAX_BYTES`]).
    pub(crate) fn mark_unread_input(&self, declared: Option<u64>) {
        let limit = match declared {
            Some(n) if n <= LINGER_MAX_DECLARED_BYTES => n.max(LINGER_MAX_BYTES as u64),
            _ => LINGER_MAX_BYTES as u64,
        };
        self.linger_bytes.store(limit, Ordering::Relaxed);
        self.unread_input.store(true, Ordering::Relaxed);
    }

    /// The most a lingering close reads, and whether a declared body is drained.
    fn linger_limit(&self) -> (u64, bool) {
        let limit = self.linger_bytes.load(Ordering::Relaxed);
        (limit, limit > LINGER_MAX_BYTES as u64)
    }

    fn has_unread_input(&self) -> bool {
        self.unread_input.load(Ordering::Relaxed)
    }

    /// Bytes arrived: on an idle connection, that starts a new request head.
    fn bytes_read(&self) {
        self.with_phase(|p| {
            if let Phase::Idle(_) = p {
                *p = Phase::Head(Instant::now());
            }
        });
    }

    fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<Instant> {
        self.with_phase(|p| match *p {
            Phase::Head(since) => Some(since + header_timeout),
            Phase::Busy => None,
            Phase::Idle(since) => Some(since + idle_timeout),
        })
    }
}

/// The TCP stream with the phase deadlines of [`ConnActivity`] applied to pending reads
/// and writes, and a lingering close when request input was left unread.
pub(crate) struct DeadlineIo {
    stream: TcpStream,
    activity: Arc<ConnActivity>,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// How long a lingering close may drain a declared body.
    body_timeout: Duration,
    timer: Pin<Box<Sleep>>,
    /// `Some(bytes discarded so far)` once a lingering close has started.
    lingering: Option<u64>,
}

impl DeadlineIo {
    pub(crate) fn new(
        stream: TcpStream,
        activity: Arc<ConnActivity>,
        config: &ServerConfig,
    ) -> Self {
        Self {
            stream,
            activity,
            header_timeout: config.header_read_timeout,
            idle_timeout: config.keep_alive_timeout,
            body_timeout: config.body_read_timeout,
            timer: Box::pin(tokio::time::sleep(config.header_read_timeout)),
            lingering: None,
        }
    }

    /// Arms the timer for the current phase; true when its deadline has passed.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self
            .activity
            .deadline(self.header_timeout, self.idle_timeout)
        else {
            return false;
        };
        self.arm(deadline);
        self.timer.as_mut().poll(cx).is_ready()
    }

    fn arm(&mut self, deadline: Instant) {
        if self.timer.deadline() != deadline {
            self.timer.as_mut().reset(deadline);
        }
    }

    fn timed_out(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "connection phase timed out")
    }

    /// Reads and discards input until EOF, the connection's linger limit (see
    /// [`ConnActivity::mark_unread_input`]) or the linger deadline.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 16384];
        let (limit, _) = self.activity.linger_limit();
        loop {
            let drained = self.lingering.unwrap_or(0);
            if drained >= limit {
                return Poll::Ready(());
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    self.lingering = Some(drained + buf.filled().len() as u64);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => {
                    return match self.timer.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(()),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl AsyncRead for DeadlineIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(this.timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for DeadlineIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_write_vectored(cx, bufs) {
            Poll::Pending if this.poll_expired(cx) => Poll::Ready(Err(this.timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.activity.has_unread_input() {
            return Pin::new(&mut this.stream).poll_shutdown(cx);
        }
        if this.lingering.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            this.lingering = Some(0);
            let timeout = match this.activity.linger_limit() {
                (_, true) => LINGER_TIMEOUT.max(this.body_timeout),
                (_, false) => LINGER_TIMEOUT,
            };
            let deadline = Instant::now() + timeout;
            this.arm(deadline);
        }
        ready!(this.poll_linger(cx));
        Poll::Ready(Ok(()))
    }
}
