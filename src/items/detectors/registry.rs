//! The detector registry: every auditor and reactor of a tracker, per (class, kind,
//! event), in Roundup's firing order.
//!
//! Roundup's `hyperdb.Class.audit(event, fn, priority=100)` / `react(...)` append
//! `(priority, fn.__name__, fn)` to a list that is sorted **stably on (priority,
//! name)** before it fires, so registrations with equal priority and name keep
//! their registration order. [`Registry`] keeps the same order: entries are sorted
//! by `(priority, name, seq)`, where `seq` is the order of [`Registry::add`] calls.
//!
//! Two kinds of implementation share one list, so that they interleave exactly as
//! Roundup would interleave the Python functions they stand for:
//!
//! * [`Impl::Builtin`]: a Rust port of a detector shipped with Roundup's templates
//!   ([`Builtin`]), registered from schema.toml's `[detectors]` by
//!   [`Registry::builtin`];
//! * [`Impl::External`]: a detector run by something else (the Python detector
//!   runtime), identified by an opaque `handle` and fired through the
//!   [`External`] trait. A run of consecutive entries of the same runtime is fired
//!   with **one** call carrying all their handles (Roundup passes one `newvalues`
//!   dict along the chain; one round trip instead of several).
//!
//! Registries are built once per tracker and attached to it ([`Registry::of`],
//! [`Registry::install`]); the item layer fires them for `create`, `set`, `retire`
//! and `restore` ([`super::audit`], [`super::react`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::Result;
use crate::items::{Changes, Ctx};
use crate::schema::{BuiltinDetector, ClassDef, Schema};
use crate::store::{Id, Item};
use crate::tracker::Tracker;

pub use crate::schema::detectors::{Event, Kind};

/// One Rust built-in detector function, named after the Python function it ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// statusauditor `presetunread` (audit create).
    PresetUnread,
    /// statusauditor `chatty` (audit set).
    Chatty,
    /// nosyreaction `updatenosy` (audit create, set).
    UpdateNosy,
    /// nosyreaction `nosyreaction` (react create, set).
    NosyReaction,
    /// messagesummary `summarygenerator` (audit create).
    SummaryGenerator,
    /// userauditor `audit_user_fields` (audit create, set).
    AuditUserFields,
    /// no_texthtml `audit_html_files` (audit create, set).
    AuditHtmlFiles,
    /// devel statusauditor `preset_new` (audit create).
    PresetNew,
    /// severityauditor `init_severity` (audit create).
    InitSeverity,
    /// patches `patches_text_plain` (audit create).
    PatchesTextPlain,
    /// patches `patches_keyword` (audit create, set).
    PatchesKeyword,
}

impl Builtin {
    /// The Python function's name: what the firing order sorts on.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::PresetUnread => "presetunread",
            Builtin::Chatty => "chatty",
            Builtin::UpdateNosy => "updatenosy",
            Builtin::NosyReaction => "nosyreaction",
            Builtin::SummaryGenerator => "summarygenerator",
            Builtin::AuditUserFields => "audit_user_fields",
            Builtin::AuditHtmlFiles => "audit_html_files",
            Builtin::PresetNew => "preset_new",
            Builtin::InitSeverity => "init_severity",
            Builtin::PatchesTextPlain => "patches_text_plain",
            Builtin::PatchesKeyword => "patches_keyword",
        }
    }

    /// What switching `detector` on for a class registers there, in the order
    /// Roundup's `init` registers it (all at priority 100).
    pub fn registrations(detector: BuiltinDetector) -> &'static [(Kind, Event, Builtin)] {
        use Builtin::*;
        use Event::*;
        use Kind::*;
        match detector {
            BuiltinDetector::StatusAuditor => {
                &[(Audit, Set, Chatty), (Audit, Create, PresetUnread)]
            }
            BuiltinDetector::NosyReaction => &[
                (React, Create, NosyReaction),
                (React, Set, NosyReaction),
                (Audit, Create, UpdateNosy),
                (Audit, Set, UpdateNosy),
            ],
            BuiltinDetector::MessageSummary => &[(Audit, Create, SummaryGenerator)],
            BuiltinDetector::UserAuditor => &[
                (Audit, Set, AuditUserFields),
                (Audit, Create, AuditUserFields),
            ],
            BuiltinDetector::NoTextHtml => &[
                (Audit, Set, AuditHtmlFiles),
                (Audit, Create, AuditHtmlFiles),
            ],
            BuiltinDetector::PresetNew => &[(Audit, Create, PresetNew)],
            BuiltinDetector::InitSeverity => &[(Audit, Create, InitSeverity)],
            BuiltinDetector::PatchesTextPlain => &[(Audit, Create, PatchesTextPlain)],
            BuiltinDetector::PatchesKeyword => &[
                (Audit, Create, PatchesKeyword),
                (Audit, Set, PatchesKeyword),
            ],
        }
    }
}

