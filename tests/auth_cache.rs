//! The verified-credentials cache.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use roundup_xmlrpc::auth::CredentialCache;

const H1: &str = "{PBKDF2S5}250000$c2FsdA$aGFzaDE";
const H2: &str = "{PBKDF2S5}250000$c2FsdA$aGFzaDI";

#[test]
fn hit_only_for_the_exact_triple() {
    let c = CredentialCache::new(10, Duration::from_secs(60));
    assert!(!c.check("admin", "sekrit", H1));
    c.insert("admin", "sekrit", H1);
    assert!(c.check("admin", "sekrit", H1));
    assert!(!c.check("admin", "sekrit2", H1), "other password");
    assert!(!c.check("admin", "sekrit", H2), "stored hash changed");
    assert!(!c.check("Admin", "sekrit", H1), "other user");
    assert!(!c.check("admin", "", H1));
    assert_eq!(c.len(), 1);
}

#[test]
fn field_boundaries_are_unambiguous() {
    let c = CredentialCache::new(10, Duration::from_secs(60));
    c.insert("ab", "c", H1);
    assert!(!c.check("a", "bc", H1));
    c.insert("user", "pw", "hash");
    assert!(!c.check("user", "pwhash", ""));
    assert!(!c.check("userpw", "", "hash"));
}

#[test]
fn password_change_replaces_the_entry() {
    let c = CredentialCache::new(10, Duration::from_secs(60));
    c.insert("admin", "old", H1);
    c.insert("admin", "new", H2);
    assert!(c.check("admin", "new", H2));
    assert!(!c.check("admin", "old", H2));
    c.insert("admin", "other", H2);
    assert!(c.check("admin", "other", H2));
    assert!(
        !c.check("admin", "new", H2),
        "one entry per (user, stored hash)"
    );
}

#[test]
fn entries_expire() {
    let c = CredentialCache::new(10, Duration::from_secs(60));
    let t0 = Instant::now();
    c.insert_at("admin", "sekrit", H1, t0);
    assert!(c.check_at("admin", "sekrit", H1, t0 + Duration::from_secs(59)));
    assert!(!c.check_at("admin", "sekrit", H1, t0 + Duration::from_secs(60)));
    // Re-inserting refreshes.
    c.insert_at("admin", "sekrit", H1, t0 + Duration::from_secs(60));
    assert!(c.check_at("admin", "sekrit", H1, t0 + Duration::from_secs(100)));
}

#[test]
fn bounded_size_evicts_expired_then_oldest() {
    let c = CredentialCache::new(3, Duration::from_secs(60));
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);
    c.insert_at("u1", "p", H1, at(0));
    c.insert_at("u2", "p", H1, at(10));
    c.insert_at("u3", "p", H1, at(20));
    c.insert_at("u4", "p", H1, at(30)); // full, none expired: u1 (oldest) goes
    assert_eq!(c.len(), 3);
    assert!(!c.check_at("u1", "p", H1, at(30)));
    assert!(c.check_at("u2", "p", H1, at(30)));
    assert!(c.check_at("u4", "p", H1, at(30)));
    // At 85 s, u2 (10) and u3 (20) have expired: both pruned, nothing live evicted.
    c.insert_at("u5", "p", H1, at(85));
    assert_eq!(c.len(), 2);
    assert!(c.check_at("u4", "p", H1, at(85)));
    assert!(c.check_at("u5", "p", H1, at(85)));
    // Updating an existing key of a full cache evicts nothing.
    c.insert_at("u6", "p", H1, at(86));
    c.insert_at("u4", "p", H1, at(87));
    assert_eq!(c.len(), 3);
    assert!(c.check_at("u5", "p", H1, at(87)));
    assert!(c.check_at("u6", "p", H1, at(87)));
}

#[test]
fn disabled_cache() {
    for c in [
        CredentialCache::new(0, Duration::from_secs(60)),
        CredentialCache::new(10, Duration::ZERO),
    ] {
        c.insert("admin", "sekrit", H1);
        assert!(!c.check("admin", "sekrit", H1));
        assert!(c.is_empty());
    }
}

#[test]
fn clear_and_debug() {
    let c = CredentialCache::new(10, Duration::from_secs(60));
    c.insert("admin", "sekrit", H1);
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("sekrit") && !shown.contains("admin"),
        "{shown}"
    );
    c.clear();
    assert!(!c.check("admin", "sekrit", H1));
}

#[test]
fn independent_instances_use_different_keys() {
    // Same inputs, two caches: an entry of one is never a hit in the other.
    let a = CredentialCache::new(10, Duration::from_secs(60));
    let b = CredentialCache::new(10, Duration::from_secs(60));
    a.insert("admin", "sekrit", H1);
    assert!(!b.check("admin", "sekrit", H1));
}

#[test]
fn concurrent_use() {
    let c = Arc::new(CredentialCache::new(64, Duration::from_secs(60)));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let c = Arc::clone(&c);
            thread::spawn(move || {
                for i in 0..500 {
                    let user = format!("u{}", (t * 500 + i) % 100);
                    c.insert(&user, "pw", H1);
                    let _ = c.check(&user, "pw", H1);
                    assert!(!c.check(&user, "wrong", H1));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(c.len() <= 64);
    c.insert("last", "pw", H1);
    assert!(c.check("last", "pw", H1));
}
