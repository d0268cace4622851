//! [`ServerConfig`]: the limits and timeouts of the HTTP front end, whose
//! forwarding headers it believes, who may read `/metrics`, and the metrics it
//! counts into. Built (by `config::serve`) from the
//! flags and the trackers' `[xmlrpc_server]` options; the tests build their own.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use super::peer::{ForwardedHeader, IpNet};
use crate::metrics::Metrics;

/// Who may read `/metrics` by default: the loopback addresses.
pub fn default_metrics_allow() -> Vec<IpNet> {
    vec![
        IpNet::new_assert(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
        IpNet::new_assert(IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    ]
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
    /// before the remaining connections are dropped and [`super::run`] returns.
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
    /// Clients (after trusted-proxy resolution) that may read `GET /metrics`; others
    /// get `403`. Default: loopback ([`default_metrics_allow`]).
    pub metrics_allow: Vec<IpNet>,
    /// Where the front end counts connections and responses, and what `/metrics`
    /// shows (the application counts its calls into the same one).
    pub metrics: Arc<Metrics>,
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
            metrics_allow: default_metrics_allow(),
            metrics: Arc::new(Metrics::new()),
        }
    }
}
