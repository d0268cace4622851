//! The item layer: Roundup's hyperdb `create`, `set`, `retire` and `restore` over a
//! store transaction, with key uniqueness, link checks, journal entries, the
//! full-text index and the detectors, in Roundup's order (reference §3.6–3.7, §8.5).

pub mod detectors;

use detectors::Event;

use crate::error::{Error, Result};
use crate::hyperdb::date::Date;
use crate::mail::OutgoingMail;
use crate::schema::{ClassDef, ClassKind, PropType};
use crate::security::UserCtx;
use crate::store::pyrepr::{bytes_repr, float_repr, str_repr};
use crate::store::{Id, Item, JournalEntry, JournalFormat, Multilinks, PropValue, Tx, Values};
use crate::tracker::Tracker;

/// Everything one API call works with: the transaction, the tracker, the acting
/// user, the call's timestamp and the mail its reactors want sent after commit.
pub struct Ctx<'a> {
    /// The open transaction.
    pub tx: &'a mut dyn Tx,
    /// The tracker.
    pub tracker: &'a Tracker,
    /// The acting user.
    pub user: &'a UserCtx,
    /// "Now" for this call.
    pub now: Date,
    /// Mail queued by reactors, sent once the transaction has committed.
    pub outbox: Vec<OutgoingMail>,
    /// Ids allocated by creates that then failed. The transaction is rolled back,
    /// but like Roundup the ids stay used (clients that replay a session rely on
    /// the ids Roundup hands out), so the caller records them afterwards.
    pub burned_ids: Vec<(String, Id)>,
    /// The call's Python detector state (the worker while they run; see
    /// [`detectors::python`]).
    pub python: detectors::python::CallState<'a>,
}

impl<'a> Ctx<'a> {
    /// A context for one call by `user` inside `tx`, with "now" taken at this
    /// moment and nothing queued yet.
    pub fn new(tx: &'a mut dyn Tx, tracker: &'a Tracker, user: &'a UserCtx) -> Ctx<'a> {
        Ctx {
            tx,
            tracker,
            user,
            now: Date::now(),
            outbox: Vec::new(),
            burned_ids: Vec::new(),
            python: Default::default(),
        }
    }

    /// The class called `name`, or Roundup's unknown-class KeyError.
    pub fn class(&self, name: &str) -> Result<&ClassDef> {
        self.tracker
            .schema
            .class(name)
            .ok_or_else(|| Error::KeyError(format!("There is no class called \"{name}\"")))
    }

    /// Loads an item or fails with Roundup's `IndexError: no such <class> <id>`.
    pub fn item(&mut self, class: &ClassDef, id: Id) -> Result<Item> {
        self.tx
            .get(class, id, Multilinks::All)?
            .ok_or_else(|| Error::IndexError(format!("no such {} {id}", class.name)))
    }
}

/// Property changes in argument order (a Python dict: re-inserting keeps the
/// first position). `None` values mean "set to None".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PropMap(Vec<(String, Option<PropValue>)>);

impl PropMap {
    /// An empty map.
    pub fn new() -> PropMap {
        PropMap(Vec::new())
    }
    /// Sets `name` (replacing in place when present).
    pub fn insert(&mut self, name: &str, value: Option<PropValue>) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_string(), value)),
        }
    }
    /// The value for `name` (`Some(None)` = present and None).
    pub fn get(&self, name: &str) -> Option<&Option<PropValue>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// True if `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
    /// Removes and returns `name`.
    pub fn remove(&mut self, name: &str) -> Option<Option<PropValue>> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }
    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Option<PropValue>)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Converts to storage values.
    pub fn to_values(&self) -> Values {
        self.0.iter().cloned().collect()
    }
}

/// What `create`/`set` receive: property values and, for FileClass items, the
/// content (kept apart because it lives in a file, not a column).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// Property values.
    pub props: PropMap,
    /// FileClass content, when given (`Some(empty)` for `content=`).
    pub content: Option<Vec<u8>>,
}

const AUTOMATIC: [&str; 4] = ["creator", "actor", "creation", "activity"];

fn check_reserved(props: &PropMap, id_first: bool) -> Result<()> {
    let reserved_auto = || {
        if AUTOMATIC.iter().any(|a| props.contains(a)) {
            Err(Error::KeyError(
                "\"creator\", \"actor\", \"creation\" and \"activity\" are reserved".into(),
            ))
        } else {
            Ok(())
        }
    };
    let reserved_id = || {
        if props.contains("id") {
            Err(Error::KeyError("\"id\" is reserved".into()))
        } else {
            Ok(())
        }
    };
    if id_first {
        reserved_id()?;
        reserved_auto()
    } else {
        reserved_auto()?;
        reserved_id()
    }
}

