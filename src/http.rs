//! The hyper service: paths, methods, body limits, gzip, the request deadline.
//!
//! For each request on a connection served by [`crate::server::run`]: `GET`/`HEAD
//! /health` answers `ok`; a path the [`RpcHandler`] does not serve is 404; a method
//! other than POST is 405 (`Allow: POST`); the body is read within the size and time
//! limits of [`ServerConfig`] (gunzipped if sent with `Content-Encoding: gzip`), and the
//! handler runs on a blocking thread under the request deadline. Its [`RpcResponse`] is
//! passed through unchanged apart from framing headers and optional gzip compression.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE, SERVER, TRANSFER_ENCODING, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::server::{resolve_peer, ConnActivity, ServerConfig};

/// Value of the `Server` header on every response.
pub const SERVER_NAME: &str = "roundup-xmlrpc-server";

/// The load-balancer health check path (`GET` or `HEAD` answers `200 ok`).
pub const HEALTH_PATH: &str = "/health";

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

/// Why a request got an error response from the HTTP layer instead of the handler's.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The path is not served by the handler (404).
    #[error("no such path")]
    NotFound,
    /// The method is not allowed on this path (405 with the given `Allow` header).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// The value of the `Allow` header.
        allow: &'static str,
    },
    /// `Content-Encoding` other than `gzip`/`x-gzip`/`identity`, or stacked codings (415).
    #[error("unsupported Content-Encoding")]
    UnsupportedEncoding,
    /// The body (as declared or as sent) exceeds [`ServerConfig::max_body_bytes`] (413).
    #[error("request body larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The gunzipped body exceeds [`ServerConfig::max_decoded_body_bytes`] (413).
    #[error("decoded request body larger than {limit} bytes")]
    DecodedTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The gzip body does not decompress (400).
    #[error("corrupt gzip request body: {0}")]
    CorruptGzip(#[source] io::Error),
    /// The body did not arrive within [`ServerConfig::body_read_timeout`] (408).
    #[error("timed out reading the request body")]
    BodyTimeout,
    /// The body could not be read (client went away, framing error) (400).
    #[error("reading the request body failed: {0}")]
    BodyRead(#[source] hyper::Error),
    /// The handler did not answer within [`ServerConfig::request_deadline`] (503).
    #[error("request deadline exceeded")]
    Deadline,
    /// The handler panicked (500).
    #[error("handler panicked: {0}")]
    HandlerPanicked(String),
    /// The blocking task was cancelled, e.g. by runtime shutdown (500).
    #[error("handler task failed: {0}")]
    HandlerFailed(#[source] tokio::task::JoinError),
}

impl RequestError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTooLarge { .. } | Self::DecodedTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::CorruptGzip(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Deadline => StatusCode::SERVICE_UNAVAILABLE,
            Self::HandlerPanicked(_) | Self::HandlerFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short text/plain body (no internal details).
    fn message(&self) -> &'static str {
        match self {
            Self::NotFound => "not found\n",
            Self::MethodNotAllowed { .. } => "method not allowed\n",
            Self::UnsupportedEncoding => "unsupported content encoding\n",
            Self::BodyTooLarge { .. } => "request body too large\n",
            Self::DecodedTooLarge { .. } => "decoded request body too large\n",
            Self::CorruptGzip(_) => "corrupt gzip request body\n",
            Self::BodyTimeout => "timed out reading the request body\n",
            Self::BodyRead(_) => "could not read the request body\n",
            Self::Deadline => "request deadline exceeded\n",
            Self::HandlerPanicked(_) | Self::HandlerFailed(_) => "internal server error\n",
        }
    }

    /// The response for this error; the one place where HTTP-layer errors become
    /// responses.
    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = text_response(self.status(), self.message());
        match &self {
            Self::MethodNotAllowed { allow } => {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
            }
            Self::Deadline => {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

/// A `text/plain` response with the standard headers.
fn text_response(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    headers.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    response
}

/// The coding of a request body, from its `Content-Encoding` header(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestCoding {
    Identity,
    Gzip,
}

fn request_coding(headers: &hyper::HeaderMap) -> Result<RequestCoding, RequestError> {
    let mut codings = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let value = value
            .to_str()
            .map_err(|_| RequestError::UnsupportedEncoding)?;
        codings.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")),
        );
    }
    match codings.as_slice() {
        [] => Ok(RequestCoding::Identity),
        [c] if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") => {
            Ok(RequestCoding::Gzip)
        }
        _ => Err(RequestError::UnsupportedEncoding),
    }
}

