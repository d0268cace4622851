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
fn bounded_size_keeps_what_is_used() {
    let c = CredentialCache::new(100, Duration::from_secs(60));
    // A client that logs in on every request ...
    c.insert("hot", "p", H1);
    assert!(c.check("hot", "p", H1));
    // ... keeps its entry while 10 000 one-off logins go through the cache.
    for i in 0..10_000 {
        let user = format!("u{i}");
        c.insert(&user, "p", H1);
        assert!(c.check(&user, "p", H1), "a new entry is usable at once");
        if i % 50 == 0 {
            assert!(c.check("hot", "p", H1), "hot entry evicted after {i}");
        }
    }
    assert!(c.len() <= 100, "{} entries", c.len());
    assert!(c.check("hot", "p", H1));
}

#[test]
fn expired_entries_are_removed_when_found() {
    let c = CredentialCache::new(10, Duration::from_secs(60));
    let t0 = Instant::now();
    c.insert_at("admin", "sekrit", H1, t0);
    c.insert_at("joe", "pw", H1, t0);
    assert_eq!(c.len(), 2);
    assert!(!c.check_at("admin", "sekrit", H1, t0 + Duration::from_secs(61)));
    assert_eq!(c.len(), 1, "the expired entry is gone");
    // A wrong password does not remove a live entry.
    assert!(!c.check_at("joe", "wrong", H1, t0 + Duration::from_secs(1)));
    assert!(c.check_at("joe", "pw", H1, t0 + Duration::from_secs(2)));
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
