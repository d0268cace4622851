//! The hyper service: paths, methods, body limits, gzip (placeholder; being written).

use std::net::SocketAddr;

/// A POST that reached an RPC path, with its body fully read (and gunzipped).
#[derive(Debug)]
pub struct RpcRequest {
    /// The request path, e.g. `/demo/xmlrpc`.
    pub path: String,
    /// All request headers.
    pub headers: hyper::HeaderMap,
    /// The request body.
    pub body: bytes::Bytes,
    /// The client address (after trusted-proxy resolution).
    pub peer: SocketAddr,
}

/// What the application answers to an [`RpcRequest`].
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
    /// Answers one RPC request. Blocking: the HTTP layer calls it on a blocking thread.
    fn handle(&self, req: RpcRequest) -> RpcResponse;
}
