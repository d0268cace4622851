//! `nosyreaction.py` (the same code in every template that has it): the
//! `updatenosy` auditor and the `nosyreaction` reactor that mails new messages to
//! the nosy list. They run on any IssueClass they are registered on (the classic
//! template: `issue`; devel/responsive: `bug`, `task`, `milestone`); messages are
//! read from class `msg` and people from class `user`, as Roundup's code does.

use crate::config::{MessagesToAuthor, NosyAdd};
use crate::error::Result;
use crate::items::{self, Changes, Ctx, PropMap};
use crate::mail::{self, OutgoingMail};
use crate::schema::ClassDef;
use crate::store::{Id, Item, Multilinks, PropValue};
use std::collections::BTreeSet;

fn ids(v: Option<&Option<PropValue>>) -> Vec<Id> {
    match v {
        Some(Some(PropValue::Multilink(m))) => m.clone(),
        _ => Vec::new(),
    }
}

/// Keeps the nosy list up to date: adds the assignee (`assignedto`, a Link or a
/// Multilink), and the authors and recipients of new messages as `[nosy]
/// add_author` / `add_recipients` say.
pub fn updatenosy(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id: Option<Id>,
    changes: &mut Changes,
) -> Result<()> {
    let Some(user_class) = ctx.tracker.schema.class("user") else {
        return Ok(());
    };
    let mut current: BTreeSet<Id> = BTreeSet::new();
    let old = match id {
        Some(id) => Some(ctx.item(class, id)?),
        None => None,
    };
    if let (Some(old), false) = (&old, changes.props.contains("nosy")) {
        current.extend(ids(old.values.get("nosy")));
    }
    if let Some(v) = changes.props.get("nosy").cloned() {
        for u in ids(Some(&v)) {
            if ctx.tx.exists(user_class, u)? {
                current.insert(u);
            }
        }
    }
    let mut new = current.clone();
    match changes.props.get("assignedto") {
        Some(Some(PropValue::Link(a))) => {
            new.insert(*a);
        }
        Some(Some(PropValue::Multilink(a))) => new.extend(a.iter().copied()),
        _ => {}
    }
    if let Some(msgs) = changes.props.get("messages").cloned() {
        // `yes` adds on every change, `new` only when the issue is created.
        let adds = |when: NosyAdd| match when {
            NosyAdd::Yes => true,
            NosyAdd::New => id.is_none(),
            NosyAdd::No => false,
        };
        let oldmsgs = old
            .as_ref()
            .map(|o| ids(o.values.get("messages")))
            .unwrap_or_default();
        let added: Vec<Id> = ids(Some(&msgs))
            .into_iter()
            .filter(|m| !oldmsgs.contains(m))
            .collect();
        let add_author = adds(ctx.tracker.settings.nosy.add_author);
        let add_recips = adds(ctx.tracker.settings.nosy.add_recipients);
        if let Some(msg_class) = ctx.tracker.schema.class("msg") {
            for m in added {
                let Some(msg) = ctx.tx.get(msg_class, m, Multilinks::All)? else {
                    continue;
                };
                if add_author {
                    if let Some(PropValue::Link(a)) = msg.get("author") {
                        new.insert(*a);
                    }
                }
                if add_recips {
                    new.extend(ids(msg.values.get("recipients")));
                }
            }
        }
    }
    if new != current
        || (changes.props.contains("nosy") && changes.props.get("nosy") == Some(&None))
    {
        changes.props.insert(
            "nosy",
            Some(PropValue::Multilink(new.into_iter().collect())),
        );
    }
    Ok(())
}

