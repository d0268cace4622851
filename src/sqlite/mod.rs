//! The SQLite backend in Roundup 2.6's layout: `<tracker>/db/db`, `_<class>` tables,
//! Multilink tables, journals, `ids`, and FileClass content under `db/files/`.
//!
//! One writer connection (writers are serialised in-process, and a busy timeout
//! covers other processes such as Python Roundup), a pool of reader connections
//! (WAL mode: readers never wait for the writer). Every method here is blocking
//! and is called from blocking threads, never from the async executor.

mod checkpoint;
pub(crate) mod ddl;
mod query;
mod values;

use crate::hyperdb::date::Date;
use crate::schema::{ClassDef, Schema};
use crate::store::FilterQuery;
use crate::store::{
    Id, Item, JournalEntry, JournalRow, Multilinks, PropValue, Result, Store, StoreError, Tx,
    Values,
};
use rusqlite::{params_from_iter, Connection, OpenFlags, OptionalExtension};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use ddl::{columns as class_columns, DB_VERSION};

use crate::store::files::{self, check_writable};
use crate::store::row;
use crate::store::{column_kind, index_words};
use values::{cell_to_value, column_param, RowShape};

/// Page cache per reader connection, in KiB, as SQLite's negative `cache_size`.
const READER_CACHE_KIB: i64 = -128;

/// How many idle reader connections are kept.
const MAX_IDLE_READERS: usize = 16;

/// Opening options.
#[derive(Debug, Clone)]
pub struct Options {
    /// SQLite busy timeout (Roundup's `[rdbms] sqlite_timeout`).
    pub busy_timeout: Duration,
    /// Roundup's `[rdbms] allow_create`: a class without tables may get them.
    pub allow_create: bool,
    /// Roundup's `[rdbms] allow_alter`: a changed class may get new columns,
    /// Multilink tables and indexes.
    pub allow_alter: bool,
    /// Create the database if it does not exist (`init` only: serving a tracker
    /// whose `db/` is missing, e.g. an unmounted volume, must fail, not start
    /// over with an empty database).
    pub create: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            busy_timeout: Duration::from_secs(30),
            allow_create: true,
            allow_alter: true,
            create: false,
        }
    }
}

/// A tracker database in Roundup's sqlite layout.
pub struct SqliteStore {
    db_path: PathBuf,
    db_dir: PathBuf,
    files: PathBuf,
    /// Committed files not yet renamed into place (see [`files`]).
    pending: files::Pending,
    /// An install after a commit failed: retried at the next write.
    repair_needed: AtomicBool,
    schema: Arc<Schema>,
    options: Options,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// Moves committed WAL frames into the database off the commit path; stops
    /// when the store is dropped.
    _checkpointer: checkpoint::Checkpointer,
    /// Row queries of the schema's classes, by class name.
    rows: std::collections::HashMap<String, RowShape>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("db_path", &self.db_path)
            .finish()
    }
}

