//! The database as Python detectors see it: the daemon's side of the `db`
//! facade in the detector worker (`pyworker/worker.py`). Each call a detector
//! makes (`db.issue.get`, `cl.filter`, `cl.set`, `db.security.hasPermission`,
//! a mail handed to `Mailer.smtp_send`, ...) arrives here as `(method, args)` and
//! runs on the API call's own transaction, as the calling user, with Roundup's
//! semantics: writes go through [`crate::items`] (checks, journal, nested
//! detectors), reads are not permission-checked (detectors run as the
//! tracker's own code), and mail joins the call's outbox (sent after commit).
//!
//! [`serve`] is handed to the item layer as its
//! [`crate::items::detectors::python::Service`] by [`super::Caller`].

use super::args::parse_id;
use crate::error::{Error, Result};
use crate::items::detectors::python::decode_changes;
use crate::items::{self, Ctx};
use crate::mail::OutgoingMail;
use crate::pyworker::value::{self, Style};
use crate::schema::{ClassDef, PropType};
use crate::security::{split_roles, UserCtx};
use crate::store::filter::Scalar;
use crate::store::{Cond, FilterQuery, Id, Multilinks, PropValue};
use crate::xmlrpc::Value;
use serde_json::{json, Value as J};
use std::collections::BTreeSet;

/// Answers one database call of a Python detector (see the module docs).
pub fn serve(ctx: &mut Ctx<'_>, method: &str, args: &[J]) -> Result<J> {
    let text = |i: usize| args.get(i).and_then(J::as_str).unwrap_or_default();
    match method {
        "node" => node(ctx, text(0), text(1)),
        "ids" => ids(ctx, text(0), args.get(1).unwrap_or(&J::Null)),
        "exists" => {
            let class = class(ctx, text(0))?;
            Ok(J::Bool(match parse_id(text(1)) {
                Some(id) => ctx.tx.exists(&class, id)?,
                None => false,
            }))
        }
        "lookup" => {
            let class = class(ctx, text(0))?;
            let Some(key) = class.key.clone() else {
                return Err(Error::TypeError(format!(
                    "No key property set for class {}",
                    class.name
                )));
            };
            Ok(ctx
                .tx
                .lookup(&class, &key, text(1))?
                .map_or(J::Null, value::id_text))
        }
        "find" => find(ctx, text(0), args.get(1).unwrap_or(&J::Null)),
        "stringFind" => string_find(ctx, text(0), args.get(1).unwrap_or(&J::Null)),
        "filter" => filter(ctx, text(0), args),
        "journal" => journal(ctx, text(0), text(1)),
        "content" => {
            let class = class(ctx, text(0))?;
            Ok(match parse_id(text(1)) {
                Some(id) => ctx
                    .tx
                    .content(&class, id)?
                    .map_or(J::Null, |c| value::encode_bytes(&c)),
                None => J::Null,
            })
        }
        "create" => {
            let class = class(ctx, text(0))?;
            let changes = decode_changes(&class, args.get(1).unwrap_or(&J::Null))?;
            Ok(value::id_text(items::create(ctx, &class, changes)?))
        }
        "set" => {
            let class = class(ctx, text(0))?;
            let id = item_id(&class, text(1))?;
            let changes = decode_changes(&class, args.get(2).unwrap_or(&J::Null))?;
            let changed = items::set(ctx, &class, id, changes)?;
            Ok(J::Array(
                changed
                    .iter()
                    .map(|(k, v)| json!([k, value::encode(v.as_ref(), Style::NewValues)]))
                    .collect(),
            ))
        }
        "retire" => {
            let class = class(ctx, text(0))?;
            let id = item_id(&class, text(1))?;
            items::retire(ctx, &class, id)?;
            Ok(J::Null)
        }
        "restore" => {
            let class = class(ctx, text(0))?;
            let id = item_id(&class, text(1))?;
            items::restore(ctx, &class, id)?;
            Ok(J::Null)
        }
        "perm" => perm(ctx, args),
        "mail" => {
            let to = args
                .get(1)
                .and_then(J::as_array)
                .map(|a| a.iter().filter_map(J::as_str).map(str::to_string).collect())
                .unwrap_or_default();
            ctx.outbox
                .push(OutgoingMail::raw(text(0), to, text(2).to_string()));
            Ok(J::Null)
        }
        other => Err(Error::Exception(format!(
            "the detector worker asked for an unknown method {other:?}"
        ))),
    }
}