/// Sends each message newly added to an issue to the nosy users who have not
/// seen it, and records them in the message's `recipients`.
pub fn nosyreaction(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id, old: Option<&Item>) -> Result<()> {
    let issue = ctx.item(class, id)?;
    let now_msgs = ids(issue.values.get("messages"));
    let new_msgs: Vec<Id> = match old {
        None => now_msgs,
        Some(o) => {
            let before = ids(o.values.get("messages"));
            now_msgs
                .into_iter()
                .filter(|m| !before.contains(m))
                .collect()
        }
    };
    let Some(msg_class) = ctx.tracker.schema.class("msg") else {
        return Ok(());
    };
    let Some(user_class) = ctx.tracker.schema.class("user") else {
        return Ok(());
    };
    for m in new_msgs {
        nosymessage(ctx, class, &issue, msg_class, user_class, m, old.is_none())?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn nosymessage(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    issue: &Item,
    msg_class: &ClassDef,
    user_class: &ClassDef,
    msgid: Id,
    is_new: bool,
) -> Result<()> {
    let Some(msg) = ctx.tx.get(msg_class, msgid, Multilinks::All)? else {
        return Ok(());
    };
    let author = match msg.get("author") {
        Some(PropValue::Link(a)) => Some(*a),
        _ => None,
    };
    let mut recipients = ids(msg.values.get("recipients"));
    let mut seen: BTreeSet<Id> = recipients.iter().copied().collect();
    let nosy = ids(issue.values.get("nosy"));
    let mut sendto: Vec<String> = Vec::new();
    let tracker = ctx.tracker;

    let good = |ctx: &mut Ctx<'_>, uid: Id, seen: &BTreeSet<Id>| -> Result<Option<String>> {
        if seen.contains(&uid) {
            return Ok(None);
        }
        let Some(user) = ctx.tx.get(user_class, uid, Multilinks::None)? else {
            return Ok(None);
        };
        if matches!(user.get("username"), Some(PropValue::String(u)) if u == "anonymous") {
            return Ok(None);
        }
        let roles = match user.get("roles") {
            Some(PropValue::String(r)) => crate::security::split_roles(r),
            _ => Vec::new(),
        };
        let uctx = crate::security::UserCtx {
            id: uid,
            username: String::new(),
            roles,
        };
        for prop in ["content", "files"] {
            if msg_class.prop(prop).is_some()
                && !tracker.security.has_permission(
                    &mut *ctx.tx,
                    &uctx,
                    "View",
                    Some(&msg_class.name),
                    Some(prop),
                    Some(msgid),
                )?
            {
                return Ok(None);
            }
        }
        Ok(match user.get("address") {
            Some(PropValue::String(a)) if !a.is_empty() => Some(a.clone()),
            _ => None,
        })
    };

    let to_author = match tracker.settings.nosy.messages_to_author {
        MessagesToAuthor::Yes => true,
        MessagesToAuthor::New => is_new,
        MessagesToAuthor::Nosy => author.is_some_and(|a| nosy.contains(&a)),
        MessagesToAuthor::No => false,
    };
    if let (Some(a), true) = (author, to_author) {
        if let Some(addr) = good(ctx, a, &seen)? {
            sendto.push(addr);
            recipients.push(a);
        }
    }
    if let Some(a) = author {
        seen.insert(a);
    }
    for uid in nosy {
        if let Some(addr) = good(ctx, uid, &seen)? {
            sendto.push(addr);
            recipients.push(uid);
            seen.insert(uid);
        }
    }
    if sendto.is_empty() {
        return Ok(());
    }
    recipients.sort_unstable();
    recipients.dedup();
    let mut message_id = match msg.get("messageid") {
        Some(PropValue::String(m)) if !m.is_empty() => Some(m.clone()),
        _ => None,
    };
    // Like Roundup: the recipients first, then (when sending) the message id,
    // each as its own journalled change.
    let set_one = |ctx: &mut Ctx<'_>, name: &'static str, value: PropValue| {
        let mut props = PropMap::new();
        props.insert(name, Some(value));
        let changes = Changes {
            props,
            content: None,
        };
        items::set(ctx, msg_class, msgid, changes)
    };
    set_one(ctx, "recipients", PropValue::Multilink(recipients))?;
    if message_id.is_none() && msg_class.prop("messageid").is_some() {
        let mid = mail::new_message_id(&class.name, issue.id, ctx.tracker.settings.mail_domain());
        set_one(ctx, "messageid", PropValue::String(mid.clone()))?;
        message_id = Some(mid);
    }
    let content = ctx.tx.content(msg_class, msgid)?.unwrap_or_default();
    let title = match issue.get("title") {
        Some(PropValue::String(t)) => t.clone(),
        _ => String::new(),
    };
    let author_name = match author {
        Some(a) => match ctx.tx.get(user_class, a, Multilinks::None)? {
            Some(u) => match (u.get("realname"), u.get("username")) {
                (Some(PropValue::String(r)), _) if !r.is_empty() => r.clone(),
                (_, Some(PropValue::String(n))) => n.clone(),
                _ => String::new(),
            },
            None => String::new(),
        },
        None => String::new(),
    };
    let settings = &ctx.tracker.settings;
    let designator = format!("{}{}", class.name, issue.id);
    ctx.outbox.push(OutgoingMail {
        to: sendto,
        from: mail::from_header(&author_name, settings),
        subject: format!("[{designator}] {title}"),
        message_id: message_id.unwrap_or_default(),
        body: format!(
            "\n{author_name} added the comment:\n\n{}\n\n----------\n{}\n<{}{designator}>\n",
            String::from_utf8_lossy(&content),
            settings.tracker.name,
            settings.tracker.web.as_deref().unwrap_or_default()
        ),
        raw: None,
    });
    Ok(())
}
