//! The mail outbox of a tracker (`db/outbox/`) and the thread that empties it.
//!
//! A call's nosy mail is written into the outbox by its own transaction
//! ([`super::queue`]; the files appear atomically when it commits), and the
//! call answers without waiting for any mail server. One delivery thread per
//! tracker sends the queued mail oldest first, deleting each file only after the
//! `[mail] debug` file or the SMTP server took it. A failure that may pass (no
//! connection, a timeout, a 4xx answer, an unwritable debug file) stops the round
//! and is retried after 1, 2, 4, … seconds, at most [`MAX_BACKOFF`] apart; a
//! permanent one (a 5xx answer, an unusable address) moves the file to
//! `outbox/failed/` with an error in the log, so one bad mail cannot block the
//! others. At start-up the thread sends whatever a previous run left.
//!
//! Delivery is at least once: a crash between handing a mail over and deleting
//! its file sends it again after the restart. Several daemons may share the
//! outbox (several daemons on one PostgreSQL tracker, on one host or on a shared
//! file system): each mail is claimed with an exclusive lock on its file
//! (`flock`) before it is sent and deleted under that lock, so each is sent by
//! one daemon only.

use super::{self as mail, MailError};
use crate::config::Settings;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The extension of a queued mail (staged files end in `.tmp` and are ignored).
pub const MAIL_EXT: &str = ".mail";

/// The longest wait between two attempts while the mail server is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How often the outbox is looked at without being woken (a mail queued by
/// another process, a wake-up lost).
const RESCAN: Duration = Duration::from_secs(30);

/// The outbox of one tracker; delivers only once [`Outbox::start`] ran (serving,
/// not `init`).
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    done: mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

impl Outbox {
    /// The outbox of the database in `db_dir`.
    pub fn new(db_dir: &Path) -> Outbox {
        Outbox {
            dir: db_dir.join(crate::store::OUTBOX_DIR),
            running: Mutex::new(None),
        }
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the delivery thread (`tracker` names it in the log); it first sends
    /// what is already queued.
    pub fn start(&self, tracker: &str, settings: &Settings) -> std::io::Result<()> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.is_some() {
            return Ok(());
        }
        let (wake, woken) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            dir: self.dir.clone(),
            tracker: tracker.to_string(),
            settings: settings.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("mail-{tracker}"))
            .spawn(move || {
                worker.run(woken);
                let _ = done_tx.send(());
            })?;
        *running = Some(Running {
            wake,
            stop,
            done,
            thread,
        });
        Ok(())
    }

    /// Tells the delivery thread that mail was queued.
    pub fn wake(&self) {
        if let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            let _ = r.wake.send(());
        }
    }

    /// Stops the delivery thread after the mail it is sending, waiting at most
    /// `grace`. What is still queued stays for the next start.
    pub fn stop(&self, grace: Duration) {
        let Some(r) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        r.stop.store(true, Ordering::Release);
        drop(r.wake);
        match r.done.recv_timeout(grace) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = r.thread.join();
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(outbox = %self.dir.display(),
                    "mail delivery still busy at shutdown; the mail stays queued");
            }
        }
    }
}

