//! What the front end asks of the application behind it ([`RpcHandler`]): decide
//! from a request's head whether its body is wanted ([`Authorization`]), then answer
//! the call ([`RpcCall`]) with an [`RpcResponse`]. The front end knows nothing more
//! of the application.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::deadline::Deadline;

/// The head of a POST that reached an RPC path; its body has not been read yet.
#[derive(Debug)]
pub struct RpcHead {
    /// The request path, e.g. `/demo/xmlrpc`.
    pub path: String,
    /// All request headers.
    pub headers: hyper::HeaderMap,
    /// The client address (after trusted-proxy resolution).
    pub peer: SocketAddr,
    /// The TCP peer: `peer` itself, or the trusted proxy that forwarded the request.
    pub tcp_peer: SocketAddr,
}

/// What the application answers to a request.
#[derive(Debug)]
pub struct RpcResponse {
    /// HTTP status (200 for results and faults).
    pub status: hyper::StatusCode,
    /// Extra headers (Content-Type is set from `content_type`).
    pub headers: hyper::HeaderMap,
    /// `text/xml` for XML-RPC answers, `text/html; charset=utf-8` or `text/plain` otherwise.
    pub content_type: &'static str,
    /// The body bytes (uncompressed; the HTTP layer may gzip them).
    pub body: Vec<u8>,
}

/// The application behind the HTTP front end.
pub trait RpcHandler: Send + Sync + 'static {
    /// True when `path` is served (otherwise the HTTP layer answers 404).
    fn is_rpc_path(&self, path: &str) -> bool;
    /// Decides from the request head alone whether its body is wanted (see
    /// [`Authorization`]). Blocking (the HTTP layer calls it on a blocking thread, holding a handler
    /// slot, within the request deadline); it must not hold a database transaction in
    /// the returned call, since the body may take [`super::ServerConfig::body_read_timeout`]
    /// to arrive.
    fn authorize(self: Arc<Self>, head: RpcHead) -> Authorization;
    /// Whether the application can serve calls, for `GET /health`: `Err` with a reason
    /// fit for the internet (no file paths) when it cannot. Blocking (run on a
    /// blocking thread, at most one at a time, within a short timeout); it must be
    /// cheap and must not write. The default: always healthy.
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What [`RpcHandler::authorize`] decided.
pub enum Authorization {
    /// Read the body and run this call on it.
    Call(Box<dyn RpcCall>),
    /// Send this answer without reading the body (the connection is then closed).
    Refuse(RpcResponse),
}

/// A request the handler accepted, waiting for its body.
pub trait RpcCall: Send {
    /// Answers the request with its (gunzipped) body. Blocking: runs on a blocking
    /// thread holding a handler slot. It must ask [`Deadline::begin_commit`] before
    /// every commit and roll back when refused; after a commit it must answer.
    fn call(self: Box<Self>, body: Bytes, deadline: &Deadline) -> RpcResponse;
}
