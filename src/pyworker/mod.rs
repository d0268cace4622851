//! The Python detector worker: one child process per tracker whose schema.toml
//! lists Python detector files, which runs them unmodified (see `worker.py`,
//! embedded in the binary and given to the interpreter with `-c`).
//!
//! A [`Runtime`] starts the worker when the tracker is opened (a missing Python
//! or Roundup, or a detector whose `init(db)` fails, stops the daemon with a
//! clear message, as Roundup fails to open such a tracker) and learns the
//! detectors' registrations. Writes borrow the worker with [`Runtime::lease`]
//! (one at a time: the worker serves one transaction's detectors at once) and
//! exchange frames ([`frame`]) with a deadline. A worker that misbehaves (dies,
//! hangs past the deadline, breaks the protocol) is killed with its process
//! group; the call that used it fails and rolls back, and a replacement starts
//! in the background for the next write. Reads never use the worker.
//!
//! This floor knows processes, frames and values ([`value`]); firing detectors
//! inside a transaction and answering the worker's database calls is the item
//! layer's (`items::detectors::python`).

pub mod frame;
pub mod value;

use crate::log::field;
use frame::{FrameReader, PipeError};
use serde_json::{json, Value as J};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The worker script (Python 3; needs Roundup importable).
pub const SCRIPT: &str = include_str!("worker.py");

/// The interpreter used when neither `[xmlrpc_server] python` nor the
/// [`PYTHON_ENV`] environment variable names one.
pub const DEFAULT_PYTHON: &str = "python3";

/// Environment variable naming the interpreter (as for `convert-schema`); the
/// tracker's `[xmlrpc_server] python` takes precedence.
pub const PYTHON_ENV: &str = "ROUNDUP_PYTHON";

/// How long a worker may take to start (import Roundup, load the detectors).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of the worker's standard error kept for start-up failure messages.
const STDERR_TAIL: usize = 30;

pub use crate::schema::detectors::{Event, Kind};

/// One `cl.audit(...)`/`cl.react(...)` a detector file's `init(db)` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The worker's handle for the function.
    pub handle: u32,
    /// The class it was registered on.
    pub class: String,
    /// Auditor or reactor.
    pub kind: Kind,
    /// The event.
    pub event: Event,
    /// Its priority (Roundup's default 100; lower runs first).
    pub priority: i32,
    /// The function's `__name__` (the tie-breaker of Roundup's order).
    pub name: String,
    /// The detector file, relative to the tracker.
    pub file: String,
    /// The function's first line.
    pub line: u32,
}

/// What is needed to start a worker for one tracker.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// The tracker's name (for the log).
    pub tracker: String,
    /// The interpreter.
    pub python: String,
    /// The tracker directory (Roundup's TRACKER_HOME).
    pub home: PathBuf,
    /// The hello frame's body: schema, roles, detector files.
    pub hello: J,
}

/// Why the worker could not serve.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum WorkerError {
    /// The worker could not be started (no interpreter, no Roundup, a detector
    /// that does not load).
    #[error("{0}")]
    Start(String),
    /// The deadline passed (waiting for the worker, or inside a detector); the
    /// worker was stopped.
    #[error("{0}")]
    TimedOut(String),
    /// The worker died or broke the protocol; it was stopped.
    #[error("{0}")]
    Died(String),
}

/// A running worker process and its pipes.
struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    reader: FrameReader,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// How it ended, once killed and reaped.
    done: Option<String>,
}

