//! The failed-login limiter (GCRA), with a fake clock.

mod require;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use roundup_xmlrpc::auth::{LoginLimiter, RetryAfter};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Roundup's verified sequence (reference §10.2): with 4 per 600 s, wrong passwords
/// 1–4 are 401, the 5th attempt is 429 "Please wait: 150 seconds", and a correct
/// password afterwards is refused too.
#[test]
fn roundup_sequence() {
    let l = LoginLimiter::new(4, Duration::from_secs(600));
    let t0 = Instant::now();
    for i in 0..4 {
        let now = t0 + secs(i as f64);
        assert_eq!(l.check("joe", now), Ok(()), "attempt {}", i + 1);
        assert_eq!(l.record_failure("joe", now), Ok(()), "attempt {}", i + 1);
    }
    // Attempt 5 (wrong or right password): refused before verifying.
    let now = t0 + secs(4.0);
    let err = l.check("joe", now).unwrap_err();
    assert_eq!(err.secs, 150);
    assert!((err.reset_secs - 596.0).abs() < 1e-6, "{err:?}");
    // A correct password a bit later: still refused.
    assert!(l.check("joe", t0 + secs(10.0)).is_err());
    // Other keys are unaffected.
    assert_eq!(l.check("jane", now), Ok(()));
    // tat = 600 s: attempts are allowed again once tat - now <= 450 s.
    assert!(l.check("joe", t0 + secs(149.9)).is_err());
    assert_eq!(l.check("joe", t0 + secs(150.0)), Ok(()));
    // One more failure then locks again.
    assert_eq!(l.record_failure("joe", t0 + secs(150.0)), Ok(()));
    assert!(l.check("joe", t0 + secs(150.0)).is_err());
    // Fully reset after tat.
    assert_eq!(l.check("joe", t0 + secs(750.0)), Ok(()));
    for i in 0..4 {
        assert_eq!(l.record_failure("joe", t0 + secs(750.0 + i as f64)), Ok(()));
    }
}

/// Unknown users: Roundup only records (no pre-check); the 5th failure is refused.
#[test]
fn record_only_refuses_fifth() {
    let l = LoginLimiter::new(4, Duration::from_secs(600));
    let t0 = Instant::now();
    for _ in 0..4 {
        assert_eq!(l.record_failure("nobody", t0), Ok(()));
    }
    let err = l.record_failure("nobody", t0).unwrap_err();
    assert_eq!(
        err,
        RetryAfter {
            secs: 150,
            reset_secs: 600.0
        }
    );
    // A refused failure does not push tat further.
    assert_eq!(l.check("nobody", t0 + secs(150.0)), Ok(()));
}

#[test]
fn failures_spread_out_never_lock() {
    // One failure per inverse interval never accumulates.
    let l = LoginLimiter::new(4, Duration::from_secs(600));
    let t0 = Instant::now();
    for i in 0..50 {
        let now = t0 + secs(150.0 * i as f64);
        assert_eq!(l.check("joe", now), Ok(()));
        assert_eq!(l.record_failure("joe", now), Ok(()));
    }
}

#[test]
fn retry_after_is_whole_seconds_of_inverse() {
    let l = LoginLimiter::new(7, Duration::from_secs(600)); // inverse 85.71 s
    let t0 = Instant::now();
    for _ in 0..7 {
        l.record_failure("k", t0).unwrap();
    }
    assert_eq!(l.check("k", t0).unwrap_err().secs, 85);
    assert_eq!(l.limit(), 7);
    assert_eq!(l.interval(), Duration::from_secs(600));
}

#[test]
fn limit_zero_is_off() {
    let l = LoginLimiter::new(0, Duration::from_secs(600));
    let t0 = Instant::now();
    for _ in 0..100 {
        assert_eq!(l.record_failure("joe", t0), Ok(()));
        assert_eq!(l.check("joe", t0), Ok(()));
    }
    assert!(l.is_empty());
}

#[test]
fn limit_one() {
    let l = LoginLimiter::new(1, Duration::from_secs(60));
    let t0 = Instant::now();
    assert_eq!(l.check("k", t0), Ok(()));
    assert_eq!(l.record_failure("k", t0), Ok(()));
    let e = l.check("k", t0 + secs(1.0)).unwrap_err();
    assert_eq!(e.secs, 60);
    assert_eq!(l.check("k", t0 + secs(60.0)), Ok(()));
}

