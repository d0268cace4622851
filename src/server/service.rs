//! The hyper service: paths, methods, authorization before the body, body limits and
//! the body budget, gzip, the request deadline.
//!
//! For each request on a connection served by [`super::run`]: `GET`/`HEAD
//! /health` answers `ok`, or `503` when [`RpcHandler::health`] says the application
//! cannot serve (checked on a blocking thread, one check at a time, at most every
//! [`HEALTH_CACHE`], within [`HEALTH_TIMEOUT`]); `GET`/`HEAD /metrics` answers the
//! [`crate::metrics::Metrics`] to the clients of [`ServerConfig::metrics_allow`]
//! (`403` to the others); a path the [`RpcHandler`] does not serve is 404; a method
//! other than POST is 405 (`Allow: POST`); a POST with neither `Content-Length` nor
//! chunked framing is 411. Then, before the body is read, the handler decides from
//! the head alone ([`RpcHandler::authorize`], on a blocking thread): a refusal is
//! answered at once and the connection closed, so unauthenticated clients never get a
//! body into memory. (A body of at most [`EARLY_BODY_MAX`] bytes that has already
//! arrived with the head, without `Expect: 100-continue`, is taken along, from the
//! budget, and the handler authorizes and runs the call in one trip to a blocking
//! thread, or, for a cheap read it accepts in [`RpcHandler::call_inline`], right on
//! the executor thread.) An accepted request reserves its body from
//! the global [`ByteBudget`] (`503` + `Retry-After` when it is spent), reads it
//! within the size and time limits of [`ServerConfig`] (gunzipped if sent with
//! `Content-Encoding: gzip`, the decoded copy counted too), and the call runs on a
//! blocking thread under the request [`Deadline`]. Its [`RpcResponse`] is passed
//! through unchanged apart from framing headers and optional gzip compression.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Incoming};
use hyper::header::{
    HeaderValue, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, SERVER,
    TRANSFER_ENCODING, VARY,
};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

use super::body::{
    accepts_gzip, gunzip_limited, gzip_encode, has_framing, read_body, request_coding,
    take_arrived, RequestCoding, EARLY_BODY_MAX,
};
use super::budget::{ByteBudget, Reservation};
use super::config::ServerConfig;
use super::conn::ConnActivity;
use super::handler::{Authorization, RpcCall, RpcHandler, RpcHead, RpcResponse};
use super::peer::{net_contains, resolve_peer};
use super::refusal::{text_response, Refusal, RequestError, TEXT_PLAIN};
use crate::deadline::Deadline;
use crate::log::{field, millis};
use crate::metrics::wants_openmetrics;

/// Value of the `Server` header on every response.
pub const SERVER_NAME: &str = "roundup-xmlrpc-server";

/// The load-balancer health check path (`GET` or `HEAD` answers `200 ok`, or `503`).
pub const HEALTH_PATH: &str = "/health";

/// The metrics path (`GET` or `HEAD`).
pub const METRICS_PATH: &str = "/metrics";

/// How long the result of a health check is reused.
pub const HEALTH_CACHE: Duration = Duration::from_secs(1);

/// How long a health check may take before `/health` answers `503`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The state of `/health`: one check at a time, its result reused for
/// [`HEALTH_CACHE`]; a check that outlived [`HEALTH_TIMEOUT`] is waited for again
/// by the next request instead of starting another.
#[derive(Default)]
pub(crate) struct HealthCheck {
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    last: Option<(Instant, Result<(), String>)>,
    running: Option<JoinHandle<Result<(), String>>>,
}

impl HealthCheck {
    /// The handler's health, checked now or at most [`HEALTH_CACHE`] ago.
    async fn check(&self, handler: &Arc<dyn RpcHandler>) -> Result<(), String> {
        let mut state = self.state.lock().await;
        if let Some((at, result)) = &state.last {
            if at.elapsed() < HEALTH_CACHE {
                return result.clone();
            }
        }
        let mut task = match state.running.take() {
            Some(task) => task,
            None => {
                let handler = Arc::clone(handler);
                tokio::task::spawn_blocking(move || handler.health())
            }
        };
        let result = match tokio::time::timeout(HEALTH_TIMEOUT, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the health check failed".to_string()),
            Err(_) => {
                state.running = Some(task);
                Err("the health check timed out".to_string())
            }
        };
        if let Err(reason) = &result {
            warn!(reason = %field(reason), "health check failed");
        }
        state.last = Some((Instant::now(), result.clone()));
        result
    }
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
    Ok(finish_reply(call.call(body, deadline), gzip_above))
}

