//! The tracker's own Python detectors, fired inside the call's transaction.
//!
//! The detectors run in the tracker's worker process ([`crate::pyworker`]). A run
//! of consecutive Python auditors goes in one `fire` frame carrying the newvalues
//! (Roundup passes one dict from auditor to auditor); the worker answers with the
//! dict as the auditors left it, already checked as Roundup's
//! `create_inner`/`set_inner` check values. While a detector runs, every database
//! call it makes (`db.issue.get`, `cl.set`, `db.security.hasPermission`, mail) is
//! a `call` frame answered here, on this call's [`Ctx`], by the API layer's
//! [`Service`]; a write fires nested detectors, Python ones over the same pipe.
//!
//! Errors keep their identity across the boundary: an exception a detector raises
//! becomes [`Error::Python`] (its class and text as Roundup's fault shows them),
//! and if it travels back into Python through a nested call it is raised there as
//! the same object; a Rust error handed to Python comes back as itself when Python
//! lets it through. Failures of the daemon itself (storage, deadline) stay fatal
//! even if a detector catches them. A worker that dies or hangs fails the call
//! (and is replaced).

use super::registry::{Event, External, Impl, Registry};
use crate::error::{Error, Result};
use crate::items::{Changes, Ctx};
use crate::pyworker::value::{self, Style};
use crate::pyworker::{Lease, Runtime, WorkerError};
use crate::schema::{ClassDef, ClassKind};
use crate::store::{Id, Item};
use serde_json::{json, Value as J};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers one database call of a Python detector (`method`, `args`) inside the
/// call's transaction. The API layer provides it (`api::pydb::serve`), so that
/// the item layer does not depend on the layer above it.
pub type Service = fn(&mut Ctx<'_>, &str, &[J]) -> Result<J>;

/// The fault class of failures of the detector worker itself.
const WORKER_FAULT: &str = "<class 'roundup.roundupdb.DetectorError'>";

/// Python detector state of one API call (one transaction): the borrowed worker
/// while detectors run, and the tables that keep errors' identity.
#[derive(Default)]
pub struct CallState<'a> {
    /// The API call's deadline, if any: detectors must finish before it.
    pub deadline: Option<Instant>,
    /// How the worker's database calls are answered (None: they fail).
    pub service: Option<Service>,
    lease: Option<Lease<'a>>,
    depth: u32,
    session: u64,
    limit: Option<Instant>,
    rust_errors: Vec<Option<Error>>,
    fatal: Option<Error>,
}

impl std::fmt::Debug for CallState<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallState")
            .field("deadline", &self.deadline)
            .field("depth", &self.depth)
            .field("session", &self.session)
            .finish()
    }
}

/// The Python runtime as the registry fires it (the worker is the tracker's).
#[derive(Debug, Clone, Copy)]
pub struct PythonDetectors;

impl External for PythonDetectors {
    fn audit(
        &self,
        ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Option<Id>,
        handles: &[u64],
        changes: Option<&mut Changes>,
    ) -> Result<()> {
        audit(ctx, class, event.name(), id, handles, changes)
    }

    fn react(
        &self,
        ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Id,
        old: Option<&Item>,
        handles: &[u64],
    ) -> Result<()> {
        react(ctx, class, event.name(), id, handles, old)
    }
}

/// Adds the registrations the worker reported (its detectors' `init(db)`) to
/// `registry`, in registration order; the registry sorts them among the
/// built-ins by (priority, name), as Roundup does.
pub fn register(registry: &mut Registry, runtime: &Runtime) {
    let imp: Arc<dyn External> = Arc::new(PythonDetectors);
    for r in runtime.registrations() {
        registry.add(
            &r.class,
            r.kind,
            r.event,
            r.priority,
            &r.name,
            Impl::External {
                runtime: imp.clone(),
                handle: u64::from(r.handle),
            },
        );
    }
}

/// Session ids: each API call is a new session for the worker (its caches go).
static SESSIONS: AtomicU64 = AtomicU64::new(1);

