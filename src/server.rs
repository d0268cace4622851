//! The listener loop: connection caps (overall and per client address), read/idle
//! timeouts, graceful shutdown, and the trusted-proxy rules that decide which address
//! a request is attributed to.
//!
//! [`run`] takes an already bound listener (so `main` and the tests share it) and a
//! shutdown future. Each accepted connection is served by hyper's HTTP/1 state machine
//! with the service in [`crate::http`].
//!
//! Timeouts are enforced by a small I/O wrapper rather than hyper's own
//! `header_read_timeout`: hyper starts that timer as soon as a keep-alive connection
//! goes idle, so it cannot express "10 s to send the headers, but 60 s of idle
//! keep-alive". The wrapper knows which phase the connection is in (waiting for a
//! request, receiving a request head, busy with a request) and fails the read or write
//! that is pending when the phase's deadline passes, which makes hyper close the
//! connection.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use hyper::header::{HeaderMap, FORWARDED};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::budget::ByteBudget;
use crate::http::{RpcHandler, RpcService, Shared};

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

/// The canned answer written (best effort, without reading the request) to a
/// connection accepted above [`ServerConfig::max_connections`], just before closing it.
const OVER_CAPACITY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Server: roundup-xmlrpc-server\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 21\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
\r\n\
too many connections\n";

/// The canned answer to a connection from an address that already has
/// [`ServerConfig::max_connections_per_address`] connections open.
const OVER_ADDRESS_CAP_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Server: roundup-xmlrpc-server\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Length: 39\r\n\
Retry-After: 1\r\n\
Connection: close\r\n\
\r\n\
too many connections from this address\n";

/// Pause after a failed `accept()` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// Minimum interval between two "connection cap reached" warnings in the log.
const CAP_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Which proxy header carries the client address when the TCP peer is a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

/// Limits and timeouts of the HTTP front end. [`Default`] gives values that are safe
/// to expose to untrusted clients.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body as sent on the wire, in bytes (413 above it).
    /// Checked against `Content-Length` before reading, and while reading chunked bodies.
    pub max_body_bytes: usize,
    /// Largest accepted body after gunzipping a `Content-Encoding: gzip` request (413
    /// above it); decompression stops as soon as this is exceeded.
    pub max_decoded_body_bytes: usize,
    /// Time a client has to send a complete request head, counted from the accept for
    /// the first request and from the first byte for later ones on a keep-alive
    /// connection. On expiry the connection is closed without a response.
    pub header_read_timeout: Duration,
    /// Time a client has to send the whole request body once the head is in (408).
    pub body_read_timeout: Duration,
    /// How long an idle keep-alive connection is kept open waiting for the next request;
    /// also bounds how long a client may take to read a response.
    pub keep_alive_timeout: Duration,
    /// Maximum number of open connections. Connections accepted above the cap get a
    /// best-effort `503` and are closed at once, without reading the request.
    pub max_connections: usize,
    /// Maximum number of open connections from one client address (IPv4 address, or
    /// IPv6 /64 network), counted by TCP peer at accept time; above it the same `503`
    /// as for [`ServerConfig::max_connections`]. Trusted proxies are exempt (all their
    /// clients share their address; the overall cap still applies). 0: no cap.
    pub max_connections_per_address: usize,
    /// Request bodies (as received, plus gunzipped copies) held in memory at once, over
    /// all requests, in bytes. A body is reserved before it is read (its
    /// `Content-Length`, or chunk by chunk); a request that does not fit gets `503`
    /// with `Retry-After`. Keep it at least [`ServerConfig::max_body_bytes`], or the
    /// largest requests can never be served.
    pub max_body_bytes_in_flight: usize,
    /// Deadline for one request: for its authorization (from the head), and again for
    /// the call once its body is read (waiting for a handler slot plus running it). A
    /// call that has not started to commit by then is abandoned: the client gets `503`
    /// at once, its read is interrupted and its write rolled back. A call that started
    /// to commit before the deadline is always answered.
    pub request_deadline: Duration,
    /// Maximum number of handler calls running at once on blocking threads; further
    /// requests wait (within their deadline) for a slot.
    pub max_blocking_handlers: usize,
    /// After the shutdown future resolves, how long in-flight requests get to finish
    /// before the remaining connections are dropped and [`run`] returns.
    pub shutdown_grace: Duration,
    /// Maximum number of request header fields (431 above it).
    pub max_headers: usize,
    /// Maximum size of the request line plus headers, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// Responses whose body is larger than this many bytes are gzip-compressed when the
    /// client sends `Accept-Encoding: gzip` (Python's `xmlrpc.server` uses 1400).
    pub gzip_threshold: usize,
    /// Proxies whose forwarding header is believed. When the TCP peer is in one of these
    /// networks, the client address is the rightmost untrusted address of the header
    /// chosen by [`ServerConfig::forwarded_header`]. Empty (the default): never believe.
    pub trusted_proxies: Vec<IpNet>,
    /// The header the trusted proxies set; the other one is ignored, so a client cannot
    /// smuggle a fake address through the header the proxy does not rewrite.
    pub forwarded_header: ForwardedHeader,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decoded_body_bytes: 16 << 20,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_connections_per_address: 64,
            max_body_bytes_in_flight: 64 << 20,
            request_deadline: Duration::from_secs(60),
            max_blocking_handlers: 8,
            shutdown_grace: Duration::from_secs(10),
            max_headers: 100,
            max_header_bytes: 64 << 10,
            gzip_threshold: 1400,
            trusted_proxies: Vec::new(),
            forwarded_header: ForwardedHeader::default(),
        }
    }
}

