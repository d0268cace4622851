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
//! running (through the store's [`Interrupter`]), so that a slow read frees its
//! blocking thread and handler slot instead of running on unobserved. [`WatchedTx`]
//! wraps a transaction so that every operation after the deadline fails with
//! [`StoreError::Interrupted`], which also stops loops of short statements that the
//! interrupt (a no-op between statements) would miss.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::hyperdb::date::Date;
use crate::store::{
    FilterQuery, Id, Interrupter, Item, JournalEntry, Multilinks, PropValue, Result, StoreError,
    Tx, Values,
};
use crate::tracker::schema::ClassDef;

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

    fn watch(&self, interrupter: Interrupter) {
        *self.read.lock().unwrap_or_else(PoisonError::into_inner) = Some(interrupter);
    }

    fn unwatch(&self) {
        *self.read.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A transaction bound to a call's [`Deadline`]: each operation fails with
/// [`StoreError::Interrupted`] once the deadline has passed, and a read transaction's
/// running statement is interrupted by [`Deadline::expire`]. The commit itself is not
/// checked here: call [`Deadline::begin_commit`] first.
pub struct WatchedTx<'a> {
    /// `None` once committed.
    inner: Option<Box<dyn Tx + 'a>>,
    deadline: &'a Deadline,
    watched: bool,
}

impl<'a> WatchedTx<'a> {
    /// Wraps `inner`; a read transaction's interrupter is registered with `deadline`
    /// until the wrapper is dropped or committed. One watched read per deadline at a
    /// time.
    pub fn new(inner: Box<dyn Tx + 'a>, deadline: &'a Deadline) -> WatchedTx<'a> {
        let watched = match inner.interrupter() {
            Some(interrupter) => {
                deadline.watch(interrupter);
                true
            }
            None => false,
        };
        WatchedTx {
            inner: Some(inner),
            deadline,
            watched,
        }
    }

    fn check(&self) -> Result<()> {
        if self.deadline.passed() {
            Err(StoreError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Runs one operation: refused after the deadline, and an error of an operation
    /// the deadline interrupted is reported as [`StoreError::Interrupted`].
    fn run<T>(&mut self, op: impl FnOnce(&mut dyn Tx) -> Result<T>) -> Result<T> {
        self.check()?;
        let Some(inner) = self.inner.as_mut() else {
            return Err(StoreError::Interrupted);
        };
        let result = op(&mut **inner);
        match result {
            Err(_) if self.deadline.passed() => Err(StoreError::Interrupted),
            other => other,
        }
    }
}

impl Drop for WatchedTx<'_> {
    fn drop(&mut self) {
        // Before `inner` (a field) is dropped and its connection goes back to the pool.
        if self.watched {
            self.deadline.unwatch();
        }
    }
}

impl Tx for WatchedTx<'_> {
    fn get(
        &mut self,
        class: &ClassDef,
        id: Id,
        multilinks: Multilinks<'_>,
    ) -> Result<Option<Item>> {
        self.run(|tx| tx.get(class, id, multilinks))
    }

    fn exists(&mut self, class: &ClassDef, id: Id) -> Result<bool> {
        self.run(|tx| tx.exists(class, id))
    }

    fn list(&mut self, class: &ClassDef) -> Result<Vec<Id>> {
        self.run(|tx| tx.list(class))
    }

    fn column(&mut self, class: &ClassDef, prop: &str) -> Result<Vec<(Id, Option<PropValue>)>> {
        self.run(|tx| tx.column(class, prop))
    }

    fn lookup(&mut self, class: &ClassDef, key: &str, value: &str) -> Result<Option<Id>> {
        self.run(|tx| tx.lookup(class, key, value))
    }

    fn filter(&mut self, class: &ClassDef, query: &FilterQuery) -> Result<Vec<Id>> {
        self.run(|tx| tx.filter(class, query))
    }

    fn content(&mut self, class: &ClassDef, id: Id) -> Result<Option<Vec<u8>>> {
        self.run(|tx| tx.content(class, id))
    }

    fn new_id(&mut self, class: &ClassDef) -> Result<Id> {
        self.run(|tx| tx.new_id(class))
    }

    fn consume_id(&mut self, class: &ClassDef, id: Id) -> Result<()> {
        self.run(|tx| tx.consume_id(class, id))
    }

    fn insert(
        &mut self,
        class: &ClassDef,
        id: Id,
        values: &Values,
        user: Id,
        now: Date,
    ) -> Result<()> {
        self.run(|tx| tx.insert(class, id, values, user, now))
    }

    fn update(
        &mut self,
        class: &ClassDef,
        id: Id,
        values: &Values,
        user: Id,
        now: Date,
        touch: bool,
    ) -> Result<()> {
        self.run(|tx| tx.update(class, id, values, user, now, touch))
    }

    fn set_retired(&mut self, class: &ClassDef, id: Id, retired: bool) -> Result<()> {
        self.run(|tx| tx.set_retired(class, id, retired))
    }

    fn set_content(&mut self, class: &ClassDef, id: Id, content: &[u8]) -> Result<()> {
        self.run(|tx| tx.set_content(class, id, content))
    }

    fn put_file_on_commit(&mut self, area: &str, name: &str, content: &[u8]) -> Result<()> {
        self.run(|tx| tx.put_file_on_commit(area, name, content))
    }

    fn journal(&mut self, class: &ClassDef, entry: &JournalEntry) -> Result<()> {
        self.run(|tx| tx.journal(class, entry))
    }

    fn index_text(&mut self, class: &ClassDef, id: Id, prop: &str, text: &str) -> Result<()> {
        self.run(|tx| tx.index_text(class, id, prop, text))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.watched {
            self.deadline.unwatch();
            self.watched = false;
        }
        match self.inner.take() {
            Some(inner) => inner.commit(),
            None => Err(StoreError::Interrupted),
        }
    }

    fn interrupter(&self) -> Option<Interrupter> {
        None
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