/// Runs the Python auditors `handles` (consecutive in firing order) for `event`
/// on `class` (`id` None on create); `changes` (None on retire/restore) is
/// replaced by what they left.
pub fn audit(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    event: &str,
    id: Option<Id>,
    handles: &[u64],
    changes: Option<&mut Changes>,
) -> Result<()> {
    let values = changes.as_deref().map(newvalues);
    let reply = fire(ctx, class, event, id, handles, values)?;
    if let Some(changes) = changes {
        *changes = decode_changes(class, &reply)?;
    }
    Ok(())
}

/// Runs the Python reactors `handles` for `event` on `class<id>`; `old` is the
/// item before a `set`.
pub fn react(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    event: &str,
    id: Id,
    handles: &[u64],
    old: Option<&Item>,
) -> Result<()> {
    let values = old.map(|o| oldvalues(class, o));
    fire(ctx, class, event, Some(id), handles, values).map(|_| ())
}

/// newvalues as Roundup's auditors get them: the properties in argument order,
/// FileClass `content` as `str` (or `bytes` when it is not UTF-8).
pub fn newvalues(changes: &Changes) -> J {
    let mut pairs: Vec<J> = changes
        .props
        .iter()
        .map(|(k, v)| json!([k, value::encode(v.as_ref(), Style::NewValues)]))
        .collect();
    if let Some(c) = &changes.content {
        pairs.push(json!(["content", value::encode_content(c)]));
    }
    J::Array(pairs)
}

/// oldvalues as Roundup's `set` reactors get them: every property of the item
/// before the change (the automatic ones too) as Roundup's SQLite backend reads
/// them; a FileClass item has `content` None.
pub fn oldvalues(class: &ClassDef, old: &Item) -> J {
    let mut pairs: Vec<J> = old
        .values
        .iter()
        .map(|(k, v)| json!([k, value::encode(v.as_ref(), Style::Stored)]))
        .collect();
    for p in &class.properties {
        if !old.values.contains_key(&p.name) {
            let none = match p.kind.is_multilink() {
                true => json!([]),
                false => J::Null,
            };
            pairs.push(json!([p.name, none]));
        }
    }
    if class.kind == ClassKind::FileClass && !old.values.contains_key("content") {
        pairs.push(json!(["content", null]));
    }
    J::Array(pairs)
}

/// The changes a run of auditors left (`[[name, value], ...]`, checked by the worker).
pub fn decode_changes(class: &ClassDef, reply: &J) -> Result<Changes> {
    let mut out = Changes::default();
    let pairs = reply
        .as_array()
        .ok_or_else(|| protocol(format!("auditors answered {reply}")))?;
    for pair in pairs {
        let (Some(name), Some(v)) = (pair.get(0).and_then(J::as_str), pair.get(1)) else {
            return Err(protocol(format!("auditors answered {reply}")));
        };
        if class.kind == ClassKind::FileClass && name == "content" {
            out.content = match v {
                J::Null => None,
                v => Some(value::decode_content(v)?),
            };
            continue;
        }
        let prop = class
            .prop(name)
            .ok_or_else(|| Error::KeyError(name.to_string()))?;
        out.props.insert(name, value::decode(name, &prop.kind, v)?);
    }
    Ok(out)
}

/// A broken frame from the worker: a failure of the worker, not of a detector.
fn protocol(what: String) -> Error {
    Error::Python {
        class: WORKER_FAULT.into(),
        message: format!("the Python detector worker broke the protocol ({what})"),
        usage: false,
        token: None,
    }
}

fn worker_error(e: WorkerError) -> Error {
    Error::Python {
        class: WORKER_FAULT.into(),
        message: format!("{e}; the call was rolled back"),
        usage: false,
        token: None,
    }
}

