//! Failed-login rate limiter, Roundup's `api_failed_login_limit` (reference §10.2).
//!
//! Roundup uses GCRA (generic cell rate algorithm) over *failed* logins only:
//! `inverse = interval / limit`; a key's state is one "theoretical arrival time"
//! `tat`. A failure is refused when `tat - now > interval - inverse`, otherwise it
//! sets `tat = max(tat, now) + inverse`. A login attempt (even with the right
//! password) is refused while the same condition holds. With the defaults (4 per
//! 600 s) failures 1–4 are answered 401 and the 5th attempt, and any attempt in the
//! next 150 s, is refused with "Please wait: 150 seconds".
//!
//! Why not the `governor` crate: it implements GCRA too, but every check consumes a
//! cell and it has no "would this be refused?" query, whereas Roundup needs both a
//! non-consuming check (before verifying the password) and a consuming update (after
//! a failure). The algorithm is a few lines, so it is implemented here, with the
//! caller passing `now` (testable with a fake clock).
//!
//! Memory is bounded: keys are stored as a 128-bit SHA-256 prefix (so long user names
//! cost nothing), at most `max_keys` of them. When full, keys whose `tat` has passed
//! (equivalent to absent) are pruned; if all are live, the key closest to expiry is
//! dropped, which an attacker could only force with `max_keys` fresh failures within
//! one interval. The state lives in memory, per process and lost on restart —
//! except on PostgreSQL, where it is kept in the database like Roundup keeps it
//! (its `otks` table, see [`crate::store::SharedLimits`]) and so holds across all
//! daemons serving the tracker: [`LoginLimiter::check_at`] and
//! [`LoginLimiter::next_tat`] are the same GCRA over that shared state, in Unix
//! seconds.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Default bound on the number of tracked keys.
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// A refusal: how long the client should wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryAfter {
    /// Roundup's `Retry-After` and the number in "Please wait: N seconds": the whole
    /// seconds of `interval / limit` (150 with the defaults).
    pub secs: u64,
    /// Roundup's `X-RateLimit-Reset`: seconds until the key is fully reset (`tat - now`).
    pub reset_secs: f64,
}

/// Per-key GCRA limiter of failed logins; thread-safe, with bounded memory.
#[derive(Debug)]
pub struct LoginLimiter {
    /// Failures allowed per interval; 0 disables the limiter.
    limit: u32,
    /// The interval (Roundup's `api_failed_login_interval_in_sec`).
    interval: Duration,
    /// `interval / limit`: the time one failure occupies.
    inverse: Duration,
    /// Bound on tracked keys.
    max_keys: usize,
    /// Key digest → theoretical arrival time.
    tats: Mutex<HashMap<[u8; 16], Instant>>,
}