impl Process {
    /// The last lines the worker wrote to its standard error.
    fn stderr_tail(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// True once the worker process has ended (it is not reaped, so its process
    /// group id cannot be reused before [`Process::kill`]).
    fn ended(&self) -> bool {
        use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
        let pid = Pid::from_child(&self.child);
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG;
        matches!(waitid(WaitId::Pid(pid), options), Ok(Some(_)))
    }

    /// Kills the worker and everything it started (its process group), reaps
    /// it, and describes how it ended.
    fn kill(&mut self) -> String {
        if let Some(done) = &self.done {
            return done.clone();
        }
        // A worker that closed its pipe is usually exiting: give it a moment, so
        // that the log says "exited with status 3" rather than "killed".
        let until = Instant::now() + Duration::from_millis(50);
        while !self.ended() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        // The group may hold detectors' own subprocesses, even once the worker
        // has exited (the zombie keeps the group id from being reused).
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let done = match self.child.wait() {
            Ok(status) => describe_status(status),
            Err(e) => format!("stopped ({e})"),
        };
        self.done = Some(done.clone());
        done
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(sig) = status.signal() {
        format!("killed by signal {sig}")
    } else {
        status.to_string()
    }
}

/// The hello frame's body for a tracker: its classes (in schema order, with the
/// properties Roundup's classes have: type, link target, `do_journal`, `indexme`,
/// `quiet`, `required`), its roles, and the detector files to load.
pub fn hello(schema: &crate::schema::Schema, files: &[String]) -> J {
    use crate::schema::{ClassKind, PropType};
    let classes: Vec<J> = schema
        .classes
        .iter()
        .map(|c| {
            let props: Vec<J> = c
                .properties
                .iter()
                .map(|p| {
                    let (ty, to, do_journal, indexme) = match &p.kind {
                        PropType::String { indexme } => ("String", None, true, *indexme),
                        PropType::Password => ("Password", None, true, false),
                        PropType::Date => ("Date", None, true, false),
                        PropType::Interval => ("Interval", None, true, false),
                        PropType::Link { class, do_journal } => {
                            ("Link", Some(class), *do_journal, false)
                        }
                        PropType::Multilink { class, do_journal } => {
                            ("Multilink", Some(class), *do_journal, false)
                        }
                        PropType::Boolean => ("Boolean", None, true, false),
                        PropType::Number => ("Number", None, true, false),
                        PropType::Integer => ("Integer", None, true, false),
                    };
                    json!([p.name, {
                        "type": ty, "to": to, "do_journal": do_journal, "indexme": indexme,
                        "quiet": p.quiet, "required": p.required,
                    }])
                })
                .collect();
            json!({
                "name": c.name,
                "kind": match c.kind {
                    ClassKind::Class => "Class",
                    ClassKind::FileClass => "FileClass",
                    ClassKind::IssueClass => "IssueClass",
                },
                "key": c.key,
                "labelprop": c.labelprop,
                "orderprop": c.orderprop,
                "props": props,
            })
        })
        .collect();
    let roles: Vec<J> = schema
        .roles
        .iter()
        .map(|r| json!({"name": r.name, "description": r.description}))
        .collect();
    json!({ "schema": classes, "roles": roles, "files": files })
}

/// The interpreter for a tracker: `[xmlrpc_server] python`, else [`PYTHON_ENV`],
/// else [`DEFAULT_PYTHON`].
pub fn interpreter(configured: Option<&str>) -> String {
    configured
        .map(str::to_string)
        .or_else(|| std::env::var(PYTHON_ENV).ok().filter(|p| !p.is_empty()))
        .unwrap_or_else(|| DEFAULT_PYTHON.to_string())
}

/// Starts a worker and says hello: returns it with its registrations and a
/// description (Python and Roundup versions), or why it failed.
fn start(spawn: &Spawn) -> Result<(Process, Vec<Registration>, String), String> {
    let mut cmd = Command::new(&spawn.python);
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg(&spawn.home)
        .current_dir(&spawn.home)
        .env("PYTHONIOENCODING", "utf-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C does not reach it, and a
        // kill reaches whatever the detectors started.
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot run the Python interpreter {}: {e} (set [xmlrpc_server] python in \
             config.ini, or {PYTHON_ENV}, to a Python 3 that can import roundup)",
            spawn.python
        )
    })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the worker's pipes could not be set up".into());
    };
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    {
        let tail = stderr_tail.clone();
        let tracker = spawn.tracker.clone();
        std::thread::Builder::new()
            .name("detector-stderr".into())
            .spawn(move || log_stderr(stderr, &tracker, &tail))
            .map_err(|e| format!("cannot start a thread: {e}"))?;
    }
    let mut p = Process {
        child,
        stdin,
        stdout,
        reader: FrameReader::new(),
        stderr_tail,
        done: None,
    };
    frame::set_nonblocking(&p.stdin).map_err(|e| format!("worker pipe: {e}"))?;
    frame::set_nonblocking(&p.stdout).map_err(|e| format!("worker pipe: {e}"))?;
    let deadline = Instant::now() + START_TIMEOUT;
    let hello = json!(["hello", spawn.hello]);
    let reply = send_frame(&mut p, &hello, deadline).and_then(|()| recv_frame(&mut p, deadline));
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            let how = p.kill();
            let tail = p.stderr_tail();
            let why = match e {
                PipeError::TimedOut => format!("it did not start within {START_TIMEOUT:?}"),
                _ => format!("it {how}"),
            };
            return Err(if tail.is_empty() {
                format!(
                    "the Python detector worker ({}) failed: {why}",
                    spawn.python
                )
            } else {
                format!(
                    "the Python detector worker ({}) failed: {why}:\n{tail}",
                    spawn.python
                )
            });
        }
    };
    match reply.get(0).and_then(J::as_str) {
        Some("ok") => {}
        Some("fail") => {
            let text = reply.get(1).and_then(J::as_str).unwrap_or_default();
            return Err(if text.contains("No module named 'roundup'") {
                format!(
                    "{} cannot import roundup (install Roundup 2.x for it, or set \
                     [xmlrpc_server] python / {PYTHON_ENV} to an interpreter that has \
                     it):\n{text}",
                    spawn.python
                )
            } else {
                format!("loading the Python detectors failed:\n{text}")
            });
        }
        _ => return Err(format!("the worker answered hello with {reply}")),
    }
    let info = &reply[1];
    let regs = parse_registrations(&info["registrations"])?;
    let about = format!(
        "Python {}, Roundup {}",
        info["python"].as_str().unwrap_or("?"),
        info["roundup"].as_str().unwrap_or("?")
    );
    Ok((p, regs, about))
}