fn open_conn(path: &Path, options: &Options, read_only: bool) -> Result<Connection> {
    let flags = if read_only || !options.create {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(options.busy_timeout)?;
    // WAL: readers never block the writer and vice versa. synchronous=NORMAL in
    // WAL mode keeps every committed transaction across a process crash (kill -9);
    // only an OS crash or power loss can lose the last commits.
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.set_prepared_statement_cache_capacity(256);
    if read_only {
        conn.pragma_update(None, "query_only", "1")?;
        // Each pooled reader has its own page cache; the OS caches the file for
        // all of them, so a small one per reader keeps the RSS down.
        conn.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
    }
    Ok(conn)
}

impl SqliteStore {
    /// Opens the database in `db_dir` (`<tracker>/db`; created only with
    /// [`Options::create`]), checks that it can be written, finishes what a crash
    /// left of the last transactions' files, brings its tables up to `schema` and
    /// checks Roundup's stored schema version.
    pub fn open(db_dir: &Path, schema: Arc<Schema>, options: Options) -> Result<SqliteStore> {
        let db_path = db_dir.join("db");
        if options.create {
            std::fs::create_dir_all(db_dir)?;
        } else if !db_path.is_file() {
            return Err(StoreError::Missing(db_path));
        }
        check_writable(db_dir, &db_path)?;
        let mut writer = open_conn(&db_path, &options, false)?;
        if writer.is_readonly("main")? {
            return Err(StoreError::NotWritable {
                path: db_path,
                reason: "SQLite opened it read-only".into(),
            });
        }
        let pending = files::Pending::default();
        recover_files(&writer, db_dir)?;
        ddl::sync_schema(&mut writer, &schema, &options)?;
        writer.pragma_update(None, "wal_autocheckpoint", checkpoint::FALLBACK_PAGES)?;
        let checkpointer =
            checkpoint::Checkpointer::start(open_conn(&db_path, &options, false)?, &db_path);
        let rows = schema
            .classes
            .iter()
            .map(|c| (c.name.clone(), RowShape::new(c)))
            .collect();
        Ok(SqliteStore {
            _checkpointer: checkpointer,
            rows,
            db_path,
            db_dir: db_dir.to_path_buf(),
            files: db_dir.join("files"),
            pending,
            repair_needed: AtomicBool::new(false),
            schema,
            options,
            writer: Mutex::new(writer),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The schema this store was opened with.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    fn reader(&self) -> Result<PooledConn<'_>> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => open_conn(&self.db_path, &self.options, true)?,
        };
        Ok(PooledConn {
            conn: Some(conn),
            pool: &self.readers,
        })
    }

    fn begin(&self, write: bool) -> Result<SqliteTx<'_>> {
        let conn = if write {
            // A panic while writing rolled its transaction back (SqliteTx's Drop runs
            // during unwinding), so a poisoned lock still guards a usable connection.
            Conn::Writer(self.writer.lock().unwrap_or_else(|e| e.into_inner()))
        } else {
            Conn::Reader(self.reader()?)
        };
        run_cached(&conn, if write { "BEGIN IMMEDIATE" } else { "BEGIN" })?;
        let tx = SqliteTx {
            conn,
            store: self,
            write,
            open: true,
            staged: Vec::new(),
            token: None,
        };
        if write && self.repair_needed.load(Ordering::Acquire) {
            self.retry_installs()?;
        }
        Ok(tx)
    }

    /// Installs committed files whose rename failed after their commit (under the
    /// writer lock, in token order).
    fn retry_installs(&self) -> Result<()> {
        let mut waiting = self.pending.entries();
        waiting.sort_by_key(|l| l.token);
        if files::retry_installs(&self.pending, waiting) {
            self.repair_needed.store(false, Ordering::Release);
        }
        Ok(())
    }
}

/// The token of the last committed transaction that wrote files (see [`files`]).
fn user_version(conn: &Connection) -> Result<i64> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

/// At start-up, before anything is served: installs the files of committed
/// transactions that a crash left staged, and deletes those of transactions that
/// never committed (see [`files`]). Runs under the write lock, so no other process
/// is between staging and committing.
fn recover_files(conn: &Connection, db_dir: &Path) -> Result<()> {
    files::restore_old_protocol(db_dir)?;
    let leftovers = files::all_leftovers(db_dir)?;
    if leftovers.is_empty() {
        return Ok(());
    }
    run_cached(conn, "BEGIN IMMEDIATE")?;
    let result = (|| -> Result<()> {
        let committed = user_version(conn)?;
        // Scanned again under the lock: another process may have finished some.
        for l in files::all_leftovers(db_dir)? {
            let installed = files::resolve(&l, committed)?;
            if installed {
                tracing::warn!(file = %l.final_path.display(),
                    "installed the content of a committed transaction left by a crash");
            } else {
                tracing::info!(file = %l.tmp.display(),
                    "removed the staged file of a transaction that never committed");
            }
        }
        Ok(())
    })();
    let _ = run_cached(conn, "ROLLBACK");
    result
}

impl Store for SqliteStore {
    fn read(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(self.begin(false)?))
    }

    fn write(&self) -> Result<Box<dyn Tx + '_>> {
        Ok(Box::new(self.begin(true)?))
    }

    /// Only with an idle reader connection at hand: opening one (pragmas, the
    /// journal mode) may wait on the database's locks, which must not happen on an
    /// executor thread. (A pooled reader in WAL mode does not wait for writers.)
    fn reads_inline(&self) -> bool {
        !self
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// Runs a parameterless statement through the connection's statement cache
/// (`BEGIN`, `COMMIT`, `ROLLBACK` run on every call; parsing them each time shows
/// in the profile).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// A reader connection that goes back to the pool when dropped.
struct PooledConn<'a> {
    conn: Option<Connection>,
    pool: &'a Mutex<Vec<Connection>>,
}