/// Opens and locks a queued mail for sending: `None` when another daemon holds
/// it, or has sent (and deleted or replaced) it since it was listed.
fn claim(path: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::unix::fs::MetadataExt;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    // Sent and deleted by another daemon between our open and our lock?
    let held = file.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => Ok(Some(file)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_claimed(mut file: &std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Why a delivery round ended early.
enum RoundEnd {
    /// Everything queued was handled.
    Empty,
    /// A failure that may pass: try again later.
    Retry,
    /// Asked to stop.
    Stopped,
}

struct Worker {
    dir: PathBuf,
    tracker: String,
    settings: Settings,
    stop: Arc<AtomicBool>,
}

impl Worker {
    fn run(&self, woken: mpsc::Receiver<()>) {
        let mut backoff: Option<Duration> = None;
        let mut next_try = Instant::now();
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            if Instant::now() >= next_try {
                match self.round() {
                    RoundEnd::Empty => {
                        backoff = None;
                        next_try = Instant::now();
                    }
                    RoundEnd::Retry => {
                        let b =
                            backoff.map_or(Duration::from_secs(1), |b| (b * 2).min(MAX_BACKOFF));
                        backoff = Some(b);
                        next_try = Instant::now() + b;
                    }
                    RoundEnd::Stopped => return,
                }
            }
            let wait = match backoff {
                Some(_) => next_try.saturating_duration_since(Instant::now()),
                None => RESCAN,
            };
            match woken.recv_timeout(wait) {
                // A new mail does not cut a back-off short.
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Sends every queued mail, oldest first.
    fn round(&self) -> RoundEnd {
        let queued = match self.queued() {
            Ok(q) => q,
            Err(e) => {
                tracing::error!(tracker = %self.tracker, outbox = %self.dir.display(), error = %e,
                    "cannot read the mail outbox");
                return RoundEnd::Retry;
            }
        };
        for path in queued {
            if self.stop.load(Ordering::Acquire) {
                return RoundEnd::Stopped;
            }
            // Claimed while it is being sent: another daemon skips it.
            let claimed = match claim(&path) {
                Ok(Some(file)) => file,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e,
                        "cannot open a queued mail");
                    return RoundEnd::Retry;
                }
            };
            let result = read_claimed(&claimed)
                .map_err(|e| MailError::File(format!("{}: {e}", path.display())))
                .and_then(|text| mail::from_queue_file(&text))
                .and_then(|m| mail::deliver_one(&m, &self.settings).map(|()| m));
            match result {
                Ok(m) => {
                    tracing::info!(tracker = %self.tracker, to = ?m.to, "nosy mail sent");
                    if let Err(e) = std::fs::remove_file(&path) {
                        // Sent, but it would be sent again: stop before more of that.
                        tracing::error!(file = %path.display(), error = %e,
                            "cannot delete a sent mail from the outbox");
                        return RoundEnd::Retry;
                    }
                }
                Err(e) if e.is_permanent() => {
                    let failed = self.dir.join("failed");
                    let target = failed.join(path.file_name().unwrap_or_default());
                    let moved = std::fs::create_dir_all(&failed)
                        .and_then(|()| std::fs::rename(&path, &target));
                    tracing::error!(tracker = %self.tracker, file = %target.display(), error = %e,
                        "nosy mail cannot be delivered; kept in outbox/failed");
                    if let Err(me) = moved {
                        tracing::error!(file = %path.display(), error = %me,
                            "cannot move an undeliverable mail aside");
                        return RoundEnd::Retry;
                    }
                }
                Err(e) => {
                    tracing::warn!(tracker = %self.tracker, host = %self.settings.mail.host.as_deref().unwrap_or_default(), error = %e,
                        "nosy mail not delivered yet; will retry");
                    return RoundEnd::Retry;
                }
            }
        }
        RoundEnd::Empty
    }

    /// The queued mail files, oldest first.
    fn queued(&self) -> std::io::Result<Vec<PathBuf>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(MAIL_EXT)) && entry.file_type()?.is_file()
            {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_mail_is_claimed_by_one_sender_at_a_time() {
        let dir = std::env::temp_dir().join(format!("rxs-outbox-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mail = dir.join("1.mail");
        std::fs::write(&mail, "queued").expect("write");
        let first = claim(&mail).expect("claim").expect("free");
        assert!(
            claim(&mail).expect("claim").is_none(),
            "held by the first sender"
        );
        assert_eq!(read_claimed(&first).expect("read"), "queued");
        // Sent: deleted under the lock, then released.
        std::fs::remove_file(&mail).expect("delete");
        drop(first);
        assert!(claim(&mail).expect("claim").is_none(), "gone");
        // Replaced by a new file of the same name after the claim was opened.
        std::fs::write(&mail, "new").expect("write");
        let stale = std::fs::File::open(&mail).expect("open");
        std::fs::remove_file(&mail).expect("delete");
        std::fs::write(&mail, "newer").expect("write");
        drop(stale);
        let again = claim(&mail).expect("claim").expect("free");
        assert_eq!(read_claimed(&again).expect("read"), "newer");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
