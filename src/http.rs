//! The hyper service: paths, methods, authorization before the body, body limits and
//! the body budget, gzip, the request deadline.
//!
//! For each request on a connection served by [`crate::server::run`]: `GET`/`HEAD
//! /health` answers `ok`; a path the [`RpcHandler`] does not serve is 404; a method
//! other than POST is 405 (`Allow: POST`); a POST with neither `Content-Length` nor
//! chunked framing is 411. Then, before the body is read, the handler decides from
//! the head alone ([`RpcHandler::authorize`], on a blocking thread): a refusal is
//! answered at once and the connection closed, so unauthenticated clients never get a
//! body into memory. (A body of at most [`EARLY_BODY_MAX`] bytes that has already
//! arrived with the head, without `Expect: 100-continue`, is taken along, from the
//! budget, and the handler authorizes and runs the call in one trip to a blocking
//! thread.) An accepted request reserves its body from
//! the global [`ByteBudget`] (`503` + `Retry-After` when it is spent), reads it
//! within the size and time limits of [`ServerConfig`] (gunzipped if sent with
//! `Content-Encoding: gzip`, the decoded copy counted too), and the call runs on a
//! blocking thread under the request [`Deadline`]. Its [`RpcResponse`] is passed
//! through unchanged apart from framing headers and optional gzip compression.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{
    HeaderValue, ACCEPT_ENCODING, ALLOW, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_TYPE, EXPECT, SERVER, TRANSFER_ENCODING, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::budget::{ByteBudget, Reservation};
use crate::deadline::Deadline;
use crate::log::field;
use crate::server::{resolve_peer, ConnActivity, ServerConfig};

/// Value of the `Server` header on every response.
pub const SERVER_NAME: &str = "roundup-xmlrpc-server";

/// The load-balancer health check path (`GET` or `HEAD` answers `200 ok`).
pub const HEALTH_PATH: &str = "/health";

