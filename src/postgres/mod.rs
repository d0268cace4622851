//! The PostgreSQL backend in Roundup 2.6's PostgreSQL layout (`_<class>` tables
//! with `_<prop>` columns, `timestamp` dates, `REAL` numbers, `<class>_<multilink>`
//! link tables, `<class>__journal`, the `_<class>_ids` sequences, `__words` /
//! `__textids`, `otks`, `sessions`, `schema`, `dual`), served by any number of
//! daemons on one database, next to Roundup itself.
//!
//! # Transactions and several daemons
//!
//! Reads run their statements in autocommit, each in its own snapshot, as
//! Roundup on PostgreSQL reads (a call that runs several statements may see a
//! write committed in between; single statements such as `get` with its
//! Multilinks are consistent): no `BEGIN`/`ROLLBACK` round trips, never a lock
//! or a serialization failure. Writes run `READ COMMITTED` and take explicit
//! locks where a check must see what other daemons committed:
//!
//! * key values ([`Tx::lock_key`]): a transaction-scoped advisory lock on
//!   `(hashtext('rxs:key:<class>'), hashtext(lower(value)))` is taken before the
//!   lookup that refuses a duplicate, so of two daemons creating `joe` at once the
//!   second waits, then sees the first's row and answers Roundup's
//!   `node with key "joe" exists` (Roundup itself lets the second fail on the
//!   unique index; that error is still mapped to the same answer, for writers
//!   that take no lock);
//! * items ([`Tx::lock_item`]): `select ... for no key update` on the item's row
//!   before `set`/`retire`/`restore` read it, so concurrent changes of one item
//!   apply one after the other (no lost Multilink update, one journal entry each);
//! * ids come from the `_<class>_ids` sequences, as in Roundup.
//!
//! # Content files
//!
//! FileClass content stays on disk under `<tracker>/db/files`, as with Roundup on
//! PostgreSQL, with the crash-safe protocol of `store::files`; the
//! token that tells committed staged files from abandoned ones is the writing
//! transaction's id (`txid_current()`), whose fate PostgreSQL reports
//! (`txid_status`: committed, aborted or still in progress), so that daemons
//! sharing the directory never install or delete each other's files wrongly.
//!
//! # Connections
//!
//! See `pool` and [`connect`]. Every method here is blocking and runs on
//! blocking threads, never on the async executor.
//!
//! # Why this file is long
//!
//! It holds two things that belong together: the store (opening, crash
//! recovery of content files, beginning transactions) and its transaction,
//! `PgTx`, whose `impl Tx` is one block (a trait's implementation is one block
//! in Rust, read in the trait's order as in `sqlite/mod.rs`) over helpers of the
//! same struct; splitting them would only spread one type over files. What
//! stands on its own is in the sibling files (statements for `filter` in
//! `query.rs`, the schema's tables in `ddl.rs`, values in `value.rs`, the shared
//! login limiter in `limits.rs`, connections in `pool.rs` and `connect.rs`).

pub mod connect;
pub(crate) mod ddl;
pub mod limits;
pub(crate) mod pool;
mod query;
pub mod value;

use crate::hyperdb::date::Date;
use crate::hyperdb::interval::Interval;
use crate::schema::{ClassDef, PropType, Schema};
use crate::store::files;
use crate::store::row::{self, ColumnValue, RowLayout};
use crate::store::FilterQuery;
use crate::store::{column_kind, index_words};
use crate::store::{
    Id, Item, JournalEntry, JournalFormat, JournalRow, Multilinks, PropValue, Result, Store,
    StoreError, Tx, Values,
};
pub use connect::ConnSettings;
pub use pool::PgError;
use pool::{Conn, Pool, Pooled};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use value::{Cell, Param};

/// The longest key value accepted: PostgreSQL's btree indexes on key columns
/// refuse entries over about 2700 bytes, so longer keys are refused up front.
pub const MAX_KEY_BYTES: usize = 2000;

/// Opening options.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `[rdbms] allow_create`.
    pub allow_create: bool,
    /// `[rdbms] allow_alter`.
    pub allow_alter: bool,
    /// Create the database (`init` only; it must not exist or be empty).
    pub create: bool,
}

/// A tracker database on PostgreSQL.
pub struct PgStore {
    pool: Pool,
    db_dir: PathBuf,
    files: PathBuf,
    /// Committed files not yet renamed into place (see [`files`]).
    pending: files::Pending,
    /// An install after a commit failed: retried at the next write.
    repair_needed: AtomicBool,
    schema: Arc<Schema>,
    rows: HashMap<String, RowShape>,
    /// When the shared limiter last deleted expired `otks` rows (Unix seconds).
    last_clean: AtomicI64,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", self.pool.target())
            .finish()
    }
}

/// A short description of a PostgreSQL error: the server's message and SQLSTATE,
/// or the chain of causes for a client-side failure.
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {} ({})", db.severity(), db.message(), db.code().code());
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// True when the error means the connection is gone (the server stopped or
/// restarted, the network failed, no answer in time): it must not be reused.
fn is_connection_error(e: &PgError, conn: &Conn) -> bool {
    let e = match e {
        PgError::Pg(e) => e,
        PgError::Timeout(_) | PgError::Runtime(_) => return true,
        PgError::RowCount(_) => return false,
    };
    if conn.is_closed() || e.is_closed() {
        return true;
    }
    match e.code() {
        None => e.as_db_error().is_none() && !is_param_error(e),
        Some(c) => {
            let code = c.code();
            code.starts_with("08") || code.starts_with("57P")
        }
    }
}

