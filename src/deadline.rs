//! The deadline of one call, shared by the HTTP layer and the application, and the
//! rule that no client ever gets `503` for a write that committed.
//!
//! A [`Deadline`] is OPEN until either side settles it:
//!
//! * the application calls [`Deadline::begin_commit`] right before each `COMMIT`:
//!   before the deadline this marks the call COMMITTED (it will be answered, however
//!   long the rest takes); at or after it, the call is ABANDONED and the transaction
//!   must be rolled back;
//! * the HTTP layer calls [`Deadline::expire`] when the deadline passes: an OPEN call
//!   becomes ABANDONED (the client gets `503` at once, and the application rolls
//!   back at its next check), a COMMITTED one is waited for.
//!
//! Either way [`Deadline::expire`] also interrupts the read transaction the call is
//! running (through its [`Interrupter`], registered with [`Deadline::watch`]), so that
//! a slow read frees its blocking thread and handler slot instead of running on
//! unobserved. The store's `WatchedTx` (in `store/watched.rs`) wraps a transaction so
//! that every operation after the deadline fails, which also stops loops of short
//! statements that the interrupt (a no-op between statements) would miss.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Stops, from any thread, the statement a read transaction is running (SQLite's
/// `sqlite3_interrupt`); a store hands one out with `Tx::interrupter`.
pub struct Interrupter(Box<dyn Fn() + Send + Sync>);

impl Interrupter {
    /// An interrupter that runs `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Interrupter {
        Interrupter(Box::new(f))
    }

    /// Interrupts the statement running now, if any; a no-op between statements.
    pub fn interrupt(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interrupter")
    }
}

const OPEN: u8 = 0;
const COMMITTED: u8 = 1;
const ABANDONED: u8 = 2;

/// The deadline of one call (see the module docs).
#[derive(Debug)]
pub struct Deadline {
    at: Instant,
    state: AtomicU8,
    /// The interrupter of the read transaction running now, if any. Interrupting and
    /// unregistering both hold this lock, so an interrupt never reaches a connection
    /// after its transaction has ended (and the connection has gone back to the pool).
    read: Mutex<Option<Interrupter>>,
}

impl Deadline {
    /// A deadline at `at`.
    pub fn new(at: Instant) -> Deadline {
        Deadline {
            at,
            state: AtomicU8::new(OPEN),
            read: Mutex::new(None),
        }
    }

    /// A deadline `after` from now.
    pub fn after(after: Duration) -> Deadline {
        Deadline::new(Instant::now() + after)
    }

    /// When the deadline passes.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// True once the deadline has passed or the call was abandoned: start nothing
    /// new, commit nothing.
    pub fn passed(&self) -> bool {
        self.state.load(Ordering::Acquire) == ABANDONED || Instant::now() >= self.at
    }

    /// True when a commit of this call has started: the call must be answered.
    pub fn committed(&self) -> bool {
        self.state.load(Ordering::Acquire) == COMMITTED
    }

    /// Asked right before a `COMMIT`: true when it may go ahead (the call is then
    /// COMMITTED and will be answered); false when the deadline has passed or the
    /// HTTP layer has given up on the call: roll back.
    pub fn begin_commit(&self) -> bool {
        if Instant::now() >= self.at {
            let _ = self.abandon();
            return false;
        }
        match self
            .state
            .compare_exchange(OPEN, COMMITTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTED,
        }
    }

    /// OPEN -> ABANDONED; true when the call is (now or already) abandoned.
    fn abandon(&self) -> bool {
        match self
            .state
            .compare_exchange(OPEN, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => state == ABANDONED,
        }
    }

    /// Called by the HTTP layer when the deadline passes: interrupts the running read,
    /// and returns true when the call is abandoned (answer `503` now; it commits
    /// nothing), false when it has started committing (wait for its answer).
    pub fn expire(&self) -> bool {
        let abandoned = self.abandon();
        let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(interrupter) = read.as_ref() {
            interrupter.interrupt();
        }
        abandoned
    }

    /// Registers the interrupter of the read transaction the call runs now (one at a
    /// time): [`Deadline::expire`] interrupts it until [`Deadline::unwatch`].
    pub fn watch(&self, interrupter: Interrupter) {
        *self.read.lock().unwrap_or_else(PoisonError::into_inner) = Some(interrupter);
    }

    /// Forgets the registered interrupter (its transaction has ended).
    pub fn unwatch(&self) {
        *self.read.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn commit_before_the_deadline_wins_over_expiry() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(!d.passed());
        assert!(d.begin_commit());
        assert!(d.committed());
        // The HTTP layer cannot abandon a call that committed: it waits.
        assert!(!d.expire());
        assert!(d.committed());
        // A multicall's later commit is still allowed before the deadline.
        assert!(d.begin_commit());
    }

    #[test]
    fn expiry_before_the_commit_refuses_it() {
        let d = Deadline::after(Duration::from_secs(60));
        assert!(d.expire());
        assert!(d.passed());
        assert!(!d.begin_commit());
        assert!(!d.committed());
    }

    #[test]
    fn a_commit_after_the_deadline_is_refused() {
        let d = Deadline::new(Instant::now());
        assert!(d.passed());
        assert!(!d.begin_commit());
        assert!(d.expire(), "abandoned by the refused commit");
        // After a commit, a later one past the deadline is refused, but the call
        // stays committed (it is answered).
        let d = Deadline::after(Duration::from_millis(50));
        assert!(d.begin_commit());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!d.begin_commit());
        assert!(d.committed());
        assert!(!d.expire());
    }

    #[test]
    fn expire_interrupts_only_a_watched_read() {
        let d = Deadline::after(Duration::from_secs(60));
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&hits);
        d.watch(Interrupter::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        d.unwatch();
        d.expire();
        assert_eq!(hits.load(Ordering::SeqCst), 0, "unwatched: not interrupted");
        let counter = Arc::clone(&hits);
        d.watch(Interrupter::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        d.expire();
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn racing_commit_and_expiry_agree() {
        // Whoever wins, the two sides never both believe they won.
        for _ in 0..2000 {
            let d = Arc::new(Deadline::after(Duration::from_secs(60)));
            let other = Arc::clone(&d);
            let t = std::thread::spawn(move || other.begin_commit());
            let abandoned = d.expire();
            let committed = t.join().expect("no panic");
            assert_ne!(abandoned, committed);
        }
    }
}