fn class(ctx: &Ctx<'_>, name: &str) -> Result<ClassDef> {
    Ok(ctx.class(name)?.clone())
}

/// An item id as Roundup's `no such <class> <id>` errors treat it.
fn item_id(class: &ClassDef, text: &str) -> Result<Id> {
    parse_id(text).ok_or_else(|| Error::IndexError(format!("no such {} {text}", class.name)))
}

/// `getnode`: every property (Multilinks as sorted id lists, unset ones None) and
/// the automatic ones, as Roundup's SQLite backend reads them, and the retired flag.
fn node(ctx: &mut Ctx<'_>, cn: &str, id_text: &str) -> Result<J> {
    let class = class(ctx, cn)?;
    let item = match parse_id(id_text) {
        Some(id) => ctx.tx.get(&class, id, Multilinks::All)?,
        None => None,
    };
    let Some(item) = item else {
        return Err(Error::IndexError(format!("no such {cn} {id_text}")));
    };
    let mut pairs = Vec::with_capacity(item.values.len() + 4);
    for p in &class.properties {
        let v = item.values.get(&p.name).cloned().flatten();
        let v = match (&p.kind, v) {
            (PropType::Multilink { .. }, None) => Some(PropValue::Multilink(Vec::new())),
            (_, v) => v,
        };
        pairs.push(json!([p.name, value::encode(v.as_ref(), Style::Stored)]));
    }
    for a in ["creation", "activity", "creator", "actor"] {
        let v = item.values.get(a).cloned().flatten();
        pairs.push(json!([a, value::encode(v.as_ref(), Style::Stored)]));
    }
    Ok(json!([pairs, item.retired]))
}

/// `getnodeids(retired)`: None = all, True = retired only, False = live only.
fn ids(ctx: &mut Ctx<'_>, cn: &str, retired: &J) -> Result<J> {
    let class = class(ctx, cn)?;
    let ids: Vec<Id> = match retired {
        J::Bool(false) => ctx.tx.list(&class)?,
        J::Number(n) if n.as_i64() == Some(0) => ctx.tx.list(&class)?,
        J::Null => ctx
            .tx
            .all_ids(&class)?
            .into_iter()
            .map(|(i, _)| i)
            .collect(),
        _ => ctx
            .tx
            .all_ids(&class)?
            .into_iter()
            .filter(|(_, r)| *r)
            .map(|(i, _)| i)
            .collect(),
    };
    Ok(J::Array(ids.into_iter().map(value::id_text).collect()))
}

fn ids_of(values: &J) -> (Vec<Id>, bool) {
    let mut ids = Vec::new();
    let mut null = false;
    for v in values.as_array().map(Vec::as_slice).unwrap_or_default() {
        match v.as_str() {
            Some(s) => ids.extend(parse_id(s)),
            None => null = true,
        }
    }
    (ids, null)
}