/// The handler's answer, gzipped when it is over `gzip_above` bytes (and the
/// handler did not encode it itself).
fn finish_reply(mut response: RpcResponse, gzip_above: Option<usize>) -> Reply {
    let body = std::mem::take(&mut response.body);
    let compress = gzip_above.is_some_and(|threshold| body.len() > threshold)
        && !response.headers.contains_key(CONTENT_ENCODING);
    if compress {
        match gzip_encode(&body) {
            Ok(gzipped) => {
                return Reply {
                    response,
                    body: Bytes::from(gzipped),
                    gzipped: true,
                }
            }
            Err(err) => warn!(error = %err, "gzip of the response failed; sending it plain"),
        }
    }
    Reply {
        response,
        body: Bytes::from(body),
        gzipped: false,
    }
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
    /// `/health`.
    pub(crate) health: HealthCheck,
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
        let proxy = (peer != self.tcp_peer).then_some(self.tcp_peer);
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
                        error!(%peer, path = %field(&path), error = %err, proxy = proxy.map(tracing::field::display), "handler failed");
                    }
                    RequestError::Deadline => {
                        warn!(%peer, path = %field(&path), proxy = proxy.map(tracing::field::display), "request deadline exceeded");
                    }
                    RequestError::Busy => {
                        warn!(%peer, path = %field(&path), proxy = proxy.map(tracing::field::display), "body budget exhausted; answered 503");
                    }
                    _ => {
                        debug!(%peer, path = %field(&path), error = %err, proxy = proxy.map(tracing::field::display), "request rejected")
                    }
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
        macro_rules! request_line {
            ($level:ident) => {
                $level!(
                    %peer,
                    method = %field(parts.method.as_str()),
                    path = %field(&path),
                    status = response.status().as_u16(),
                    duration_ms = millis(start.elapsed()),
                    proxy = proxy.map(tracing::field::display),
                    "request"
                )
            };
        }
        self.config()
            .metrics
            .http_response(response.status().as_u16());
        if response.status().is_success() && parts.method == Method::POST {
            request_line!(debug);
        } else {
            request_line!(info);
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
            return Ok(match self.shared.health.check(&self.shared.handler).await {
                Ok(()) => text_response(StatusCode::OK, TEXT_PLAIN, "ok\n"),
                Err(reason) => Refusal::Unhealthy { reason }.http_response(),
            });
        }
        if path == METRICS_PATH && is_read {
            return Ok(self.metrics(&parts.headers, peer));
        }
        let own_path = path == HEALTH_PATH || path == METRICS_PATH;
        if own_path && !(rpc_path && parts.method == Method::POST) {
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
            tcp_peer: self.tcp_peer,
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
                    let buf = Bytes::from(buf);
                    // A cheap read is answered right here: no trip to a blocking
                    // thread (two context switches, more than such a call costs).
                    if coding == RequestCoding::Identity {
                        let deadline = Deadline::after(self.config().request_deadline);
                        let handler = Arc::clone(&self.shared.handler);
                        // A panic is answered as on a blocking thread (500, logged),
                        // not by unwinding the connection's task.
                        let inline = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            handler.call_inline(&head, &buf, &deadline)
                        }));
                        match inline {
                            Ok(Some(response)) => {
                                drop(reservation);
                                return Ok(reply_response(finish_reply(response, gzip_above)));
                            }
                            Ok(None) => {}
                            Err(payload) => {
                                return Err(RequestError::HandlerPanicked(panic_message(
                                    payload.as_ref(),
                                )))
                            }
                        }
                    }
                    let handler = Arc::clone(&self.shared.handler);
                    let call = PendingCall::Unauthorized(handler, head);
                    let reply = self.call_handler(job(call, buf), reservation);
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

    /// `GET /metrics`: the metrics for a client of [`ServerConfig::metrics_allow`]
    /// (OpenMetrics when its `Accept` asks for it), else `403`.
    fn metrics(&self, headers: &hyper::HeaderMap, client: SocketAddr) -> Response<Full<Bytes>> {
        let allowed = self
            .config()
            .metrics_allow
            .iter()
            .any(|net| net_contains(net, client.ip()));
        if !allowed {
            return Refusal::MetricsForbidden.http_response();
        }
        let openmetrics = headers
            .get_all(hyper::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(wants_openmetrics);
        let (text, content_type) = self.config().metrics.render(openmetrics);
        text_response(StatusCode::OK, content_type, text)
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
