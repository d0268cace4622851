//! Storage: the narrow interface the item layer and the API methods use ([`Store`],
//! [`Tx`]), the filter model ([`filter`]) and its in-memory sort ([`sort`]),
//! Python repr text as Roundup stores it ([`pyrepr`]), a class table's row layout
//! ([`row`]), the `schema` row ([`schema_row`]) and a transaction bound to a
//! call's deadline ([`WatchedTx`]). The backends implement it as sibling modules
//! above this one (`sqlite` and `postgres`, Roundup 2.6's layouts), so that each
//! stays its own room.
//!
//! Everything happens inside a [`Tx`]: a read snapshot or a write transaction.
//! A write transaction covers one XML-RPC call (or one multicall sub-call); rows,
//! journal entries and FileClass content files land together or not at all.

pub(crate) mod files;
pub mod filter;
pub mod pyrepr;
pub mod row;
pub mod schema_row;
pub mod sort;
pub mod watched;
pub mod words;

use crate::hyperdb::date::Date;
use crate::hyperdb::interval::Interval;
use crate::schema::{ClassDef, PropType};
use std::collections::BTreeMap;

pub use crate::deadline::Interrupter;
pub use filter::{Cond, FilterQuery, SortKey};
pub use watched::WatchedTx;
pub use words::index_words;

/// The one area of the database directory where [`Tx::put_file_on_commit`] puts files:
/// the mail outbox (`db/outbox/`).
pub const OUTBOX_DIR: &str = "outbox";

/// An item id. Roundup stores ids as SQL integers and shows them as strings.
pub type Id = i64;

/// One stored property value (NULL is represented by `None` around it).
#[derive(Debug, Clone, PartialEq)]
pub enum PropValue {
    /// A String property.
    String(String),
    /// A Password property: the stored `{SCHEME}data` text.
    Password(String),
    /// A Date property (UTC).
    Date(Date),
    /// An Interval property.
    Interval(Interval),
    /// A Link property: the target id.
    Link(Id),
    /// A Multilink property: target ids, ascending, no duplicates.
    Multilink(Vec<Id>),
    /// A Boolean property.
    Boolean(bool),
    /// A Number property.
    Number(f64),
    /// An Integer property.
    Integer(i64),
}

/// Property values keyed by name; `None` is NULL (or an empty Multilink as read
/// from a table that has no rows for it is `Some(Multilink(vec![]))`).
pub type Values = BTreeMap<String, Option<PropValue>>;

/// An item as read from storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The item id.
    pub id: Id,
    /// True when the item is retired.
    pub retired: bool,
    /// Declared property values plus `creation`, `activity` (Date), `creator` and
    /// `actor` (Link). Multilinks are present only when they were asked for.
    pub values: Values,
}

impl Item {
    /// The value of `prop`, flattening "absent" and NULL to `None`.
    pub fn get(&self, prop: &str) -> Option<&PropValue> {
        self.values.get(prop).and_then(|v| v.as_ref())
    }
}

/// Which Multilink properties [`Tx::get`] should load.
#[derive(Debug, Clone, Copy)]
pub enum Multilinks<'a> {
    /// All of them.
    All,
    /// None of them.
    None,
    /// Only these.
    Only(&'a [&'a str]),
}

/// A journal entry to write (Roundup's `<class>__journal` row).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    /// The item the entry is about.
    pub nodeid: Id,
    /// When.
    pub date: Date,
    /// The acting user's id.
    pub tag: Id,
    /// `create`, `set`, `link`, `unlink`, `retired`, `restored`.
    pub action: String,
    /// The params as Python repr text (see [`pyrepr`]).
    pub params: String,
}

/// How a backend writes old Date and Boolean values into journal `params`
/// (Roundup's `_journal_marshal` uses the backend's `hyperdb_to_sql_value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalFormat {
    /// SQLite: Dates `'20240102030405.000'`, Booleans `1`/`0`.
    Sqlite,
    /// PostgreSQL: Dates `'2024-01-02 03:04:05.000'`, a true Boolean `'TRUE'`
    /// (a string), a false one `0`.
    Postgresql,
}

/// A journal entry as stored, for reading (Roundup's `getjournal` unmarshals
/// `params` itself).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalRow {
    /// The item the entry is about.
    pub nodeid: Id,
    /// When.
    pub date: Date,
    /// The acting user's id, as stored (text).
    pub tag: String,
    /// `create`, `set`, `link`, `unlink`, `retired`, `restored`.
    pub action: String,
    /// The params as stored (Python repr text).
    pub params: String,
}