fn log_stderr(stderr: std::process::ChildStderr, tracker: &str, tail: &Mutex<VecDeque<String>>) {
    let mut lines = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        tracing::warn!(tracker = %tracker, output = %field(&line), "python detector output");
        let mut t = tail.lock().unwrap_or_else(PoisonError::into_inner);
        if t.len() == STDERR_TAIL {
            t.pop_front();
        }
        t.push_back(line);
    }
}

fn parse_registrations(v: &J) -> Result<Vec<Registration>, String> {
    let bad = || format!("the worker reported unusable registrations: {v}");
    let mut out = Vec::new();
    for r in v.as_array().ok_or_else(bad)? {
        let s = |i: usize| r.get(i).and_then(J::as_str).map(str::to_string);
        let kind = match s(2).as_deref() {
            Some("audit") => Kind::Audit,
            Some("react") => Kind::React,
            _ => return Err(bad()),
        };
        let event = match s(3).as_deref() {
            Some("create") => Event::Create,
            Some("set") => Event::Set,
            Some("retire") => Event::Retire,
            Some("restore") => Event::Restore,
            _ => return Err(bad()),
        };
        let name = s(5).ok_or_else(bad)?;
        let file = s(6).unwrap_or_default();
        let priority = r
            .get(4)
            .and_then(J::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                format!("{file}: detector '{name}' has a priority that is not a 32-bit integer")
            })?;
        out.push(Registration {
            handle: r
                .get(0)
                .and_then(J::as_u64)
                .and_then(|h| u32::try_from(h).ok())
                .ok_or_else(bad)?,
            class: s(1).ok_or_else(bad)?,
            kind,
            event,
            priority,
            name,
            file,
            line: r
                .get(7)
                .and_then(J::as_u64)
                .and_then(|l| u32::try_from(l).ok())
                .unwrap_or(0),
        });
    }
    Ok(out)
}

fn send_frame(p: &mut Process, msg: &J, deadline: Instant) -> Result<(), PipeError> {
    let data = serde_json::to_vec(msg).map_err(|e| PipeError::Io(std::io::Error::other(e)))?;
    frame::write_frame(&mut p.stdin, &data, deadline)
}

fn recv_frame(p: &mut Process, deadline: Instant) -> Result<J, PipeError> {
    let data = p.reader.read_frame(&mut p.stdout, deadline)?;
    serde_json::from_slice(&data).map_err(|e| {
        PipeError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a JSON frame: {e}"),
        ))
    })
}

/// Where the worker is between leases.
enum Slot {
    /// Idle and ready.
    Ready(Process),
    /// A replacement is starting in the background.
    Starting(mpsc::Receiver<Result<Process, String>>),
    /// Lent out (or being resolved by the lease holder).
    Lent,
}

struct State {
    busy: bool,
    slot: Slot,
}

/// A tracker's Python detector worker (see the module docs).
pub struct Runtime {
    spawn: Arc<Spawn>,
    registrations: Vec<Registration>,
    about: String,
    state: Mutex<State>,
    freed: Condvar,
    leases: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("tracker", &self.spawn.tracker)
            .field("python", &self.spawn.python)
            .finish()
    }
}

