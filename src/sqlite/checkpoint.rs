//! The WAL checkpointer: a background thread that copies committed WAL frames
//! into the database file, so that commits never do it themselves.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that crosses the
//! threshold: that commit writes every page back and fsyncs the database while
//! holding the writer lock, and every writer queued behind it waits (a quarter
//! of a `create`'s cost in the profile). Here a separate connection runs a
//! `PASSIVE` checkpoint (it never blocks readers or the writer) every
//! [`INTERVAL`], batching the copy of whatever was committed meanwhile. The
//! writer keeps SQLite's own automatic checkpoint at [`FALLBACK_PAGES`] as a
//! safety net, should this thread fall behind or fail.
//!
//! Durability does not change: with `synchronous=NORMAL` in WAL mode a commit
//! is in the WAL file (in the OS's hands) when `COMMIT` returns, which survives
//! the process being killed; a checkpoint only moves it into the main file.

use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The writer's own `wal_autocheckpoint`, used only if the thread falls behind.
pub(super) const FALLBACK_PAGES: i64 = 20_000;

/// How often the thread checkpoints. Short rounds keep each round's fsync
/// short: at 16 connections of creates, p99 was 19 ms at 50 ms, 47 ms at
/// 250 ms, and 32 ms with SQLite's checkpoint inside the commit.
const INTERVAL: Duration = Duration::from_millis(50);

/// Least time between two warnings about failed checkpoints.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The running checkpoint thread; dropping it stops the thread.
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the WAL of the database at `db_path` through `conn`
    /// (a connection of its own).
    pub(super) fn start(conn: Connection, db_path: &Path) -> Checkpointer {
        let (stop, stopped) = mpsc::channel::<()>();
        let name = db_path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                let mut last_warning: Option<Instant> = None;
                loop {
                    match stopped.recv_timeout(INTERVAL) {
                        Err(RecvTimeoutError::Timeout) => {}
                        // Stop asked for, or the store is gone.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                    if let Err(e) = checkpoint(&conn) {
                        // A lasting failure (a read-only file) is said once a minute.
                        if last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                            tracing::warn!(db = %name, error = %e, "WAL checkpoint failed");
                            last_warning = Some(Instant::now());
                        }
                    }
                }
            })
            .ok();
        if thread.is_none() {
            tracing::warn!(db = %db_path.display(), "no checkpoint thread; commits checkpoint");
        }
        Checkpointer {
            stop: Some(stop),
            thread,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs a `PASSIVE` checkpoint: copies what the WAL holds beyond the last
/// checkpoint (nothing, and no fsync, when idle).
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let (log, done): (i64, i64) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })?;
    tracing::trace!(log, done, "WAL checkpoint");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_commits_into_the_database_file_and_stops_on_drop() {
        let dir = std::env::temp_dir().join(format!("ckpt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode=wal; PRAGMA wal_autocheckpoint=0;
                 create table t (x text);",
            )
            .unwrap();
        // Nothing copies the WAL back but the thread under test.
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        let checkpointer = Checkpointer::start(Connection::open(&path).unwrap(), &path);
        writer
            .execute_batch(
                "begin; insert into t select hex(randomblob(100))
                 from (with recursive n(i) as (select 1 union all select i+1 from n where i<2000)
                 select i from n); commit;",
            )
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while size() <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(size() > before, "the WAL was never checkpointed");
        let started = Instant::now();
        drop(checkpointer);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