fn link_target<'t>(tracker: &'t Tracker, kind: &PropType) -> Option<&'t ClassDef> {
    kind.link_target().and_then(|t| tracker.schema.class(t))
}

fn journal(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    nodeid: Id,
    action: &str,
    params: String,
) -> Result<()> {
    let e = JournalEntry {
        nodeid,
        date: ctx.now,
        tag: ctx.user.id,
        action: action.into(),
        params,
    };
    ctx.tx.journal(class, &e)?;
    Ok(())
}

fn link_journal(
    ctx: &mut Ctx<'_>,
    target: &ClassDef,
    target_id: Id,
    action: &str,
    cn: &str,
    id: Id,
    prop: &str,
) -> Result<()> {
    let params = format!(
        "({}, {}, {})",
        str_repr(cn),
        str_repr(&id.to_string()),
        str_repr(prop)
    );
    journal(ctx, target, target_id, action, params)
}

fn is_text_plain(mime: Option<&Option<PropValue>>) -> bool {
    match mime {
        None => true,
        Some(Some(PropValue::String(t))) => t == "text/plain",
        Some(_) => false,
    }
}

/// A live user other than `except` whose name equals `name` ignoring case but not
/// exactly (exact clashes are the key check's), if `class` is the `user` class
/// keyed on `username`.
///
/// Roundup keys are case-sensitive, so `Admin` could live beside `admin`: a user
/// that looks like another. Here user names must differ in more than case. The
/// comparison is Unicode lower-casing done in Rust (`str::to_lowercase`, so `Ä` and
/// `ä` clash too, which SQLite's ASCII-only `lower()`/`LIKE` would miss), over the
/// live usernames: one column scan, and only when a user is created, renamed or
/// restored.
fn username_case_clash(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    except: Option<Id>,
    name: &str,
) -> Result<Option<String>> {
    if class.name != "user" || class.key.as_deref() != Some("username") {
        return Ok(None);
    }
    let lower = name.to_lowercase();
    for (id, value) in ctx.tx.column(class, "username")? {
        if Some(id) == except {
            continue;
        }
        if let Some(PropValue::String(other)) = value {
            if other != name && other.to_lowercase() == lower {
                return Ok(Some(other));
            }
        }
    }
    Ok(None)
}

/// The refusal of a new or changed user name that differs from an existing one
/// only in case (Roundup's key-clash text plus the reason).
fn case_clash_error(name: &str) -> Error {
    Error::ValueError(format!(
        "node with key \"{name}\" exists (user names that differ only in case clash)"
    ))
}

/// Roundup's `Class.create` (FileClass and IssueClass included). Returns the new id.
pub fn create(ctx: &mut Ctx<'_>, class: &ClassDef, mut changes: Changes) -> Result<Id> {
    detectors::audit(ctx, class, Event::Create, None, Some(&mut changes))?;
    let content = if class.kind == ClassKind::FileClass {
        Some(
            changes
                .content
                .take()
                .ok_or_else(|| Error::KeyError("content".into()))?,
        )
    } else {
        None
    };
    check_reserved(&changes.props, true)?;
    let id = ctx.tx.new_id(class)?;
    let result = create_inner(ctx, class, id, &changes.props, content);
    if result.is_err() {
        ctx.burned_ids.push((class.name.clone(), id));
    }
    result.map(|()| id)
}