/// Fires `handles` and returns the worker's answer (the newvalues pairs for
/// auditors, null for reactors).
fn fire(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    event: &str,
    id: Option<Id>,
    handles: &[u64],
    values: Option<J>,
) -> Result<J> {
    let tracker = ctx.tracker;
    let Some(runtime) = tracker.python.as_deref() else {
        return Err(worker_error(WorkerError::Start(
            "this tracker has no Python detector worker".into(),
        )));
    };
    let outermost = ctx.python.depth == 0;
    if outermost {
        if ctx.python.session == 0 {
            ctx.python.session = SESSIONS.fetch_add(1, Ordering::Relaxed);
        }
        // Each run of Python detectors (with everything nested in it) has
        // `detector_timeout_sec`, within the call's own deadline.
        let own =
            Instant::now() + Duration::from_secs(tracker.settings.server.detector_timeout_sec);
        let limit = ctx.python.deadline.map_or(own, |d| d.min(own));
        ctx.python.limit = Some(limit);
        let lease = runtime.lease(limit).map_err(|e| {
            let e = worker_error(e);
            ctx.python.fatal.get_or_insert_with(|| e.clone());
            e
        })?;
        ctx.python.lease = Some(lease);
    }
    let frame = json!([
        "fire",
        handles,
        event,
        class.name,
        id.map(value::id_text),
        values,
        [
            ctx.python.session,
            value::id_text(ctx.user.id),
            ctx.user.username
        ],
    ]);
    ctx.python.depth += 1;
    let result = exchange(ctx, frame);
    ctx.python.depth -= 1;
    if outermost {
        // Gives the worker back (or has it replaced when it was lost).
        ctx.python.lease = None;
        if let Some(fatal) = ctx.python.fatal.take() {
            return Err(fatal);
        }
    }
    result
}

fn limit(ctx: &Ctx<'_>) -> Instant {
    ctx.python.limit.unwrap_or_else(Instant::now)
}

fn send(ctx: &mut Ctx<'_>, msg: &J) -> Result<()> {
    let at = limit(ctx);
    let lease = ctx.python.lease.as_mut().ok_or_else(|| {
        worker_error(WorkerError::Died(
            "the Python detector worker was stopped".into(),
        ))
    })?;
    lease.send(msg, at).map_err(|e| fatal(ctx, worker_error(e)))
}

fn recv(ctx: &mut Ctx<'_>) -> Result<J> {
    let at = limit(ctx);
    let lease = ctx.python.lease.as_mut().ok_or_else(|| {
        worker_error(WorkerError::Died(
            "the Python detector worker was stopped".into(),
        ))
    })?;
    lease.recv(at).map_err(|e| fatal(ctx, worker_error(e)))
}

/// Records `e` as the call's fatal error (the first one wins) and returns it.
fn fatal(ctx: &mut Ctx<'_>, e: Error) -> Error {
    ctx.python.fatal.get_or_insert_with(|| e.clone());
    e
}

fn alive(ctx: &Ctx<'_>) -> bool {
    ctx.python.lease.as_ref().is_some_and(Lease::alive)
}

/// Sends `frame` and serves the worker's calls until it answers.
fn exchange(ctx: &mut Ctx<'_>, frame: J) -> Result<J> {
    send(ctx, &frame)?;
    loop {
        let mut msg = recv(ctx)?;
        let tag = msg
            .get(0)
            .and_then(J::as_str)
            .unwrap_or_default()
            .to_string();
        match tag.as_str() {
            "ok" => return Ok(msg.get_mut(1).map(J::take).unwrap_or(J::Null)),
            "err" => return Err(raised(ctx, msg.get(1).unwrap_or(&J::Null))),
            "call" => {
                let args = msg.as_array().map(|a| a.as_slice()).unwrap_or_default();
                let method = args
                    .get(1)
                    .and_then(J::as_str)
                    .unwrap_or_default()
                    .to_string();
                let args = args.get(2..).unwrap_or_default().to_vec();
                let result = match ctx.python.service {
                    Some(serve) => serve(ctx, &method, &args),
                    None => Err(Error::Exception(format!(
                        "db.{method}: the database is not available here"
                    ))),
                };
                if !alive(ctx) {
                    // The worker died in a nested fire: nothing to answer.
                    return Err(match result {
                        Err(e) => e,
                        Ok(_) => worker_error(WorkerError::Died(
                            "the Python detector worker was stopped".into(),
                        )),
                    });
                }
                let reply = match result {
                    Ok(v) => json!(["r", v]),
                    Err(e) => json!(["e", error_payload(ctx, e)]),
                };
                send(ctx, &reply)?;
            }
            _ => {
                let e = protocol(format!("unexpected frame {msg}"));
                if let Some(l) = ctx.python.lease.as_mut() {
                    l.kill("protocol error");
                }
                return Err(fatal(ctx, e));
            }
        }
    }
}

