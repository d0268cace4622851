//! The application behind the HTTP front end: finds the tracker for the path,
//! authenticates the caller, decodes the call, dispatches it in a transaction and
//! encodes the answer. Its [`App::handle`] is the top of the request path.

use crate::api;
use crate::auth::{self, CredentialCache, Credentials, LoginLimiter, RetryAfter};
use crate::detectors::mail;
use crate::dispatch::{self, Methods};
use crate::error::{decode_fault, Error};
use crate::http::{RpcHandler, RpcRequest, RpcResponse};
use crate::items::{self, Changes, Ctx};
use crate::security::{split_roles, UserCtx};
use crate::store::{Multilinks, PropValue, Tx};
use crate::tracker::Tracker;
use crate::xmlrpc::{self, Fault, Limits, MethodCall, Value};
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONNECTION, RETRY_AFTER};
use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
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

/// How many more failures one username (over all addresses) and one client
/// address (over all usernames) may have than one (username, address) pair.
const LIMIT_FACTOR: u32 = 10;

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
                let failures = |factor: u32| {
                    LoginLimiter::new(
                        s.api_failed_login_limit.saturating_mul(factor),
                        Duration::from_secs(s.api_failed_login_interval),
                    )
                };
                Mounted {
                    name: t.name.to_lowercase(),
                    limiter: failures(1),
                    user_limiter: failures(LIMIT_FACTOR),
                    peer_limiter: failures(LIMIT_FACTOR),
                    dummy_hash: OnceLock::new(),
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

/// The failed-login limiter keys of one attempt.
struct LoginKeys {
    /// (username, client) for [`Mounted::limiter`].
    pair: String,
    /// The username for [`Mounted::user_limiter`].
    user: String,
    /// The client for [`Mounted::peer_limiter`].
    peer: String,
}

impl LoginKeys {
    /// The keys in the order the shared limiter state is read.
    fn shared(&self) -> [&str; 3] {
        [&self.pair, &self.user, &self.peer]
    }

    fn new(username: &str, peer: &str) -> LoginKeys {
        let client = client_key(peer);
        LoginKeys {
            // The client part is length-prefixed: a username may contain anything.
            pair: format!("LOGIN-PAIR{}:{client}:{username}", client.len()),
            user: format!("LOGIN-API{username}"),
            peer: format!("LOGIN-PEER{client}"),
        }
    }
}

/// The client part of the limiter keys: the IPv4 address, or the /64 network of
/// an IPv6 address (one host usually holds a whole /64, so single IPv6 addresses
/// would be free for the taking).
fn client_key(peer: &str) -> String {
    use std::net::{IpAddr, Ipv6Addr};
    match peer.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("{}/64", Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        _ => peer.to_string(),
    }
}

impl Mounted {
    /// `Err` while the username, the client address or the pair is locked out.
    fn locked_out(&self, keys: &LoginKeys, now: Instant) -> Result<(), LoginError> {
        self.locked_out_given(keys, now, None)
    }

    /// [`Mounted::locked_out`] with the shared state already read (`tats`, in
    /// the order of [`LoginKeys::shared`]), e.g. together with the user.
    fn locked_out_given(
        &self,
        keys: &LoginKeys,
        now: Instant,
        tats: Option<Vec<Option<f64>>>,
    ) -> Result<(), LoginError> {
        if let Some(r) = self.shared_locked_out(keys, tats) {
            return r;
        }
        self.limiter
            .check(&keys.pair, now)
            .and_then(|()| self.user_limiter.check(&keys.user, now))
            .and_then(|()| self.peer_limiter.check(&keys.peer, now))
            .map_err(LoginError::Limited)
    }

    /// Counts a failed login under all three keys: `Limited` when one of them had
    /// already used up its budget, else `Invalid`.
    fn record_failure(&self, keys: &LoginKeys) -> LoginError {
        if let Some(e) = self.shared_record_failure(keys) {
            return e;
        }
        let now = Instant::now();
        let results = [
            self.limiter.record_failure(&keys.pair, now),
            self.user_limiter.record_failure(&keys.user, now),
            self.peer_limiter.record_failure(&keys.peer, now),
        ];
        match results.into_iter().find_map(Result::err) {
            Some(r) => LoginError::Limited(r),
            None => LoginError::Invalid,
        }
    }

    // --- Failed-login state shared through the database (PostgreSQL) ---

    /// [`Mounted::locked_out`] over the database's shared state, when the store
    /// keeps one (`None`: in memory, also when the database cannot be read).
    fn shared_locked_out(
        &self,
        keys: &LoginKeys,
        tats: Option<Vec<Option<f64>>>,
    ) -> Option<Result<(), LoginError>> {
        let shared = self.tracker.store.shared_limits()?;
        if self.limiter.limit() == 0 {
            return None;
        }
        let read = match tats {
            Some(t) => Ok(t),
            None => shared.tats(&keys.shared()),
        };
        let tats = match read {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(tracker = %self.name, error = %e, "shared failed-login state unreadable; using this daemon's own");
                return None;
            }
        };
        let now = unix_now();
        Some(
            self.limiter
                .check_at(tats[0], now)
                .and_then(|()| self.user_limiter.check_at(tats[1], now))
                .and_then(|()| self.peer_limiter.check_at(tats[2], now))
                .map_err(LoginError::Limited),
        )
    }

    /// [`Mounted::record_failure`] in the database's shared state (`None`: not
    /// kept there, or the database failed: counted in memory instead).
    fn shared_record_failure(&self, keys: &LoginKeys) -> Option<LoginError> {
        let shared = self.tracker.store.shared_limits()?;
        if self.limiter.limit() == 0 {
            return None;
        }
        let now = unix_now();
        let mut refused = None;
        for (limiter, key) in [
            (&self.limiter, &keys.pair),
            (&self.user_limiter, &keys.user),
            (&self.peer_limiter, &keys.peer),
        ] {
            let mut this = None;
            let stored =
                shared.update(
                    key,
                    limiter.interval().as_secs_f64(),
                    &mut |tat| match limiter.next_tat(tat, now) {
                        Ok(t) => Some(t),
                        Err(r) => {
                            this = Some(r);
                            None
                        }
                    },
                );
            if let Err(e) = stored {
                tracing::warn!(tracker = %self.name, error = %e, "shared failed-login state not written; counted by this daemon only");
                return None;
            }
            if refused.is_none() {
                refused = this;
            }
        }
        Some(refused.map_or(LoginError::Invalid, LoginError::Limited))
    }

    /// See [`Mounted::dummy_hash`].
    fn dummy_hash(&self) -> &str {
        self.dummy_hash.get_or_init(|| {
            let secret: [u8; 16] = rand::random();
            let text: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            self.tracker.settings.hash_policy().hash(&text)
        })
    }
}