/// Serves HTTP/1 on `listener` until `shutdown` resolves, then stops accepting, gives
/// in-flight requests [`ServerConfig::shutdown_grace`] to finish, and returns.
///
/// Errors from individual connections (and from `accept`, which is retried after a
/// short pause) are logged, never returned.
pub async fn run(
    listener: TcpListener,
    handler: Arc<dyn RpcHandler>,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let shared = Arc::new(Shared {
        handler,
        config: Arc::clone(&config),
        blocking: Arc::new(Semaphore::new(config.max_blocking_handlers.max(1))),
        budget: ByteBudget::new(config.max_body_bytes_in_flight),
    });
    let connection_slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let address_slots = Arc::new(AddressSlots::new(config.max_connections_per_address));
    let mut address_rejected_since_warn: u64 = 0;
    let mut last_address_warn: Option<Instant> = None;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .title_case_headers(true)
        .header_read_timeout(None)
        .max_headers(config.max_headers)
        .max_header_size(config.max_header_bytes);
    let builder = Arc::new(builder);
    let mut connections = JoinSet::new();
    let mut rejected_since_warn: u64 = 0;
    let mut last_cap_warn: Option<Instant> = None;

    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "listening");
    }
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, tcp_peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                warn!(error = %err, "accept failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_BACKOFF) => continue,
                }
            }
        };
        let Ok(slot) = Arc::clone(&connection_slots).try_acquire_owned() else {
            reject_over_capacity(&stream);
            drop(stream);
            rejected_since_warn += 1;
            if last_cap_warn.is_none_or(|at| at.elapsed() >= CAP_WARN_INTERVAL) {
                warn!(
                    max_connections = config.max_connections,
                    rejected = rejected_since_warn,
                    "connection cap reached; rejecting new connections"
                );
                last_cap_warn = Some(Instant::now());
                rejected_since_warn = 0;
            }
            continue;
        };
        let trusted = config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(tcp_peer.ip()));
        let address_slot = if trusted {
            None
        } else {
            match address_slots.try_acquire(tcp_peer.ip()) {
                Ok(slot) => slot,
                Err(()) => {
                    let _ = stream.try_write(OVER_ADDRESS_CAP_RESPONSE);
                    drop(stream);
                    address_rejected_since_warn += 1;
                    if last_address_warn.is_none_or(|at| at.elapsed() >= CAP_WARN_INTERVAL) {
                        warn!(
                            peer = %tcp_peer.ip(),
                            max_connections_per_address = config.max_connections_per_address,
                            rejected = address_rejected_since_warn,
                            "per-address connection cap reached; rejecting its new connections"
                        );
                        last_address_warn = Some(Instant::now());
                        address_rejected_since_warn = 0;
                    }
                    continue;
                }
            }
        };
        // Latency matters more than packet count for small RPC answers.
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(ConnActivity::new());
        let io = TokioIo::new(DeadlineIo::new(stream, Arc::clone(&activity), &config));
        let service = RpcService::new(Arc::clone(&shared), tcp_peer, activity);
        let builder = Arc::clone(&builder);
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let _slot = slot;
            let _address_slot = address_slot;
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                debug!(peer = %tcp_peer, error = %err, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let in_flight = connections.len();
    info!(connections = in_flight, "shutting down");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = connections.len(),
            "shutdown grace period over; dropping remaining connections"
        );
        connections.shutdown().await;
    }
    info!("server stopped");
    Ok(())
}