/// `create` after the id is allocated: checks, insert, journal, content, reactors.
fn create_inner(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id: Id,
    props: &PropMap,
    content: Option<Vec<u8>>,
) -> Result<()> {
    for (key, value) in props.iter() {
        let Some(prop) = class.prop(key) else {
            return Err(Error::KeyError(format!(
                "\"{}\" has no property \"{key}\"",
                class.name
            )));
        };
        if class.key.as_deref() == Some(key) {
            if let Some(PropValue::String(s)) = value {
                ctx.tx.lock_key(class, s)?;
                if ctx.tx.lookup(class, key, s)?.is_some() {
                    return Err(Error::ValueError(format!("node with key \"{s}\" exists")));
                }
                if username_case_clash(ctx, class, None, s)?.is_some() {
                    return Err(case_clash_error(s));
                }
            }
        }
        match (&prop.kind, value) {
            (PropType::Link { do_journal, .. }, Some(PropValue::Link(target))) => {
                let tc = link_target(ctx.tracker, &prop.kind)
                    .ok_or_else(|| Error::Internal("bad schema".into()))?;
                if !ctx.tx.exists(tc, *target)? {
                    return Err(Error::IndexError(format!(
                        "{} has no node {target}",
                        tc.name
                    )));
                }
                if *do_journal {
                    link_journal(ctx, tc, *target, "link", &class.name, id, key)?;
                }
            }
            (PropType::Multilink { do_journal, .. }, Some(PropValue::Multilink(targets))) => {
                let tc = link_target(ctx.tracker, &prop.kind)
                    .ok_or_else(|| Error::Internal("bad schema".into()))?;
                for t in targets {
                    if !ctx.tx.exists(tc, *t)? {
                        return Err(Error::IndexError(format!("{} has no node {t}", tc.name)));
                    }
                    if *do_journal {
                        link_journal(ctx, tc, *t, "link", &class.name, id, key)?;
                    }
                }
            }
            (PropType::String { indexme }, v) => match v {
                Some(PropValue::String(s)) => {
                    if *indexme {
                        ctx.tx.index_text(class, id, key, s)?;
                    }
                }
                _ => {
                    return Err(Error::TypeError(format!(
                        "new property \"{key}\" not a string"
                    )))
                }
            },
            _ => {}
        }
    }
    if let Some(k) = &class.key {
        if !props.contains(k) {
            return Err(Error::ValueError(format!(
                "key property \"{k}\" is required"
            )));
        }
    }
    ctx.tx
        .insert(class, id, &props.to_values(), ctx.user.id, ctx.now)?;
    journal(ctx, class, id, "create", "{}".into())?;
    if let Some(content) = content {
        let indexme = matches!(
            class.prop("content").map(|p| &p.kind),
            Some(PropType::String { indexme: true })
        );
        if indexme && is_text_plain(props.get("type")) {
            ctx.tx
                .index_text(class, id, "content", &String::from_utf8_lossy(&content))?;
        }
        ctx.tx.set_content(class, id, &content)?;
    }
    detectors::react(ctx, class, Event::Create, id, None)
}

/// The repr of an old value in a `set` journal entry, as Roundup's
/// `repr_export` writes it: strings Python-2 style (UTF-8 bytes, `\xNN`
/// escapes), other values with Python's `repr` (reference §8.5).
fn journal_value(v: &Option<PropValue>, format: JournalFormat) -> String {
    match (v, format) {
        // PostgreSQL's hyperdb_to_sql_value: `Date.formal(sep=' ')` and 'TRUE'.
        (Some(PropValue::Date(d)), JournalFormat::Postgresql) => {
            let (y, m, day, h, mi, sec, ms) = d.components();
            return bytes_repr(&format!(
                "{y:04}-{m:02}-{day:02} {h:02}:{mi:02}:{sec:02}.{ms:03}"
            ));
        }
        (Some(PropValue::Boolean(true)), JournalFormat::Postgresql) => {
            return bytes_repr("TRUE");
        }
        _ => {}
    }
    match v {
        None => "None".into(),
        Some(PropValue::String(s)) => bytes_repr(s),
        Some(PropValue::Password(p)) => {
            let scheme = p
                .strip_prefix('{')
                .and_then(|r| r.split_once('}'))
                .map(|(s, _)| s)
                .unwrap_or("");
            bytes_repr(&format!("{{{scheme}}}*encrypted*"))
        }
        Some(PropValue::Date(d)) => bytes_repr(&d.serialise()),
        Some(PropValue::Interval(i)) => bytes_repr(&i.to_string()),
        Some(PropValue::Link(l)) => bytes_repr(&l.to_string()),
        Some(PropValue::Multilink(ids)) => id_list_repr(ids),
        Some(PropValue::Boolean(b)) => (*b as i64).to_string(),
        Some(PropValue::Number(n)) => float_repr(*n),
        Some(PropValue::Integer(i)) => i.to_string(),
    }
}