/// The current time in Unix seconds (the shared limiter state's clock).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The non-retired user called `username` (exactly), if any.
fn find_user(
    tx: &mut dyn Tx,
    users: &crate::tracker::schema::ClassDef,
    username: &str,
) -> Result<Option<crate::store::Item>, LoginError> {
    (|| match tx.lookup(users, "username", username)? {
        Some(id) => tx.get(users, id, Multilinks::None),
        None => Ok(None),
    })()
    .map_err(|e: crate::store::StoreError| LoginError::Store(e.to_string()))
}

/// A user's stored password hash; `None` when it has none (NULL or empty).
fn stored_password(user: &crate::store::Item) -> Option<String> {
    match user.get("password") {
        Some(PropValue::Password(p)) if !p.is_empty() => Some(p.clone()),
        _ => None,
    }
}

impl App {
    /// Resolves the caller to a user, enforcing the failed-login limiter. The user
    /// is read in `tx`, the transaction the call then runs in if it only reads.
    ///
    /// Without credentials the caller is `anonymous` (which must have no password).
    /// With Basic credentials: refused (429) while the (user, address) pair, the
    /// user or the address is locked out; an unknown user, or a user without a
    /// password when `[web] login_empty_passwords` does not allow it, costs one
    /// hash like a wrong password does; a verified outdated hash is re-hashed
    /// (`[web] migrate_passwords`).
    fn login(
        &self,
        m: &Mounted,
        creds: &Credentials,
        peer: &str,
        tx: &mut dyn Tx,
    ) -> Result<UserCtx, LoginError> {
        let tracker = &m.tracker;
        let Some(users) = tracker.schema.class("user") else {
            return Err(LoginError::Invalid);
        };
        let (username, password) = match creds {
            Credentials::Anonymous => {
                return match find_user(tx, users, "anonymous")? {
                    Some(u) if stored_password(&u).is_none() => {
                        Ok(user_ctx(&u, "anonymous".to_string()))
                    }
                    _ => Err(LoginError::Invalid),
                };
            }
            Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
        };
        let keys = LoginKeys::new(username, peer);
        // The shared failed-login state (PostgreSQL) and the user, read together.
        let shared = m.tracker.store.shared_limits().is_some() && m.limiter.limit() > 0;
        let limit_keys = keys.shared();
        let (tats, user_id) = tx
            .login_lookup(
                users,
                "username",
                username,
                if shared { &limit_keys } else { &[] },
            )
            .map_err(|e| LoginError::Store(e.to_string()))?;
        // Refused while locked out, even with the right password.
        m.locked_out_given(&keys, Instant::now(), tats.filter(|_| shared))?;
        let user = match user_id.filter(|_| !username.is_empty()) {
            Some(id) => tx
                .get(users, id, Multilinks::None)
                .map_err(|e| LoginError::Store(e.to_string()))?,
            None => None,
        };
        let stored = user.as_ref().and_then(stored_password);
        let (user, hash) = match (user, stored) {
            (Some(u), Some(h)) => (u, h),
            (Some(u), None) if password.is_empty() && tracker.settings.login_empty_passwords => {
                return Ok(user_ctx(&u, username.to_string()));
            }
            _ => {
                // No such user (or no password): one hash, as for a wrong password,
                // so the time taken does not tell which names exist.
                return Err(self.gate.run(username, || {
                    if let Err(e) = m.locked_out(&keys, Instant::now()) {
                        return e;
                    }
                    let _ = auth::verify(m.dummy_hash(), password);
                    m.record_failure(&keys)
                }));
            }
        };
        if !self.credentials.check(username, password, &hash) {
            // One verification per username at a time, counted before the next one
            // starts: concurrent guesses cannot all slip past the limiter.
            let hashed = self.gate.run(username, || {
                m.locked_out(&keys, Instant::now())?;
                if self.credentials.check(username, password, &hash) {
                    return Ok(false); // verified by a concurrent login meanwhile
                }
                if !auth::verify(&hash, password).unwrap_or(false) {
                    return Err(m.record_failure(&keys));
                }
                self.credentials.insert(username, password, &hash);
                Ok(true)
            })?;
            if hashed {
                self.migrate_password(m, &user, username, password, &hash);
            }
        }
        Ok(user_ctx(&user, username.to_string()))
    }

