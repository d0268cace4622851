//! Connections: `tokio-postgres` clients, each with a small single-threaded
//! runtime of its own that the calling (blocking) thread drives while it waits,
//! used through blocking calls from the store's blocking threads; and a pool of
//! them with a per-connection statement cache.
//!
//! Why not the sync `postgres` crate (which is exactly this wrapper around the
//! same client): it panics when a client is dropped on an async thread, offers
//! no way to bound a call from the client side, and cannot pipeline. Here every
//! call has a deadline ([`CALL_TIMEOUT`]), so a server that stops answering
//! (frozen, a network black hole: nothing that closes the socket) turns into a
//! prompt error instead of a hung request; and a write transaction's `BEGIN`
//! travels with its first statement, in one round trip. (A runtime per connection rather than one shared I/O
//! thread: handing each query to another thread and back cost more CPU than
//! the queries themselves.)
//!
//! Why our own pool instead of `r2d2`/`deadpool`: what the store needs beyond a
//! mutex-guarded list is specific — flushing every idle connection once one turns
//! out dead (after a server restart they all are), failing fast while the server
//! is unreachable instead of letting every call wait for a connect timeout, and
//! keeping each connection's prepared statements with it.

use super::connect::Target;
use crate::store::StoreError;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 512;
/// An idle connection older than this is checked before it is handed out.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(30);
/// How long a caller waits for a free connection when all are in use.
const CHECKOUT_WAIT: Duration = Duration::from_secs(20);
/// After a failed connection attempt, further attempts fail at once for this long.
const FAIL_FAST: Duration = Duration::from_millis(500);
/// The longest any one call to the server may take (the server's own
/// `statement_timeout` is 30 s, `lock_timeout` 20 s; see [`super::connect`]).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(40);

/// A failed call: the server's or the client library's error, or no answer in
/// time.
#[derive(Debug)]
pub enum PgError {
    /// Reported by tokio-postgres.
    Pg(tokio_postgres::Error),
    /// No answer within the deadline.
    Timeout(Duration),
    /// A query expected to return one row returned this many.
    RowCount(usize),
    /// The connection's runtime could not be created.
    Runtime(String),
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        PgError::Pg(e)
    }
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Pg(e) => f.write_str(&super::describe(e)),
            PgError::Timeout(d) => write!(f, "PostgreSQL did not answer within {} s", d.as_secs()),
            PgError::RowCount(n) => write!(f, "expected one row, got {n}"),
            PgError::Runtime(e) => write!(f, "cannot start a connection's runtime: {e}"),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PgError::Pg(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PgError> for StoreError {
    fn from(e: PgError) -> Self {
        StoreError::Postgres {
            message: e.to_string(),
            sqlstate: e.code().map(|c| c.code().to_string()),
        }
    }
}

impl PgError {
    /// The SQLSTATE, if the server reported one.
    pub fn code(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            PgError::Pg(e) => e.code(),
            _ => None,
        }
    }
}

/// One connection, its runtime and its prepared statements.
pub struct Conn {
    client: Client,
    /// Drives the connection (and its timers) while a caller waits; `None` only
    /// while being dropped.
    rt: Option<tokio::runtime::Runtime>,
    stmts: HashMap<String, Statement>,
    idle_since: Instant,
}

type Params<'p> = [&'p (dyn ToSql + Sync)];

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            // Never blocks, so it is safe on any thread, async ones included.
            rt.shutdown_background();
        }
    }
}