impl LoginLimiter {
    /// A limiter allowing `limit` failures per `interval` (`limit` 0 = off), tracking
    /// at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(limit: u32, interval: Duration) -> Self {
        Self::with_max_keys(limit, interval, DEFAULT_MAX_KEYS)
    }

    /// Like [`new`](Self::new) with an explicit bound on tracked keys (at least 1).
    pub fn with_max_keys(limit: u32, interval: Duration, max_keys: usize) -> Self {
        let inverse = if limit == 0 {
            Duration::ZERO
        } else {
            interval / limit
        };
        LoginLimiter {
            limit,
            interval,
            inverse,
            max_keys: max_keys.max(1),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Failures allowed per interval (`X-RateLimit-Limit`); 0 when off.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The interval (`X-RateLimit-Limit-Period`).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Number of keys currently tracked (expired ones included until pruned).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 16], Instant>> {
        self.tats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn digest(key: &str) -> [u8; 16] {
        let full = Sha256::digest(key.as_bytes());
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// GCRA test: `Err` when an attempt at `now` with this `tat` is refused.
    fn test(&self, tat: Option<Instant>, now: Instant) -> Result<Instant, RetryAfter> {
        let tat = tat.map_or(now, |t| t.max(now));
        let separation = tat - now;
        if separation > self.interval.saturating_sub(self.inverse) {
            Err(RetryAfter {
                secs: self.inverse.as_secs(),
                reset_secs: separation.as_secs_f64(),
            })
        } else {
            Ok(tat)
        }
    }

    /// Call before verifying a password: `Err` while `key` is locked out, in which
    /// case the attempt must be refused (429) even if the password is right.
    /// Does not count as an attempt.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        if self.limit == 0 {
            return Ok(());
        }
        let digest = Self::digest(key);
        let tat = self.lock().get(&digest).copied();
        self.test(tat, now).map(|_| ())
    }

    /// [`check`](Self::check) over state kept elsewhere: `tat` is the key's stored
    /// theoretical arrival time, `now` the time, both Unix seconds.
    pub fn check_at(&self, tat: Option<f64>, now: f64) -> Result<(), RetryAfter> {
        if self.limit == 0 {
            return Ok(());
        }
        self.test_secs(tat, now).map(|_| ())
    }

    /// [`record_failure`](Self::record_failure) over state kept elsewhere: the
    /// key's new arrival time after a failure at `now`, or `Err` (nothing to
    /// store) when the limit is already reached.
    pub fn next_tat(&self, tat: Option<f64>, now: f64) -> Result<f64, RetryAfter> {
        let tat = self.test_secs(tat, now)?;
        Ok(tat + self.inverse.as_secs_f64())
    }

    fn test_secs(&self, tat: Option<f64>, now: f64) -> Result<f64, RetryAfter> {
        let tat = tat.map_or(now, |t| t.max(now));
        let separation = tat - now;
        if separation > self.interval.saturating_sub(self.inverse).as_secs_f64() {
            Err(RetryAfter {
                secs: self.inverse.as_secs(),
                reset_secs: separation,
            })
        } else {
            Ok(tat)
        }
    }

    /// Counts one event (a call, for the call-rate limit) for `key`, or returns
    /// `Err` without counting when its budget is used up.
    pub fn take(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        self.record_failure(key, now)
    }

    /// Call after a failed login for `key` (also for unknown users): counts it, or
    /// returns `Err` without counting when the limit is already reached — possible
    /// when concurrent attempts all passed [`check`](Self::check), or when the caller
    /// skips `check` (as Roundup does for unknown users).
    pub fn record_failure(&self, key: &str, now: Instant) -> Result<(), RetryAfter> {
        if self.limit == 0 {
            return Ok(());
        }
        let digest = Self::digest(key);
        let mut tats = self.lock();
        let tat = self.test(tats.get(&digest).copied(), now)?;
        let new_tat = tat.checked_add(self.inverse).unwrap_or(tat);
        if tats.len() >= self.max_keys && !tats.contains_key(&digest) {
            tats.retain(|_, t| *t > now);
            if tats.len() >= self.max_keys {
                let first = tats.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k);
                if let Some(k) = first {
                    tats.remove(&k);
                }
            }
        }
        tats.insert(digest, new_tat);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_state_follows_the_same_gcra() {
        // 4 failures per 600 s: failures 1-4 pass, the 5th is refused, 150 s later
        // one more passes.
        let l = LoginLimiter::new(4, Duration::from_secs(600));
        let mut tat = None;
        for _ in 0..4 {
            assert!(l.check_at(tat, 1000.0).is_ok());
            tat = Some(l.next_tat(tat, 1000.0).expect("allowed"));
        }
        let r = l.check_at(tat, 1000.0).expect_err("locked out");
        assert_eq!(r.secs, 150);
        assert!(l.next_tat(tat, 1000.0).is_err());
        assert!(l.check_at(tat, 1150.0).is_ok());
        let off = LoginLimiter::new(0, Duration::from_secs(1));
        assert!(off.check_at(Some(1e12), 0.0).is_ok());
    }
}
