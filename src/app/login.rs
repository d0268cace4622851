//! Logging in: the caller of a request becomes a user (`App::login`), with
//! Roundup's failed-login limiter keyed three ways, a constant-cost answer for
//! unknown users, one password verification per user name at a time
//! ([`VerifyGate`]) and `[web] migrate_passwords`.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::{App, Mounted};
use crate::api::Caller;
use crate::auth::{self, Credentials, RetryAfter};
use crate::error::Error;
use crate::items::{self, Changes};
use crate::log::field;
use crate::security::{split_roles, UserCtx};
use crate::store::{Multilinks, PropValue, Tx};
use crate::tracker::Tracker;

/// How many more failures one username (over all addresses) and one client
/// address (over all usernames) may have than one (username, address) pair.
pub(super) const LIMIT_FACTOR: u32 = 10;

/// Serialises password verification per username and bounds it overall, so
/// that concurrent attempts are counted by the login limiter one after another
/// (at most `limit` hashes per interval per user) and hashing cannot occupy every
/// handler thread.
#[derive(Default)]
pub(super) struct VerifyGate {
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

/// Why a login failed.
pub(super) enum LoginError {
    /// Wrong user or password: 403 (and counts toward the limiter).
    Invalid,
    /// Locked out: 429.
    Limited(RetryAfter),
    /// The database could not be read.
    Store(String),
    /// Only when hashing was not allowed: the answer needs a password hash.
    WouldHash,
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
    users: &crate::schema::ClassDef,
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
    pub(super) fn login(
        &self,
        m: &Mounted,
        creds: &Credentials,
        peer: &str,
        tx: &mut dyn Tx,
        may_hash: bool,
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
            (Some(u), None)
                if password.is_empty() && tracker.settings.web.login_empty_passwords =>
            {
                return Ok(user_ctx(&u, username.to_string()));
            }
            _ if !may_hash => return Err(LoginError::WouldHash),
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
            if !may_hash {
                return Err(LoginError::WouldHash);
            }
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
        if !settings.web.migrate_passwords || !policy.needs_migration(old_hash) {
            return;
        }
        let new_hash = self.gate.run(username, || policy.hash(password));
        let who = user_ctx(user, username.to_string());
        match store_password(&m.tracker, &who, old_hash, &new_hash) {
            Ok(true) => {
                self.credentials.insert(username, password, &new_hash);
                tracing::info!(tracker = %field(&m.tracker.name), user = %field(username), from = auth::scheme_of(old_hash).unwrap_or(""), to = policy.scheme.as_str(), "password hash migrated");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(tracker = %field(&m.tracker.name), user = %field(username), error = %e, "password hash not migrated")
            }
        }
    }
}

/// Replaces `user`'s password hash `old` by `new` (a `set` by the user, journalled
/// like Roundup's `db.user.set(userid, password=...)`, in a write transaction of its
/// own), unless it changed since it was read; true when it was written.
fn store_password(tracker: &Tracker, user: &UserCtx, old: &str, new: &str) -> Result<bool, Error> {
    let users = tracker
        .schema
        .class("user")
        .ok_or_else(|| Error::Internal("no user class".into()))?;
    Caller::new(tracker, user).transaction(true, |ctx| {
        let current = ctx.tx.get(users, user.id, Multilinks::None)?;
        let unchanged = current.is_some_and(|item| {
            !item.retired
                && matches!(item.get("password"), Some(PropValue::Password(p)) if p == old)
        });
        if !unchanged {
            return Ok(false);
        }
        let mut changes = Changes::default();
        changes
            .props
            .insert("password", Some(PropValue::Password(new.to_string())));
        items::set(ctx, users, user.id, changes)?;
        Ok(true)
    })
}

/// The permission-check view of a user item.
pub(super) fn user_ctx(user: &crate::store::Item, username: String) -> UserCtx {
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
