//! A small pool of `postgres::Client` connections with a per-connection statement
//! cache.
//!
//! Why our own instead of `r2d2_postgres`: what it would add is a reaper thread
//! and its own timeouts; what the store needs beyond a mutex-guarded list is
//! specific — flushing every idle connection once one turns out dead (after a
//! server restart they all are), failing fast while the server is unreachable
//! instead of letting every call wait for a connect timeout, and keeping each
//! connection's prepared statements with it.
//!
//! A `postgres::Client` runs its own single-threaded tokio runtime and must never
//! be used or dropped on an async executor thread (it panics): the store is only
//! used from blocking threads, and [`Pool`]'s `Drop` hands the idle connections
//! to a plain thread when it runs inside a runtime.

use super::super::StoreError;
use super::connect::Target;
use postgres::{Client, Statement};
use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 512;
/// An idle connection older than this is checked before it is handed out.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(30);
/// How long a caller waits for a free connection when all are in use.
const CHECKOUT_WAIT: Duration = Duration::from_secs(20);
/// After a failed connection attempt, further attempts fail at once for this long.
const FAIL_FAST: Duration = Duration::from_millis(500);

/// One connection and its prepared statements.
pub struct Conn {
    /// The client.
    pub client: Client,
    stmts: HashMap<String, Statement>,
    idle_since: Instant,
}

impl Conn {
    /// A prepared statement for `sql`, from the cache when possible.
    pub fn prepare(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.stmts.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        if self.stmts.len() >= STATEMENT_CACHE {
            self.stmts.clear();
        }
        self.stmts.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Forgets the prepared statements (after the server reported that a table
    /// changed under a cached plan).
    pub fn forget_statements(&mut self) {
        self.stmts.clear();
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
pub fn connect_error(target: &Target, e: &postgres::Error) -> String {
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s = format!("{s}: {inner}");
                src = inner.source();
            }
            s
        }
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

    /// A connection: an idle one (checked first if it idled long), or a new one.
    /// Fails at once while the server is known to be unreachable.
    pub fn get(&self) -> Result<Pooled<'_>, StoreError> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut st = self.lock();
        loop {
            if let Some(mut c) = st.idle.pop() {
                drop(st);
                if c.idle_since.elapsed() >= CHECK_AFTER_IDLE
                    && c.client.is_valid(Duration::from_secs(2)).is_err()
                {
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
                return match self.target.connect() {
                    Ok(client) => {
                        self.lock().down = None;
                        Ok(self.pooled(Conn {
                            client,
                            stmts: HashMap::new(),
                            idle_since: Instant::now(),
                        }))
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
        {
            let mut st = self.lock();
            st.down = None;
        }
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
            drop_off_executor(idle);
            self.freed.notify_all();
        }
    }

    fn put_back(&self, mut c: Conn, broken: bool) {
        if broken || c.client.is_closed() {
            self.discard(c);
            return;
        }
        c.idle_since = Instant::now();
        self.lock().idle.push(c);
        self.freed.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        drop_off_executor(idle);
    }
}

/// Drops connections; on an async executor thread (where a `postgres::Client`
/// would panic while closing), on a plain thread instead.
fn drop_off_executor(conns: Vec<Conn>) {
    if conns.is_empty() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        let t = std::thread::spawn(move || drop(conns));
        let _ = t.join();
    } else {
        drop(conns);
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
            if tokio::runtime::Handle::try_current().is_ok()
                && (self.broken || c.client.is_closed())
            {
                drop_off_executor(vec![c]);
                self.pool.lock().open -= 1;
                self.pool.freed.notify_one();
                return;
            }
            self.pool.put_back(c, self.broken);
        }
    }
}
