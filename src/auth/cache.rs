//! A cache of recently verified credentials, so that a client sending Basic
//! credentials on every request pays for PBKDF2 once per TTL instead of every time.
//!
//! Nothing secret is kept in clear: an entry is located by
//! `HMAC-SHA256(k, username ‖ stored_hash)` and holds
//! `HMAC-SHA256(k, username ‖ stored_hash ‖ password)`, with `k` a random key drawn
//! once per process (every field is length-prefixed, so field boundaries cannot be
//! shifted). A hit needs the same username, password *and* stored hash, so changing
//! the password (or re-hashing it on migration) invalidates the entry. Verifiers are
//! compared in constant time. The cache holds successes only; failures must not be
//! inserted.
//!
//! Size is bounded by [`quick_cache`] (a concurrent cache with CLOCK-PRO eviction:
//! entries checked again stay, one-off ones go first); expiry is checked on every
//! lookup, and an expired entry is removed when found. All methods take `&self` and
//! are safe to call from many threads.

use std::fmt;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use quick_cache::sync::Cache;
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// One cached success.
#[derive(Clone, Copy)]
struct Entry {
    /// MAC over (username, stored hash, password).
    verifier: [u8; 32],
    /// When it was inserted; valid while younger than the TTL.
    inserted: Instant,
}

/// A bounded, thread-safe, TTL-limited cache of successful password checks.
pub struct CredentialCache {
    /// HMAC keyed with the per-process secret, cloned for each computation.
    mac: HmacSha256,
    /// Index MAC → entry; `None` when caching is disabled.
    entries: Option<Cache<[u8; 32], Entry>>,
    /// Maximum number of entries; 0 disables the cache.
    capacity: usize,
    /// How long an entry stays valid.
    ttl: Duration,
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCache")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl CredentialCache {
    /// A cache of at most `capacity` entries, each valid for `ttl`, with a fresh
    /// random key. `capacity` 0 or a zero `ttl` disables caching.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let mut secret = [0u8; 64];
        UnwrapErr(SysRng).fill_bytes(&mut secret);
        let enabled = capacity > 0 && !ttl.is_zero();
        CredentialCache {
            mac: HmacSha256::new(&secret.into()),
            entries: enabled.then(|| Cache::new(capacity)),
            capacity,
            ttl,
        }
    }

    /// MAC over a domain tag and length-prefixed fields.
    fn digest(&self, tag: u8, fields: &[&str]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(&[tag]);
        for f in fields {
            mac.update(&(f.len() as u64).to_le_bytes());
            mac.update(f.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    fn keys(&self, username: &str, password: &str, stored_hash: &str) -> ([u8; 32], [u8; 32]) {
        (
            self.digest(b'i', &[username, stored_hash]),
            self.digest(b'v', &[username, stored_hash, password]),
        )
    }

    /// True when this exact (username, password, stored hash) was inserted less than
    /// the TTL ago, i.e. the password is known to match this stored hash.
    pub fn check(&self, username: &str, password: &str, stored_hash: &str) -> bool {
        self.check_at(username, password, stored_hash, Instant::now())
    }

    /// [`check`](Self::check) with an explicit clock (for tests).
    pub fn check_at(
        &self,
        username: &str,
        password: &str,
        stored_hash: &str,
        now: Instant,
    ) -> bool {
        let Some(entries) = &self.entries else {
            return false;
        };
        let (index, verifier) = self.keys(username, password, stored_hash);
        match entries.get(&index) {
            Some(e) => {
                let fresh = now.saturating_duration_since(e.inserted) < self.ttl;
                let same: bool = e.verifier.ct_eq(&verifier).into();
                if !fresh {
                    // Only if it is still the expired entry (not one just re-inserted).
                    entries.remove_if(&index, |e| {
                        now.saturating_duration_since(e.inserted) >= self.ttl
                    });
                }
                fresh & same
            }
            None => false,
        }
    }

    /// Records that `password` was verified against `stored_hash` for `username`.
    pub fn insert(&self, username: &str, password: &str, stored_hash: &str) {
        self.insert_at(username, password, stored_hash, Instant::now());
    }

    /// [`insert`](Self::insert) with an explicit clock (for tests).
    pub fn insert_at(&self, username: &str, password: &str, stored_hash: &str, now: Instant) {
        let Some(entries) = &self.entries else {
            return;
        };
        let (index, verifier) = self.keys(username, password, stored_hash);
        entries.insert(
            index,
            Entry {
                verifier,
                inserted: now,
            },
        );
    }

    /// Forgets every entry (e.g. after a configuration reload).
    pub fn clear(&self) {
        if let Some(entries) = &self.entries {
            entries.clear();
        }
    }

    /// Number of entries held, expired ones included until they are pruned.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, Cache::len)
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
