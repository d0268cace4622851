//! The application behind the HTTP front end, in two steps. [`RpcHandler::authorize`]
//! runs on the request head alone: it finds the tracker for the path (exact path
//! rules, see [`rpc_path`]), authenticates the caller, applies the call-rate limit and
//! checks `Xmlrpc Access`, so that callers who may not call get their answer before
//! their body is read. The session it returns then decodes the body, dispatches the
//! call in transactions bound to the request [`Deadline`] and encodes the answer.

use crate::api;
use crate::auth::{self, CredentialCache, Credentials, LoginLimiter, RetryAfter};
use crate::deadline::{Deadline, WatchedTx};
use crate::detectors::mail;
use crate::dispatch::{self, Methods};
use crate::error::{decode_fault, Error};
use crate::http::{Authorization, RpcCall, RpcHandler, RpcHead, RpcResponse};
use crate::items::Ctx;
use crate::log::{field, method_list};
use crate::security::{split_roles, UserCtx};
use crate::store::{Multilinks, PropValue, Tx};
use crate::tracker::Tracker;
use crate::xmlrpc::{self, Fault, Limits, MethodCall, Value};
use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, RETRY_AFTER};
use hyper::StatusCode;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many verified credentials are remembered, and for how long.
const CREDENTIAL_CACHE_SIZE: usize = 10_000;
const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(300);

/// A tracker and the URL name it is served under.
struct Mounted {
    /// Lower-cased first path segment that reaches it.
    name: String,
    tracker: Arc<Tracker>,
    /// Failed logins per username (Roundup's `api_failed_login_limit`).
    limiter: LoginLimiter,
    /// Failed logins per client address: [`PEER_LIMIT_FACTOR`] times more lenient,
    /// so one client guessing many usernames is stopped without locking out
    /// everyone behind the same NAT after a few typos.
    peer_limiter: LoginLimiter,
    /// Calls per user (anonymous: per client address), `[web]
    /// api_calls_per_interval` per `api_interval_in_sec`; off when 0.
    call_limiter: LoginLimiter,
}

/// How many more failures a client address may have than one username.
const PEER_LIMIT_FACTOR: u32 = 10;

/// Serialises password verification per username and bounds it overall, so
/// that concurrent attempts are counted by the login limiter one after another
/// (at most `limit` hashes per interval per user) and hashing cannot occupy every
/// handler thread.
#[derive(Default)]
struct VerifyGate {
    per_user: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    running: Mutex<usize>,
    freed: Condvar,
}

/// Most password hashes computed at once.
const MAX_CONCURRENT_HASHES: usize = 4;

impl VerifyGate {
    /// Runs `f` holding `username`'s lock and a hashing slot.
    fn run<T>(&self, username: &str, f: impl FnOnce() -> T) -> T {
        let user_lock = {
            let mut map = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(username.to_string()).or_default().clone()
        };
        let result = {
            let _user = user_lock.lock().unwrap_or_else(|e| e.into_inner());
            {
                let mut n = self.running.lock().unwrap_or_else(|e| e.into_inner());
                while *n >= MAX_CONCURRENT_HASHES {
                    n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
                }
                *n += 1;
            }
            let r = f();
            *self.running.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
            self.freed.notify_one();
            r
        };
        let mut map = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(username).is_some_and(|l| Arc::strong_count(l) <= 2) {
            map.remove(username);
        }
        result
    }
}

