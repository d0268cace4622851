//! The application behind the HTTP front end, in two steps. [`RpcHandler::authorize`]
//! runs on the request head alone: it finds the tracker for the path (exact path
//! rules, see [`rpc_path`]), authenticates the caller, applies the call-rate limit and
//! checks `Xmlrpc Access`, so that callers who may not call get their answer before
//! their body is read. The session it returns then decodes the body, dispatches the
//! call in transactions bound to the request [`Deadline`] and encodes the answer.

mod login;

use login::{LoginError, VerifyGate, LIMIT_FACTOR};

use crate::api::dispatch::known_method;
use crate::api::Caller;
use crate::auth::{self, CredentialCache, Credentials, LoginLimiter, RetryAfter};
use crate::deadline::Deadline;
use crate::error::{decode_fault, Error};
use crate::log::{field, method_list, millis};
use crate::metrics::{InFlight, Limit, Metrics, Outcome, NO_METHOD, OTHER_METHOD};
use crate::security::UserCtx;
use crate::server::{
    Authorization, RateLimit, RateLimited, Refusal, RpcCall, RpcHandler, RpcHead, RpcResponse,
};
use crate::tracker::Tracker;
use crate::xmlrpc::{self, Fault, Limits, MethodCall, Value};
use bytes::Bytes;
use hyper::header::{HeaderMap, AUTHORIZATION};
use hyper::StatusCode;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How many verified credentials are remembered, and for how long.
const CREDENTIAL_CACHE_SIZE: usize = 10_000;
const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(300);

/// A tracker and the URL name it is served under.
struct Mounted {
    /// Lower-cased first path segment that reaches it.
    name: String,
    tracker: Arc<Tracker>,
    /// Failed logins per (username, client address): Roundup's
    /// `api_failed_login_limit` per `api_failed_login_interval_in_sec` (Roundup keys
    /// it by username alone), so guessing from one address cannot lock the user
    /// out from the others.
    limiter: LoginLimiter,
    /// Failed logins per username over all addresses: [`LIMIT_FACTOR`] times more
    /// lenient, the ceiling for guessing one password from many addresses.
    user_limiter: LoginLimiter,
    /// Failed logins per client address over all usernames: [`LIMIT_FACTOR`] times
    /// more lenient, so one client guessing many usernames is stopped without
    /// locking out everyone behind the same NAT after a few typos.
    peer_limiter: LoginLimiter,
    /// Calls per user (anonymous: per client address), `[web]
    /// api_calls_per_interval` per `api_interval_in_sec`; off when 0.
    call_limiter: LoginLimiter,
    /// The hash of a random password with the tracker's scheme and work factor,
    /// verified instead when there is no such user (or the user has no password),
    /// so that such a login costs what a wrong password costs. Made on first use.
    dummy_hash: OnceLock<String>,
}