impl Drop for PooledConn<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut pool)) = (self.conn.take(), self.pool.lock()) {
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
        }
    }
}

enum Conn<'a> {
    Writer(MutexGuard<'a, Connection>),
    Reader(PooledConn<'a>),
}

impl Deref for Conn<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Conn::Writer(g) => g,
            Conn::Reader(p) => p
                .conn
                .as_ref()
                .expect("pooled connection present until drop"),
        }
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        match self {
            Conn::Writer(g) => &mut *g,
            Conn::Reader(p) => p
                .conn
                .as_mut()
                .expect("pooled connection present until drop"),
        }
    }
}

/// A transaction on a [`SqliteStore`].
pub struct SqliteTx<'a> {
    conn: Conn<'a>,
    store: &'a SqliteStore,
    write: bool,
    open: bool,
    /// Files staged by this transaction, renamed into place after it commits.
    staged: Vec<files::Staged>,
    /// This transaction's token once it has staged a file (see [`files`]).
    token: Option<i64>,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = run_cached(&self.conn, "ROLLBACK");
            for s in &self.staged {
                s.discard();
            }
        }
    }
}

impl SqliteTx<'_> {
    /// Stages `content` for `final_path` in this transaction (see [`files`]).
    fn stage(
        &mut self,
        root: &Path,
        final_path: &Path,
        item: Option<(String, Id)>,
        content: &[u8],
    ) -> Result<()> {
        self.ensure_write()?;
        let token = match self.token {
            Some(t) => t,
            None => {
                let committed = user_version(&self.conn)?;
                let t = if committed >= i64::from(i32::MAX) || committed < 0 {
                    // The header field is 32 bits: start again at 1, after
                    // finishing everything staged under the old numbering.
                    for l in files::all_leftovers(&self.store.db_dir)? {
                        files::resolve(&l, committed)?;
                        self.store.pending.remove(&l.final_path, l.token);
                    }
                    1
                } else {
                    committed + 1
                };
                self.conn.pragma_update(None, "user_version", t)?;
                self.token = Some(t);
                t
            }
        };
        // What earlier transactions left staged for this item (a crash, a failed
        // install) is finished first, so that older content never lands later.
        // (Outbox files have new unique names.)
        if item.is_some() {
            let committed = token - 1;
            files::finish_earlier(final_path, token, &self.store.pending, |l| {
                files::resolve(l, committed).map(|_| ())
            })?;
        }
        files::restage(&mut self.staged, root, final_path, item, token, content)?;
        Ok(())
    }

    fn ensure_write(&self) -> Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(StoreError::ReadOnly)
        }
    }

    fn multilink(&self, class: &str, prop: &str, id: Id) -> Result<Vec<Id>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "select linkid from {class}_{prop} where nodeid=?1"
        ))?;
        let mut ids: Vec<Id> = stmt
            .query_map([id], |r| r.get::<_, i64>(0))?
            .collect::<std::result::Result<_, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn write_multilink(&self, class: &str, prop: &str, id: Id, new: &[Id]) -> Result<()> {
        let old = self.multilink(class, prop, id)?;
        let mut del = self.conn.prepare_cached(&format!(
            "delete from {class}_{prop} where nodeid=?1 and linkid=?2"
        ))?;
        for x in old.iter().filter(|x| !new.contains(x)) {
            del.execute([id, *x])?;
        }
        let mut ins = self.conn.prepare_cached(&format!(
            "insert into {class}_{prop} (nodeid, linkid) values (?1, ?2)"
        ))?;
        for x in new.iter().filter(|x| !old.contains(x)) {
            ins.execute([id, *x])?;
        }
        Ok(())
    }
}