/// The application: the served trackers and the shared auth state.
pub struct App {
    mounted: Vec<Mounted>,
    /// With a single `-i` tracker, `/` and `/xmlrpc` reach it too.
    default_root: bool,
    limits: Limits,
    credentials: CredentialCache,
    gate: VerifyGate,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field(
                "trackers",
                &self.mounted.iter().map(|m| &m.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl App {
    /// Serves `trackers` (name, tracker). With `default_root`, the first tracker
    /// also answers at `/` and `/xmlrpc`.
    pub fn new(trackers: Vec<Arc<Tracker>>, default_root: bool, limits: Limits) -> App {
        let mounted = trackers
            .into_iter()
            .map(|t| {
                let s = &t.settings;
                Mounted {
                    name: t.name.to_lowercase(),
                    limiter: LoginLimiter::new(
                        s.api_failed_login_limit,
                        Duration::from_secs(s.api_failed_login_interval),
                    ),
                    peer_limiter: LoginLimiter::new(
                        s.api_failed_login_limit.saturating_mul(PEER_LIMIT_FACTOR),
                        Duration::from_secs(s.api_failed_login_interval),
                    ),
                    call_limiter: LoginLimiter::new(
                        s.api_calls_per_interval,
                        Duration::from_secs(s.api_interval),
                    ),
                    tracker: t,
                }
            })
            .collect();
        App {
            mounted,
            default_root,
            limits,
            credentials: CredentialCache::new(CREDENTIAL_CACHE_SIZE, CREDENTIAL_CACHE_TTL),
            gate: VerifyGate::default(),
        }
    }

    /// The tracker a request path reaches (see [`rpc_path`]); names match
    /// case-insensitively, `/` and `/xmlrpc` reach the default tracker.
    fn route(&self, path: &str) -> Option<usize> {
        match rpc_path(path)? {
            RpcPath::Root if self.default_root && !self.mounted.is_empty() => Some(0),
            RpcPath::Root => None,
            RpcPath::Tracker(name) => self.mounted.iter().position(|m| m.name == name),
        }
    }
}

/// What an RPC path names.
#[derive(Debug, PartialEq, Eq)]
pub enum RpcPath {
    /// `/` or `/xmlrpc`: the default tracker (`-i`).
    Root,
    /// `/<name>`, `/<name>/` or `/<name>/xmlrpc`: the tracker with this (percent-decoded,
    /// lower-cased) name.
    Tracker(String),
}

/// The path rules: exactly `/`, `/xmlrpc`, `/<name>`, `/<name>/` and `/<name>/xmlrpc`
/// serve calls. Anything else is `None` (404): more segments, empty or dot segments,
/// a name with an invalid or undecodable percent escape, or one that decodes to a
/// slash, backslash, control character, `.` or `..`.
pub fn rpc_path(path: &str) -> Option<RpcPath> {
    if path == "/" || path == "/xmlrpc" {
        return Some(RpcPath::Root);
    }
    let rest = path.strip_prefix('/')?;
    let (raw, tail) = match rest.split_once('/') {
        Some((name, tail)) => (name, Some(tail)),
        None => (rest, None),
    };
    if !matches!(tail, None | Some("") | Some("xmlrpc")) {
        return None;
    }
    let name = percent_decode_strict(raw)?;
    let bad = |c: char| c == '/' || c == '\\' || c.is_control();
    if name.is_empty() || name == "." || name == ".." || name.chars().any(bad) {
        return None;
    }
    Some(RpcPath::Tracker(name.to_lowercase()))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode_strict(s: &str) -> Option<String> {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let high = hex(*b.get(i + 1)?)?;
            let low = hex(*b.get(i + 2)?)?;
            out.push(u8::try_from(high * 16 + low).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn xml_response(body: Vec<u8>) -> RpcResponse {
    RpcResponse {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        content_type: "text/xml",
        body,
    }
}

fn fault_response(f: &Fault) -> RpcResponse {
    xml_response(xmlrpc::encode_fault(f))
}

/// The standalone server's answer to a failed login: HTTP 403 with Python's
/// error page.
fn invalid_user(path: &str) -> RpcResponse {
    let esc = path
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: 403</p>\n        <p>Message: {esc} (Invalid user).</p>\n        <p>Error code explanation: 403 - Request forbidden -- authorization will not help.</p>\n    </body>\n</html>\n"
    );
    let mut headers = HeaderMap::new();
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    RpcResponse {
        status: StatusCode::FORBIDDEN,
        headers,
        content_type: "text/html;charset=utf-8",
        body: body.into_bytes(),
    }
}

fn too_many(r: RetryAfter, limiter: &LoginLimiter) -> RpcResponse {
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(&mut headers, RETRY_AFTER.as_str(), r.secs.to_string());
    put(
        &mut headers,
        "x-ratelimit-limit",
        limiter.limit().to_string(),
    );
    put(
        &mut headers,
        "x-ratelimit-limit-period",
        limiter.interval().as_secs().to_string(),
    );
    put(&mut headers, "x-ratelimit-remaining", "0".into());
    put(
        &mut headers,
        "x-ratelimit-reset",
        format!("{:.6}", r.reset_secs),
    );
    let body = format!(
        "Logins occurring too fast. Please wait: {} seconds.\n",
        r.secs
    );
    RpcResponse {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers,
        content_type: "text/plain; charset=utf-8",
        body: body.into_bytes(),
    }
}

/// The answer once a user has used up `api_calls_per_interval`: 429 with the
/// rate-limit headers and a plain-text reason.
fn too_many_calls(r: RetryAfter, limiter: &LoginLimiter) -> RpcResponse {
    let mut response = too_many(r, limiter);
    response.body = format!(
        "Api rate limits exceeded. Please wait: {} seconds.\n",
        r.secs
    )
    .into_bytes();
    response
}

fn plain(status: StatusCode, text: &str) -> RpcResponse {
    RpcResponse {
        status,
        headers: HeaderMap::new(),
        content_type: "text/plain; charset=utf-8",
        body: format!("{text}\n").into_bytes(),
    }
}

/// The answer to a call that passed its deadline before committing anything: 503,
/// as the HTTP layer answers when it gives up on a call first.
fn deadline_exceeded() -> RpcResponse {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, "request deadline exceeded");
    response
        .headers
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The fault of a (multicall sub-)call stopped by the deadline.
fn overdue_error() -> Error {
    Error::Internal("request deadline exceeded; the call was rolled back".into())
}

/// Why a login failed.
enum LoginError {
    /// Wrong user or password: 403 (and counts toward the limiter).
    Invalid,
    /// Locked out: 429.
    Limited(RetryAfter),
    /// The database could not be read.
    Store(String),
}

impl App {
    /// Resolves the caller to a user, enforcing the failed-login limiter. The user
    /// is read in `tx`, the transaction the call then runs in if it only reads.
    fn login(
        &self,
        m: &Mounted,
        creds: &Credentials,
        peer: &str,
        tx: &mut dyn Tx,
    ) -> Result<UserCtx, LoginError> {
        let tracker = &m.tracker;
        let (username, password) = match creds {
            Credentials::Anonymous => ("anonymous".to_string(), None),
            Credentials::Basic { username, password } => (username.clone(), password.clone()),
        };
        let now = Instant::now();
        let user_key = format!("LOGIN-API{username}");
        let peer_key = format!("LOGIN-PEER{peer}");
        // Refused while the user or the client address is locked out.
        let locked_out = |now: Instant| -> Result<(), LoginError> {
            m.limiter
                .check(&user_key, now)
                .map_err(LoginError::Limited)?;
            m.peer_limiter
                .check(&peer_key, now)
                .map_err(LoginError::Limited)
        };
        if matches!(creds, Credentials::Basic { .. }) {
            locked_out(now)?;
        }
        let fail = |m: &Mounted| -> LoginError {
            if matches!(creds, Credentials::Anonymous) {
                return LoginError::Invalid;
            }
            let a = m.limiter.record_failure(&user_key, now);
            let b = m.peer_limiter.record_failure(&peer_key, now);
            match a.and(b) {
                Ok(()) => LoginError::Invalid,
                Err(r) => LoginError::Limited(r),
            }
        };
        let Some(users) = tracker.schema.class("user") else {
            return Err(LoginError::Invalid);
        };
        let found = (|| -> crate::store::Result<Option<crate::store::Item>> {
            match tx.lookup(users, "username", &username)? {
                Some(id) => tx.get(users, id, Multilinks::None),
                None => Ok(None),
            }
        })()
        .map_err(|e| LoginError::Store(e.to_string()))?;
        let Some(user) = found else {
            return Err(fail(m));
        };
        let stored = match user.get("password") {
            Some(PropValue::Password(p)) if !p.is_empty() => Some(p.clone()),
            _ => None,
        };
        let ok = match (&stored, &password) {
            (None, None) => true,
            (None, Some(_)) | (Some(_), None) => false,
            (Some(hash), Some(pw)) if self.credentials.check(&username, pw, hash) => true,
            (Some(hash), Some(pw)) => {
                // One verification per username at a time, counted before the next
                // one starts: concurrent guesses cannot all slip past the limiter.
                return self.gate.run(&username, || {
                    locked_out(Instant::now())?;
                    if !self.credentials.check(&username, pw, hash) {
                        if !auth::verify(hash, pw).unwrap_or(false) {
                            return Err(fail(m));
                        }
                        self.credentials.insert(&username, pw, hash);
                    }
                    Ok(user_ctx(&user, username.clone()))
                });
            }
        };
        if !ok {
            return Err(fail(m));
        }
        Ok(user_ctx(&user, username))
    }
}

/// The permission-check view of a user item.
fn user_ctx(user: &crate::store::Item, username: String) -> UserCtx {
    let roles = match user.get("roles") {
        Some(PropValue::String(r)) => split_roles(r),
        _ => Vec::new(),
    };
    UserCtx {
        id: user.id,
        username,
        roles,
    }
}

/// The Roundup methods of one tracker, run as one user, each in its own transaction
/// bound to the request deadline.
struct TrackerMethods<'a> {
    tracker: &'a Tracker,
    user: &'a UserCtx,
    deadline: &'a Deadline,
    /// Set when a call was refused or rolled back because of the deadline.
    overdue: bool,
}

impl TrackerMethods<'_> {
    fn run(&mut self, method: &api::Method, params: &[Value]) -> Result<Value, Error> {
        let store = &self.tracker.store;
        if self.deadline.passed() {
            self.overdue = true;
            return Err(overdue_error());
        }
        let raw = if method.writes {
            store.write()?
        } else {
            store.read()?
        };
        let mut tx = Box::new(WatchedTx::new(raw, self.deadline));
        let (result, outbox, burned) = {
            let mut ctx = Ctx::new(&mut *tx, self.tracker, self.user);
            let r = (method.run)(&mut ctx, params);
            (r, ctx.outbox, ctx.burned_ids)
        };
        // Past the deadline, whatever the method made of its interrupted reads is
        // not trusted: a write is rolled back, a read answered as overdue.
        let overdue = if method.writes {
            result.is_ok() && !self.deadline.begin_commit()
        } else {
            self.deadline.passed()
        } || (result.is_err() && self.deadline.passed());
        if overdue {
            drop(tx);
            self.overdue = true;
            return Err(overdue_error());
        }
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                drop(tx);
                if !burned.is_empty() {
                    self.consume_ids(&burned);
                }
                return Err(e);
            }
        };
        if method.writes {
            tx.commit()?;
        }
        mail::deliver(outbox, &self.tracker.settings);
        Ok(value)
    }
}

impl TrackerMethods<'_> {
    /// Records ids allocated by failed creates as used (after the rollback).
    fn consume_ids(&self, burned: &[(String, crate::store::Id)]) {
        let result = (|| -> crate::store::Result<()> {
            let mut tx = self.tracker.store.write()?;
            for (cn, id) in burned {
                if let Some(class) = self.tracker.schema.class(cn) {
                    tx.consume_id(class, *id)?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            tracing::warn!(tracker = %self.tracker.name, error = %e, "could not record consumed ids");
        }
    }
}

impl Methods for TrackerMethods<'_> {
    fn call(&mut self, name: &str, params: &[Value]) -> Result<Value, Fault> {
        let Some(method) = api::method(name) else {
            return Err(Error::Exception(format!("method \"{name}\" is not supported")).to_fault());
        };
        self.run(method, params).map_err(|e| {
            if let Error::Store(detail) = &e {
                tracing::error!(tracker = %self.tracker.name, method = %field(name), error = %field(detail), "storage failure");
            }
            e.to_fault()
        })
    }

    fn names(&self) -> Vec<&'static str> {
        api::METHODS.iter().map(|m| m.name).collect()
    }

    fn help(&self, name: &str) -> Option<&'static str> {
        api::method(name).map(|m| m.help)
    }