impl Conn {
    /// Opens a connection to `target`.
    pub fn open(target: &Target) -> Result<Conn, PgError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError::Runtime(e.to_string()))?;
        let config = target.config.clone();
        let tls = target.tls.clone();
        // connect_timeout bounds each attempt; this bounds all hosts together.
        let client = rt.block_on(async move {
            let connect = async move {
                let client = match tls {
                    Some(tls) => {
                        let (client, connection) = config.connect(tls).await?;
                        tokio::spawn(async move {
                            let _ = connection.await;
                        });
                        client
                    }
                    None => {
                        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                        tokio::spawn(async move {
                            let _ = connection.await;
                        });
                        client
                    }
                };
                Ok::<_, tokio_postgres::Error>(client)
            };
            match tokio::time::timeout(CALL_TIMEOUT, connect).await {
                Ok(r) => r.map_err(PgError::Pg),
                Err(_) => Err(PgError::Timeout(CALL_TIMEOUT)),
            }
        })?;
        Ok(Conn {
            client,
            rt: Some(rt),
            stmts: HashMap::new(),
            idle_since: Instant::now(),
        })
    }

    /// Runs `f` on this connection's runtime (the caller's thread drives it),
    /// waiting at most `limit`.
    fn block_on<T>(
        &self,
        limit: Duration,
        f: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, PgError> {
        let Some(rt) = &self.rt else {
            return Err(PgError::Runtime("connection closed".into()));
        };
        rt.block_on(async move {
            match tokio::time::timeout(limit, f).await {
                Ok(r) => r.map_err(PgError::Pg),
                Err(_) => Err(PgError::Timeout(limit)),
            }
        })
    }

    /// A handle that asks the server to cancel the statement this connection runs
    /// (see [`cancel`]).
    pub fn cancel_token(&self) -> tokio_postgres::CancelToken {
        self.client.cancel_token()
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// A prepared statement for `sql`, from the cache when possible.
    pub fn prepare(&mut self, sql: &str) -> Result<Statement, PgError> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let client = &self.client;
        let s = self.block_on(CALL_TIMEOUT, client.prepare(sql))?;
        self.remember(sql, &s);
        Ok(s)
    }

    fn remember(&mut self, sql: &str, s: &Statement) {
        if self.stmts.len() >= STATEMENT_CACHE {
            self.stmts.clear();
        }
        self.stmts.insert(sql.to_string(), s.clone());
    }

    /// Forgets the prepared statements (after the server reported that a table
    /// changed under a cached plan).
    pub fn forget_statements(&mut self) {
        self.stmts.clear();
    }

    /// Runs a statement and returns its rows; with `begin`, that statement is
    /// sent first, in the same round trip.
    pub fn query_with(
        &mut self,
        begin: Option<&str>,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, PgError> {
        let cached = self.stmts.get(sql).cloned();
        let client = &self.client;
        let (prepared, rows) = self.block_on(CALL_TIMEOUT, async move {
            let begin = async {
                match begin {
                    Some(b) => client.batch_execute(b).await,
                    None => Ok(()),
                }
            };
            let query = async {
                let stmt = match cached {
                    Some(s) => s,
                    None => client.prepare(sql).await?,
                };
                let rows = client.query(&stmt, params).await?;
                Ok::<_, tokio_postgres::Error>((stmt, rows))
            };
            // Polled in this order: BEGIN is queued before the query.
            let (b, q) = tokio::join!(begin, query);
            b?;
            q
        })?;
        if !self.stmts.contains_key(sql) {
            self.remember(sql, &prepared);
        }
        Ok(rows)
    }

    /// Runs a statement and returns its rows.
    pub fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>, PgError> {
        self.query_with(None, sql, params)
    }

    /// Runs a statement expected to return one row.
    pub fn query_one(&mut self, sql: &str, params: &Params<'_>) -> Result<Row, PgError> {
        let mut rows = self.query(sql, params)?;
        if rows.len() != 1 {
            return Err(PgError::RowCount(rows.len()));
        }
        Ok(rows.remove(0))
    }

    /// Runs a statement returning at most one row.
    pub fn query_opt(&mut self, sql: &str, params: &Params<'_>) -> Result<Option<Row>, PgError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a statement and returns the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, PgError> {
        let stmt = self.prepare(sql)?;
        let client = &self.client;
        self.block_on(CALL_TIMEOUT, client.execute(&stmt, params))
    }

    /// Runs statements through the simple query protocol (no parameters).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), PgError> {
        let client = &self.client;
        self.block_on(CALL_TIMEOUT, client.batch_execute(sql))
    }

    /// Checks that the server still answers on this connection.
    pub fn is_valid(&mut self) -> bool {
        let client = &self.client;
        self.block_on(Duration::from_secs(2), client.simple_query(""))
            .is_ok()
    }
}

struct State {
    idle: Vec<Conn>,
    /// Connections open (idle and in use), plus those being opened.
    open: usize,
    /// Until when new connections are not attempted, and why.
    down: Option<(Instant, String)>,
}

/// The pool of one tracker database.
pub struct Pool {
    target: Target,
    state: Mutex<State>,
    freed: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({:?})", self.target)
    }
}