/// `find(**propspec)`: Roundup ANDs the Link properties in one query and adds
/// (UNION) one query per Multilink property.
fn find(ctx: &mut Ctx<'_>, cn: &str, spec: &J) -> Result<J> {
    let class = class(ctx, cn)?;
    let mut link_conds = Vec::new();
    let mut queries = Vec::new();
    for pair in spec.as_array().map(Vec::as_slice).unwrap_or_default() {
        let prop = pair.get(0).and_then(J::as_str).unwrap_or_default();
        let values = pair.get(1).unwrap_or(&J::Null);
        let Some(p) = class.prop(prop) else {
            return Err(Error::KeyError(prop.to_string()));
        };
        let (ids, null) = ids_of(values);
        match p.kind {
            PropType::Link { .. } => link_conds.push(Cond::LinkIn {
                prop: prop.to_string(),
                ids,
                null,
            }),
            PropType::Multilink { .. } if !ids.is_empty() => {
                queries.push(vec![Cond::MultilinkIn {
                    prop: prop.to_string(),
                    ids,
                    empty: false,
                }])
            }
            PropType::Multilink { .. } => {}
            _ => {
                return Err(Error::TypeError(format!(
                    "'{prop}' not a Link/Multilink property"
                )))
            }
        }
    }
    if !link_conds.is_empty() {
        queries.insert(0, link_conds);
    }
    let mut found = BTreeSet::new();
    for conds in queries {
        let q = FilterQuery {
            search_matches: None,
            conds,
            sort: Vec::new(),
        };
        found.extend(ctx.tx.filter(&class, &q)?);
    }
    Ok(J::Array(found.into_iter().map(value::id_text).collect()))
}

/// `stringFind(**requirements)`: caseless (ASCII, as SQLite's `lower`) equality
/// of every given String property, live items.
fn string_find(ctx: &mut Ctx<'_>, cn: &str, spec: &J) -> Result<J> {
    let class = class(ctx, cn)?;
    let mut result: Option<BTreeSet<Id>> = None;
    for pair in spec.as_array().map(Vec::as_slice).unwrap_or_default() {
        let prop = pair.get(0).and_then(J::as_str).unwrap_or_default();
        let want = pair.get(1).and_then(J::as_str).unwrap_or_default();
        if !matches!(
            class.prop(prop).map(|p| &p.kind),
            Some(PropType::String { .. })
        ) {
            return Err(Error::TypeError(format!("'{prop}' not a String property")));
        }
        let matching: BTreeSet<Id> = ctx
            .tx
            .column(&class, prop)?
            .into_iter()
            .filter(
                |(_, v)| matches!(v, Some(PropValue::String(s)) if s.to_ascii_lowercase() == want),
            )
            .map(|(id, _)| id)
            .collect();
        result = Some(match result {
            None => matching,
            Some(r) => r.intersection(&matching).copied().collect(),
        });
    }
    let ids = result.unwrap_or_else(|| {
        // No requirement: Roundup's SQL is then invalid; nothing matches here.
        BTreeSet::new()
    });
    Ok(J::Array(ids.into_iter().map(value::id_text).collect()))
}

/// A filter value from the worker as the XML-RPC value the filter code reads.
fn to_value(v: &J) -> Value {
    match v {
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        J::Null => Value::Nil,
        other => Value::String(other.to_string()),
    }
}

fn pairs(v: Option<&J>) -> Vec<(String, J)> {
    v.and_then(J::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.clone())))
        .collect()
}