/// Writes the canned 503 if the socket accepts it right away; never blocks.
fn reject_over_capacity(stream: &TcpStream) {
    let _ = stream.try_write(OVER_CAPACITY_RESPONSE);
}

/// Open connections per client address, for
/// [`ServerConfig::max_connections_per_address`]. IPv6 peers are counted per /64, the
/// smallest network a single host usually gets.
#[derive(Debug)]
struct AddressSlots {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted in [`AddressSlots`]; uncounted on drop.
#[derive(Debug)]
struct AddressSlot {
    slots: Arc<AddressSlots>,
    key: IpAddr,
}

impl AddressSlots {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The counting key of a peer address: IPv4 as is, IPv6 its /64.
    fn key(ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => IpAddr::from((u128::from(v6) & !u128::from(u64::MAX)).to_be_bytes()),
            v4 => v4,
        }
    }

    /// Counts one more connection from `ip`: `Ok(None)` without a cap, `Err` when
    /// the address is at its cap.
    fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Option<AddressSlot>, ()> {
        if self.limit == 0 {
            return Ok(None);
        }
        let key = Self::key(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return Err(());
        }
        *count += 1;
        Ok(Some(AddressSlot {
            slots: Arc::clone(self),
            key,
        }))
    }

    #[cfg(test)]
    fn open_from(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&Self::key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A network (address plus prefix length) of trusted proxies, e.g. `10.0.0.0/8`,
/// `::1` or `fd00::/8`. Parse one with [`str::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a trusted-proxy network could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("invalid IP address {0:?}")]
    Address(String),
    /// The prefix length is not a number or is too long for the address family.
    #[error("invalid prefix length {0:?}")]
    PrefixLen(String),
}

impl IpNet {
    /// The network of `addr` with the given prefix length (host bits are cleared); fails
    /// when `prefix_len` exceeds 32 (IPv4) or 128 (IPv6).
    pub fn new(addr: IpAddr, prefix_len: u8) -> Result<Self, IpNetError> {
        let addr = addr.to_canonical();
        let net = match addr {
            IpAddr::V4(v4) if prefix_len <= 32 => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(prefix_len))
                    .unwrap_or(0);
                IpAddr::from((u32::from(v4) & mask).to_be_bytes())
            }
            IpAddr::V6(v6) if prefix_len <= 128 => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(prefix_len))
                    .unwrap_or(0);
                IpAddr::from((u128::from(v6) & mask).to_be_bytes())
            }
            _ => return Err(IpNetError::PrefixLen(prefix_len.to_string())),
        };
        Ok(Self {
            addr: net,
            prefix_len,
        })
    }

    /// A network holding exactly one address.
    pub fn host(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix_len }
    }

    /// True when `ip` (IPv4-mapped IPv6 addresses count as IPv4) is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let host_bits = |width: u32| width - u32::from(self.prefix_len);
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => (u32::from(net) ^ u32::from(ip))
                .checked_shr(host_bits(32))
                .is_none_or(|rest| rest == 0),
            (IpAddr::V6(net), IpAddr::V6(ip)) => (u128::from(net) ^ u128::from(ip))
                .checked_shr(host_bits(128))
                .is_none_or(|rest| rest == 0),
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| IpNetError::Address(addr.to_owned()))?;
        match prefix {
            None => Ok(Self::host(addr)),
            Some(prefix) => {
                let len: u8 = prefix
                    .parse()
                    .map_err(|_| IpNetError::PrefixLen(prefix.to_owned()))?;
                Self::new(addr, len)
            }
        }
    }
}