fn is_param_error(e: &tokio_postgres::Error) -> bool {
    std::error::Error::source(e).is_some_and(|s| s.downcast_ref::<value::ParamError>().is_some())
}

/// Maps an error to the store's: values the layout cannot hold become
/// [`StoreError::Value`] (reported as a `ValueError`), a duplicate key from a
/// writer that took no lock becomes Roundup's key-clash message, no answer in
/// time means the server is unavailable.
fn map_error(e: PgError) -> StoreError {
    let pg = match &e {
        PgError::Timeout(_) | PgError::Runtime(_) => return StoreError::Unavailable(e.to_string()),
        PgError::RowCount(_) => return StoreError::from(e),
        PgError::Pg(pg) => pg,
    };
    if let Some(p) =
        std::error::Error::source(pg).and_then(|s| s.downcast_ref::<value::ParamError>())
    {
        return StoreError::Value(p.to_string());
    }
    if let Some(db) = pg.as_db_error() {
        let code = db.code();
        if code.code().starts_with("22") {
            return StoreError::Value(db.message().to_string());
        }
        if *code == SqlState::UNIQUE_VIOLATION
            && db
                .constraint()
                .is_some_and(|c| c.ends_with("_key_retired_idx"))
        {
            // DETAIL: Key (__retired__, _name)=(0, joe) already exists.
            let value = db
                .detail()
                .and_then(|d| d.split_once(")=(0, "))
                .and_then(|(_, rest)| rest.strip_suffix(") already exists."))
                .unwrap_or("?");
            return StoreError::Value(format!("node with key \"{value}\" exists"));
        }
    }
    StoreError::from(e)
}

impl PgStore {
    /// Connects to the tracker's database (creating it with
    /// [`Options::create`]), checks the server, brings the tables up to
    /// `schema` and finishes what a crash left of content files. `home` is the
    /// tracker directory (relative TLS paths), `db_dir` its database directory
    /// (content files and the mail outbox).
    pub fn open(
        settings: &ConnSettings,
        home: &Path,
        db_dir: &Path,
        schema: Arc<Schema>,
        options: Options,
    ) -> Result<PgStore> {
        let target = connect::resolve(settings, home, &connect::process_env)?;
        if !options.create {
            // Content files and the mail outbox stay on disk: a missing database
            // directory is an unmounted (shared) volume, not a new tracker.
            if !db_dir.is_dir() {
                return Err(StoreError::Missing(db_dir.to_path_buf()));
            }
            files::check_writable(db_dir, &db_dir.join("db"))?;
        }
        let (mut client, created) = ddl::connect_or_create(&target, options.create)?;
        let result = (|| -> Result<()> {
            ddl::check_server(&mut client)?;
            if options.create && !created && !ddl::is_empty(&mut client)? {
                return Err(StoreError::Incompatible(format!(
                    "{target:?} already exists and is not empty; refusing to touch it"
                )));
            }
            ddl::sync_schema(
                &mut client,
                &schema,
                ddl::SyncOptions {
                    allow_create: options.allow_create,
                    allow_alter: options.allow_alter,
                    create: options.create,
                },
            )
        })();
        if let Err(e) = result {
            drop(client);
            if created {
                ddl::drop_created(&target);
            }
            return Err(e);
        }
        if options.create {
            std::fs::create_dir_all(db_dir)?;
        }
        let rows = schema
            .classes
            .iter()
            .map(|c| (c.name.clone(), RowShape::new(c)))
            .collect();
        let store = PgStore {
            pool: Pool::new(target),
            db_dir: db_dir.to_path_buf(),
            files: db_dir.join("files"),
            pending: files::Pending::default(),
            repair_needed: AtomicBool::new(false),
            schema,
            rows,
            last_clean: AtomicI64::new(0),
        };
        store.recover_files(&mut client)?;
        store.pool.adopt(client);
        Ok(store)
    }

    /// The schema this store was opened with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// Where it connects (for messages).
    pub fn describe_target(&self) -> String {
        format!("{:?}", self.pool.target())
    }

    /// At start-up: installs staged files of committed transactions, deletes
    /// those of aborted ones, and leaves those of transactions still running in
    /// another daemon alone.
    fn recover_files(&self, client: &mut Conn) -> Result<()> {
        files::restore_old_protocol(&self.db_dir)?;
        for l in files::all_leftovers(&self.db_dir)? {
            match xact_status(client, l.token)? {
                XactStatus::Committed => {
                    files::resolve(&l, i64::MAX)?;
                    tracing::warn!(file = %l.final_path.display(),
                        "installed the content of a committed transaction left by a crash");
                }
                XactStatus::Aborted => {
                    files::resolve(&l, i64::MIN)?;
                    tracing::info!(file = %l.tmp.display(),
                        "removed the staged file of a transaction that never committed");
                }
                XactStatus::Running => {}
                XactStatus::Unknown => {
                    tracing::warn!(file = %l.tmp.display(),
                        "staged file of a transaction PostgreSQL no longer knows; left in place");
                }
            }
        }
        Ok(())
    }