/// `filter(search_matches, filterspec, sort, group, retired=False,
/// exact_match_spec, limit, offset)` with the XML-RPC filter's semantics, no
/// permission checks.
fn filter(ctx: &mut Ctx<'_>, cn: &str, args: &[J]) -> Result<J> {
    let class = class(ctx, cn)?;
    let search_matches = match args.get(1) {
        Some(J::Array(ids)) => {
            let ids: Vec<Id> = ids
                .iter()
                .filter_map(|i| i.as_str().and_then(parse_id))
                .collect();
            if ids.is_empty() {
                return Ok(J::Array(Vec::new()));
            }
            Some(ids)
        }
        _ => None,
    };
    let spec: Vec<(String, Value)> = pairs(args.get(2))
        .into_iter()
        .map(|(k, v)| (k, to_value(&v)))
        .collect();
    let spec_refs: Vec<&(String, Value)> = spec.iter().collect();
    let mut sortattr: Vec<(bool, String)> = Vec::new();
    for (dir, prop) in pairs(args.get(4)).into_iter().chain(pairs(args.get(3))) {
        // [dir, prop] pairs: the "key" is the direction here.
        let prop = prop.as_str().unwrap_or_default().to_string();
        if !prop.is_empty() && !sortattr.iter().any(|(_, p)| *p == prop) {
            sortattr.push((dir == "-", prop));
        }
    }
    let mut extra = Vec::new();
    for (prop, v) in pairs(args.get(5)) {
        if !matches!(
            class.prop(&prop).map(|p| &p.kind),
            Some(PropType::String { .. })
        ) {
            return Err(Error::ValueError(format!(
                "exact_match_spec: {prop} is not a String property of {cn} (only those \
                 are supported in detectors run by roundup-xmlrpc-server)"
            )));
        }
        let values: Vec<String> = match &v {
            J::Array(items) => items
                .iter()
                .filter_map(J::as_str)
                .map(str::to_string)
                .collect(),
            J::String(s) => vec![s.clone()],
            _ => Vec::new(),
        };
        for s in values {
            extra.push(Cond::ColumnIn {
                prop: prop.clone(),
                values: vec![Scalar::Text(s)],
            });
        }
    }
    let ids = super::filter::query(ctx, &class, &spec_refs, sortattr, search_matches, extra)?;
    let offset = args.get(7).and_then(J::as_u64).unwrap_or(0) as usize;
    let limit = args
        .get(6)
        .and_then(J::as_u64)
        .map_or(usize::MAX, |l| l as usize);
    Ok(J::Array(
        ids.into_iter()
            .skip(offset)
            .take(limit)
            .map(value::id_text)
            .collect(),
    ))
}

/// `getjournal(classname, nodeid)`: the rows as stored.
fn journal(ctx: &mut Ctx<'_>, cn: &str, id_text: &str) -> Result<J> {
    let class = class(ctx, cn)?;
    let id = match parse_id(id_text) {
        Some(id) if ctx.tx.exists(&class, id)? => id,
        _ => return Err(Error::IndexError(format!("{cn} has no node {id_text}"))),
    };
    let rows = ctx.tx.journal_rows(&class, id)?;
    Ok(J::Array(
        rows.into_iter()
            .map(|r| {
                json!([
                    r.nodeid.to_string(),
                    { "$d": r.date.serialise() },
                    r.tag,
                    r.action,
                    r.params
                ])
            })
            .collect(),
    ))
}

/// `db.security.hasPermission(permission, userid, classname, property, itemid)`,
/// answered from schema.toml's roles and grants.
fn perm(ctx: &mut Ctx<'_>, args: &[J]) -> Result<J> {
    let s = |i: usize| args.get(i).and_then(J::as_str);
    let permission = s(0).unwrap_or_default();
    let Some(uid_text) = s(1) else {
        return Ok(J::Bool(false));
    };
    let users = class(ctx, "user")?;
    let user = match parse_id(uid_text) {
        Some(uid) => ctx.tx.get(&users, uid, Multilinks::None)?,
        None => None,
    };
    let Some(user) = user else {
        return Err(Error::IndexError(format!("no such user {uid_text}")));
    };
    let uctx = UserCtx {
        id: user.id,
        username: match user.get("username") {
            Some(PropValue::String(u)) => u.clone(),
            _ => String::new(),
        },
        roles: match user.get("roles") {
            Some(PropValue::String(r)) => split_roles(r),
            _ => Vec::new(),
        },
    };
    let itemid = s(4).and_then(parse_id);
    let tracker = ctx.tracker;
    Ok(J::Bool(tracker.security.has_permission(
        &mut *ctx.tx,
        &uctx,
        permission,
        s(2),
        s(3),
        itemid,
    )?))
}