/// True when `Accept-Encoding` lets us answer with gzip (`gzip`, `x-gzip` or `*` with a
/// non-zero q-value; an explicit `gzip` entry overrides `*`).
pub fn accepts_gzip(headers: &hyper::HeaderMap) -> bool {
    let mut gzip_q: Option<f32> = None;
    let mut any_q: Option<f32> = None;
    for value in headers.get_all(ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut params = item.split(';');
            let coding = params.next().unwrap_or("").trim();
            let mut q = 1.0f32;
            for param in params {
                if let Some((key, val)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = val.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip_q = Some(q);
            } else if coding == "*" {
                any_q = Some(q);
            }
        }
    }
    gzip_q.or(any_q).is_some_and(|q| q > 0.0)
}

/// Gunzips `data` (one or more gzip members), failing as soon as the output would
/// exceed `limit` bytes. An empty body stays empty.
pub fn gunzip_limited(data: &[u8], limit: usize) -> Result<Vec<u8>, RequestError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut decoder = flate2::read::MultiGzDecoder::new(data).take(cap);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    decoder
        .read_to_end(&mut out)
        .map_err(RequestError::CorruptGzip)?;
    if out.len() > limit {
        return Err(RequestError::DecodedTooLarge { limit });
    }
    Ok(out)
}

/// Gzips a response body (fast level, like Python's `xmlrpc.server`).
pub fn gzip_encode(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    encoder.write_all(data)?;
    encoder.finish()
}

