//! `statusauditor.py`: the classic template's `presetunread` and `chatty`, and
//! the devel/responsive template's `preset_new` (a different module of the same
//! name). All three look statuses up in class `status` by name, whatever class
//! they run on, as Roundup's code (`db.status.lookup`) does.

use crate::error::{Error, Result};
use crate::items::{Changes, Ctx};
use crate::schema::ClassDef;
use crate::store::{Id, PropValue};

fn status_id(ctx: &mut Ctx<'_>, name: &str) -> Result<Option<Id>> {
    let Some(status) = ctx.tracker.schema.class("status") else {
        return Ok(None);
    };
    Ok(ctx.tx.lookup(status, "name", name)?)
}

/// On creation: when no status is given, set it to `unread` (if it exists).
pub fn presetunread(ctx: &mut Ctx<'_>, changes: &mut Changes) -> Result<()> {
    if let Some(Some(_)) = changes.props.get("status") {
        return Ok(());
    }
    if let Some(unread) = status_id(ctx, "unread")? {
        changes
            .props
            .insert("status", Some(PropValue::Link(unread)));
    }
    Ok(())
}

/// On change: a new message moves the item from unread, resolved or done-cbb (or
/// no status) to chatting, unless the change sets the status itself. Like Roundup,
/// a tracker with a `chatting` status but none of those three fails the change
/// (`IndexError: list index out of range`, reported as a UsageError).
pub fn chatty(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id: Id,
    changes: &mut Changes,
    two_users: bool,
) -> Result<()> {
    let Some(new_messages) = changes.props.get("messages").cloned() else {
        return Ok(());
    };
    let item = ctx.item(class, id)?;
    let current_messages = item.values.get("messages").cloned().flatten();
    let norm = |v: Option<PropValue>| match v {
        Some(PropValue::Multilink(m)) => m,
        _ => Vec::new(),
    };
    if norm(new_messages) == norm(current_messages) {
        return Ok(());
    }
    let Some(chatting) = status_id(ctx, "chatting")? else {
        return Ok(());
    };
    let current = match item.get("status") {
        Some(PropValue::Link(s)) => Some(*s),
        _ => None,
    };
    if changes.props.contains("status") {
        return Ok(());
    }
    let mut fromstates = Vec::new();
    for s in ["unread", "resolved", "done-cbb"] {
        if let Some(i) = status_id(ctx, s)? {
            fromstates.push(i);
        }
    }
    if fromstates.is_empty() {
        // Roundup: `unread = fromstates[0]`.
        return Err(Error::IndexError("list index out of range".into()));
    }
    if two_users && current.is_some() && current == fromstates.first().copied() {
        if let Some(PropValue::Link(creator)) = item.get("creator") {
            if *creator == ctx.user.id {
                return Ok(());
            }
        }
    }
    if current.is_none_or(|c| fromstates.contains(&c)) {
        changes
            .props
            .insert("status", Some(PropValue::Link(chatting)));
    }
    Ok(())
}

/// devel/responsive `preset_new`: when no status is given on creation, set it to
/// `new`; Roundup's `KeyError` when there is no status `new`.
pub fn preset_new(ctx: &mut Ctx<'_>, changes: &mut Changes) -> Result<()> {
    if let Some(Some(_)) = changes.props.get("status") {
        return Ok(());
    }
    let new = super::lookup_key(ctx, "status", "new")?;
    changes.props.insert("status", Some(PropValue::Link(new)));
    Ok(())
}
