//! [`WatchedTx`]: a transaction bound to a call's [`Deadline`].

use crate::deadline::Deadline;
use crate::hyperdb::date::Date;
use crate::schema::ClassDef;

use super::{
    FilterQuery, Id, Interrupter, Item, JournalEntry, JournalFormat, JournalRow, Multilinks,
    PropValue, Result, StoreError, Tx, Values,
};

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

    fn all_ids(&mut self, class: &ClassDef) -> Result<Vec<(Id, bool)>> {
        self.run(|tx| tx.all_ids(class))
    }

    fn journal_rows(&mut self, class: &ClassDef, id: Id) -> Result<Vec<JournalRow>> {
        self.run(|tx| tx.journal_rows(class, id))
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

    fn journal_format(&self) -> JournalFormat {
        match self.inner.as_ref() {
            Some(inner) => inner.journal_format(),
            None => JournalFormat::Sqlite,
        }
    }

    fn login_lookup(
        &mut self,
        class: &ClassDef,
        key: &str,
        value: &str,
        limit_keys: &[&str],
    ) -> Result<(Option<Vec<Option<f64>>>, Option<Id>)> {
        self.run(|tx| tx.login_lookup(class, key, value, limit_keys))
    }

    fn lock_key(&mut self, class: &ClassDef, value: &str) -> Result<()> {
        self.run(|tx| tx.lock_key(class, value))
    }

    fn lock_item(&mut self, class: &ClassDef, id: Id) -> Result<()> {
        self.run(|tx| tx.lock_item(class, id))
    }
}