/// Reads a body of at most `limit` bytes.
async fn read_body(mut body: Incoming, limit: usize) -> Result<Bytes, RequestError> {
    let declared = body.size_hint().lower();
    let mut buf = BytesMut::with_capacity(usize::try_from(declared).unwrap_or(limit).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(RequestError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            if buf.len().saturating_add(data.len()) > limit {
                return Err(RequestError::BodyTooLarge { limit });
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// What the blocking part produces: the handler's answer and the body to send.
struct Reply {
    response: RpcResponse,
    body: Bytes,
    gzipped: bool,
}

/// Decodes the body if needed, calls the handler and compresses its answer if wanted;
/// runs on a blocking thread.
fn run_handler(
    handler: &dyn RpcHandler,
    mut request: RpcRequest,
    coding: RequestCoding,
    max_decoded: usize,
    gzip_above: Option<usize>,
) -> Result<Reply, RequestError> {
    if coding == RequestCoding::Gzip {
        request.body = Bytes::from(gunzip_limited(&request.body, max_decoded)?);
    }
    let mut response = handler.handle(request);
    let body = std::mem::take(&mut response.body);
    let compress = gzip_above.is_some_and(|threshold| body.len() > threshold)
        && !response.headers.contains_key(CONTENT_ENCODING);
    if compress {
        match gzip_encode(&body) {
            Ok(gzipped) => {
                return Ok(Reply {
                    response,
                    body: Bytes::from(gzipped),
                    gzipped: true,
                })
            }
            Err(err) => warn!(error = %err, "gzip of the response failed; sending it plain"),
        }
    }
    Ok(Reply {
        response,
        body: Bytes::from(body),
        gzipped: false,
    })
}

/// Turns the handler's answer into the HTTP response: its status and headers, plus
/// Content-Type, Content-Length, Server, and the gzip headers.
fn reply_response(reply: Reply) -> Response<Full<Bytes>> {
    let Reply {
        response,
        body,
        gzipped,
    } = reply;
    let mut headers = response.headers;
    headers.remove(CONTENT_LENGTH);
    headers.remove(TRANSFER_ENCODING);
    let content_type = HeaderValue::from_str(response.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_TYPE, content_type);
    if gzipped {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if gzipped || !headers.contains_key(CONTENT_ENCODING) {
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    headers
        .entry(SERVER)
        .or_insert(HeaderValue::from_static(SERVER_NAME));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = response.status;
    *out.headers_mut() = headers;
    out
}

/// The text of a panic payload, for the log.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Marks the connection idle again when the request's future ends (or is dropped).
struct FinishGuard(Arc<ConnActivity>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// The per-connection hyper service.
pub(crate) struct RpcService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    handler: Arc<dyn RpcHandler>,
    config: Arc<ServerConfig>,
    blocking: Arc<Semaphore>,
    tcp_peer: SocketAddr,
    activity: Arc<ConnActivity>,
}

impl RpcService {
    /// A service for one connection from `tcp_peer`.
    pub(crate) fn new(
        handler: Arc<dyn RpcHandler>,
        config: Arc<ServerConfig>,
        blocking: Arc<Semaphore>,
        tcp_peer: SocketAddr,
        activity: Arc<ConnActivity>,
    ) -> Self {
        Self {
            inner: Arc::new(ServiceInner {
                handler,
                config,
                blocking,
                tcp_peer,
                activity,
            }),
        }
    }
}

impl hyper::service::Service<Request<Incoming>> for RpcService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { Ok(inner.respond(req).await) })
    }
}

impl ServiceInner {
    /// Answers one request and logs it.
    async fn respond(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let start = Instant::now();
        self.activity.request_started();
        let _finish = FinishGuard(Arc::clone(&self.activity));
        let (parts, body) = req.into_parts();
        let peer = resolve_peer(
            self.tcp_peer,
            &parts.headers,
            &self.config.trusted_proxies,
            self.config.forwarded_header,
        );
        let path = parts.uri.path().to_owned();
        let mut body_unread = !body.is_end_stream();
        let result = self
            .route(&parts, body, &path, peer, &mut body_unread)
            .await;
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                match &err {
                    RequestError::HandlerPanicked(_) | RequestError::HandlerFailed(_) => {
                        error!(%peer, path = %path, error = %err, "handler failed");
                    }
                    RequestError::Deadline => {
                        warn!(%peer, path = %path, "request deadline exceeded");
                    }
                    _ => debug!(%peer, path = %path, error = %err, "request rejected"),
                }
                err.into_response()
            }
        };
        if body_unread {
            // Unread input would otherwise be taken for the next request: close, and
            // linger so that the client gets to read this response.
            self.activity.mark_unread_input();
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        // Answered calls are logged once, by the application, with the user and
        // method; this line covers everything the HTTP layer decided itself.
        if response.status().is_success() && parts.method == Method::POST {
            debug!(
                %peer,
                method = %parts.method,
                path = %path,
                status = response.status().as_u16(),
                duration = ?start.elapsed(),
                "request"
            );
        } else {
            info!(
                %peer,
                method = %parts.method,
                path = %path,
                status = response.status().as_u16(),
                duration = ?start.elapsed(),
                "request"
            );
        }
        response
    }

    async fn route(
        &self,
        parts: &hyper::http::request::Parts,
        body: Incoming,
        path: &str,
        peer: SocketAddr,
        body_unread: &mut bool,
    ) -> Result<Response<Full<Bytes>>, RequestError> {
        let is_read = parts.method == Method::GET || parts.method == Method::HEAD;
        let rpc_path = self.handler.is_rpc_path(path);
        if path == HEALTH_PATH && is_read {
            return Ok(text_response(StatusCode::OK, "ok\n"));
        }
        if path == HEALTH_PATH && !(rpc_path && parts.method == Method::POST) {
            let allow = if rpc_path {
                "GET, HEAD, POST"
            } else {
                "GET, HEAD"
            };
            return Err(RequestError::MethodNotAllowed { allow });
        }
        if !rpc_path {
            return Err(RequestError::NotFound);
        }
        if parts.method != Method::POST {
            return Err(RequestError::MethodNotAllowed { allow: "POST" });
        }
        let coding = request_coding(&parts.headers)?;
        let limit = self.config.max_body_bytes;
        if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(RequestError::BodyTooLarge { limit });
        }
        let bytes = tokio::time::timeout(self.config.body_read_timeout, read_body(body, limit))
            .await
            .map_err(|_| RequestError::BodyTimeout)??;
        *body_unread = false;

        let request = RpcRequest {
            path: path.to_owned(),
            headers: parts.headers.clone(),
            body: bytes,
            peer,
        };
        let gzip_above = accepts_gzip(&parts.headers).then_some(self.config.gzip_threshold);
        let reply = self.call_handler(request, coding, gzip_above).await?;
        Ok(reply_response(reply))
    }

    /// Runs the handler on a blocking thread, holding one of the blocking slots, within
    /// the request deadline.
    async fn call_handler(
        &self,
        request: RpcRequest,
        coding: RequestCoding,
        gzip_above: Option<usize>,
    ) -> Result<Reply, RequestError> {
        let handler = Arc::clone(&self.handler);
        let blocking = Arc::clone(&self.blocking);
        let max_decoded = self.config.max_decoded_body_bytes;
        let work = async move {
            // The semaphore is never closed, so acquiring only fails if it were.
            let Ok(slot) = blocking.acquire_owned().await else {
                return Err(RequestError::Deadline);
            };
            let task = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                run_handler(handler.as_ref(), request, coding, max_decoded, gzip_above)
            });
            match task.await {
                Ok(result) => result,
                Err(err) if err.is_panic() => Err(RequestError::HandlerPanicked(panic_message(
                    err.into_panic().as_ref(),
                ))),
                Err(err) => Err(RequestError::HandlerFailed(err)),
            }
        };
        tokio::time::timeout(self.config.request_deadline, work)
            .await
            .map_err(|_| RequestError::Deadline)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, values: &[&'static str]) -> hyper::HeaderMap {
        let mut map = hyper::HeaderMap::new();
        for v in values {
            map.append(name, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn accept_encoding_parsing() {
        let ae = |v: &[&'static str]| accepts_gzip(&headers("accept-encoding", v));
        assert!(ae(&["gzip"]));
        assert!(ae(&["GZip"]));
        assert!(ae(&["deflate, gzip;q=0.5"]));
        assert!(ae(&["x-gzip"]));
        assert!(ae(&["*"]));
        assert!(ae(&["br", "gzip"]));
        assert!(!ae(&[]));
        assert!(!ae(&["identity"]));
        assert!(!ae(&["gzip;q=0"]));
        assert!(!ae(&["gzip; q=0.000"]));
        assert!(!ae(&["*, gzip;q=0"]));
        assert!(!ae(&["gzip;q=bogus"]));
        assert!(ae(&["gzip;q=0.001, *;q=0"]));
    }

    #[test]
    fn content_encoding_parsing() {
        let ce = |v: &[&'static str]| request_coding(&headers("content-encoding", v)).ok();
        assert_eq!(ce(&[]), Some(RequestCoding::Identity));
        assert_eq!(ce(&["identity"]), Some(RequestCoding::Identity));
        assert_eq!(ce(&["gzip"]), Some(RequestCoding::Gzip));
        assert_eq!(ce(&["X-GZIP"]), Some(RequestCoding::Gzip));
        assert_eq!(ce(&["identity, gzip"]), Some(RequestCoding::Gzip));
        assert_eq!(ce(&["br"]), None);
        assert_eq!(ce(&["gzip, gzip"]), None);
        assert_eq!(ce(&["gzip", "deflate"]), None);
    }

    #[test]
    fn gunzip_roundtrip_and_limits() {
        let data = vec![b'x'; 10_000];
        let gz = gzip_encode(&data).unwrap();
        assert_eq!(gunzip_limited(&gz, 10_000).unwrap(), data);
        assert!(matches!(
            gunzip_limited(&gz, 9_999),
            Err(RequestError::DecodedTooLarge { limit: 9_999 })
        ));
        // Two members decode as their concatenation.
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert_eq!(gunzip_limited(&two, 20_000).unwrap().len(), 20_000);
        assert!(matches!(
            gunzip_limited(b"not gzip at all", 100),
            Err(RequestError::CorruptGzip(_))
        ));
        assert!(matches!(
            gunzip_limited(&gz[..gz.len() / 2], 100_000),
            Err(RequestError::CorruptGzip(_))
        ));
        assert!(gunzip_limited(b"", 10).unwrap().is_empty());
    }
}