impl Runtime {
    /// Starts the worker (synchronously) and learns its registrations.
    pub fn start(spawn: Spawn) -> Result<Runtime, String> {
        let (process, registrations, about) = start(&spawn)?;
        Ok(Runtime {
            spawn: Arc::new(spawn),
            registrations,
            about,
            state: Mutex::new(State {
                busy: false,
                slot: Slot::Ready(process),
            }),
            freed: Condvar::new(),
            leases: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many times the worker was lent (once per run of Python detectors that
    /// is not nested in another; reads never borrow it).
    pub fn leases(&self) -> u64 {
        self.leases.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The registrations the detectors' `init(db)` made, in registration order.
    pub fn registrations(&self) -> &[Registration] {
        &self.registrations
    }

    /// "Python x.y, Roundup z" as the worker reported it.
    pub fn about(&self) -> &str {
        &self.about
    }

    /// The interpreter.
    pub fn python(&self) -> &str {
        &self.spawn.python
    }

    /// A replacement worker, starting in a thread of its own.
    fn restart(&self) -> Slot {
        let (tx, rx) = mpsc::channel();
        let spawn = self.spawn.clone();
        let expected = self.registrations.clone();
        let started = std::thread::Builder::new()
            .name("detector-start".into())
            .spawn(move || {
                let result = start(&spawn).and_then(|(p, regs, _)| {
                    if regs == expected {
                        Ok(p)
                    } else {
                        Err("the detectors registered differently when the worker \
                             was restarted (were the files changed?); restart the daemon"
                            .into())
                    }
                });
                if let Err(e) = &result {
                    tracing::error!(tracker = %spawn.tracker, error = %field(e), "python detector worker did not restart");
                }
                let _ = tx.send(result);
            });
        if let Err(e) = started {
            let (tx, rx) = mpsc::channel();
            let _ = tx.send(Err(format!("cannot start a thread: {e}")));
            return Slot::Starting(rx);
        }
        Slot::Starting(rx)
    }

    /// Borrows the worker until the lease is dropped, waiting (at most until
    /// `deadline`) for another transaction's lease or for a restart.
    pub fn lease(&self, deadline: Instant) -> Result<Lease<'_>, WorkerError> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.busy {
            let now = Instant::now();
            if now >= deadline {
                return Err(WorkerError::TimedOut(
                    "the Python detector worker stayed busy with another call until the \
                     deadline"
                        .into(),
                ));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st.busy = true;
        self.leases
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = std::mem::replace(&mut st.slot, Slot::Lent);
        drop(st);
        let mut lease = Lease {
            rt: self,
            process: None,
            pending: None,
        };
        match slot {
            Slot::Ready(p) => lease.process = Some(p),
            Slot::Starting(rx) => {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(Ok(p)) => lease.process = Some(p),
                    Ok(Err(e)) => {
                        // Dropping the lease starts another attempt for the next call.
                        return Err(WorkerError::Start(format!(
                            "the Python detector worker could not be restarted: {e}"
                        )));
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        lease.pending = Some(rx);
                        return Err(WorkerError::TimedOut(
                            "the Python detector worker was still restarting at the deadline"
                                .into(),
                        ));
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(WorkerError::Start(
                            "the Python detector worker could not be restarted".into(),
                        ))
                    }
                }
            }
            Slot::Lent => {
                return Err(WorkerError::Died(
                    "the Python detector worker is in an inconsistent state".into(),
                ))
            }
        }
        Ok(lease)
    }
}

/// The worker, borrowed for one transaction's detectors (see [`Runtime::lease`]).
/// Dropping it gives the worker back, or starts a replacement when it was lost.
pub struct Lease<'a> {
    rt: &'a Runtime,
    process: Option<Process>,
    /// A restart still running when the lease was refused, kept for the next one.
    pending: Option<mpsc::Receiver<Result<Process, String>>>,
}

impl std::fmt::Debug for Lease<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("alive", &self.process.is_some())
            .finish()
    }
}

impl Lease<'_> {
    /// True while the worker is usable (not killed during this lease).
    pub fn alive(&self) -> bool {
        self.process.is_some()
    }

    /// Stops the worker; `why` says why (logged with how it ended).
    pub fn kill(&mut self, why: &str) -> String {
        match self.process.take() {
            Some(mut p) => {
                let how = p.kill();
                tracing::error!(tracker = %self.rt.spawn.tracker, reason = %field(why), worker = %how, "python detector worker stopped; a new one is starting");
                how
            }
            None => "already stopped".into(),
        }
    }