    /// A write transaction (`READ COMMITTED` with explicit locks, see the module
    /// documentation), or a read: statements in autocommit, each in its own
    /// snapshot, as Roundup on PostgreSQL reads (its `READ COMMITTED`
    /// transactions), without a `BEGIN`/`ROLLBACK` pair around them.
    fn begin(&self, write: bool) -> Result<PgTx<'_>> {
        let conn = self.pool.get()?;
        let tx = PgTx {
            conn,
            store: self,
            write,
            begin: Some(if write {
                "BEGIN ISOLATION LEVEL READ COMMITTED"
            } else {
                // Nothing to send: the marker only says "no statement yet".
                ""
            }),
            open: true,
            staged: Vec::new(),
            token: None,
            looked_up: None,
            cancel: Arc::default(),
        };
        if write && self.repair_needed.load(Ordering::Acquire) {
            self.retry_installs();
        }
        Ok(tx)
    }

    /// Installs committed files whose rename failed after their commit.
    fn retry_installs(&self) {
        if files::retry_installs(&self.pending, self.pending.entries()) {
            self.repair_needed.store(false, Ordering::Release);
        }
    }
}

/// True when the tracker database of `settings` exists (for `name =
/// database.schema`: the schema); `init` drops only a database it created.
pub fn database_exists(settings: &ConnSettings, home: &Path) -> Result<bool> {
    let target = connect::resolve(settings, home, &connect::process_env)?;
    match Conn::open(&target) {
        Ok(mut c) => match &target.schema {
            None => Ok(true),
            Some(schema) => Ok(c
                .query_one(
                    "select exists (select 1 from pg_namespace where nspname = $1)",
                    &[schema],
                )?
                .get(0)),
        },
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => Ok(false),
        Err(e) => Err(StoreError::Unavailable(pool::connect_error(&target, &e))),
    }
}

/// Drops the tracker database of `settings` (or its schema): `init` undoing a
/// database it created when filling it failed.
pub fn drop_database(settings: &ConnSettings, home: &Path) {
    if let Ok(target) = connect::resolve(settings, home, &connect::process_env) {
        ddl::drop_created(&target);
    }
}

/// What PostgreSQL knows about a transaction id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XactStatus {
    Committed,
    Aborted,
    Running,
    /// Too old (or from another database cluster): cannot be told.
    Unknown,
}

fn xact_status(client: &mut Conn, token: i64) -> Result<XactStatus> {
    let status: Option<String> = match client.query_one("select txid_status($1)", &[&token]) {
        Ok(row) => row.get(0),
        // "transaction ID ... is in the future": not of this database.
        Err(e) if e.code() == Some(&SqlState::INVALID_PARAMETER_VALUE) => None,
        Err(e) => return Err(map_error(e)),
    };
    Ok(match status.as_deref() {
        Some("committed") => XactStatus::Committed,
        Some("aborted") => XactStatus::Aborted,
        Some("in progress") => XactStatus::Running,
        _ => XactStatus::Unknown,
    })
}

impl Store for PgStore {
    fn read(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(self.begin(false)?))
    }

    fn write(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(self.begin(true)?))
    }

    fn shared_limits(&self) -> Option<&dyn crate::store::SharedLimits> {
        Some(self)
    }
}

/// How one class's row is read by `get`.
struct RowShape {
    /// The columns, the property columns and the Multilinks.
    layout: RowLayout,
    /// `select <columns>,__retired__`, without FROM.
    select: String,
    /// `get` with every Multilink, and with none.
    sql_all: String,
    sql_none: String,
}

impl RowShape {
    fn new(class: &ClassDef) -> RowShape {
        let layout = RowLayout::new(class);
        let select = format!("select {},__retired__", layout.columns.join(","));
        let mut shape = RowShape {
            layout,
            select,
            sql_all: String::new(),
            sql_none: String::new(),
        };
        let all: Vec<&str> = shape.layout.multilinks.iter().map(String::as_str).collect();
        shape.sql_all = shape.sql(&class.name, &all);
        shape.sql_none = shape.sql(&class.name, &[]);
        shape
    }

    /// The row query loading the Multilinks `mls` too (as arrays, one round trip).
    fn sql(&self, cn: &str, mls: &[&str]) -> String {
        let mut s = self.select.clone();
        for m in mls {
            s.push_str(&format!(
                ",array(select linkid from {cn}_{m} where nodeid=$1)"
            ));
        }
        s.push_str(&format!(" from _{cn} where id=$1"));
        s
    }
}

/// A transaction on a [`PgStore`].
pub struct PgTx<'a> {
    conn: Pooled<'a>,
    store: &'a PgStore,
    write: bool,
    /// The `BEGIN` not sent yet: it travels with the first statement.
    begin: Option<&'static str>,
    open: bool,
    /// Files staged by this transaction, renamed into place after it commits.
    staged: Vec<files::Staged>,
    /// This transaction's id once it has staged a file.
    token: Option<i64>,
    /// The row a read's last `lookup` found (class, item without Multilinks):
    /// the `get` that usually follows needs no round trip (it would read a
    /// snapshot microseconds younger).
    looked_up: Option<(String, Item)>,
    /// A read's link to its [`Interrupter`](crate::store::Interrupter)s.
    cancel: Arc<std::sync::Mutex<CancelState>>,
}

/// Whether a read may still be cancelled, and whether it was: a connection whose
/// statement was cancelled is closed rather than pooled, so that a cancel request
/// arriving late can never hit another call's statement.
#[derive(Debug, Default)]
struct CancelState {
    /// Set when the transaction ends: later interrupts do nothing.
    ended: bool,
    /// A cancel request was sent.
    sent: bool,
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        let mut cancel = self.cancel.lock().unwrap_or_else(|p| p.into_inner());
        cancel.ended = true;
        if cancel.sent {
            self.conn.set_broken();
        }
        drop(cancel);
        if self.open && self.write && self.begin.is_none() {
            // Waited for: the transaction may hold row or advisory locks that
            // other writers are queued on.
            if self.conn.batch_execute("ROLLBACK").is_err() {
                self.conn.set_broken();
            }
        }
        if self.open {
            for s in &self.staged {
                s.discard();
            }
        }
    }
}