/// The error a detector raised (an `err` frame).
fn raised(ctx: &mut Ctx<'_>, payload: &J) -> Error {
    if let Some(t) = payload.get("token").and_then(J::as_u64) {
        let slot = usize::try_from(t)
            .ok()
            .and_then(|i| ctx.python.rust_errors.get_mut(i));
        if let Some(e) = slot.and_then(Option::take) {
            return e;
        }
    }
    let class = payload
        .get("type")
        .and_then(J::as_str)
        .unwrap_or("<class 'Exception'>")
        .to_string();
    let message = payload
        .get("msg")
        .and_then(J::as_str)
        .unwrap_or_default()
        .to_string();
    let tb = payload.get("tb").and_then(J::as_str).unwrap_or_default();
    let tracker = &ctx.tracker.name;
    if class.contains("roundup.cgi.exceptions.DetectorError") {
        // The fault shows the subject only; the traceback (with paths) is logged.
        tracing::warn!(tracker = %tracker, traceback = %crate::log::field(tb), "python detector failed");
    } else {
        tracing::debug!(tracker = %tracker, traceback = %crate::log::field(tb), "python detector raised");
    }
    Error::Python {
        class,
        message,
        usage: payload.get("usage").and_then(J::as_bool).unwrap_or(false),
        token: payload.get("pytoken").and_then(J::as_u64),
    }
}

/// How a Rust error is handed to Python: the exception class a detector can
/// catch (Roundup's), its text, and a token that brings the error back as
/// itself if Python lets it through. Failures of the daemon are also recorded
/// as fatal: the call fails even if a detector swallows them.
fn error_payload(ctx: &mut Ctx<'_>, e: Error) -> J {
    if let Error::Python { token: Some(t), .. } = &e {
        return json!({ "pytoken": t });
    }
    let (class, msg) = match &e {
        Error::KeyError(m) => ("KeyError", m.clone()),
        Error::IndexError(m) => ("IndexError", m.clone()),
        Error::TypeError(m) => ("TypeError", m.clone()),
        Error::ValueError(m) => ("ValueError", m.clone()),
        Error::AttributeError(m) => ("AttributeError", m.clone()),
        Error::OverflowError(m) => ("OverflowError", m.clone()),
        Error::Exception(m) => ("Exception", m.clone()),
        Error::UsageError(m) => ("roundup.exceptions.UsageError", m.clone()),
        Error::Unauthorised(m) => ("roundup.exceptions.Unauthorised", m.clone()),
        Error::Reject(m) => ("roundup.exceptions.Reject", m.clone()),
        Error::DesignatorError(m) => ("roundup.hyperdb.DesignatorError", m.clone()),
        Error::Python { message, .. } => ("RuntimeError", message.clone()),
        other => {
            ctx.python.fatal.get_or_insert_with(|| other.clone());
            (
                "RuntimeError",
                "the database failed; the call will be rolled back".into(),
            )
        }
    };
    let token = ctx.python.rust_errors.len();
    ctx.python.rust_errors.push(Some(e));
    json!({ "class": class, "msg": msg, "token": token })
}