/// The application: the served trackers and the shared auth state.
pub struct App {
    mounted: Vec<Mounted>,
    /// With a single `-i` tracker, `/` and `/xmlrpc` reach it too.
    default_root: bool,
    limits: Limits,
    credentials: CredentialCache,
    gate: VerifyGate,
    /// Where calls, failed logins, limiter refusals and storage errors are counted.
    metrics: Arc<Metrics>,
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
                let failures = |factor: u32| {
                    LoginLimiter::new(
                        s.web.api_failed_login_limit.saturating_mul(factor),
                        Duration::from_secs(s.web.api_failed_login_interval_in_sec),
                    )
                };
                Mounted {
                    name: t.name.to_lowercase(),
                    limiter: failures(1),
                    user_limiter: failures(LIMIT_FACTOR),
                    peer_limiter: failures(LIMIT_FACTOR),
                    dummy_hash: OnceLock::new(),
                    call_limiter: LoginLimiter::new(
                        s.web.api_calls_per_interval,
                        Duration::from_secs(s.web.api_interval_in_sec),
                    ),
                    tracker: t,
                }
            })
            .collect();
        let metrics = Arc::new(Metrics::new());
        App {
            mounted,
            default_root,
            limits,
            credentials: CredentialCache::new(CREDENTIAL_CACHE_SIZE, CREDENTIAL_CACHE_TTL),
            gate: VerifyGate::default(),
            metrics: Arc::clone(&metrics),
        }
        .with_metrics(metrics)
    }

    /// The same application, counting into `metrics` (the front end's, so that
    /// `/metrics` shows both); each served tracker's counters start at 0.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> App {
        for m in &self.mounted {
            metrics.add_tracker(&m.tracker.name);
        }
        self.metrics = metrics;
        self
    }

    /// Counts a call of tracker `m` that ended before its body was read.
    fn count_refused(&self, m: &Mounted, outcome: Outcome, started: Instant) {
        self.metrics
            .call(&m.tracker.name, NO_METHOD, outcome, started.elapsed());
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

/// Decodes `%XX` escapes (with `percent-encoding`); `None` for a malformed escape
/// (which that crate would leave as it is) or a result that is not UTF-8.
fn percent_decode_strict(s: &str) -> Option<String> {
    let malformed = s.match_indices('%').any(|(i, _)| {
        !s.get(i + 1..i + 3)
            .is_some_and(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
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

/// The 429 answer of a rate limiter.
fn too_many(which: RateLimit, r: RetryAfter, limiter: &LoginLimiter) -> RpcResponse {
    Refusal::TooManyRequests(RateLimited {
        which,
        retry_after_secs: r.secs,
        reset_secs: r.reset_secs,
        limit: limiter.limit(),
        period_secs: limiter.interval().as_secs(),
    })
    .response()
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
    /// The trusted proxy the request came through, if any.
    proxy: Option<SocketAddr>,
    started: Instant,
    /// Counts the call in flight until it is answered (or its body never comes).
    _in_flight: InFlight,
}

impl RpcHandler for App {
    fn is_rpc_path(&self, path: &str) -> bool {
        self.route(path).is_some()
    }

    fn authorize(self: Arc<Self>, head: RpcHead) -> Authorization {
        match self.check_caller(&head, true) {
            Ok(session) => Authorization::Call(Box::new(session)),
            Err(Refused::Answer(refusal)) => Authorization::Refuse(*refusal),
            // Not asked for: the caller may hash.
            Err(Refused::WouldHash) => Authorization::Refuse(fault_response(
                &Error::Internal("login without verification".into()).to_fault(),
            )),
        }
    }

    /// Cheap reads (see `inline_method`) of callers whose credentials are cached
    /// are answered on the executor thread; anything else (a password to verify, a
    /// body that does not decode, another method) goes the usual way, and nothing
    /// has been counted, logged or rate-limited for it here.
    fn call_inline(
        self: Arc<Self>,
        head: &RpcHead,
        body: &Bytes,
        deadline: &Deadline,
    ) -> Option<RpcResponse> {
        let index = self.route(&head.path)?;
        // Other calls are not decoded here (they would be twice).
        if !matches!(
            method_name_hint(body),
            Some(b"display" | b"lookup" | b"schema")
        ) {
            return None;
        }
        let call = xmlrpc::decode_request(body, &self.limits).ok()?;
        if !inline_method(&self.mounted[index].tracker, &call) {
            return None;
        }
        match self.check_caller(head, false) {
            Ok(session) => Some(session.run(call, deadline)),
            Err(Refused::Answer(refusal)) => Some(*refusal),
            Err(Refused::WouldHash) => None,
        }
    }

    /// Every tracker must be able to read its users (as every login does): a
    /// lookup of `anonymous` in a read transaction. The reason names the tracker,
    /// not its files; the error itself goes to the log.
    fn health(&self) -> Result<(), String> {
        let mut failing = Vec::new();
        for m in &self.mounted {
            let tracker = &*m.tracker;
            let Some(users) = tracker.schema.class("user") else {
                continue;
            };
            let read = tracker
                .store
                .read()
                .and_then(|mut tx| tx.lookup(users, "username", "anonymous").map(drop));
            if let Err(e) = read {
                self.metrics.storage_errors(&tracker.name, 1);
                tracing::error!(tracker = %field(&tracker.name), error = %field(&e.to_string()), "health check: cannot read the database");
                failing.push(tracker.name.as_str());
            }
        }
        if failing.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = failing.iter().map(|n| field(n).to_string()).collect();
        Err(format!(
            "cannot read the database of tracker {}",
            names.join(", ")
        ))
    }
}

/// Why [`App::check_caller`] did not let a caller through.
enum Refused {
    /// This answer (logged and counted).
    Answer(Box<RpcResponse>),
    /// Only without `may_hash`: the login needs a password hash computed (nothing
    /// was logged or counted).
    WouldHash,
}

impl From<Box<RpcResponse>> for Refused {
    fn from(r: Box<RpcResponse>) -> Refused {
        Refused::Answer(r)
    }
}

/// What a request body's first `<methodName>` element holds, found by plain byte
/// search: a hint only (the decoder decides), so that calls that cannot go inline
/// are not decoded twice.
fn method_name_hint(body: &[u8]) -> Option<&[u8]> {
    const OPEN: &[u8] = b"<methodName>";
    const CLOSE: &[u8] = b"</methodName>";
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let start = find(body, OPEN)? + OPEN.len();
    let len = find(&body[start..], CLOSE)?;
    Some(body[start..start + len].trim_ascii())
}

/// The calls [`RpcHandler::call_inline`] answers on the executor thread: reads whose
/// cost is a few indexed row reads, never a scan or a file. `display` of an item of
/// a class that is not a FileClass (whose content is a file), `lookup`, `schema`;
/// and only on a backend whose reads are local ([`crate::store::Store::reads_inline`]:
/// SQLite, not PostgreSQL).
fn inline_method(tracker: &Tracker, call: &MethodCall) -> bool {
    if !tracker.store.reads_inline() {
        return false;
    }
    match call.name.as_str() {
        "lookup" | "schema" => true,
        "display" => {
            let Some(Value::String(designator)) = call.params.first() else {
                return false;
            };
            let class = designator.trim_end_matches(|c: char| c.is_ascii_digit());
            tracker
                .schema
                .class(class)
                .is_some_and(|c| c.kind != crate::schema::ClassKind::FileClass)
        }
        _ => false,
    }
}

impl App {
    /// [`RpcHandler::authorize`]: the session of an allowed caller, or the answer.
    /// Without `may_hash`, a login that would verify a password (not cached, or an
    /// unknown user) is [`Refused::WouldHash`] before anything is counted.
    fn check_caller(self: &Arc<Self>, head: &RpcHead, may_hash: bool) -> Result<Session, Refused> {
        let started = Instant::now();
        let Some(index) = self.route(&head.path) else {
            return Err(Box::new(Refusal::NoTracker.response()).into());
        };
        let in_flight = self.metrics.call_in_flight();
        let m = &self.mounted[index];
        let tracker = &*m.tracker;
        let name = field(&tracker.name);
        let client = head.peer;
        let proxy = (head.peer != head.tcp_peer).then_some(head.tcp_peer);
        let proxy_field = proxy.map(tracing::field::display);
        let header = head.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        let creds = match auth::parse_authorization(header) {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(peer = %client, error = %e, tracker = %name, proxy = proxy_field, "malformed Authorization header");
                self.count_refused(m, Outcome::Refused, started);
                return Err(Box::new(Refusal::BadAuthorization.response()).into());
            }
        };
        let login_name = match &creds {
            Credentials::Anonymous => "anonymous",
            Credentials::Basic { username, .. } => username.as_str(),
        };
        let peer = head.peer.ip().to_string();
        // The login's read transaction ends here, before the body is read.
        let login = match tracker.store.read() {
            Ok(mut tx) => self.login(m, &creds, &peer, &mut *tx, may_hash),
            Err(e) => Err(LoginError::Store(e.to_string())),
        };
        let user = match login {
            Ok(u) => u,
            Err(LoginError::WouldHash) => return Err(Refused::WouldHash),
            Err(LoginError::Invalid) => {
                tracing::info!(peer = %client, user = %field(login_name), duration_ms = millis(started.elapsed()), tracker = %name, proxy = proxy_field, "invalid login");
                self.metrics.failed_login(&tracker.name);
                self.count_refused(m, Outcome::Refused, started);
                return Err(Box::new(
                    Refusal::InvalidUser {
                        path: head.path.clone(),
                    }
                    .response(),
                )
                .into());
            }
            Err(LoginError::Limited(r)) => {
                tracing::warn!(peer = %client, user = %field(login_name), duration_ms = millis(started.elapsed()), tracker = %name, proxy = proxy_field, "failed-login limit reached");
                self.metrics.limiter_refusal(&tracker.name, Limit::Logins);
                self.count_refused(m, Outcome::Refused, started);
                return Err(Box::new(too_many(RateLimit::Logins, r, &m.limiter)).into());
            }
            Err(LoginError::Store(e)) => {
                tracing::error!(peer = %client, user = %field(login_name), error = %field(&e), tracker = %name, proxy = proxy_field, "cannot read users");
                self.metrics.storage_errors(&tracker.name, 1);
                self.count_refused(m, Outcome::Error, started);
                return Err(Box::new(fault_response(&Error::Store(e).to_fault())).into());
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
            tracing::warn!(peer = %client, user = %field(&user.username), duration_ms = millis(started.elapsed()), tracker = %name, proxy = proxy_field, "call-rate limit reached");
            self.metrics.limiter_refusal(&tracker.name, Limit::Calls);
            self.count_refused(m, Outcome::Refused, started);
            return Err(Box::new(too_many(RateLimit::Calls, r, &m.call_limiter)).into());
        }
        if !tracker
            .security
            .has_permission_static(&user, "Xmlrpc Access", None, None)
        {
            tracing::info!(
                peer = %client,
                user = %field(&user.username),
                outcome = %Outcome::Refused.as_str(),
                fault_code = 403,
                duration_ms = millis(started.elapsed()),
                tracker = %name,
                proxy = proxy_field,
                "refused: no Xmlrpc Access"
            );
            self.count_refused(m, Outcome::Refused, started);
            return Err(Box::new(fault_response(&Error::Forbidden.to_fault())).into());
        }
        Ok(Session {
            app: Arc::clone(self),
            tracker: index,
            user,
            peer: head.peer,
            proxy,
            started,
            _in_flight: in_flight,
        })
    }
}

impl RpcCall for Session {
    fn call(self: Box<Self>, body: Bytes, deadline: &Deadline) -> RpcResponse {
        let app = &*self.app;
        let tracker = &*app.mounted[self.tracker].tracker;
        let name = field(&tracker.name);
        let proxy = self.proxy.map(tracing::field::display);
        let call = match xmlrpc::decode_request(&body, &app.limits) {
            Ok(c) => c,
            Err(e) => {
                // The error text may quote client data (a password in a badly typed
                // field): log only the kind of failure.
                tracing::info!(peer = %self.peer, user = %field(&self.user.username), outcome = %Outcome::Invalid.as_str(), fault_code = e.fault_code(), duration_ms = millis(self.started.elapsed()), tracker = %name, proxy, "bad request document");
                app.metrics.call(
                    &tracker.name,
                    NO_METHOD,
                    Outcome::Invalid,
                    self.started.elapsed(),
                );
                return fault_response(&decode_fault(&e));
            }
        };
        drop(body);
        self.run(call, deadline)
    }
}

impl Session {
    /// Runs a decoded call and answers it (logged and counted).
    fn run(self, call: MethodCall, deadline: &Deadline) -> RpcResponse {
        let app = &*self.app;
        let tracker = &*app.mounted[self.tracker].tracker;
        let name = field(&tracker.name);
        let proxy = self.proxy.map(tracing::field::display);
        let mut caller = Caller::new(tracker, &self.user).with_deadline(deadline);
        let outcome = caller.dispatch(&call);
        let names = multicall_names(&call);
        let methods_logged = method_list(&call.name, &names);
        let method = known_method(&call.name).unwrap_or(OTHER_METHOD);
        let elapsed = self.started.elapsed();
        app.metrics
            .storage_errors(&tracker.name, caller.storage_errors());
        if caller.overdue() && !deadline.committed() {
            tracing::warn!(
                peer = %self.peer,
                user = %field(&self.user.username),
                method = %methods_logged,
                outcome = %Outcome::Deadline.as_str(),
                duration_ms = millis(elapsed),
                tracker = %name,
                proxy,
                "call"
            );
            app.metrics
                .call(&tracker.name, method, Outcome::Deadline, elapsed);
            return Refusal::Deadline.response();
        }
        let (body, fault_code, counted) = match &outcome {
            Ok(v) => (xmlrpc::encode_response(v), None, Outcome::Ok),
            Err(f) => (
                xmlrpc::encode_fault(f),
                Some(f.code),
                if caller.storage_errors() > 0 {
                    Outcome::Error
                } else {
                    Outcome::Fault
                },
            ),
        };
        tracing::info!(
            peer = %self.peer,
            user = %field(&self.user.username),
            method = %methods_logged,
            outcome = %counted.as_str(),
            fault_code,
            duration_ms = millis(elapsed),
            tracker = %name,
            proxy,
            "call"
        );
        app.metrics.call(&tracker.name, method, counted, elapsed);
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
            "/%%41",
            "/%4g",
            "/%-1",
            "/%ff%fe",
            "/demo/%2e%2e/xmlrpc",
        ] {
            assert_eq!(rpc_path(path), None, "{path:?}");
        }
    }
}