/// Storage failures. Constraint-like conditions the item layer must report to
/// clients are checked before writing, so anything here is a server-side problem
/// (or a read-only/full disk), reported as a fault without details of SQL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error (or the connection failed mid-call).
    #[error("database error: {message}")]
    Postgres {
        /// The error as described by the backend.
        message: String,
        /// Its SQLSTATE, when the server reported one.
        sqlstate: Option<String>,
    },
    /// The database server cannot be reached (PostgreSQL down, refused, busy).
    #[error("{0}")]
    Unavailable(String),
    /// A value the database layout cannot hold (PostgreSQL: an Integer or id
    /// beyond 32 bits, a Number beyond float4, an over-long key, NUL in text).
    /// Reported to the client as a `ValueError`.
    #[error("{0}")]
    Value(String),
    /// A content file could not be read or written.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// The database was written by a newer Roundup or is otherwise unusable.
    #[error("{0}")]
    Incompatible(String),
    /// A query is over a size limit (too many values or too deep).
    #[error("{0}")]
    Limit(String),
    /// A write was attempted in a read-only transaction.
    #[error("write attempted in a read transaction")]
    ReadOnly,
    /// There is no database file (serving never creates one; `init` does).
    #[error("{}: no tracker database here (is its volume mounted?); `roundup-xmlrpc-server init` creates a tracker, serving never creates a database", .0.display())]
    Missing(std::path::PathBuf),
    /// The daemon cannot write the database.
    #[error("{}: the tracker database is read-only ({reason}); the daemon needs write access to the database directory and its files", path.display())]
    NotWritable {
        /// The file or directory that cannot be written.
        path: std::path::PathBuf,
        /// Why, in plain words.
        reason: String,
    },
    /// The request's deadline passed: the transaction was stopped (a read through its
    /// [`Interrupter`]) and is rolled back.
    #[error("request deadline exceeded")]
    Interrupted,
}

impl StoreError {
    /// True when a write failed because the database (or its directory) cannot be
    /// written: a read-only file system, or no permission to write.
    pub fn is_read_only(&self) -> bool {
        use rusqlite::ErrorCode;
        match self {
            StoreError::NotWritable { .. } => true,
            // read_only_sql_transaction (a standby, or default_transaction_read_only).
            StoreError::Postgres { sqlstate, .. } => sqlstate.as_deref() == Some("25006"),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == ErrorCode::ReadOnly
            }
            StoreError::Io(e) => e.kind() == std::io::ErrorKind::ReadOnlyFilesystem,
            _ => false,
        }
    }
}