    /// `[web] migrate_passwords`, as Roundup's `verifyPassword`: after a successful
    /// verification (not a cache hit, so a failing migration is retried at most
    /// once per cache lifetime), a hash whose scheme or work factor is outdated
    /// ([`auth::HashPolicy::needs_migration`]) is replaced by a new one in a write
    /// transaction of its own — only if it is still the stored one. Failures are
    /// logged; the login stands.
    fn migrate_password(
        &self,
        m: &Mounted,
        user: &crate::store::Item,
        username: &str,
        password: &str,
        old_hash: &str,
    ) {
        let settings = &m.tracker.settings;
        let policy = settings.hash_policy();
        if !settings.migrate_passwords || !policy.needs_migration(old_hash) {
            return;
        }
        let new_hash = self.gate.run(username, || policy.hash(password));
        let who = user_ctx(user, username.to_string());
        match store_password(&m.tracker, &who, old_hash, &new_hash) {
            Ok(true) => {
                self.credentials.insert(username, password, &new_hash);
                tracing::info!(tracker = %m.name, user = %username, from = auth::scheme_of(old_hash).unwrap_or(""), to = policy.scheme.as_str(), "password hash migrated");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(tracker = %m.name, user = %username, error = %e, "password hash not migrated")
            }
        }
    }
}

/// Replaces `user`'s password hash `old` by `new` (a `set` by the user, journalled
/// like Roundup's `db.user.set(userid, password=...)`), unless it changed since it
/// was read; true when it was written.
fn store_password(tracker: &Tracker, user: &UserCtx, old: &str, new: &str) -> Result<bool, Error> {
    let users = tracker
        .schema
        .class("user")
        .ok_or_else(|| Error::Internal("no user class".into()))?;
    let mut tx = tracker.store.write()?;
    let current = tx.get(users, user.id, Multilinks::None)?;
    let unchanged = current.is_some_and(|item| {
        !item.retired && matches!(item.get("password"), Some(PropValue::Password(p)) if p == old)
    });
    if !unchanged {
        return Ok(false);
    }
    let mut changes = Changes::default();
    changes
        .props
        .insert("password", Some(PropValue::Password(new.to_string())));
    let outbox = {
        let mut ctx = Ctx::new(&mut *tx, tracker, user);
        items::set(&mut ctx, users, user.id, changes)?;
        ctx.outbox
    };
    mail::queue(&mut *tx, &outbox, &tracker.settings)?;
    tx.commit()?;
    if !outbox.is_empty() {
        tracker.outbox.wake();
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_group_ipv6_by_64() {
        assert_eq!(client_key("192.0.2.7"), "192.0.2.7");
        assert_eq!(client_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(client_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(
            client_key("2001:db8:1:2:ffff::1"),
            client_key("2001:db8:1:2::9")
        );
        assert_ne!(client_key("2001:db8:1:3::1"), client_key("2001:db8:1:2::1"));
        assert_eq!(client_key("not an address"), "not an address");
    }

    #[test]
    fn pair_keys_cannot_be_forged_by_user_names() {
        // A user name that embeds another client's address gives another key.
        let a = LoginKeys::new("joe", "10.0.0.1");
        let b = LoginKeys::new("1:joe", "10.0.0.1");
        let c = LoginKeys::new("joe", "10.0.0.11");
        assert_ne!(a.pair, b.pair);
        assert_ne!(a.pair, c.pair);
        assert_eq!(a.user, c.user);
        assert_eq!(a.peer, b.peer);
    }
}
