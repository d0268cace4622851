//! Built-in equivalents of the classic template's detectors (reference §7),
//! switched on in schema.toml's `[detectors]`:
//!
//! * [`statusauditor`]: new issues start `unread`; a new message moves an
//!   unread/resolved/done-cbb issue to `chatting`.
//! * [`nosyreaction`]: the nosy list follows assignees and message authors, and
//!   new messages are mailed to the nosy list.
//! * [`messagesummary`]: a message's `summary` is made from its content.
//! * [`userauditor`]: usernames, addresses, roles and time zones are validated.
//!
//! Auditors run before a change is written and may modify or refuse it; reactors
//! run after it is written, inside the same transaction.

pub mod messagesummary;
pub mod nosyreaction;
pub mod statusauditor;
pub mod userauditor;

use crate::error::Result;
use crate::items::{Changes, Ctx};
use crate::schema::{ClassDef, ClassKind};
use crate::store::{Id, Item};

fn is_issue(class: &ClassDef) -> bool {
    class.kind == ClassKind::IssueClass
}

/// Runs the auditors for a `create` of `class`.
pub fn audit_create(ctx: &mut Ctx<'_>, class: &ClassDef, changes: &mut Changes) -> Result<()> {
    let d = ctx.tracker.schema.detectors.clone();
    if d.statusauditor && is_issue(class) {
        statusauditor::presetunread(ctx, changes)?;
    }
    if d.nosyreaction && is_issue(class) {
        nosyreaction::updatenosy(ctx, class, None, changes)?;
    }
    if d.messagesummary && class.name == "msg" {
        messagesummary::summarygenerator(changes);
    }
    if d.userauditor && class.name == "user" {
        userauditor::audit_user_fields(ctx, class, None, changes)?;
    }
    Ok(())
}

/// Runs the auditors for a `set` of `class<id>`.
pub fn audit_set(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id, changes: &mut Changes) -> Result<()> {
    let d = ctx.tracker.schema.detectors.clone();
    if d.statusauditor && is_issue(class) {
        statusauditor::chatty(ctx, class, id, changes, d.chatting_requires_two_users)?;
    }
    if d.nosyreaction && is_issue(class) {
        nosyreaction::updatenosy(ctx, class, Some(id), changes)?;
    }
    if d.userauditor && class.name == "user" {
        userauditor::audit_user_fields(ctx, class, Some(id), changes)?;
    }
    Ok(())
}

/// Runs the reactors after a `create` of `class<id>`.
pub fn react_create(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id) -> Result<()> {
    if ctx.tracker.schema.detectors.nosyreaction && is_issue(class) {
        nosyreaction::nosyreaction(ctx, class, id, None)?;
    }
    Ok(())
}

/// Runs the reactors after a `set` of `class<id>`; `old` is the item before.
pub fn react_set(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id, old: &Item) -> Result<()> {
    if ctx.tracker.schema.detectors.nosyreaction && is_issue(class) {
        nosyreaction::nosyreaction(ctx, class, id, Some(old))?;
    }
    Ok(())
}