    fn lost(&mut self, e: PipeError) -> WorkerError {
        match e {
            PipeError::TimedOut => {
                self.kill("deadline passed");
                WorkerError::TimedOut(
                    "the Python detectors ran past the call's deadline; the worker was \
                     stopped"
                        .into(),
                )
            }
            PipeError::Closed => {
                let how = self.kill("the worker closed its pipe");
                WorkerError::Died(format!("the Python detector worker {how}"))
            }
            other => {
                self.kill(&other.to_string());
                WorkerError::Died(format!("the Python detector worker failed: {other}"))
            }
        }
    }

    /// Sends one frame.
    pub fn send(&mut self, msg: &J, deadline: Instant) -> Result<(), WorkerError> {
        let Some(p) = self.process.as_mut() else {
            return Err(WorkerError::Died(
                "the Python detector worker was stopped".into(),
            ));
        };
        send_frame(p, msg, deadline).map_err(|e| self.lost(e))
    }

    /// Receives one frame.
    pub fn recv(&mut self, deadline: Instant) -> Result<J, WorkerError> {
        let Some(p) = self.process.as_mut() else {
            return Err(WorkerError::Died(
                "the Python detector worker was stopped".into(),
            ));
        };
        recv_frame(p, deadline).map_err(|e| self.lost(e))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let slot = match (self.process.take(), self.pending.take()) {
            (Some(p), _) => Slot::Ready(p),
            (None, Some(rx)) => Slot::Starting(rx),
            (None, None) => self.rt.restart(),
        };
        let mut st = self.rt.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.slot = slot;
        st.busy = false;
        drop(st);
        self.rt.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spawn(python: &str) -> Spawn {
        Spawn {
            tracker: "t".into(),
            python: python.into(),
            home: std::env::temp_dir(),
            hello: json!({"schema": [], "roles": [], "files": []}),
        }
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let e = Runtime::start(spawn("/nonexistent/python3")).expect_err("no such file");
        assert!(
            e.starts_with("cannot run the Python interpreter /nonexistent/python3: ")
                && e.contains("[xmlrpc_server] python"),
            "{e}"
        );
    }

    #[test]
    fn an_interpreter_that_exits_at_once_is_reported_with_its_status() {
        let e = Runtime::start(spawn("false")).expect_err("exits");
        assert_eq!(
            e,
            "the Python detector worker (false) failed: it exited with status 1"
        );
    }

    #[test]
    fn registrations_must_be_well_formed() {
        let ok = json!([[0, "issue", "audit", "create", 100, "f", "detectors/a.py", 3]]);
        let regs = parse_registrations(&ok).expect("parses");
        assert_eq!(
            regs,
            [Registration {
                handle: 0,
                class: "issue".into(),
                kind: Kind::Audit,
                event: Event::Create,
                priority: 100,
                name: "f".into(),
                file: "detectors/a.py".into(),
                line: 3,
            }]
        );
        let big = json!([[
            0,
            "issue",
            "audit",
            "create",
            1u64 << 40,
            "f",
            "detectors/a.py",
            3
        ]]);
        assert_eq!(
            parse_registrations(&big).expect_err("priority"),
            "detectors/a.py: detector 'f' has a priority that is not a 32-bit integer"
        );
        let bad = json!([[0, "issue", "audit", "destroy", 100, "f", "x", 1]]);
        assert!(parse_registrations(&bad).is_err());
    }

    #[test]
    fn the_configured_interpreter_wins() {
        assert_eq!(
            interpreter(Some("/opt/py/bin/python3")),
            "/opt/py/bin/python3"
        );
    }

    #[test]
    fn hello_describes_the_schema_as_roundups_classes() {
        let schema = crate::schema::parse_schema(
            "[class.user]\nkey = \"username\"\n\
             properties = { username = \"String\", password = \"Password\", roles = \"String\" }\n\
             [class.doc]\nkind = \"FileClass\"\n\
             properties = { owner = { type = \"Link\", to = \"user\", do_journal = false } }\n",
            "schema.toml",
        )
        .expect("schema");
        let h = hello(&schema, &["detectors/a.py".into()]);
        assert_eq!(h["files"], json!(["detectors/a.py"]));
        let doc = &h["schema"][1];
        assert_eq!(
            (doc["name"].as_str(), doc["kind"].as_str()),
            (Some("doc"), Some("FileClass"))
        );
        let owner = doc["props"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p[0] == "owner"))
            .expect("owner");
        assert_eq!(owner[1]["type"], "Link");
        assert_eq!(owner[1]["to"], "user");
        assert_eq!(owner[1]["do_journal"], false);
        assert_eq!(h["schema"][0]["key"], "username");
    }
}