impl Tx for SqliteTx<'_> {
    fn interrupter(&self) -> Option<crate::store::Interrupter> {
        if self.write {
            return None;
        }
        let handle = self.conn.get_interrupt_handle();
        Some(crate::store::Interrupter::new(move || handle.interrupt()))
    }

    fn get(
        &mut self,
        class: &ClassDef,
        id: Id,
        multilinks: Multilinks<'_>,
    ) -> Result<Option<Item>> {
        let built;
        let shape = match self.store.rows.get(&class.name) {
            Some(shape) if shape.layout.matches(class) => shape,
            _ => {
                built = RowShape::new(class);
                &built
            }
        };
        let mut stmt = self.conn.prepare_cached(&shape.sql)?;
        let row = stmt
            .query_row([id], |r| {
                let mut values = Values::new();
                for (i, prop, kind) in &shape.layout.props {
                    values.insert(prop.clone(), cell_to_value(kind, r.get_ref(*i)?));
                }
                let retired: Option<i64> = r.get(shape.layout.retired_col)?;
                Ok((values, retired.unwrap_or(0) != 0))
            })
            .optional()?;
        drop(stmt);
        let Some((mut values, retired)) = row else {
            return Ok(None);
        };
        if let (Multilinks::All, Some(sql)) = (multilinks, &shape.multilinks_sql) {
            // All of them in one statement (one per Multilink costs a step and a
            // reset each).
            let mut all: Vec<Vec<Id>> = vec![Vec::new(); shape.layout.multilinks.len()];
            let mut stmt = self.conn.prepare_cached(sql)?;
            let mut rows = stmt.query([id])?;
            while let Some(r) = rows.next()? {
                let which: usize = r.get(0)?;
                if let Some(ids) = all.get_mut(which) {
                    ids.push(r.get(1)?);
                }
            }
            for (name, mut ids) in shape.layout.multilinks.iter().zip(all) {
                ids.sort_unstable();
                ids.dedup();
                values.insert(name.clone(), Some(PropValue::Multilink(ids)));
            }
            return Ok(Some(Item {
                id,
                retired,
                values,
            }));
        }
        for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
            let wanted = match multilinks {
                Multilinks::All => true,
                Multilinks::None => false,
                Multilinks::Only(list) => list.contains(&p.name.as_str()),
            };
            if wanted {
                let ids = self.multilink(&class.name, &p.name, id)?;
                values.insert(p.name.clone(), Some(PropValue::Multilink(ids)));
            }
        }
        Ok(Some(Item {
            id,
            retired,
            values,
        }))
    }

    fn exists(&mut self, class: &ClassDef, id: Id) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("select 1 from _{} where id=?1", class.name))?;
        Ok(stmt.exists([id])?)
    }

    // `+__retired__` in the whole-class scans below keeps SQLite off the
    // `__retired__` index: nearly every row is live, and a rowid scan reads them
    // in id order without a seek per row (list of 10 000 titles: 4.9 -> 2.6 ms).
    fn list(&mut self, class: &ClassDef) -> Result<Vec<Id>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "select id from _{} where +__retired__=0 order by id",
            class.name
        ))?;
        let ids = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(ids)
    }

    fn column(&mut self, class: &ClassDef, prop: &str) -> Result<Vec<(Id, Option<PropValue>)>> {
        if prop == "id" {
            return Ok(self
                .list(class)?
                .into_iter()
                .map(|id| (id, Some(PropValue::String(id.to_string()))))
                .collect());
        }
        if let Some(p) = class.prop(prop).filter(|p| p.kind.is_multilink()) {
            let cn = &class.name;
            let sql = format!(
                "select c.id, m.linkid from _{cn} c left join {cn}_{pn} m on m.nodeid=c.id \
                 where +c.__retired__=0 order by c.id, m.linkid",
                pn = p.name
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut out: Vec<(Id, Option<PropValue>)> = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let id: Id = r.get(0)?;
                let link: Option<Id> = r.get(1)?;
                if out.last().map(|(i, _)| *i) != Some(id) {
                    out.push((id, Some(PropValue::Multilink(Vec::new()))));
                }
                if let (Some(l), Some((_, Some(PropValue::Multilink(v))))) = (link, out.last_mut())
                {
                    if v.last() != Some(&l) {
                        v.push(l);
                    }
                }
            }
            return Ok(out);
        }
        let Some(kind) = column_kind(class, prop) else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "select id, _{prop} from _{} where +__retired__=0 order by id",
            class.name
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let out = stmt
            .query_map([], |r| {
                Ok((r.get::<_, Id>(0)?, cell_to_value(&kind, r.get_ref(1)?)))
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(out)
    }

    fn lookup(&mut self, class: &ClassDef, key: &str, value: &str) -> Result<Option<Id>> {
        let sql = format!(
            "select id from _{} where _{key}=?1 and __retired__=0 order by id limit 1",
            class.name
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        Ok(stmt.query_row([value], |r| r.get(0)).optional()?)
    }

    fn filter(&mut self, class: &ClassDef, q: &FilterQuery) -> Result<Vec<Id>> {
        query::run(&self.conn, &self.store.schema, class, q)
    }

    fn content(&mut self, class: &ClassDef, id: Id) -> Result<Option<Vec<u8>>> {
        if let Some(b) = files::staged_content(&self.staged, &class.name, id) {
            return Ok(Some(b));
        }
        let store = self.store;
        files::read_committed(&store.pending, &store.files, &class.name, id, |token| {
            Ok(token <= user_version(&self.conn)?)
        })
    }

    fn all_ids(&mut self, class: &ClassDef) -> Result<Vec<(Id, bool)>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "select id, __retired__ from _{} order by id",
            class.name
        ))?;
        let ids = stmt
            .query_map([], |r| {
                let retired: Option<i64> = r.get(1)?;
                Ok((r.get(0)?, retired.unwrap_or(0) != 0))
            })?
            .collect::<std::result::Result<_, _>>()?;
        Ok(ids)
    }

    fn journal_rows(&mut self, class: &ClassDef, id: Id) -> Result<Vec<JournalRow>> {
        let sql = format!(
            "select nodeid, date, tag, action, params from {}__journal where nodeid=?1 \
             order by date",
            class.name
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([id])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let text = |i: usize| -> rusqlite::Result<String> {
                Ok(match r.get_ref(i)? {
                    rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                        String::from_utf8_lossy(t).into_owned()
                    }
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    rusqlite::types::ValueRef::Real(f) => f.to_string(),
                    rusqlite::types::ValueRef::Null => String::new(),
                })
            };
            let date = text(1)?;
            let date = Date::from_serialised(&date).ok_or_else(|| {
                StoreError::Incompatible(format!(
                    "{}__journal: unreadable date {date:?}",
                    class.name
                ))
            })?;
            out.push(JournalRow {
                nodeid: r.get(0)?,
                date,
                tag: text(2)?,
                action: text(3)?,
                params: text(4)?,
            });
        }
        Ok(out)
    }

    fn new_id(&mut self, class: &ClassDef) -> Result<Id> {
        self.ensure_write()?;
        let num: Option<i64> = self
            .conn
            .prepare_cached("select num from ids where name=?1")?
            .query_row([&class.name], |r| r.get(0))
            .optional()?;
        let id = match num {
            Some(n) => n,
            None => {
                let max: i64 = self.conn.query_row(
                    &format!("select coalesce(max(id),0)+1 from _{}", class.name),
                    [],
                    |r| r.get(0),
                )?;
                self.conn.execute(
                    "insert into ids (name, num) values (?1, ?2)",
                    rusqlite::params![class.name, max],
                )?;
                max
            }
        };
        self.conn
            .prepare_cached("update ids set num=?2 where name=?1")?
            .execute(rusqlite::params![class.name, id + 1])?;
        Ok(id)
    }

    fn consume_id(&mut self, class: &ClassDef, id: Id) -> Result<()> {
        self.ensure_write()?;
        self.conn.execute(
            "update ids set num=max(num, ?2) where name=?1",
            rusqlite::params![class.name, id.saturating_add(1)],
        )?;
        Ok(())
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
        let (cols, args) = row::insert_columns(class, id, values, user, now, column_param)?;
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "insert into _{} ({}) values ({})",
            class.name,
            cols.join(","),
            marks.join(",")
        );
        self.conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(args))?;
        for p in class.properties.iter().filter(|p| p.kind.is_multilink()) {
            if let Some(Some(PropValue::Multilink(ids))) = values.get(&p.name) {
                self.write_multilink(&class.name, &p.name, id, ids)?;
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
            column_param,
            |name, ids| self.write_multilink(&class.name, name, id, &ids),
        )?;
        if sets.is_empty() {
            return Ok(());
        }
        let assigns: Vec<String> = sets
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}=?{}", i + 1))
            .collect();
        args.push(id.into());
        let sql = format!(
            "update _{} set {} where id=?{}",
            class.name,
            assigns.join(","),
            args.len()
        );
        self.conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(args))?;
        Ok(())
    }

    fn set_retired(&mut self, class: &ClassDef, id: Id, retired: bool) -> Result<()> {
        self.ensure_write()?;
        let sql = format!("update _{} set __retired__=?1 where id=?2", class.name);
        self.conn
            .prepare_cached(&sql)?
            .execute([if retired { id } else { 0 }, id])?;
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
            "insert into {}__journal (nodeid, date, tag, action, params) values (?1,?2,?3,?4,?5)",
            class.name
        );
        self.conn.prepare_cached(&sql)?.execute(rusqlite::params![
            e.nodeid,
            e.date.serialise(),
            e.tag.to_string(),
            e.action,
            e.params
        ])?;
        Ok(())
    }

    fn index_text(&mut self, class: &ClassDef, id: Id, prop: &str, text: &str) -> Result<()> {
        self.ensure_write()?;
        let ident = (class.name.as_str(), id.to_string(), prop);
        let existing: Option<i64> = self
            .conn
            .prepare_cached(
                "select _textid from __textids where _class=?1 and _itemid=?2 and _prop=?3",
            )?
            .query_row(rusqlite::params![ident.0, ident.1, ident.2], |r| r.get(0))
            .optional()?;
        let text_id = match existing {
            Some(t) => {
                self.conn
                    .prepare_cached("delete from __words where _textid=?1")?
                    .execute([t])?;
                t
            }
            None => {
                let n: i64 = self
                    .conn
                    .prepare_cached("select num from ids where name='__textids'")?
                    .query_row([], |r| r.get(0))
                    .optional()?
                    .unwrap_or(1);
                self.conn
                    .prepare_cached("update ids set num=?1 where name='__textids'")?
                    .execute([n + 1])?;
                self.conn
                    .prepare_cached("insert into __textids (_textid, _class, _itemid, _prop) values (?1,?2,?3,?4)")?
                    .execute(rusqlite::params![n, ident.0, ident.1, ident.2])?;
                n
            }
        };
        let mut ins = self
            .conn
            .prepare_cached("insert into __words (_word, _textid) values (?1, ?2)")?;
        for w in index_words(text) {
            ins.execute(rusqlite::params![w, text_id])?;
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let Some(token) = self.token else {
            run_cached(&self.conn, "COMMIT")?;
            self.open = false;
            return Ok(());
        };
        // Staged files are renamed into place only after the commit (see [`files`]).
        crate::failpoint::hit("content.before_commit")?;
        let store = self.store;
        store.pending.add(&self.staged);
        let committed = crate::failpoint::hit("content.commit")
            .map_err(StoreError::from)
            .and_then(|()| Ok(run_cached(&self.conn, "COMMIT")?));
        if let Err(e) = committed {
            // An error from COMMIT does not always mean it did not happen (a failed
            // sync after the WAL write): the token tells.
            let _ = run_cached(&self.conn, "ROLLBACK");
            self.open = false;
            if user_version(&self.conn).ok() != Some(token) {
                for s in &self.staged {
                    store.pending.remove(s.final_path(), token);
                    s.discard();
                }
                return Err(e);
            }
            tracing::warn!(error = %e, "COMMIT reported an error but the transaction committed");
        }
        self.open = false;
        // The renames below must not outlive the commit on an OS crash.
        let wal = PathBuf::from(format!("{}-wal", store.db_path.display()));
        if let Err(e) = std::fs::File::open(&wal).and_then(|f| f.sync_all()) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(file = %wal.display(), error = %e, "cannot sync the WAL");
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