/// Converts one cell of a property column to a value.
fn cell_to_value(kind: &PropType, c: Cell) -> Option<PropValue> {
    if c == Cell::Null {
        return None;
    }
    Some(match kind {
        PropType::String { .. } => PropValue::String(c.text()?),
        PropType::Password => PropValue::Password(c.text()?),
        PropType::Date => match c {
            Cell::Timestamp(us) => PropValue::Date(value::micros_to_date(us)?),
            other => PropValue::Date(Date::from_serialised(&other.text()?)?),
        },
        PropType::Interval => PropValue::Interval(Interval::from_stored(&c.text()?)?),
        PropType::Link { .. } => PropValue::Link(c.int()?),
        PropType::Boolean => PropValue::Boolean(c.int()? != 0),
        PropType::Integer => PropValue::Integer(c.int()?),
        PropType::Number => PropValue::Number(match c {
            Cell::Real(f) => f,
            Cell::Int(i) => i as f64,
            other => other.text()?.trim().parse().ok()?,
        }),
        PropType::Multilink { .. } => return None,
    })
}

/// The parameter for a value (Roundup's `hyperdb_to_sql_value`).
fn value_to_param(v: &Option<PropValue>) -> Param {
    match v {
        None => Param::Null,
        Some(PropValue::String(s)) | Some(PropValue::Password(s)) => Param::Text(s.clone()),
        Some(PropValue::Date(d)) => Param::Date(*d),
        Some(PropValue::Interval(i)) => Param::Text(i.to_string()),
        Some(PropValue::Link(id)) => Param::Int(*id),
        Some(PropValue::Boolean(b)) => Param::Bool(*b),
        Some(PropValue::Integer(i)) => Param::Int(*i),
        Some(PropValue::Number(f)) => {
            if f.is_nan() {
                Param::Null
            } else {
                Param::Real(*f)
            }
        }
        Some(PropValue::Multilink(_)) => Param::Null,
    }
}

/// The parameter for a column being written, refusing what the layout cannot
/// store ([`check_storable`]).
fn column_param(class: &ClassDef, c: ColumnValue<'_>) -> Result<Param> {
    Ok(match c {
        ColumnValue::Int(i) => Param::Int(i),
        ColumnValue::Date(d) => Param::Date(d),
        ColumnValue::Seconds(s) => s.map_or(Param::Null, Param::Int),
        ColumnValue::Prop(name, v) => {
            check_storable(class, name, v)?;
            value_to_param(v)
        }
    })
}

/// Refuses what the layout cannot store, in plain words, before PostgreSQL would
/// (NUL in text, over-long keys).
fn check_storable(class: &ClassDef, name: &str, v: &Option<PropValue>) -> Result<()> {
    if let Some(PropValue::String(s) | PropValue::Password(s)) = v {
        if s.contains('\0') {
            return Err(StoreError::Value(format!(
                "property \"{name}\": text with a NUL character cannot be stored"
            )));
        }
        if class.key.as_deref() == Some(name) && s.len() > MAX_KEY_BYTES {
            return Err(StoreError::Value(format!(
                "key property \"{name}\" is longer than {MAX_KEY_BYTES} bytes"
            )));
        }
    }
    Ok(())
}

impl<'a> PgTx<'a> {
    /// Runs a statement (prepared once per connection) and returns its rows. The
    /// transaction's `BEGIN` goes with its first statement; if that first round
    /// trip finds the connection dead (the server restarted since it was pooled),
    /// nothing has happened yet and it is retried once on a new connection.
    pub(crate) fn query(&mut self, sql: &str, params: &[Param]) -> Result<Vec<Row>> {
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let first = self.begin.take();
        let begin = first.filter(|b| !b.is_empty());
        match self.conn.query_with(begin, sql, &refs) {
            Ok(rows) => Ok(rows),
            Err(e) if first.is_some() && is_connection_error(&e, &self.conn) => {
                self.conn.set_broken();
                self.conn = self.store.pool.fresh()?;
                self.conn
                    .query_with(begin, sql, &refs)
                    .map_err(|e| self.fail(e))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The shared failed-login state of `keys`, read in this transaction.
    fn limit_tats(&mut self, keys: &[&str]) -> Result<Vec<Option<f64>>> {
        let db_keys: Vec<String> = keys.iter().map(|k| limits::db_key(k)).collect();
        let rows = self.query(limits::TATS_SQL, &[Param::Texts(db_keys.clone())])?;
        Ok(limits::tats_from_rows(&db_keys, &rows))
    }

    /// A read transaction's lookup that brings the whole row along: the SQL
    /// (`$1`: the key value), or `None` when a plain id lookup is needed.
    fn lookup_row_sql(&self, class: &ClassDef, key: &str) -> Option<String> {
        let shape = self.store.rows.get(&class.name)?;
        (!self.write && shape.layout.matches(class)).then(|| {
            format!(
                "{},id from _{} where _{key}=$1 and __retired__=0 order by id limit 1",
                shape.select, class.name
            )
        })
    }

    /// The id in the rows of [`PgTx::lookup_row_sql`]; the row is kept for the
    /// `get` that usually follows.
    fn take_lookup_row(&mut self, class: &ClassDef, rows: &[Row]) -> Option<Id> {
        let shape = self.store.rows.get(&class.name)?;
        let row = rows.first()?;
        let id = row.get::<_, Cell>(shape.layout.retired_col + 1).int()?;
        let mut values = Values::new();
        for (i, prop, kind) in &shape.layout.props {
            values.insert(prop.clone(), cell_to_value(kind, row.get::<_, Cell>(*i)));
        }
        let item = Item {
            id,
            retired: false,
            values,
        };
        self.looked_up = Some((class.name.clone(), item));
        Some(id)
    }

    fn execute(&mut self, sql: &str, params: &[Param]) -> Result<()> {
        self.query(sql, params).map(|_| ())
    }

    fn fail(&mut self, e: PgError) -> StoreError {
        if is_connection_error(&e, &self.conn) {
            self.conn.set_broken();
            self.open = false;
            self.store.pool.flush_idle();
        } else if e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) {
            // "cached plan must not change result type": a table changed.
            self.conn.forget_statements();
        }
        map_error(e)
    }

    fn ensure_write(&self) -> Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(StoreError::ReadOnly)
        }
    }