/// Detectors run outside the Rust built-ins (the Python detector runtime). The
/// registry calls it with the handles of a run of consecutive registrations, in
/// firing order; it runs them one after the other inside the call's transaction
/// (`ctx`), and may read and write through `ctx` (nested writes fire detectors
/// again, re-entrantly).
pub trait External: Send + Sync {
    /// Runs the auditors `handles` for `event` on `class` (`id` None on create).
    /// `changes` is the values being written (create, set), which they may
    /// change; None for retire and restore (Roundup passes `newvalues=None`).
    fn audit(
        &self,
        ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Option<Id>,
        handles: &[u64],
        changes: Option<&mut Changes>,
    ) -> Result<()>;

    /// Runs the reactors `handles` for `event` on `class<id>`; `old` is the item
    /// before a `set` (None for create, retire, restore).
    fn react(
        &self,
        ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Id,
        old: Option<&Item>,
        handles: &[u64],
    ) -> Result<()>;
}

/// What runs when a registration fires.
#[derive(Clone)]
pub enum Impl {
    /// A Rust built-in (a built-in registered as the wrong kind does nothing).
    Builtin(Builtin),
    /// A detector of an external runtime, identified by `handle`.
    External {
        /// The runtime that runs it.
        runtime: Arc<dyn External>,
        /// Its handle there.
        handle: u64,
    },
}

impl std::fmt::Debug for Impl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Impl::Builtin(b) => write!(f, "Builtin({b:?})"),
            Impl::External { handle, .. } => write!(f, "External({handle})"),
        }
    }
}

/// One registered auditor or reactor.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The class it is registered on.
    pub class: String,
    /// Auditor or reactor.
    pub kind: Kind,
    /// The event.
    pub event: Event,
    /// Roundup's priority (default 100; lower fires first).
    pub priority: i32,
    /// The function name (ties of priority fire in name order).
    pub name: String,
    /// Registration order (ties of priority and name fire in this order).
    pub seq: u64,
    /// What runs.
    pub imp: Impl,
}

/// Every auditor and reactor of one tracker; see the module documentation.
#[derive(Debug, Default)]
pub struct Registry {
    /// Per class: one sorted list per (kind, event), indexed by `slot()`.
    by_class: HashMap<String, [Vec<Registration>; 8]>,
    next_seq: u64,
}

fn slot(kind: Kind, event: Event) -> usize {
    (kind as usize) * 4 + event.index()
}