/// Result type of storage operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One transaction on the tracker database. Dropping it without [`Tx::commit`]
/// rolls everything back, content files included.
pub trait Tx {
    /// Loads an item (retired ones too), or `None` if the id does not exist.
    fn get(&mut self, class: &ClassDef, id: Id, multilinks: Multilinks<'_>)
        -> Result<Option<Item>>;
    /// True if the item exists (retired or not).
    fn exists(&mut self, class: &ClassDef, id: Id) -> Result<bool>;
    /// Ids of the non-retired items, ascending.
    fn list(&mut self, class: &ClassDef) -> Result<Vec<Id>>;
    /// `(id, value)` of one property for every non-retired item, ascending by id.
    /// `prop` may be a declared property or an automatic one.
    fn column(&mut self, class: &ClassDef, prop: &str) -> Result<Vec<(Id, Option<PropValue>)>>;
    /// The non-retired item whose key property equals `value` exactly.
    fn lookup(&mut self, class: &ClassDef, key: &str, value: &str) -> Result<Option<Id>>;
    /// Runs a filter query; returns matching non-retired ids in the requested order.
    fn filter(&mut self, class: &ClassDef, query: &FilterQuery) -> Result<Vec<Id>>;
    /// The content of a FileClass item, `None` if it has no content file.
    fn content(&mut self, class: &ClassDef, id: Id) -> Result<Option<Vec<u8>>>;
    /// Every item's id, retired ones too, ascending, with its retired flag (for
    /// Python detectors' `getnodeids()`). Backends without it refuse.
    fn all_ids(&mut self, class: &ClassDef) -> Result<Vec<(Id, bool)>> {
        let _ = class;
        Err(StoreError::Incompatible(
            "listing retired items is not supported by this backend".into(),
        ))
    }
    /// The journal of an item, in date order (for Python detectors' `history()` and
    /// `db.getjournal()`). Backends without it refuse.
    fn journal_rows(&mut self, class: &ClassDef, id: Id) -> Result<Vec<JournalRow>> {
        let _ = (class, id);
        Err(StoreError::Incompatible(
            "reading the journal is not supported by this backend".into(),
        ))
    }

    /// Allocates the next id of `class` (inside this transaction).
    fn new_id(&mut self, class: &ClassDef) -> Result<Id>;
    /// Marks `id` of `class` as used even though its item was never written, so
    /// the next id is above it (Roundup consumes ids of failed creates).
    fn consume_id(&mut self, class: &ClassDef, id: Id) -> Result<()>;
    /// Inserts a new item with `values` (declared properties only) and the
    /// automatic properties.
    fn insert(
        &mut self,
        class: &ClassDef,
        id: Id,
        values: &Values,
        user: Id,
        now: Date,
    ) -> Result<()>;
    /// Updates declared properties of an item; `touch` also sets activity/actor.
    fn update(
        &mut self,
        class: &ClassDef,
        id: Id,
        values: &Values,
        user: Id,
        now: Date,
        touch: bool,
    ) -> Result<()>;
    /// Sets the retired flag (Roundup stores the item's own id when retired).
    fn set_retired(&mut self, class: &ClassDef, id: Id, retired: bool) -> Result<()>;
    /// Stages new content for a FileClass item (in place once committed).
    fn set_content(&mut self, class: &ClassDef, id: Id, content: &[u8]) -> Result<()>;
    /// Stages file `name` in the database's `area` directory (only `outbox`, the
    /// mail queue): it appears, complete, once the transaction commits, and never
    /// if it does not, with the same crash safety as FileClass content.
    fn put_file_on_commit(&mut self, area: &str, name: &str, content: &[u8]) -> Result<()>;
    /// Appends a journal entry.
    fn journal(&mut self, class: &ClassDef, entry: &JournalEntry) -> Result<()>;
    /// Replaces the full-text index words of (class, id, prop) (Roundup's native indexer).
    fn index_text(&mut self, class: &ClassDef, id: Id, prop: &str, text: &str) -> Result<()>;
    /// Commits the transaction and then moves staged files into place.
    fn commit(self: Box<Self>) -> Result<()>;
    /// For a read transaction, a handle that interrupts the statement it is running,
    /// from another thread, when the request's deadline passes (the statement then
    /// fails). `None` for write transactions, which are never interrupted: they run
    /// to the deadline check before their commit.
    fn interrupter(&self) -> Option<Interrupter> {
        None
    }

    /// How old values are written into journal params (see [`JournalFormat`]).
    fn journal_format(&self) -> JournalFormat {
        JournalFormat::Sqlite
    }

    /// The two reads of a login together (PostgreSQL: in one round trip): the
    /// failed-login limiter state shared through the database for `limit_keys`
    /// (as [`SharedLimits::tats`]; `None` where the backend keeps none, or no
    /// keys are given) and the live item of `class` whose `key` is `value` (as
    /// [`Tx::lookup`]).
    #[allow(clippy::type_complexity)]
    fn login_lookup(
        &mut self,
        class: &ClassDef,
        key: &str,
        value: &str,
        _limit_keys: &[&str],
    ) -> Result<(Option<Vec<Option<f64>>>, Option<Id>)> {
        Ok((None, self.lookup(class, key, value)?))
    }

    /// Serialises writers that may introduce the key value `value` of `class`
    /// with other processes writing the same database, until this transaction
    /// ends: called before the lookup that refuses a duplicate key, so that the
    /// lookup sees what a concurrent writer committed. (SQLite serialises all
    /// writers anyway: a no-op there.)
    fn lock_key(&mut self, _class: &ClassDef, _value: &str) -> Result<()> {
        Ok(())
    }

    /// Serialises writers of item `id` of `class` with other processes until
    /// this transaction ends: called before a change reads the item. (A no-op on
    /// SQLite, whose writers are serialised.)
    fn lock_item(&mut self, _class: &ClassDef, _id: Id) -> Result<()> {
        Ok(())
    }
}

/// Failed-login limiter state kept in the database, shared by every daemon that
/// serves it (PostgreSQL: Roundup's `otks` rows). Times are Unix seconds.
pub trait SharedLimits: Send + Sync {
    /// The stored theoretical arrival times of `keys` (`None` where absent).
    fn tats(&self, keys: &[&str]) -> Result<Vec<Option<f64>>>;
    /// Atomically with other daemons: reads `key`'s arrival time, asks `decide`
    /// for the new one (`None`: refused, nothing stored) and stores it, to expire
    /// two `interval`s from now. True when stored.
    fn update(
        &self,
        key: &str,
        interval: f64,
        decide: &mut dyn FnMut(Option<f64>) -> Option<f64>,
    ) -> Result<bool>;
}

/// A tracker database: hands out transactions. Shared by all request threads.
pub trait Store: Send + Sync {
    /// A read transaction (never waits for writers; SQLite: one consistent
    /// snapshot; PostgreSQL: each statement its own snapshot, as Roundup reads
    /// there).
    fn read(&self) -> Result<Box<dyn Tx + '_>>;
    /// A write transaction (writers are serialised).
    fn write(&self) -> Result<Box<dyn Tx + '_>>;
    /// The failed-login limiter state shared through the database, when the
    /// backend has it (several daemons on one database).
    fn shared_limits(&self) -> Option<&dyn SharedLimits> {
        None
    }
    /// Whether a cheap read may run on an async executor thread now: true only when
    /// reads are local file reads (SQLite) and need no new connection. A backend that talks to a server over
    /// the network (PostgreSQL: each connection drives a runtime of its own, which
    /// must not be started on an executor thread) keeps every call on the blocking
    /// pool.
    fn reads_inline(&self) -> bool {
        false
    }
}

/// The type of a column-backed property, automatic ones included.
pub fn column_kind<'c>(class: &'c ClassDef, prop: &str) -> Option<std::borrow::Cow<'c, PropType>> {
    use std::borrow::Cow;
    match prop {
        "creation" | "activity" => Some(Cow::Owned(PropType::Date)),
        "creator" | "actor" => Some(Cow::Owned(PropType::Link {
            class: "user".into(),
            do_journal: false,
        })),
        _ => class.prop(prop).map(|p| Cow::Borrowed(&p.kind)),
    }
}
