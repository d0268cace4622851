//! Detectors: Roundup's auditors and reactors, fired by the item layer for
//! `create`, `set`, `retire` and `restore` from a per-tracker [`Registry`].
//!
//! Auditors run before a change is written and may modify or refuse it; reactors
//! run after it is written, inside the same transaction (their writes, and the
//! detectors those fire, are part of the call, and roll back with it).
//!
//! # Built-in detectors
//!
//! Rust ports of the detectors Roundup 2.6 ships in its templates. schema.toml's
//! `[detectors]` switches each on for a list of classes
//! ([`crate::schema::Detectors`]); on each class it registers the functions Roundup's
//! module registers there, at priority 100:
//!
//! | `[detectors]` key | registrations per class | what it does |
//! |---|---|---|
//! | `statusauditor` | audit create `presetunread`, audit set `chatty` | [`statusauditor`]: new items start `unread`; a new message moves unread/resolved/done-cbb to `chatting` |
//! | `nosyreaction` | audit create/set `updatenosy`, react create/set `nosyreaction` | [`nosyreaction`]: nosy list follows assignees and authors; new messages mailed to it |
//! | `messagesummary` | audit create `summarygenerator` | [`messagesummary`]: a message's `summary` from its content |
//! | `userauditor` | audit create/set `audit_user_fields` | [`userauditor`]: usernames, addresses, roles, time zones validated |
//! | `no_texthtml` | audit create/set `audit_html_files` | [`no_texthtml`]: `text/html` uploads are stored as `text/plain` |
//! | `preset_new` | audit create `preset_new` | [`statusauditor::preset_new`]: status `new` when none is given |
//! | `init_severity` | audit create `init_severity` | [`severityauditor`]: severity `normal` when none is given |
//! | `patches_text_plain` | audit create `patches_text_plain` | [`patches`]: `.diff`/`.patch`/`.py` files typed `text/plain` |
//! | `patches_keyword` | audit create/set `patches_keyword` | [`patches`]: a new `.diff`/`.patch` file adds keyword `patch` |
//!
//! # The registry (the interface for other detector runtimes)
//!
//! [`Registry`] holds `(class, Kind, Event, priority, name, seq, Impl)` entries and
//! fires those of one (class, kind, event) sorted stably on (priority, name), as
//! Roundup's `PrioList` does (ties: registration order, `seq`).
//!
//! * [`Registry::builtin`]`(&schema)` builds the built-in registrations;
//!   [`Registry::add`]`(class, kind, event, priority, name, impl)` appends one more
//!   (Roundup's `db.<class>.audit(event, fn, priority)`) and returns its `seq`.
//! * [`Impl::External`]` { runtime: Arc<dyn External>, handle }` is a detector run
//!   by another runtime (the Python one): the registry calls
//!   [`External::audit`]`(ctx, class, event, id, handles, changes)` /
//!   [`External::react`]`(ctx, class, event, id, old, handles)` with the handles of a
//!   run of consecutive entries of that runtime (one call per run). `changes` is
//!   None for retire/restore; `old` is the item before a set. Errors propagate as
//!   the call's fault; the call's transaction is rolled back.
//! * [`Registry::install`]`(registry, &tracker)` attaches a registry to a tracker
//!   before it serves (it fails if the tracker already has one);
//!   [`Registry::of`]`(&tracker)` is the tracker's registry (the built-ins of its
//!   schema when nothing was installed). A runtime that knows its registrations only
//!   at start-up builds `Registry::builtin(&tracker.schema)`, adds its own and
//!   installs the result.
//!
//! The item layer calls [`audit`] and [`react`]: create (auditors, then the insert
//! and journal, then reactors), set (auditors, write, reactors with the old item —
//! also when nothing changed, as Roundup), retire (auditors, flag, journal,
//! reactors) and restore (key-clash check, auditors, flag, journal, reactors).

pub mod messagesummary;
pub mod no_texthtml;
pub mod nosyreaction;
pub mod patches;
pub mod python;
pub mod registry;
pub mod severityauditor;
pub mod statusauditor;
pub mod userauditor;

pub use registry::{Builtin, Event, External, Impl, Kind, Registration, Registry};

use crate::error::{Error, Result};
use crate::items::{Changes, Ctx};
use crate::schema::ClassDef;
use crate::store::{Id, Item};

/// Fires the tracker's auditors for `event` on `class` (see [`Registry::audit`]).
pub fn audit(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    event: Event,
    id: Option<Id>,
    changes: Option<&mut Changes>,
) -> Result<()> {
    let tracker = ctx.tracker;
    Registry::of(tracker).audit(ctx, class, event, id, changes)
}

/// Fires the tracker's reactors for `event` on `class<id>` (see [`Registry::react`]).
pub fn react(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    event: Event,
    id: Id,
    old: Option<&Item>,
) -> Result<()> {
    let tracker = ctx.tracker;
    Registry::of(tracker).react(ctx, class, event, id, old)
}

/// Runs one built-in auditor (a reactor does nothing here).
fn run_audit(
    b: Builtin,
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id: Option<Id>,
    changes: &mut Changes,
) -> Result<()> {
    match b {
        Builtin::PresetUnread => statusauditor::presetunread(ctx, changes),
        Builtin::Chatty => match id {
            Some(id) => {
                let two = ctx.tracker.schema.detectors.chatting_requires_two_users;
                statusauditor::chatty(ctx, class, id, changes, two)
            }
            None => Ok(()),
        },
        Builtin::UpdateNosy => nosyreaction::updatenosy(ctx, class, id, changes),
        Builtin::SummaryGenerator => {
            messagesummary::summarygenerator(&ctx.tracker.settings.mailgw, changes);
            Ok(())
        }
        Builtin::AuditUserFields => userauditor::audit_user_fields(ctx, id, changes),
        Builtin::AuditHtmlFiles => {
            no_texthtml::audit_html_files(changes);
            Ok(())
        }
        Builtin::PresetNew => statusauditor::preset_new(ctx, changes),
        Builtin::InitSeverity => severityauditor::init_severity(ctx, changes),
        Builtin::PatchesTextPlain => patches::patches_text_plain(changes),
        Builtin::PatchesKeyword => patches::patches_keyword(ctx, class, id, changes),
        Builtin::NosyReaction => Ok(()),
    }
}

/// Runs one built-in reactor (an auditor does nothing here).
fn run_react(
    b: Builtin,
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id: Id,
    old: Option<&Item>,
) -> Result<()> {
    match b {
        Builtin::NosyReaction => nosyreaction::nosyreaction(ctx, class, id, old),
        _ => Ok(()),
    }
}

/// Roundup's `db.<class>.lookup(key)`: the live item of `class` whose key is
/// `key`, or its KeyError (TypeError for a class without a key).
fn lookup_key(ctx: &mut Ctx<'_>, class: &str, key: &str) -> Result<Id> {
    let tracker = ctx.tracker;
    let def = tracker
        .schema
        .class(class)
        .ok_or_else(|| Error::KeyError(format!("There is no class called \"{class}\"")))?;
    let Some(keyprop) = &def.key else {
        return Err(Error::TypeError(format!(
            "No key property set for class {class}"
        )));
    };
    ctx.tx.lookup(def, keyprop, key)?.ok_or_else(|| {
        Error::KeyError(format!(
            "No key ({keyprop}) value \"{key}\" for \"{class}\""
        ))
    })
}