    fn signature(&self, name: &str) -> Option<&'static [&'static str]> {
        api::method(name).map(|m| m.signature)
    }
}

/// The sub-call names of a `system.multicall` (empty for other calls), for the log.
fn multicall_names(call: &MethodCall) -> Vec<&str> {
    if call.name != "system.multicall" {
        return Vec::new();
    }
    match call.params.first() {
        Some(Value::Array(calls)) => calls
            .iter()
            .filter_map(|c| match c {
                Value::Struct(m) => m
                    .iter()
                    .find(|(k, _)| k == "methodName")
                    .and_then(|(_, v)| v.as_str()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A caller [`RpcHandler::authorize`] let through: the tracker, the user, and what
/// the log line needs. Holds no transaction while the body is read.
struct Session {
    app: Arc<App>,
    /// Index of the tracker in [`App::mounted`].
    tracker: usize,
    user: UserCtx,
    peer: SocketAddr,
    started: Instant,
}

impl RpcHandler for App {
    fn is_rpc_path(&self, path: &str) -> bool {
        self.route(path).is_some()
    }

    fn authorize(self: Arc<Self>, head: RpcHead) -> Authorization {
        match self.check_caller(head) {
            Ok(session) => Authorization::Call(Box::new(session)),
            Err(refusal) => Authorization::Refuse(*refusal),
        }
    }
}

impl App {
    /// [`RpcHandler::authorize`]: the session of an allowed caller, or the answer.
    fn check_caller(self: Arc<Self>, head: RpcHead) -> Result<Session, Box<RpcResponse>> {
        let started = Instant::now();
        let Some(index) = self.route(&head.path) else {
            return Err(Box::new(plain(
                StatusCode::NOT_FOUND,
                "no tracker at this path",
            )));
        };
        let m = &self.mounted[index];
        let header = head.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        let creds = match auth::parse_authorization(header) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(peer = %head.peer, error = %e, "malformed Authorization header");
                return Err(Box::new(plain(
                    StatusCode::BAD_REQUEST,
                    "malformed Authorization header",
                )));
            }
        };
        let peer = head.peer.ip().to_string();
        let tracker = &*m.tracker;
        // The login's read transaction ends here, before the body is read.
        let login = match tracker.store.read() {
            Ok(mut tx) => self.login(m, &creds, &peer, &mut *tx),
            Err(e) => Err(LoginError::Store(e.to_string())),
        };
        let user = match login {
            Ok(u) => u,
            Err(LoginError::Invalid) => {
                tracing::info!(peer = %head.peer, tracker = %m.name, "invalid login");
                return Err(Box::new(invalid_user(&head.path)));
            }
            Err(LoginError::Limited(r)) => {
                tracing::warn!(peer = %head.peer, tracker = %m.name, "failed-login limit reached");
                return Err(Box::new(too_many(r, &m.limiter)));
            }
            Err(LoginError::Store(e)) => {
                tracing::error!(tracker = %m.name, error = %field(&e), "cannot read users");
                return Err(Box::new(fault_response(&Error::Store(e).to_fault())));
            }
        };
        // The optional call-rate limit (a GCRA cell per call, like the failed-login
        // limiter's), answered like a failed-login lockout.
        let call_key = if matches!(creds, Credentials::Anonymous) {
            format!("CALL-PEER{peer}")
        } else {
            format!("CALL-USER{}", user.username)
        };
        if let Err(r) = m.call_limiter.take(&call_key, Instant::now()) {
            tracing::warn!(peer = %head.peer, user = %field(&user.username), "call-rate limit reached");
            return Err(Box::new(too_many_calls(r, &m.call_limiter)));
        }
        if !tracker
            .security
            .has_permission_static(&user, "Xmlrpc Access", None, None)
        {
            tracing::info!(
                peer = %head.peer,
                user = %field(&user.username),
                outcome = "fault 403",
                ms = started.elapsed().as_secs_f64() * 1000.0,
                "refused: no Xmlrpc Access"
            );
            return Err(Box::new(fault_response(&Error::Forbidden.to_fault())));
        }
        Ok(Session {
            app: Arc::clone(&self),
            tracker: index,
            user,
            peer: head.peer,
            started,
        })
    }
}

impl RpcCall for Session {
    fn call(self: Box<Self>, body: Bytes, deadline: &Deadline) -> RpcResponse {
        let app = &*self.app;
        let tracker = &*app.mounted[self.tracker].tracker;
        let call = match xmlrpc::decode_request(&body, &app.limits) {
            Ok(c) => c,
            Err(e) => {
                // The error text may quote client data (a password in a badly typed
                // field): log only the kind of failure.
                tracing::info!(peer = %self.peer, user = %field(&self.user.username), code = e.fault_code(), "bad request document");
                return fault_response(&decode_fault(&e));
            }
        };
        drop(body);
        let mut methods = TrackerMethods {
            tracker,
            user: &self.user,
            deadline,
            overdue: false,
        };
        let outcome = dispatch::dispatch(&mut methods, &call);
        let names = multicall_names(&call);
        let methods_logged = method_list(&call.name, &names);
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        if methods.overdue && !deadline.committed() {
            tracing::warn!(
                peer = %self.peer,
                user = %field(&self.user.username),
                method = %methods_logged,
                outcome = "deadline exceeded; rolled back",
                ms,
                "call"
            );
            return deadline_exceeded();
        }
        let (body, result) = match &outcome {
            Ok(v) => (xmlrpc::encode_response(v), "ok".to_string()),
            Err(f) => (xmlrpc::encode_fault(f), format!("fault {}", f.code)),
        };
        tracing::info!(
            peer = %self.peer,
            user = %field(&self.user.username),
            method = %methods_logged,
            outcome = %result,
            ms,
            "call"
        );
        xml_response(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(name: &str) -> Option<RpcPath> {
        Some(RpcPath::Tracker(name.to_string()))
    }

    #[test]
    fn the_five_path_shapes_are_served() {
        assert_eq!(rpc_path("/"), Some(RpcPath::Root));
        assert_eq!(rpc_path("/xmlrpc"), Some(RpcPath::Root));
        assert_eq!(rpc_path("/demo"), tracker("demo"));
        assert_eq!(rpc_path("/demo/"), tracker("demo"));
        assert_eq!(rpc_path("/demo/xmlrpc"), tracker("demo"));
        // Names match case-insensitively and may be percent-encoded.
        assert_eq!(rpc_path("/DeMo/xmlrpc"), tracker("demo"));
        assert_eq!(rpc_path("/d%65mo"), tracker("demo"));
        assert_eq!(rpc_path("/my%20tracker/"), tracker("my tracker"));
        assert_eq!(rpc_path("/syst%C3%A8me"), tracker("système"));
        // Only a tracker named "xmlrpc" is at /xmlrpc/ (the default one is at /xmlrpc).
        assert_eq!(rpc_path("/xmlrpc/"), tracker("xmlrpc"));
    }

    #[test]
    fn every_other_path_is_refused() {
        for path in [
            "",
            "demo",
            "//",
            "//demo",
            "/demo/anything",
            "/demo/xmlrpc/",
            "/demo/xmlrpc/x",
            "/demo/XMLRPC",
            "/demo//xmlrpc",
            "/demo/../../etc/passwd",
            "/../../etc/passwd",
            "/..",
            "/.",
            "/%2e%2e",
            "/%2E",
            "/demo%2fxmlrpc",
            "/demo%2Fxmlrpc",
            "/demo%5cxmlrpc",
            "/demo%00",
            "/demo%0a",
            "/%zz",
            "/demo%",
            "/demo%4",
            "/%ff%fe",
            "/demo/%2e%2e/xmlrpc",
        ] {
            assert_eq!(rpc_path(path), None, "{path:?}");
        }
    }
}