/// The message of a failed connection attempt, in plain words.
pub fn connect_error(target: &Target, e: &PgError) -> String {
    let detail = match e {
        PgError::Pg(e) => match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => super::describe(e),
        },
        _ => e.to_string(),
    };
    format!("cannot connect to PostgreSQL ({target:?}): {detail}")
}

impl Pool {
    /// A pool for `target`; no connection is opened yet.
    pub fn new(target: Target) -> Pool {
        Pool {
            target,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                down: None,
            }),
            freed: Condvar::new(),
        }
    }

    /// Where this pool connects.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an open connection (the one the store was opened with).
    pub fn adopt(&self, mut c: Conn) {
        c.idle_since = Instant::now();
        let mut st = self.lock();
        st.open += 1;
        st.idle.push(c);
    }

    /// A connection: an idle one (checked first if it idled long), or a new one.
    /// Fails at once while the server is known to be unreachable.
    pub fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut st = self.lock();
        loop {
            if let Some(mut c) = st.idle.pop() {
                drop(st);
                if c.idle_since.elapsed() >= CHECK_AFTER_IDLE && !c.is_valid() {
                    self.discard(c);
                    self.flush_idle();
                    st = self.lock();
                    continue;
                }
                return Ok(self.pooled(c));
            }
            if st.open < self.target.pool_size {
                if let Some((until, why)) = &st.down {
                    if Instant::now() < *until {
                        return Err(StoreError::Unavailable(why.clone()));
                    }
                }
                st.open += 1;
                drop(st);
                return match Conn::open(&self.target) {
                    Ok(c) => {
                        self.lock().down = None;
                        Ok(self.pooled(c))
                    }
                    Err(e) => {
                        let why = connect_error(&self.target, &e);
                        let mut st = self.lock();
                        st.open -= 1;
                        st.down = Some((Instant::now() + FAIL_FAST, why.clone()));
                        drop(st);
                        self.freed.notify_one();
                        Err(StoreError::Unavailable(why))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "all {} connections to PostgreSQL are busy",
                    self.target.pool_size
                )));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// A fresh connection, never an idle one (to retry after a dead one).
    pub fn fresh(&self) -> Result<Pooled<'_>, StoreError> {
        self.flush_idle();
        self.lock().down = None;
        self.get()
    }

    fn pooled(&self, c: Conn) -> Pooled<'_> {
        Pooled {
            conn: Some(c),
            pool: self,
            broken: false,
        }
    }

    fn discard(&self, c: Conn) {
        drop(c);
        self.lock().open -= 1;
        self.freed.notify_one();
    }

    /// Closes every idle connection (one turned out dead: after a server restart
    /// they all are).
    pub fn flush_idle(&self) {
        let idle = {
            let mut st = self.lock();
            let idle = std::mem::take(&mut st.idle);
            st.open -= idle.len();
            idle
        };
        if !idle.is_empty() {
            drop(idle);
            self.freed.notify_all();
        }
    }

    fn put_back(&self, mut c: Conn, broken: bool) {
        if broken || c.is_closed() {
            self.discard(c);
            return;
        }
        c.idle_since = Instant::now();
        self.lock().idle.push(c);
        self.freed.notify_one();
    }
}

/// A connection checked out of the pool; goes back when dropped (or is closed
/// when marked broken).
pub struct Pooled<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    broken: bool,
}

impl Pooled<'_> {
    /// Marks the connection unusable: it is closed instead of going back.
    pub fn set_broken(&mut self) {
        self.broken = true;
    }
}

impl std::ops::Deref for Pooled<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Pooled<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Pooled<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            self.pool.put_back(c, self.broken);
        }
    }
}

/// Sends a cancel request for `token`'s connection from a thread of its own (the
/// caller may be an async executor thread, which must not block), with `tls` as the
/// connection has it. Best effort: the statement then fails with `query_canceled`.
pub fn cancel(
    token: tokio_postgres::CancelToken,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
) {
    let spawned = std::thread::Builder::new()
        .name("pg-cancel".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let send = async {
                    match tls {
                        Some(tls) => token.cancel_query(tls).await,
                        None => token.cancel_query(tokio_postgres::NoTls).await,
                    }
                };
                if let Ok(Err(e)) = tokio::time::timeout(Duration::from_secs(10), send).await {
                    tracing::warn!(error = %super::describe(&e), "cancelling a PostgreSQL statement failed");
                }
            });
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the thread that cancels a PostgreSQL statement");
    }
}