    fn multilink(&mut self, class: &str, prop: &str, id: Id) -> Result<Vec<Id>> {
        if i32::try_from(id).is_err() {
            return Ok(Vec::new());
        }
        let rows = self.query(
            &format!("select linkid from {class}_{prop} where nodeid=$1"),
            &[Param::Int(id)],
        )?;
        let mut ids: Vec<Id> = rows
            .iter()
            .filter_map(|r| r.get::<_, Cell>(0).int())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn write_multilink(&mut self, class: &str, prop: &str, id: Id, new: &[Id]) -> Result<()> {
        let old = self.multilink(class, prop, id)?;
        let removed: Vec<Id> = old.iter().copied().filter(|x| !new.contains(x)).collect();
        let added: Vec<Id> = new.iter().copied().filter(|x| !old.contains(x)).collect();
        if !removed.is_empty() {
            self.execute(
                &format!("delete from {class}_{prop} where nodeid=$1 and linkid = any($2)"),
                &[Param::Int(id), Param::Ints(removed)],
            )?;
        }
        if !added.is_empty() {
            for a in &added {
                if i32::try_from(*a).is_err() {
                    return Err(StoreError::Value(format!(
                        "value {a} is out of range for type integer"
                    )));
                }
            }
            self.execute(
                &format!(
                    "insert into {class}_{prop} (nodeid, linkid) select $1, unnest($2::int4[])"
                ),
                &[Param::Int(id), Param::Ints(added)],
            )?;
        }
        Ok(())
    }

    /// This transaction's token for staged files: its transaction id.
    fn token(&mut self) -> Result<i64> {
        if let Some(t) = self.token {
            return Ok(t);
        }
        let rows = self.query("select txid_current()", &[])?;
        let t = rows
            .first()
            .and_then(|r| r.get::<_, Cell>(0).int())
            .ok_or_else(|| StoreError::Incompatible("txid_current() returned nothing".into()))?;
        self.token = Some(t);
        Ok(t)
    }

    /// Stages `content` for `final_path` (see [`files`]).
    fn stage(
        &mut self,
        root: &Path,
        final_path: &Path,
        item: Option<(String, Id)>,
        content: &[u8],
    ) -> Result<()> {
        self.ensure_write()?;
        let token = self.token()?;
        // What earlier transactions left staged for this item (a crash, a failed
        // install, another daemon's install still to come) is finished first, so
        // that older content never lands later. The item's row lock keeps other
        // writers of the same item out meanwhile.
        if item.is_some() {
            let (store, conn) = (self.store, &mut self.conn);
            files::finish_earlier(final_path, token, &store.pending, |l| {
                match xact_status(conn, l.token)? {
                    XactStatus::Committed => {
                        files::resolve(l, i64::MAX)?;
                    }
                    XactStatus::Aborted => {
                        files::resolve(l, i64::MIN)?;
                    }
                    XactStatus::Running | XactStatus::Unknown => {}
                }
                Ok(())
            })?;
        }
        files::restage(&mut self.staged, root, final_path, item, token, content)?;
        Ok(())
    }

    /// True when this transaction's snapshot includes transaction `token`.
    fn sees(&mut self, token: i64) -> Result<bool> {
        let rows = self.query(
            "select txid_visible_in_snapshot($1, txid_current_snapshot())",
            &[Param::Int(token)],
        )?;
        Ok(rows
            .first()
            .is_some_and(|r| matches!(r.get::<_, Cell>(0), Cell::Bool(true))))
    }

    /// After COMMIT failed: did it happen anyway? Asked on a fresh connection.
    fn committed_anyway(&self, token: i64) -> Option<bool> {
        let mut conn = self.store.pool.fresh().ok()?;
        match xact_status(&mut conn, token).ok()? {
            XactStatus::Committed => Some(true),
            XactStatus::Aborted => Some(false),
            _ => None,
        }
    }
}

impl Tx for PgTx<'_> {
    fn get(
        &mut self,
        class: &ClassDef,
        id: Id,
        multilinks: Multilinks<'_>,
    ) -> Result<Option<Item>> {
        if i32::try_from(id).is_err() {
            return Ok(None);
        }
        if let (Some((cn, item)), Multilinks::None) = (&self.looked_up, multilinks) {
            if *cn == class.name && item.id == id {
                return Ok(Some(item.clone()));
            }
        }
        let built;
        let shape = match self.store.rows.get(&class.name) {
            Some(shape) if shape.layout.matches(class) => shape,
            _ => {
                built = RowShape::new(class);
                &built
            }
        };
        let mls: Vec<&str> = class
            .properties
            .iter()
            .filter(|p| p.kind.is_multilink())
            .map(|p| p.name.as_str())
            .filter(|n| match multilinks {
                Multilinks::All => true,
                Multilinks::None => false,
                Multilinks::Only(list) => list.contains(n),
            })
            .collect();
        let owned;
        let sql: &str = match multilinks {
            Multilinks::All => &shape.sql_all,
            Multilinks::None => &shape.sql_none,
            Multilinks::Only(_) => {
                owned = shape.sql(&class.name, &mls);
                &owned
            }
        };
        let rows = self.query(sql, &[Param::Int(id)])?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut values = Values::new();
        for (i, prop, kind) in &shape.layout.props {
            values.insert(prop.clone(), cell_to_value(kind, row.get::<_, Cell>(*i)));
        }
        let retired = row
            .get::<_, Cell>(shape.layout.retired_col)
            .int()
            .unwrap_or(0)
            != 0;
        for (k, name) in mls.iter().enumerate() {
            let mut ids = match row.get::<_, Cell>(shape.layout.retired_col + 1 + k) {
                Cell::Ints(v) => v,
                _ => Vec::new(),
            };
            ids.sort_unstable();
            ids.dedup();
            values.insert(name.to_string(), Some(PropValue::Multilink(ids)));
        }
        Ok(Some(Item {
            id,
            retired,
            values,
        }))
    }

