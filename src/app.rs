//! The application behind the HTTP front end: finds the tracker for the path,
//! authenticates the caller, decodes the call, dispatches it in a transaction and
//! encodes the answer. Its [`App::handle`] is the top of the request path.

use crate::api;
use crate::auth::{self, CredentialCache, Credentials, LoginLimiter, RetryAfter};
use crate::detectors::mail;
use crate::dispatch::{self, Methods};
use crate::error::{decode_fault, Error};
use crate::http::{RpcHandler, RpcRequest, RpcResponse};
use crate::items::Ctx;
use crate::security::{split_roles, UserCtx};
use crate::store::{Multilinks, PropValue, Tx};
use crate::tracker::Tracker;
use crate::xmlrpc::{self, Fault, Limits, MethodCall, Value};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, RETRY_AFTER};
use hyper::StatusCode;
use std::collections::HashMap;
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

    /// The tracker a request path reaches: its first segment names the tracker
    /// (case-insensitively); `/` and `/xmlrpc` reach the default tracker.
    fn route(&self, path: &str) -> Option<&Mounted> {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        let first = percent_decode(first).to_lowercase();
        if self.default_root && (first.is_empty() || first == "xmlrpc") {
            return self.mounted.first();
        }
        self.mounted.iter().find(|m| m.name == first)
    }
}

/// Decodes `%XX` escapes (invalid ones are kept as they are).
fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 && i + 2 <= b.len().saturating_sub(1) {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// The Roundup methods of one tracker, run as one user.
struct TrackerMethods<'a> {
    tracker: &'a Tracker,
    user: &'a UserCtx,
    /// The read transaction the login ran in, for the first read-only method to
    /// reuse (one snapshot and one BEGIN for the login and a single read call).
    login_tx: Option<Box<dyn Tx + 'a>>,
}

impl TrackerMethods<'_> {
    fn run(&mut self, method: &api::Method, params: &[Value]) -> Result<Value, Error> {
        let store = &self.tracker.store;
        let mut tx = match self.login_tx.take() {
            Some(tx) if !method.writes => tx,
            _ if method.writes => store.write()?,
            _ => store.read()?,
        };
        let (result, outbox, burned) = {
            let mut ctx = Ctx::new(&mut *tx, self.tracker, self.user);
            let r = (method.run)(&mut ctx, params);
            (r, ctx.outbox, ctx.burned_ids)
        };
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
            // The mail is written to the outbox by this transaction and sent by the
            // tracker's delivery thread: no mail server delays the answer.
            mail::queue(&mut *tx, &outbox, &self.tracker.settings)?;
            tx.commit()?;
            if !outbox.is_empty() {
                self.tracker.outbox.wake();
            }
        }
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
            if let Error::Store(detail) | Error::ReadOnlyStore(detail) = &e {
                tracing::error!(tracker = %self.tracker.name, method = name, error = %detail, "storage failure");
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

/// The method names of a call, for the log (`system.multicall` lists its calls).
fn call_names(call: &MethodCall) -> String {
    if call.name != "system.multicall" {
        return call.name.clone();
    }
    let inner: Vec<&str> = match call.params.first() {
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
    };
    format!("system.multicall[{}]", inner.join(","))
}

impl RpcHandler for App {
    fn is_rpc_path(&self, path: &str) -> bool {
        self.route(path).is_some()
    }

    fn handle(&self, req: RpcRequest) -> RpcResponse {
        let started = Instant::now();
        let Some(m) = self.route(&req.path) else {
            return plain(StatusCode::NOT_FOUND, "no tracker at this path");
        };
        let header = req.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        let creds = match auth::parse_authorization(header) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(peer = %req.peer, error = %e, "malformed Authorization header");
                return plain(StatusCode::BAD_REQUEST, "malformed Authorization header");
            }
        };
        let peer = req.peer.ip().to_string();
        let tracker = &*m.tracker;
        let mut login_tx = match tracker.store.read() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(tracker = %m.name, error = %e, "cannot read users");
                return fault_response(&Error::from(e).to_fault());
            }
        };
        let user = match self.login(m, &creds, &peer, &mut *login_tx) {
            Ok(u) => u,
            Err(LoginError::Invalid) => {
                tracing::info!(peer = %req.peer, tracker = %m.name, "invalid login");
                return invalid_user(&req.path);
            }
            Err(LoginError::Limited(r)) => {
                tracing::warn!(peer = %req.peer, tracker = %m.name, "failed-login limit reached");
                return too_many(r, &m.limiter);
            }
            Err(LoginError::Store(e)) => {
                tracing::error!(tracker = %m.name, error = %e, "cannot read users");
                return fault_response(&Error::Store(e).to_fault());
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
            tracing::warn!(peer = %req.peer, user = %user.username, "call-rate limit reached");
            return too_many_calls(r, &m.call_limiter);
        }
        let call = match xmlrpc::decode_request(&req.body, &self.limits) {
            Ok(c) => c,
            Err(e) => {
                // The error text may quote client data (a password in a badly typed
                // field): log only the kind of failure.
                tracing::info!(peer = %req.peer, user = %user.username, code = e.fault_code(), "bad request document");
                return fault_response(&decode_fault(&e));
            }
        };
        // A write (or a multicall, whose calls each get their own transaction)
        // should not keep the login's snapshot open.
        let reuse = call.name != "system.multicall"
            && api::method(&call.name).is_some_and(|method| !method.writes);
        let outcome = if !tracker
            .security
            .has_permission_static(&user, "Xmlrpc Access", None, None)
        {
            Err(Error::Forbidden.to_fault())
        } else {
            let mut methods = TrackerMethods {
                tracker,
                user: &user,
                login_tx: reuse.then_some(login_tx),
            };
            dispatch::dispatch(&mut methods, &call)
        };
        let (body, result) = match &outcome {
            Ok(v) => (xmlrpc::encode_response(v), "ok".to_string()),
            Err(f) => (xmlrpc::encode_fault(f), format!("fault {}", f.code)),
        };
        tracing::info!(
            peer = %req.peer,
            user = %user.username,
            method = %call_names(&call),
            outcome = %result,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "call"
        );
        xml_response(body)
    }
}