/// The head of a POST that reached an RPC path; its body has not been read yet.
#[derive(Debug)]
pub struct RpcHead {
    /// The request path, e.g. `/demo/xmlrpc`.
    pub path: String,
    /// All request headers.
    pub headers: hyper::HeaderMap,
    /// The client address (after trusted-proxy resolution).
    pub peer: SocketAddr,
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
    /// the returned call, since the body may take [`ServerConfig::body_read_timeout`]
    /// to arrive.
    fn authorize(self: Arc<Self>, head: RpcHead) -> Authorization;
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
    /// A POST with neither `Content-Length` nor `Transfer-Encoding: chunked` (411).
    #[error("POST without Content-Length")]
    LengthRequired,
    /// The body does not fit in what is left of the global body budget
    /// ([`ServerConfig::max_body_bytes_in_flight`]) (503).
    #[error("body budget exhausted")]
    Busy,
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
    /// No handler slot within [`ServerConfig::request_deadline`], or the call passed
    /// it before committing anything (503).
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
            Self::LengthRequired => StatusCode::LENGTH_REQUIRED,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::LengthRequired => "Content-Length required\n",
            Self::Busy => "server busy: too many request bodies in flight\n",
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
            Self::Deadline | Self::Busy => {
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

/// Size of the first output buffer of [`gunzip_limited`] (it then doubles).
const GUNZIP_FIRST_BUFFER: usize = 64 << 10;

/// Gunzips `data` (one or more gzip members), failing as soon as the output would
/// exceed `limit` bytes. The output buffer is reserved from `reservation` before it
/// grows ([`RequestError::Busy`] when the budget is spent). An empty body stays empty.
pub fn gunzip_limited(
    data: &[u8],
    limit: usize,
    reservation: &mut Reservation,
) -> Result<Vec<u8>, RequestError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let mut out: Vec<u8> = Vec::new();
    let mut filled = 0;
    loop {
        if filled == out.len() {
            // One byte past the limit tells "exactly the limit" from "more".
            let cap = limit.saturating_add(1);
            if filled >= cap {
                return Err(RequestError::DecodedTooLarge { limit });
            }
            let target = out
                .len()
                .saturating_mul(2)
                .max(GUNZIP_FIRST_BUFFER)
                .min(cap);
            if !reservation.try_grow(target - out.len()) {
                return Err(RequestError::Busy);
            }
            out.reserve_exact(target - out.len());
            out.resize(target, 0);
        }
        let n = decoder
            .read(&mut out[filled..])
            .map_err(RequestError::CorruptGzip)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    if filled > limit {
        return Err(RequestError::DecodedTooLarge { limit });
    }
    out.truncate(filled);
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

/// Bodies up to this size (by `Content-Length`) that have fully arrived with the
/// head are taken along with it: the call is then authorized and run in one trip to a
/// blocking thread. Their bytes come from the body budget like any other body's.
pub const EARLY_BODY_MAX: usize = 64 << 10;

/// Moves the body frames that have already arrived into `buf` (hyper hands them over
/// after one scheduling round), without waiting for the client; true when that was
/// the whole body.
async fn take_arrived(body: &mut Incoming, buf: &mut Vec<u8>) -> Result<bool, RequestError> {
    let mut yielded = false;
    std::future::poll_fn(|cx| loop {
        if body.is_end_stream() {
            return Poll::Ready(Ok(true));
        }
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Err(RequestError::BodyRead(err))),
            Poll::Ready(None) => return Poll::Ready(Ok(true)),
            Poll::Pending if !yielded => {
                // Let the connection task move what it has read into the body.
                yielded = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Pending => return Poll::Ready(Ok(false)),
        }
    })
    .await
}

/// Reads the rest of a body (after the `buf` already read) of at most `limit` bytes,
/// its buffer reserved from `reservation` before it grows ([`RequestError::Busy`] when
/// the budget is spent; a body with a `Content-Length` has its whole length reserved
/// already).
async fn read_body(
    mut body: Incoming,
    limit: usize,
    reservation: &mut Reservation,
    mut buf: Vec<u8>,
) -> Result<Bytes, RequestError> {
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(limit);
    let room = declared
        .saturating_add(buf.len())
        .min(limit)
        .min(reservation.bytes());
    buf.reserve_exact(room.saturating_sub(buf.len()));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(RequestError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            let needed = buf.len().saturating_add(data.len());
            if needed > limit {
                return Err(RequestError::BodyTooLarge { limit });
            }
            if needed > buf.capacity() {
                let target = needed.max(buf.capacity().saturating_mul(2)).min(limit);
                let more = target.saturating_sub(reservation.bytes());
                if more > 0 && !reservation.try_grow(more) {
                    return Err(RequestError::Busy);
                }
                buf.reserve_exact(target - buf.len());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// What the blocking part produces: the handler's answer and the body to send.
struct Reply {
    response: RpcResponse,
    body: Bytes,
    gzipped: bool,
}

impl Reply {
    /// A reply sent as it is (never compressed).
    fn plain(mut response: RpcResponse) -> Reply {
        let body = Bytes::from(std::mem::take(&mut response.body));
        Reply {
            response,
            body,
            gzipped: false,
        }
    }
}

/// The call of a [`CallJob`]: authorized already, or to be authorized first (on the
/// same blocking thread) because its small body came with the head.
enum PendingCall {
    Authorized(Box<dyn RpcCall>),
    Unauthorized(Arc<dyn RpcHandler>, RpcHead),
}

/// How a call runs on its blocking thread.
struct CallJob {
    call: PendingCall,
    body: Bytes,
    coding: RequestCoding,
    max_decoded: usize,
    gzip_above: Option<usize>,
}

/// Decodes the body if needed, runs the call and compresses its answer if wanted;
/// runs on a blocking thread. The gunzipped copy is reserved from `reservation`.
fn run_call(
    job: CallJob,
    reservation: &mut Reservation,
    deadline: &Deadline,
) -> Result<Reply, RequestError> {
    let CallJob {
        call,
        mut body,
        coding,
        max_decoded,
        gzip_above,
    } = job;
    let call = match call {
        PendingCall::Authorized(call) => call,
        PendingCall::Unauthorized(handler, head) => match handler.authorize(head) {
            Authorization::Call(call) => call,
            Authorization::Refuse(refusal) => return Ok(Reply::plain(refusal)),
        },
    };
    if coding == RequestCoding::Gzip {
        body = Bytes::from(gunzip_limited(&body, max_decoded, reservation)?);
    }
    let mut response = call.call(body, deadline);
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

/// What every connection's service shares.
pub(crate) struct Shared {
    pub(crate) handler: Arc<dyn RpcHandler>,
    pub(crate) config: Arc<ServerConfig>,
    /// Handler slots ([`ServerConfig::max_blocking_handlers`]).
    pub(crate) blocking: Arc<Semaphore>,
    /// Request bodies in memory ([`ServerConfig::max_body_bytes_in_flight`]).
    pub(crate) budget: Arc<ByteBudget>,
}

struct ServiceInner {
    shared: Arc<Shared>,
    tcp_peer: SocketAddr,
    activity: Arc<ConnActivity>,
}

impl RpcService {
    /// A service for one connection from `tcp_peer`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        tcp_peer: SocketAddr,
        activity: Arc<ConnActivity>,
    ) -> Self {
        Self {
            inner: Arc::new(ServiceInner {
                shared,
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

/// True when the request says how long its body is: a `Content-Length` or a
/// `Transfer-Encoding` (hyper accepts only chunked as the last coding, and answers
/// 400 to the rest before we see them).
fn has_framing(headers: &hyper::HeaderMap) -> bool {
    headers.contains_key(CONTENT_LENGTH) || headers.contains_key(TRANSFER_ENCODING)
}

impl ServiceInner {
    fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Answers one request and logs it.
    async fn respond(self: Arc<Self>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let start = Instant::now();
        self.activity.request_started();
        let _finish = FinishGuard(Arc::clone(&self.activity));
        let (parts, body) = req.into_parts();
        let peer = resolve_peer(
            self.tcp_peer,
            &parts.headers,
            &self.config().trusted_proxies,
            self.config().forwarded_header,
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
                        error!(%peer, path = %field(&path), error = %err, "handler failed");
                    }
                    RequestError::Deadline => {
                        warn!(%peer, path = %field(&path), "request deadline exceeded");
                    }
                    RequestError::Busy => {
                        warn!(%peer, path = %field(&path), "body budget exhausted; answered 503");
                    }
                    _ => debug!(%peer, path = %field(&path), error = %err, "request rejected"),
                }
                err.into_response()
            }
        };
        if body_unread {
            // Unread input would otherwise be taken for the next request: close, and
            // linger (draining a declared body: a proxy still sending it would report
            // the closed connection as 502) so that the client gets to read this
            // response.
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            self.activity.mark_unread_input(declared);
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        // Answered calls are logged once, by the application, with the user and
        // method; this line covers everything the HTTP layer decided itself.
        if response.status().is_success() && parts.method == Method::POST {
            debug!(
                %peer,
                method = %field(parts.method.as_str()),
                path = %field(&path),
                status = response.status().as_u16(),
                duration = ?start.elapsed(),
                "request"
            );
        } else {
            info!(
                %peer,
                method = %field(parts.method.as_str()),
                path = %field(&path),
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
        mut body: Incoming,
        path: &str,
        peer: SocketAddr,
        body_unread: &mut bool,
    ) -> Result<Response<Full<Bytes>>, RequestError> {
        let is_read = parts.method == Method::GET || parts.method == Method::HEAD;
        let rpc_path = self.shared.handler.is_rpc_path(path);
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
        if !has_framing(&parts.headers) {
            return Err(RequestError::LengthRequired);
        }
        let coding = request_coding(&parts.headers)?;
        let limit = self.config().max_body_bytes;
        let hint = body.size_hint();
        if hint.lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
            return Err(RequestError::BodyTooLarge { limit });
        }

        let head = RpcHead {
            path: path.to_owned(),
            headers: parts.headers.clone(),
            peer,
        };
        let gzip_above = accepts_gzip(&parts.headers).then_some(self.config().gzip_threshold);
        let job = |call, body| CallJob {
            call,
            body,
            coding,
            max_decoded: self.config().max_decoded_body_bytes,
            gzip_above,
        };
        let declared = hint.exact().and_then(|n| usize::try_from(n).ok());

        // A small body that arrived with the head goes along with it (the usual call:
        // one trip to a blocking thread); its bytes are reserved like any other. Not
        // with `Expect: 100-continue`: polling the body would invite it before the
        // caller is authorized.
        let mut early = None;
        let small = declared.filter(|&n| n <= EARLY_BODY_MAX);
        if let Some(n) = small.filter(|_| !parts.headers.contains_key(EXPECT)) {
            if let Some(reservation) = self.shared.budget.try_reserve(n) {
                let mut buf = Vec::with_capacity(n);
                if take_arrived(&mut body, &mut buf).await? {
                    *body_unread = false;
                    let handler = Arc::clone(&self.shared.handler);
                    let call = PendingCall::Unauthorized(handler, head);
                    let reply = self.call_handler(job(call, Bytes::from(buf)), reservation);
                    return Ok(reply_response(reply.await?));
                }
                early = Some((buf, reservation));
            }
        }

        // Who is calling, decided before the (rest of the) body is read.
        let call = match self.authorize(head).await? {
            Authorization::Call(call) => call,
            Authorization::Refuse(refusal) => return Ok(reply_response(Reply::plain(refusal))),
        };

        let (buf, mut reservation) = match early {
            Some(early) => early,
            None => {
                let reservation = match declared {
                    Some(n) => self
                        .shared
                        .budget
                        .try_reserve(n)
                        .ok_or(RequestError::Busy)?,
                    None => self.shared.budget.empty(),
                };
                (Vec::new(), reservation)
            }
        };
        let bytes = tokio::time::timeout(
            self.config().body_read_timeout,
            read_body(body, limit, &mut reservation, buf),
        )
        .await
        .map_err(|_| RequestError::BodyTimeout)??;
        *body_unread = false;

        let job = job(PendingCall::Authorized(call), bytes);
        let reply = self.call_handler(job, reservation).await?;
        Ok(reply_response(reply))
    }

    /// Runs [`RpcHandler::authorize`] on a blocking thread, holding a handler slot,
    /// within the request deadline. It only reads, so giving up on it is safe.
    async fn authorize(&self, head: RpcHead) -> Result<Authorization, RequestError> {
        let at = Instant::now() + self.config().request_deadline;
        let handler = Arc::clone(&self.shared.handler);
        let blocking = Arc::clone(&self.shared.blocking);
        let work = async move {
            let Ok(slot) = blocking.acquire_owned().await else {
                return Err(RequestError::Deadline);
            };
            let task = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                handler.authorize(head)
            });
            joined(task.await)
        };
        tokio::time::timeout_at(at, work)
            .await
            .map_err(|_| RequestError::Deadline)?
    }

    /// Runs the call on a blocking thread, holding one of the blocking slots, under
    /// the request deadline: waiting for a slot past it is `503`; at the deadline the
    /// call is abandoned (`503` at once; it rolls back) unless it has started to
    /// commit, in which case its answer is waited for. `reservation` (the body's bytes
    /// in the budget) is given back when the call's buffers are freed.
    async fn call_handler(
        &self,
        job: CallJob,
        reservation: Reservation,
    ) -> Result<Reply, RequestError> {
        let deadline = Arc::new(Deadline::after(self.config().request_deadline));
        let at = Instant::from_std(deadline.at());
        let blocking = Arc::clone(&self.shared.blocking);
        let slot = match tokio::time::timeout_at(at, blocking.acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            // Never closed; a timeout is the deadline.
            Ok(Err(_)) | Err(_) => return Err(RequestError::Deadline),
        };
        let watched = Arc::clone(&deadline);
        let mut task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut reservation = reservation;
            let reply = run_call(job, &mut reservation, &watched);
            // The request body and its gunzipped copy are gone by now.
            drop(reservation);
            reply
        });
        let result = tokio::select! {
            result = &mut task => result,
            () = tokio::time::sleep_until(at) => {
                if deadline.expire() {
                    return Err(RequestError::Deadline);
                }
                // A commit has started: the answer is owed, however late.
                task.await
            }
        };
        joined(result)?
    }
}

/// The outcome of a blocking task, with panics and cancellation as errors.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> Result<T, RequestError> {
    match result {
        Ok(value) => Ok(value),
        Err(err) if err.is_panic() => Err(RequestError::HandlerPanicked(panic_message(
            err.into_panic().as_ref(),
        ))),
        Err(err) => Err(RequestError::HandlerFailed(err)),
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

    fn unlimited() -> Reservation {
        ByteBudget::new(usize::MAX).empty()
    }

    #[test]
    fn gunzip_roundtrip_and_limits() {
        let gunzip = |data: &[u8], limit| gunzip_limited(data, limit, &mut unlimited());
        let data = vec![b'x'; 10_000];
        let gz = gzip_encode(&data).unwrap();
        assert_eq!(gunzip(&gz, 10_000).unwrap(), data);
        assert!(matches!(
            gunzip(&gz, 9_999),
            Err(RequestError::DecodedTooLarge { limit: 9_999 })
        ));
        // Two members decode as their concatenation.
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert_eq!(gunzip(&two, 20_000).unwrap().len(), 20_000);
        assert!(matches!(
            gunzip(b"not gzip at all", 100),
            Err(RequestError::CorruptGzip(_))
        ));
        assert!(matches!(
            gunzip(&gz[..gz.len() / 2], 100_000),
            Err(RequestError::CorruptGzip(_))
        ));
        assert!(gunzip(b"", 10).unwrap().is_empty());
        // Larger than the first buffer: several doublings.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let gz = gzip_encode(&big).unwrap();
        assert_eq!(gunzip(&gz, 1_000_000).unwrap(), big);
    }

    #[test]
    fn gunzip_counts_its_output_in_the_budget() {
        let data = vec![0u8; 1 << 20];
        let gz = gzip_encode(&data).unwrap();
        // The output buffer is reserved as it grows, and refused past the budget.
        let budget = ByteBudget::new(300 << 10);
        let mut reservation = budget.empty();
        assert!(matches!(
            gunzip_limited(&gz, 16 << 20, &mut reservation),
            Err(RequestError::Busy)
        ));
        assert!(budget.in_use() <= 300 << 10);
        drop(reservation);
        assert_eq!(budget.in_use(), 0);
        // With room, it is held by the reservation until dropped.
        let budget = ByteBudget::new(4 << 20);
        let mut reservation = budget.empty();
        let out = gunzip_limited(&gz, 16 << 20, &mut reservation).unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert!(reservation.bytes() >= 1 << 20);
        assert!(reservation.bytes() <= 2 << 20);
    }

    #[test]
    fn framing_is_required() {
        assert!(!has_framing(&hyper::HeaderMap::new()));
        assert!(has_framing(&headers("content-length", &["0"])));
        assert!(has_framing(&headers("transfer-encoding", &["chunked"])));
    }
}