fn same_runtime(a: &Arc<dyn External>, b: &Arc<dyn External>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The built-in detectors `schema.toml`'s `[detectors]` switches on, each
    /// registered on its classes (in the order the section lists detectors and
    /// classes).
    pub fn builtin(schema: &Schema) -> Registry {
        let mut r = Registry::new();
        for u in &schema.detectors.builtins {
            for class in &u.classes {
                for (kind, event, b) in Builtin::registrations(u.detector) {
                    r.add(class, *kind, *event, 100, b.name(), Impl::Builtin(*b));
                }
            }
        }
        r
    }

    /// Registers `imp` as `name` for `kind`/`event` on `class` with `priority`
    /// (Roundup's `db.<class>.audit(event, fn, priority)`); returns its `seq`.
    pub fn add(
        &mut self,
        class: &str,
        kind: Kind,
        event: Event,
        priority: i32,
        name: &str,
        imp: Impl,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let list = &mut self.by_class.entry(class.to_string()).or_default()[slot(kind, event)];
        list.push(Registration {
            class: class.to_string(),
            kind,
            event,
            priority,
            name: name.to_string(),
            seq,
            imp,
        });
        list.sort_by(|a, b| (a.priority, &a.name, a.seq).cmp(&(b.priority, &b.name, b.seq)));
        seq
    }

    /// The registrations that fire for `kind`/`event` on `class`, in firing order.
    pub fn registrations(&self, class: &str, kind: Kind, event: Event) -> &[Registration] {
        self.by_class
            .get(class)
            .map_or(&[], |s| s[slot(kind, event)].as_slice())
    }

    /// Every registration (grouped by class, kind and event; in firing order
    /// within each group).
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.by_class.values().flat_map(|s| s.iter().flatten())
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The registry of `tracker`: the one [`Registry::install`]ed, else (on first
    /// use) the built-ins of its schema and the registrations of its Python
    /// detectors (after the built-ins: ties of priority and name fire built-ins
    /// first).
    pub fn of(tracker: &Tracker) -> &Registry {
        let any = tracker.detectors.get_or_init(|| {
            let mut r = Registry::builtin(&tracker.schema);
            if let Some(runtime) = &tracker.python {
                super::python::register(&mut r, runtime);
            }
            Box::new(r)
        });
        match any.downcast_ref::<Registry>() {
            Some(r) => r,
            // Only this module fills the slot, always with a Registry.
            None => unreachable!("Tracker::detectors holds something other than a Registry"),
        }
    }

    /// Makes `self` the registry of `tracker` (before it serves its first write);
    /// gives it back if the tracker has one already.
    pub fn install(self, tracker: &Tracker) -> std::result::Result<(), Registry> {
        tracker
            .detectors
            .set(Box::new(self))
            .map_err(|b| match b.downcast::<Registry>() {
                Ok(r) => *r,
                Err(_) => unreachable!("a Registry was boxed"),
            })
    }

    /// Fires the auditors for `event` on `class` (`id` None on create; `changes`
    /// None on retire and restore), in order; the first error stops the chain.
    pub fn audit(
        &self,
        ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Option<Id>,
        mut changes: Option<&mut Changes>,
    ) -> Result<()> {
        let list = self.registrations(&class.name, Kind::Audit, event);
        let mut i = 0;
        while i < list.len() {
            match &list[i].imp {
                Impl::Builtin(b) => {
                    if let Some(ch) = changes.as_deref_mut() {
                        super::run_audit(*b, ctx, class, id, ch)?;
                    }
                    i += 1;
                }
                Impl::External { runtime, .. } => {
                    let (handles, next) = external_run(list, i, runtime);
                    runtime.audit(ctx, class, event, id, &handles, changes.as_deref_mut())?;
                    i = next;
                }
            }
        }
        Ok(())
    }

    /// Fires the reactors for `event` on `class<id>` (`old`: the item before a
    /// `set`), in order; the first error stops the chain.
    pub fn react(
        &self,
        ctx: &mut Ctx<'_>,
        class: &ClassDef,
        event: Event,
        id: Id,
        old: Option<&Item>,
    ) -> Result<()> {
        let list = self.registrations(&class.name, Kind::React, event);
        let mut i = 0;
        while i < list.len() {
            match &list[i].imp {
                Impl::Builtin(b) => {
                    super::run_react(*b, ctx, class, id, old)?;
                    i += 1;
                }
                Impl::External { runtime, .. } => {
                    let (handles, next) = external_run(list, i, runtime);
                    runtime.react(ctx, class, event, id, old, &handles)?;
                    i = next;
                }
            }
        }
        Ok(())
    }
}

/// The handles of the run of `runtime`'s entries starting at `start`, and the
/// index after it.
fn external_run(
    list: &[Registration],
    start: usize,
    runtime: &Arc<dyn External>,
) -> (Vec<u64>, usize) {
    let mut handles = Vec::new();
    let mut i = start;
    while let Some(Registration {
        imp: Impl::External { runtime: r, handle },
        ..
    }) = list.get(i)
    {
        if !same_runtime(r, runtime) {
            break;
        }
        handles.push(*handle);
        i += 1;
    }
    (handles, i)
}