impl From<IpAddr> for IpNet {
    fn from(addr: IpAddr) -> Self {
        Self::host(addr)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// The address a request is attributed to: the TCP peer, unless that peer is a trusted
/// proxy, in which case the rightmost address of the forwarding header that is not a
/// trusted proxy (or the leftmost one, when all of them are trusted).
///
/// Walking from the right stops at an entry that is not an address (`unknown`,
/// obfuscated identifiers, garbage): everything left of it is unverifiable, so the last
/// trusted hop is used. A header that is not ASCII is ignored as a whole. Addresses
/// without a port get port 0.
pub fn resolve_peer(
    tcp_peer: SocketAddr,
    headers: &HeaderMap,
    trusted_proxies: &[IpNet],
    forwarded_header: ForwardedHeader,
) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !is_trusted(tcp_peer.ip()) {
        return tcp_peer;
    }
    let Some(hops) = forwarded_hops(headers, forwarded_header) else {
        return tcp_peer;
    };
    let mut client = tcp_peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(addr) => {
                client = *addr;
                if !is_trusted(addr.ip()) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The hops listed in the chosen header, left to right (`None` for an entry that is not
/// an address); `None` when a header value is not ASCII.
fn forwarded_hops(headers: &HeaderMap, which: ForwardedHeader) -> Option<Vec<Option<SocketAddr>>> {
    let mut hops = Vec::new();
    match which {
        ForwardedHeader::XForwardedFor => {
            for value in headers.get_all("x-forwarded-for") {
                let value = value.to_str().ok()?;
                hops.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(parse_node),
                );
            }
        }
        ForwardedHeader::Forwarded => {
            for value in headers.get_all(FORWARDED) {
                let value = value.to_str().ok()?;
                for element in split_unquoted(value, ',') {
                    if element.trim().is_empty() {
                        continue;
                    }
                    let node = split_unquoted(element, ';').find_map(|pair| {
                        let (key, val) = pair.split_once('=')?;
                        key.trim().eq_ignore_ascii_case("for").then_some(val)
                    });
                    hops.push(node.and_then(parse_node));
                }
            }
        }
    }
    Some(hops)
}

/// Splits `s` on `sep` outside double-quoted strings (RFC 7239 values may be quoted).
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    let mut parts = Vec::new();
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if c == sep && !in_quotes {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts.into_iter()
}

/// Parses one node: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, optionally
/// double-quoted; an obfuscated port (`1.2.3.4:_x`) is dropped. Anything else is `None`.
fn parse_node(node: &str) -> Option<SocketAddr> {
    let node = node.trim();
    let node = node
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(node);
    let canonical = |addr: SocketAddr| SocketAddr::new(addr.ip().to_canonical(), addr.port());
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(canonical(addr));
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical(SocketAddr::new(ip, 0)));
    }
    let host = match node.strip_prefix('[') {
        Some(rest) => rest.split_once(']')?.0,
        None => node.split_once(':')?.0,
    };
    let ip: IpAddr = host.parse().ok()?;
    Some(canonical(SocketAddr::new(ip, 0)))
}

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
    fn new() -> Self {
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
struct DeadlineIo {
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
    fn new(stream: TcpStream, activity: Arc<ConnActivity>, config: &ServerConfig) -> Self {
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

/// Takes the listening TCP socket passed by systemd socket activation (or any
/// manager speaking its protocol): the first of the `LISTEN_FDS` descriptors, fd 3,
/// when `LISTEN_PID` is this process (or unset). `Ok(None)` when no socket was passed.
///
/// Call it before any thread is started: it removes `LISTEN_FDS` and `LISTEN_PID` from
/// the environment, so that child processes do not take the socket for theirs. The
/// returned listener is non-blocking, ready for [`TcpListener::from_std`]. An error
/// means a socket was passed but is not a listening TCP socket (e.g. a Unix socket).
pub fn take_inherited_listener() -> io::Result<Option<std::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() > 1 {
        warn!(
            sockets = fds.len(),
            "socket activation passed several sockets; serving only the first (fd 3)"
        );
    }
    let listener = fds.take_tcp_listener(0)?;
    if let Some(listener) = &listener {
        listener.set_nonblocking(true)?;
    }
    Ok(listener)
}

/// Tells the service manager (systemd `Type=notify`, through `NOTIFY_SOCKET`) that
/// start-up is finished, with a one-line status. Does nothing outside systemd;
/// a failure to notify is logged, never fatal.
pub fn notify_ready(status: &str) {
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(status),
    ]);
}

/// Tells the service manager that the server is shutting down (`STOPPING=1`).
pub fn notify_stopping() {
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("shutting down"),
    ]);
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(states) {
        warn!(error = %err, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn resolve(
        peer: &str,
        pairs: &[(&'static str, &'static str)],
        which: ForwardedHeader,
    ) -> SocketAddr {
        let trusted = [net("10.0.0.0/8"), net("::1"), net("192.168.1.1")];
        resolve_peer(addr(peer), &headers(pairs), &trusted, which)
    }

    const XFF: ForwardedHeader = ForwardedHeader::XForwardedFor;
    const FWD: ForwardedHeader = ForwardedHeader::Forwarded;

    #[test]
    fn ipnet_parsing_and_membership() {
        let n = net("10.1.2.3/8");
        assert_eq!(n.to_string(), "10.0.0.0/8");
        assert!(n.contains("10.255.0.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(
            n.contains("::ffff:10.0.0.7".parse().unwrap()),
            "v4-mapped counts as v4"
        );
        assert!(net("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!net("0.0.0.0/0").contains("::2".parse().unwrap()));
        assert!(net("::/0").contains("::2".parse().unwrap()));
        assert!(net("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(!net("fd00::/8").contains("fe80::1".parse().unwrap()));
        assert!(net("127.0.0.1").contains("127.0.0.1".parse().unwrap()));
        assert!(!net("127.0.0.1").contains("127.0.0.2".parse().unwrap()));
        assert_eq!(
            "1.2.3.4/33".parse::<IpNet>(),
            Err(IpNetError::PrefixLen("33".into()))
        );
        assert_eq!(
            "::1/129".parse::<IpNet>(),
            Err(IpNetError::PrefixLen("129".into()))
        );
        assert_eq!(
            "1.2.3/8".parse::<IpNet>(),
            Err(IpNetError::Address("1.2.3".into()))
        );
        assert_eq!(
            "1.2.3.4/x".parse::<IpNet>(),
            Err(IpNetError::PrefixLen("x".into()))
        );
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let got = resolve("8.8.8.8:1000", &[("x-forwarded-for", "1.1.1.1")], XFF);
        assert_eq!(got, addr("8.8.8.8:1000"));
        let got = resolve("8.8.8.8:1000", &[("forwarded", "for=1.1.1.1")], FWD);
        assert_eq!(got, addr("8.8.8.8:1000"));
    }

    #[test]
    fn trusted_peer_without_header_is_the_peer() {
        assert_eq!(resolve("10.0.0.1:5", &[], XFF), addr("10.0.0.1:5"));
    }

    #[test]
    fn xff_rightmost_untrusted_wins() {
        let got = resolve(
            "10.0.0.1:5",
            &[("x-forwarded-for", "6.6.6.6, 2.2.2.2, 10.0.0.9")],
            XFF,
        );
        assert_eq!(got, addr("2.2.2.2:0"));
        // Several header lines are one list, in order.
        let got = resolve(
            "10.0.0.1:5",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "3.3.3.3:4711, 192.168.1.1"),
            ],
            XFF,
        );
        assert_eq!(got, addr("3.3.3.3:4711"));
    }

    #[test]
    fn xff_all_trusted_gives_leftmost() {
        let got = resolve("[::1]:5", &[("x-forwarded-for", "10.1.1.1, 10.2.2.2")], XFF);
        assert_eq!(got, addr("10.1.1.1:0"));
    }

    #[test]
    fn xff_garbage_stops_at_last_trusted_hop() {
        let got = resolve(
            "10.0.0.1:5",
            &[("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.2")],
            XFF,
        );
        assert_eq!(got, addr("10.0.0.2:0"));
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "nonsense")], XFF);
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn xff_ipv6_forms() {
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "2001:db8::1")], XFF);
        assert_eq!(got, addr("[2001:db8::1]:0"));
        let got = resolve(
            "10.0.0.1:5",
            &[("x-forwarded-for", "[2001:db8::2]:99")],
            XFF,
        );
        assert_eq!(got, addr("[2001:db8::2]:99"));
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "::ffff:5.5.5.5")], XFF);
        assert_eq!(got, addr("5.5.5.5:0"));
    }

    #[test]
    fn wrong_header_kind_is_ignored() {
        let got = resolve("10.0.0.1:5", &[("forwarded", "for=1.1.1.1")], XFF);
        assert_eq!(got, addr("10.0.0.1:5"));
        let got = resolve("10.0.0.1:5", &[("x-forwarded-for", "1.1.1.1")], FWD);
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn forwarded_header_forms() {
        let got = resolve(
            "10.0.0.1:5",
            &[(
                "forwarded",
                "for=6.6.6.6;proto=http, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1, for=10.9.9.9",
            )],
            FWD,
        );
        assert_eq!(got, addr("[2001:db8:cafe::17]:4711"));
        let got = resolve(
            "10.0.0.1:5",
            &[("forwarded", "for=\"4.4.4.4:_hidden\";host=\"a,b\"")],
            FWD,
        );
        assert_eq!(got, addr("4.4.4.4:0"));
        let got = resolve(
            "10.0.0.1:5",
            &[("forwarded", "for=6.6.6.6, for=_hidden, for=10.0.0.3")],
            FWD,
        );
        assert_eq!(got, addr("10.0.0.3:0"));
        // An element without for= is not an address either.
        let got = resolve(
            "10.0.0.1:5",
            &[("forwarded", "for=6.6.6.6, proto=https")],
            FWD,
        );
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn non_ascii_header_is_ignored() {
        let mut map = HeaderMap::new();
        map.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.1.1.1\xff").unwrap(),
        );
        let got = resolve_peer(addr("10.0.0.1:5"), &map, &[net("10.0.0.0/8")], XFF);
        assert_eq!(got, addr("10.0.0.1:5"));
    }

    #[test]
    fn address_slots_cap_each_address() {
        let slots = Arc::new(AddressSlots::new(2));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let a1 = slots.try_acquire(a).unwrap().expect("counted");
        let _a2 = slots.try_acquire(a).unwrap().expect("counted");
        assert!(slots.try_acquire(a).is_err(), "third from a");
        // v4-mapped IPv6 is the same client.
        assert!(slots
            .try_acquire("::ffff:192.0.2.1".parse().unwrap())
            .is_err());
        let _b1 = slots.try_acquire(b).unwrap().expect("other address");
        drop(a1);
        assert_eq!(slots.open_from(a), 1);
        let _a3 = slots.try_acquire(a).unwrap().expect("freed slot");
        assert!(slots.try_acquire(a).is_err());
    }

    #[test]
    fn address_slots_count_ipv6_per_64() {
        let slots = Arc::new(AddressSlots::new(1));
        let _x = slots
            .try_acquire("2001:db8:1:2::1".parse().unwrap())
            .unwrap();
        assert!(slots
            .try_acquire("2001:db8:1:2:ffff::9".parse().unwrap())
            .is_err());
        assert!(slots
            .try_acquire("2001:db8:1:3::1".parse().unwrap())
            .is_ok());
    }

    #[test]
    fn address_slots_zero_is_no_cap_and_entries_are_freed() {
        let none = Arc::new(AddressSlots::new(0));
        let ip: IpAddr = "10.1.1.1".parse().unwrap();
        for _ in 0..1000 {
            assert!(none.try_acquire(ip).unwrap().is_none());
        }
        let slots = Arc::new(AddressSlots::new(3));
        let held: Vec<_> = (0..3).map(|_| slots.try_acquire(ip).unwrap()).collect();
        drop(held);
        assert!(
            slots.open.lock().unwrap().is_empty(),
            "no entry left behind"
        );
    }

    #[test]
    fn split_unquoted_respects_quotes() {
        let parts: Vec<&str> = split_unquoted("a=\"x,y\",b=\"q\\\"\",c", ',').collect();
        assert_eq!(parts, ["a=\"x,y\"", "b=\"q\\\"\"", "c"]);
    }
}