    fn exists(&mut self, class: &ClassDef, id: Id) -> Result<bool> {
        if i32::try_from(id).is_err() {
            return Ok(false);
        }
        let rows = self.query(
            &format!("select 1 from _{} where id=$1", class.name),
            &[Param::Int(id)],
        )?;
        Ok(!rows.is_empty())
    }

    fn list(&mut self, class: &ClassDef) -> Result<Vec<Id>> {
        let rows = self.query(
            &format!(
                "select id from _{} where __retired__=0 order by id",
                class.name
            ),
            &[],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| r.get::<_, Cell>(0).int())
            .collect())
    }

    fn all_ids(&mut self, class: &ClassDef) -> Result<Vec<(Id, bool)>> {
        let rows = self.query(
            &format!("select id, __retired__ from _{} order by id", class.name),
            &[],
        )?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = r.get::<_, Cell>(0).int()?;
                Some((id, r.get::<_, Cell>(1).int().unwrap_or(0) != 0))
            })
            .collect())
    }

    fn journal_rows(&mut self, class: &ClassDef, id: Id) -> Result<Vec<JournalRow>> {
        if i32::try_from(id).is_err() {
            return Ok(Vec::new());
        }
        let rows = self.query(
            &format!(
                "select nodeid, date, tag, action, params from {}__journal where nodeid=$1 \
                 order by date",
                class.name
            ),
            &[Param::Int(id)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let date = match r.get::<_, Cell>(1) {
                Cell::Timestamp(us) => value::micros_to_date(us),
                _ => None,
            }
            .ok_or_else(|| {
                StoreError::Incompatible(format!("{}__journal: unreadable date", class.name))
            })?;
            let text = |i: usize| r.get::<_, Cell>(i).text().unwrap_or_default();
            out.push(JournalRow {
                nodeid: r.get::<_, Cell>(0).int().unwrap_or(id),
                date,
                tag: text(2),
                action: text(3),
                params: text(4),
            });
        }
        Ok(out)
    }

    fn column(&mut self, class: &ClassDef, prop: &str) -> Result<Vec<(Id, Option<PropValue>)>> {
        if prop == "id" {
            return Ok(self
                .list(class)?
                .into_iter()
                .map(|id| (id, Some(PropValue::String(id.to_string()))))
                .collect());
        }
        let cn = &class.name;
        if let Some(p) = class.prop(prop).filter(|p| p.kind.is_multilink()) {
            let sql = format!(
                "select c.id, array(select m.linkid from {cn}_{pn} m where m.nodeid=c.id) \
                 from _{cn} c where c.__retired__=0 order by c.id",
                pn = p.name
            );
            let rows = self.query(&sql, &[])?;
            return Ok(rows
                .iter()
                .filter_map(|r| {
                    let id = r.get::<_, Cell>(0).int()?;
                    let mut ids = match r.get::<_, Cell>(1) {
                        Cell::Ints(v) => v,
                        _ => Vec::new(),
                    };
                    ids.sort_unstable();
                    ids.dedup();
                    Some((id, Some(PropValue::Multilink(ids))))
                })
                .collect());
        }
        let Some(kind) = column_kind(class, prop) else {
            return Ok(Vec::new());
        };
        let sql = format!("select id, _{prop} from _{cn} where __retired__=0 order by id");
        let rows = self.query(&sql, &[])?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id = r.get::<_, Cell>(0).int()?;
                Some((id, cell_to_value(&kind, r.get::<_, Cell>(1))))
            })
            .collect())
    }

    fn lookup(&mut self, class: &ClassDef, key: &str, value: &str) -> Result<Option<Id>> {
        if value.contains('\0') {
            return Ok(None);
        }
        let param = [Param::Text(value.to_string())];
        if let Some(sql) = self.lookup_row_sql(class, key) {
            // A read: the whole row comes along for the `get` that usually follows.
            let rows = self.query(&sql, &param)?;
            return Ok(self.take_lookup_row(class, &rows));
        }
        let sql = format!(
            "select id from _{} where _{key}=$1 and __retired__=0 order by id limit 1",
            class.name
        );
        let rows = self.query(&sql, &param)?;
        Ok(rows.first().and_then(|r| r.get::<_, Cell>(0).int()))
    }

    fn login_lookup(
        &mut self,
        class: &ClassDef,
        key: &str,
        value: &str,
        limit_keys: &[&str],
    ) -> Result<(Option<Vec<Option<f64>>>, Option<Id>)> {
        let row_sql = self.lookup_row_sql(class, key);
        let (Some(sql), false, false) = (row_sql, limit_keys.is_empty(), value.contains('\0'))
        else {
            let tats = match limit_keys.is_empty() {
                true => None,
                false => Some(self.limit_tats(limit_keys)?),
            };
            return Ok((tats, self.lookup(class, key, value)?));
        };
        // One statement: the limiter rows as two parallel arrays (always one
        // row), the user's row beside them (NULLs when there is none).
        let db_keys: Vec<String> = limit_keys.iter().map(|k| limits::db_key(k)).collect();
        let sql = format!(
            "select u.*, t.k, t.v from (select array_agg(otk_key::text) as k, \
             array_agg(otk_value) as v from otks where otk_key = any($2)) t \
             left join lateral ({sql}) u on true"
        );
        let rows = self.query(
            &sql,
            &[
                Param::Text(value.to_string()),
                Param::Texts(db_keys.clone()),
            ],
        )?;
        let Some(row) = rows.first() else {
            return Ok((Some(vec![None; db_keys.len()]), None));
        };
        let n = row.len();
        let texts = |c: Cell| match c {
            Cell::Texts(t) => t,
            _ => Vec::new(),
        };
        let tats = limits::tats_from_arrays(
            &db_keys,
            &texts(row.get::<_, Cell>(n - 2)),
            &texts(row.get::<_, Cell>(n - 1)),
        );
        Ok((Some(tats), self.take_lookup_row(class, &rows)))
    }

    fn filter(&mut self, class: &ClassDef, q: &FilterQuery) -> Result<Vec<Id>> {
        let schema = self.store.schema.clone();
        query::run(self, &schema, class, q)
    }

    fn content(&mut self, class: &ClassDef, id: Id) -> Result<Option<Vec<u8>>> {
        if let Some(b) = files::staged_content(&self.staged, &class.name, id) {
            return Ok(Some(b));
        }
        let store = self.store;
        files::read_committed(&store.pending, &store.files, &class.name, id, |token| {
            self.sees(token)
        })
    }

    fn new_id(&mut self, class: &ClassDef) -> Result<Id> {
        self.ensure_write()?;
        let rows = self.query(&format!("select nextval('_{}_ids')", class.name), &[])?;
        let id = rows
            .first()
            .and_then(|r| r.get::<_, Cell>(0).int())
            .ok_or_else(|| StoreError::Incompatible("nextval returned nothing".into()))?;
        if i32::try_from(id).is_err() {
            return Err(StoreError::Value(format!(
                "no more ids for class \"{}\" (the id column is 32 bits)",
                class.name
            )));
        }
        Ok(id)
    }

    fn consume_id(&mut self, _class: &ClassDef, _id: Id) -> Result<()> {
        // nextval is never rolled back: the id stays used.
        self.ensure_write()
    }

    fn insert(
        &mut self,
        class: &ClassDef,
        id: Id,
        values: &Values,
        user: Id,
        now: Date,
    ) -> Result<()> {
        self.ensure_write()?;
        let (cols, args) =
            row::insert_columns(class, id, values, user, now, |c| column_param(class, c))?;
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "insert into _{} ({}) values ({})",
            class.name,
            cols.join(","),
            marks.join(",")
        );
        self.execute(&sql, &args)?;
        for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
            if let Some(Some(PropValue::Multilink(ids))) = values.get(&p.name) {
                if !ids.is_empty() {
                    self.write_multilink(&class.name, &p.name, id, ids)?;
                }
            }
        }
        Ok(())
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
        self.ensure_write()?;
        let (sets, mut args) = row::update_columns(
            class,
            values,
            user,
            now,
            touch,
            |c| column_param(class, c),
            |name, ids| self.write_multilink(&class.name, name, id, &ids),
        )?;
        if sets.is_empty() {
            return Ok(());
        }
        let assigns: Vec<String> = sets
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}=${}", i + 1))
            .collect();
        args.push(Param::Int(id));
        let sql = format!(
            "update _{} set {} where id=${}",
            class.name,
            assigns.join(","),
            args.len()
        );
        self.execute(&sql, &args)?;
        Ok(())
    }

    fn set_retired(&mut self, class: &ClassDef, id: Id, retired: bool) -> Result<()> {
        self.ensure_write()?;
        let sql = format!("update _{} set __retired__=$1 where id=$2", class.name);
        self.execute(
            &sql,
            &[Param::Int(if retired { id } else { 0 }), Param::Int(id)],
        )?;
        Ok(())
    }

    fn set_content(&mut self, class: &ClassDef, id: Id, content: &[u8]) -> Result<()> {
        let (root, final_path) = files::content_target(&self.store.files, &class.name, id);
        self.stage(&root, &final_path, Some((class.name.clone(), id)), content)
    }

    fn put_file_on_commit(&mut self, area: &str, name: &str, content: &[u8]) -> Result<()> {
        let (root, final_path) = files::queue_target(&self.store.db_dir, area, name)?;
        self.stage(&root, &final_path, None, content)
    }

    fn journal(&mut self, class: &ClassDef, e: &JournalEntry) -> Result<()> {
        self.ensure_write()?;
        let sql = format!(
            "insert into {}__journal (nodeid, date, tag, action, params) values ($1,$2,$3,$4,$5)",
            class.name
        );
        self.execute(
            &sql,
            &[
                Param::Int(e.nodeid),
                Param::Date(e.date),
                Param::Text(e.tag.to_string()),
                Param::Text(e.action.clone()),
                Param::Text(e.params.clone()),
            ],
        )?;
        Ok(())
    }

    fn journal_format(&self) -> JournalFormat {
        JournalFormat::Postgresql
    }

    fn interrupter(&self) -> Option<crate::store::Interrupter> {
        if self.write {
            return None;
        }
        let state = Arc::clone(&self.cancel);
        let token = self.conn.cancel_token();
        let tls = self.store.pool.target().tls.clone();
        Some(crate::store::Interrupter::new(move || {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if s.ended || s.sent {
                return;
            }
            s.sent = true;
            pool::cancel(token.clone(), tls.clone());
        }))
    }

    fn index_text(&mut self, class: &ClassDef, id: Id, prop: &str, text: &str) -> Result<()> {
        self.ensure_write()?;
        let ident = [
            Param::Text(class.name.clone()),
            Param::Text(id.to_string()),
            Param::Text(prop.to_string()),
        ];
        let existing = self
            .query(
                "select _textid from __textids where _class=$1 and _itemid=$2 and _prop=$3",
                &ident,
            )?
            .first()
            .and_then(|r| r.get::<_, Cell>(0).int());
        let text_id = match existing {
            Some(t) => {
                self.execute("delete from __words where _textid=$1", &[Param::Int(t)])?;
                t
            }
            None => {
                let n = self
                    .query("select nextval('___textids_ids')", &[])?
                    .first()
                    .and_then(|r| r.get::<_, Cell>(0).int())
                    .ok_or_else(|| StoreError::Incompatible("nextval returned nothing".into()))?;
                let [c, i, p] = ident;
                self.execute(
                    "insert into __textids (_textid, _class, _itemid, _prop) values ($1,$2,$3,$4)",
                    &[Param::Int(n), c, i, p],
                )?;
                n
            }
        };
        let words = index_words(&text.replace('\0', " "));
        if !words.is_empty() {
            self.execute(
                "insert into __words (_word, _textid) select unnest($1::varchar[]), $2",
                &[Param::Texts(words), Param::Int(text_id)],
            )?;
        }
        Ok(())
    }

    fn lock_key(&mut self, class: &ClassDef, value: &str) -> Result<()> {
        self.ensure_write()?;
        self.query(
            "select pg_advisory_xact_lock(hashtext($1), hashtext($2))",
            &[
                Param::Text(format!("rxs:key:{}", class.name)),
                Param::Text(value.replace('\0', "").to_lowercase()),
            ],
        )?;
        Ok(())
    }

    fn lock_item(&mut self, class: &ClassDef, id: Id) -> Result<()> {
        self.ensure_write()?;
        if i32::try_from(id).is_err() {
            return Ok(());
        }
        self.query(
            &format!(
                "select 1 from _{} where id=$1 for no key update",
                class.name
            ),
            &[Param::Int(id)],
        )?;
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        if self.begin.is_some() || !self.write {
            // Nothing was sent, or a read (autocommit): nothing to commit.
            self.open = false;
            return Ok(());
        }
        let Some(token) = self.token.filter(|_| !self.staged.is_empty()) else {
            let r = self.conn.batch_execute("COMMIT");
            self.open = false;
            return r.map_err(|e| self.fail(e));
        };
        // Staged files are renamed into place only after the commit (see [`files`]).
        crate::failpoint::hit("content.before_commit")?;
        let store = self.store;
        store.pending.add(&self.staged);
        let committed = crate::failpoint::hit("content.commit")
            .map_err(StoreError::from)
            .and_then(|()| self.conn.batch_execute("COMMIT").map_err(map_error));
        self.open = false;
        if let Err(e) = committed {
            // An error from COMMIT does not always mean it did not happen (the
            // connection broke after the server committed): PostgreSQL tells.
            // On a live connection ROLLBACK ends whatever is left of it first.
            let status = match self.conn.batch_execute("ROLLBACK") {
                Ok(()) => match xact_status(&mut self.conn, token) {
                    Ok(XactStatus::Committed) => Some(true),
                    Ok(XactStatus::Aborted) => Some(false),
                    _ => None,
                },
                Err(_) => {
                    self.conn.set_broken();
                    self.committed_anyway(token)
                }
            };
            match status {
                Some(true) => {
                    tracing::warn!(error = %e, "COMMIT reported an error but the transaction committed");
                }
                Some(false) => {
                    for s in &self.staged {
                        store.pending.remove(s.final_path(), token);
                        s.discard();
                    }
                    return Err(e);
                }
                None => {
                    // Unknown for now: the staged files stay for the next start or
                    // the next write of the item, which ask PostgreSQL again.
                    for s in &self.staged {
                        store.pending.remove(s.final_path(), token);
                    }
                    return Err(e);
                }
            }
        }
        let _ = crate::failpoint::hit("content.after_commit");
        if !files::install_committed(&self.staged, &store.pending, token) {
            // Committed: readers use the staged file until it is in place.
            store.repair_needed.store(true, Ordering::Release);
        }
        Ok(())
    }
}