#[test]
fn bounded_keys() {
    let l = LoginLimiter::with_max_keys(4, Duration::from_secs(600), 3);
    let t0 = Instant::now();
    let at = |s: f64| t0 + secs(s);
    // Lock out "a" with 4 failures; "b" and "c" one failure each.
    for _ in 0..4 {
        l.record_failure("a", at(0.0)).unwrap();
    }
    l.record_failure("b", at(1.0)).unwrap();
    l.record_failure("c", at(2.0)).unwrap();
    // Full with live keys: the one closest to expiry ("b", tat 151) is dropped, not "a".
    l.record_failure("d", at(3.0)).unwrap();
    assert_eq!(l.len(), 3);
    assert!(l.check("a", at(3.0)).is_err());
    // At 200 s, "c" (152) and "d" (153) have expired and are pruned first.
    l.record_failure("e", at(200.0)).unwrap();
    assert_eq!(l.len(), 2);
    // "a" kept its history (tat 600): a single failure locks it again.
    assert_eq!(l.check("a", at(200.0)), Ok(()));
    l.record_failure("a", at(200.0)).unwrap();
    assert!(l.check("a", at(200.0)).is_err());
    // Long keys are fine (stored as digests).
    let long = "x".repeat(10_000);
    l.record_failure(&long, at(200.0)).unwrap();
    assert_eq!(l.len(), 3);
}

#[test]
fn concurrent_failures_count_exactly() {
    let l = Arc::new(LoginLimiter::new(4, Duration::from_secs(600)));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let l = Arc::clone(&l);
            thread::spawn(move || {
                (0..10)
                    .filter(|_| l.record_failure("joe", t0).is_ok())
                    .count()
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(ok, 4);
}

/// Replays a pseudo-random scenario in Roundup's own `roundup.rate_limit.Gcra`
/// (clock monkeypatched) and compares every outcome. Skipped without python3 +
/// roundup (with `RXS_REQUIRE_TOOLS` set it fails instead).
#[test]
fn agrees_with_roundup_gcra() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    const PY: &str = r#"
import sys, datetime
from roundup import rate_limit as R
now = [None]
R.utcnow = lambda: now[0]
base = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
count, period = map(int, sys.stdin.readline().split())
lim = R.RateLimit(count, datetime.timedelta(seconds=period))
g = R.Gcra()
for line in sys.stdin:
    op, key, t = line.split()
    now[0] = base + datetime.timedelta(milliseconds=int(t))
    rej = g.update(key, lim, testonly=(op == "check"))
    if rej:
        st = g.status(key, lim)
        print("err", st["Retry-After"], st["X-RateLimit-Reset"])
    else:
        print("ok")
"#;
    let available = Command::new("python3")
        .args(["-c", "import roundup.rate_limit"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !available {
        require::missing("python3 with the roundup package");
        return;
    }
    for (count, period) in [(4u32, 600u64), (3, 80), (5, 100), (1, 40)] {
        // xorshift: deterministic scenario.
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(count);
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut t = 0u64; // milliseconds
        let mut ops = Vec::new();
        for _ in 0..400 {
            t += (next() % 40) * period * 1000 / 400; // 0..10% of the period
            let op = if next() % 3 == 0 { "check" } else { "record" };
            let key = ["joe", "jane"][(next() % 2) as usize];
            ops.push((op, key, t));
            if next() % 4 == 0 {
                ops.push(("record", key, t)); // bursts at the same instant
            }
        }
        let mut input = format!("{count} {period}\n");
        for (op, key, t) in &ops {
            input.push_str(&format!("{op} {key} {t}\n"));
        }
        let mut child = Command::new("python3")
            .args(["-c", PY])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(lines.len(), ops.len());

        let l = LoginLimiter::new(count, Duration::from_secs(period));
        let t0 = Instant::now();
        let mut refusals = 0;
        for ((op, key, t), py) in ops.iter().zip(&lines) {
            let now = t0 + Duration::from_millis(*t);
            let ours = if *op == "check" {
                l.check(key, now)
            } else {
                l.record_failure(key, now)
            };
            match (ours, py.split_whitespace().collect::<Vec<_>>().as_slice()) {
                (Ok(()), ["ok"]) => {}
                (Err(e), ["err", retry, reset]) => {
                    refusals += 1;
                    assert_eq!(e.secs.to_string(), *retry);
                    let reset: f64 = reset.parse().unwrap();
                    assert!((e.reset_secs - reset).abs() < 1e-3, "{e:?} vs {reset}");
                }
                (ours, py) => panic!("{op} {key} @{t}: ours {ours:?}, roundup {py:?}"),
            }
        }
        assert!(
            refusals > 10,
            "scenario should exercise refusals ({refusals})"
        );
    }
}