fn id_list_repr(ids: &[Id]) -> String {
    let items: Vec<String> = ids.iter().map(|i| str_repr(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

/// Roundup's `Class.set`. Returns the properties that actually changed (after
/// the auditors), quiet ones left out; FileClass content is included when given.
pub fn set(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id, mut changes: Changes) -> Result<PropMap> {
    if !ctx.tx.exists(class, id)? {
        return Err(Error::IndexError(format!("no such {} {id}", class.name)));
    }
    // Other daemons' changes of this item wait until this one commits; "now"
    // is taken after the wait, so journal dates follow the commit order.
    ctx.tx.lock_item(class, id)?;
    ctx.now = ctx.now.max(Date::now());
    detectors::audit(ctx, class, Event::Set, Some(id), Some(&mut changes))?;
    let old = ctx.item(class, id)?;
    let content = if class.kind == ClassKind::FileClass {
        changes.content.take()
    } else {
        None
    };
    let mut props = changes.props;
    let mut result = PropMap::new();
    if !props.is_empty() {
        check_reserved(&props, false)?;
        if old.retired {
            return Err(Error::IndexError("Requested item is retired".into()));
        }
        let mut journal_values: Vec<(String, String)> = Vec::new();
        let mut quiet = Vec::new();
        let entries: Vec<(String, Option<PropValue>)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for (key, value) in entries {
            let current = old.values.get(&key).cloned().flatten();
            if class.key.as_deref() == Some(key.as_str()) && current != value {
                if let Some(PropValue::String(s)) = &value {
                    ctx.tx.lock_key(class, s)?;
                    if ctx.tx.lookup(class, &key, s)?.is_some() {
                        return Err(Error::ValueError(format!("node with key \"{s}\" exists")));
                    }
                    if username_case_clash(ctx, class, Some(id), s)?.is_some() {
                        return Err(case_clash_error(s));
                    }
                }
            }
            let Some(prop) = class.prop(&key) else {
                return Err(Error::KeyError(format!(
                    "\"{}\" has no property named \"{key}\"",
                    class.name
                )));
            };
            let value = match (&prop.kind, value) {
                (PropType::Multilink { .. }, None) => Some(PropValue::Multilink(Vec::new())),
                (_, v) => v,
            };
            let current = match (&prop.kind, current) {
                (PropType::Multilink { .. }, None) => Some(PropValue::Multilink(Vec::new())),
                (_, c) => c,
            };
            if value == current {
                props.remove(&key);
                continue;
            }
            match &prop.kind {
                PropType::Link { do_journal, .. } => {
                    let tc = link_target(ctx.tracker, &prop.kind)
                        .ok_or_else(|| Error::Internal("bad schema".into()))?;
                    if let Some(PropValue::Link(t)) = &value {
                        if !ctx.tx.exists(tc, *t)? {
                            return Err(Error::IndexError(format!("{} has no node {t}", tc.name)));
                        }
                    }
                    if *do_journal {
                        if let Some(PropValue::Link(o)) = &current {
                            link_journal(ctx, tc, *o, "unlink", &class.name, id, &key)?;
                        }
                        if let Some(PropValue::Link(t)) = &value {
                            link_journal(ctx, tc, *t, "link", &class.name, id, &key)?;
                        }
                    }
                    journal_values.push((
                        key.clone(),
                        journal_value(&current, ctx.tx.journal_format()),
                    ));
                }
                PropType::Multilink { do_journal, .. } => {
                    let tc = link_target(ctx.tracker, &prop.kind)
                        .ok_or_else(|| Error::Internal("bad schema".into()))?;
                    let new_ids = match &value {
                        Some(PropValue::Multilink(v)) => v.clone(),
                        _ => Vec::new(),
                    };
                    let old_ids = match &current {
                        Some(PropValue::Multilink(v)) => v.clone(),
                        _ => Vec::new(),
                    };
                    let removed: Vec<Id> = old_ids
                        .iter()
                        .copied()
                        .filter(|x| !new_ids.contains(x))
                        .collect();
                    let added: Vec<Id> = new_ids
                        .iter()
                        .copied()
                        .filter(|x| !old_ids.contains(x))
                        .collect();
                    for r in &removed {
                        if *do_journal {
                            link_journal(ctx, tc, *r, "unlink", &class.name, id, &key)?;
                        }
                    }
                    for a in &added {
                        if !ctx.tx.exists(tc, *a)? {
                            return Err(Error::IndexError(format!("{} has no node {a}", tc.name)));
                        }
                        if *do_journal {
                            link_journal(ctx, tc, *a, "link", &class.name, id, &key)?;
                        }
                    }
                    let mut parts = Vec::new();
                    if !added.is_empty() {
                        parts.push(format!("('+', {})", id_list_repr(&added)));
                    }
                    if !removed.is_empty() {
                        parts.push(format!("('-', {})", id_list_repr(&removed)));
                    }
                    if !parts.is_empty() {
                        let t = if parts.len() == 1 {
                            format!("({},)", parts[0])
                        } else {
                            format!("({})", parts.join(", "))
                        };
                        journal_values.push((key.clone(), t));
                    }
                }
                PropType::String { indexme } => {
                    if *indexme {
                        let text = match &value {
                            Some(PropValue::String(s)) => s.as_str(),
                            _ => "",
                        };
                        ctx.tx.index_text(class, id, &key, text)?;
                    }
                    journal_values.push((
                        key.clone(),
                        journal_value(&current, ctx.tx.journal_format()),
                    ));
                }
                _ => journal_values.push((
                    key.clone(),
                    journal_value(&current, ctx.tx.journal_format()),
                )),
            }
            if prop.quiet {
                quiet.push(key.clone());
            }
            props.insert(&key, value);
        }
        if !props.is_empty() {
            ctx.tx
                .update(class, id, &props.to_values(), ctx.user.id, ctx.now, true)?;
            // repr_export sorts the keys.
            journal_values.sort_by(|a, b| a.0.cmp(&b.0));
            let body: Vec<String> = journal_values
                .iter()
                .map(|(k, v)| format!("{}: {v}", bytes_repr(k)))
                .collect();
            journal(ctx, class, id, "set", format!("{{{}}}", body.join(", ")))?;
        }
        for (k, v) in props.iter() {
            if !quiet.iter().any(|q| q == k) {
                result.insert(k, v.clone());
            }
        }
    }
    if let Some(content) = content.filter(|c| !c.is_empty()) {
        ctx.tx.set_content(class, id, &content)?;
        let indexme = matches!(
            class.prop("content").map(|p| &p.kind),
            Some(PropType::String { indexme: true })
        );
        let mime = ctx
            .tx
            .get(class, id, Multilinks::None)?
            .and_then(|i| i.values.get("type").cloned());
        if indexme && is_text_plain(mime.as_ref()) {
            ctx.tx
                .index_text(class, id, "content", &String::from_utf8_lossy(&content))?;
        }
        result.insert(
            "content",
            Some(PropValue::String(
                String::from_utf8_lossy(&content).into_owned(),
            )),
        );
    }
    detectors::react(ctx, class, Event::Set, id, Some(&old))?;
    Ok(result)
}

/// Roundup's `Class.retire`: marks the item retired (its key becomes reusable),
/// between the `retire` auditors and reactors.
pub fn retire(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id) -> Result<()> {
    if !ctx.tx.exists(class, id)? {
        return Err(Error::IndexError(format!("no such {} {id}", class.name)));
    }
    ctx.tx.lock_item(class, id)?;
    ctx.now = ctx.now.max(Date::now());
    detectors::audit(ctx, class, Event::Retire, Some(id), None)?;
    ctx.tx.set_retired(class, id, true)?;
    journal(ctx, class, id, "retired", "None".into())?;
    detectors::react(ctx, class, Event::Retire, id, None)
}

/// Roundup's `Class.restore`: un-retires the item unless a live item took its key,
/// between the `restore` auditors and reactors.
pub fn restore(ctx: &mut Ctx<'_>, class: &ClassDef, id: Id) -> Result<()> {
    ctx.tx.lock_item(class, id)?;
    ctx.now = ctx.now.max(Date::now());
    let item = ctx.item(class, id)?;
    if let Some(key) = &class.key {
        if let Some(PropValue::String(v)) = item.get(key) {
            ctx.tx.lock_key(class, v)?;
            // Like Roundup, a live item "clashes" with itself too.
            if ctx.tx.lookup(class, key, v)?.is_some() {
                return Err(Error::KeyError(format!(
                    "Key property ({key}) of retired node clashes with existing one ({v})"
                )));
            }
            if let Some(other) = username_case_clash(ctx, class, Some(id), v)? {
                return Err(Error::KeyError(format!(
                    "Key property ({key}) of retired node clashes with existing one ({other}) ignoring case"
                )));
            }
        }
    }
    detectors::audit(ctx, class, Event::Restore, Some(id), None)?;
    ctx.tx.set_retired(class, id, false)?;
    journal(ctx, class, id, "restored", "None".into())?;
    detectors::react(ctx, class, Event::Restore, id, None)
}
