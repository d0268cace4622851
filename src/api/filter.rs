//! `filter(classname, search_matches, filterspec, sort=[], group=[])` with
//! Roundup's per-type filterspec semantics and `filter_with_permissions`
//! (reference §4).

use super::args::{arity, class_arg, py_str, user_tz};
use crate::error::{Error, Result};
use crate::hyperdb::{parse_date_filter, parse_interval_filter, Date, DateRange, Interval, Tz};
use crate::items::Ctx;
use crate::schema::{ClassDef, PropType, Schema};
use crate::store::filter::{DateAlt, IdExpr, Scalar};
use crate::store::{Cond, FilterQuery, Id, SortKey};
use crate::xmlrpc::Value;

/// Longest property path (`a.b.c`) accepted in a filterspec key or sort
/// property; longer ones are dropped like properties the user may not search.
const MAX_PATH_STEPS: usize = 8;
/// Most values in one filterspec list (and ids in `search_matches` handled in SQL).
const MAX_LIST_VALUES: usize = 1_000;
/// Deepest Link/Multilink filter expression (SQLite itself stops at 1 000).
const MAX_EXPR_DEPTH: usize = 64;
/// Most substrings (ANDed) or date alternatives (ORed) in one filter value.
const MAX_ALTERNATIVES: usize = 100;

/// The ids of matching non-retired items the user may view, sorted.
pub fn filter(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity(
        "filter",
        params,
        &["classname", "search_matches", "filterspec"],
        2,
        false,
    )?;
    let cn = class_arg(&params[0]);
    let class = ctx.class(&cn)?.clone();
    let tracker = ctx.tracker;
    let spec = match &params[2] {
        Value::Struct(members) => members,
        other => {
            return Err(Error::AttributeError(format!(
                "'{}' object has no attribute 'items'",
                other.python_type_name()
            )))
        }
    };
    let allowed: Vec<&(String, Value)> = spec
        .iter()
        .filter(|(k, _)| k.split('.').count() <= MAX_PATH_STEPS)
        .filter(|(k, _)| tracker.security.has_search_permission(ctx.user, &cn, k))
        .collect();
    let group = sort_pairs(params.get(4))?;
    let sort = sort_pairs(params.get(3))?;
    let mut sortattr: Vec<(bool, String)> = Vec::new();
    for (dir, prop) in group.into_iter().chain(sort) {
        if prop.is_empty()
            || prop.split('.').count() > MAX_PATH_STEPS
            || !tracker.security.has_search_permission(ctx.user, &cn, &prop)
        {
            continue;
        }
        if !sortattr.iter().any(|(_, p)| p == &prop) {
            sortattr.push((dir, prop));
        }
    }
    // Roundup iterates `search_matches` as Python does: a list's items, a
    // string's characters, a struct's keys, a Binary's byte values.
    let search_matches = match &params[1] {
        Value::Nil => None,
        Value::Array(ids) => Some(ids.iter().filter_map(value_id).collect::<Vec<Id>>()),
        Value::String(s) => Some(
            s.chars()
                .filter_map(|c| c.to_digit(10).filter(|_| c.is_ascii()))
                .map(Id::from)
                .collect::<std::collections::BTreeSet<Id>>()
                .into_iter()
                .collect(),
        ),
        Value::Struct(members) => Some(
            members
                .iter()
                .filter_map(|(k, _)| super::args::parse_id(k.trim()))
                .collect(),
        ),
        Value::Base64(bytes) => Some(
            bytes
                .iter()
                .map(|b| Id::from(*b))
                .collect::<std::collections::BTreeSet<Id>>()
                .into_iter()
                .collect(),
        ),
        other => {
            return Err(Error::TypeError(format!(
                "'{}' object is not iterable",
                other.python_type_name()
            )));
        }
    };
    if search_matches.as_ref().is_some_and(|ids| ids.is_empty()) {
        return Ok(Value::Array(Vec::new()));
    }
    let ids = query(ctx, &class, &allowed, sortattr, search_matches, Vec::new())?;
    let visible = if tracker.security.has_unchecked(ctx.user, "View", &cn) {
        ids
    } else {
        let mut v = Vec::with_capacity(ids.len());
        for id in ids {
            if tracker.security.has_permission(
                &mut *ctx.tx,
                ctx.user,
                "View",
                Some(&cn),
                None,
                Some(id),
            )? {
                v.push(id);
            }
        }
        v
    };
    Ok(Value::Array(
        visible
            .into_iter()
            .map(|i| Value::String(i.to_string()))
            .collect(),
    ))
}

/// Roundup's `Class.filter` without permission checks: the ids of the non-retired
/// items of `class` matching every `(property path, value)` of `spec` and the
/// `extra` conditions, among `search_matches` when given, sorted by `sortattr`
/// (`(descending, property path)`, `id` added last). Python detectors' `filter`
/// runs through here too.
pub(crate) fn query(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    spec: &[&(String, Value)],
    mut sortattr: Vec<(bool, String)>,
    search_matches: Option<Vec<Id>>,
    extra: Vec<Cond>,
) -> Result<Vec<Id>> {
    let schema = &ctx.tracker.schema;
    if !sortattr.iter().any(|(_, p)| p == "id") {
        sortattr.push((false, "id".into()));
    }
    let tz = user_tz(ctx);
    let mut conds = extra;
    for (key, value) in spec {
        if matches!(value, Value::Array(v) if v.len() > MAX_LIST_VALUES) {
            return Err(Error::ValueError(format!(
                "filter value for {key} has more than {MAX_LIST_VALUES} items"
            )));
        }
        let path: Vec<&str> = key.split('.').collect();
        conds.push(path_cond(
            schema,
            class,
            &path,
            value,
            ctx.user.id,
            tz,
            ctx.now,
        )?);
    }
    let sort_keys = sortattr
        .into_iter()
        .filter_map(|(desc, prop)| sort_key(schema, class, &prop, desc))
        .collect();
    let query = FilterQuery {
        search_matches,
        conds,
        sort: sort_keys,
    };
    Ok(ctx.tx.filter(class, &query)?)
}

/// Parses a sort or group argument: an array of `[direction, property]` pairs.
fn sort_pairs(v: Option<&Value>) -> Result<Vec<(bool, String)>> {
    let items = match v {
        None | Some(Value::Nil) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(Error::TypeError(format!(
                "'{}' object is not iterable",
                other.python_type_name()
            )))
        }
    };
    let mut out = Vec::new();
    for item in items {
        let pair: Vec<Value> = match item {
            Value::Array(p) => p.clone(),
            Value::String(s) => s.chars().map(|c| Value::String(c.to_string())).collect(),
            other => {
                return Err(Error::TypeError(format!(
                    "cannot unpack non-iterable {} object",
                    other.python_type_name()
                )))
            }
        };
        if pair.len() < 2 {
            return Err(Error::ValueError(format!(
                "not enough values to unpack (expected 2, got {})",
                pair.len()
            )));
        }
        if pair.len() > 2 {
            return Err(Error::ValueError(
                "too many values to unpack (expected 2)".into(),
            ));
        }
        let prop = match &pair[1] {
            Value::Nil => String::new(),
            Value::String(s) => s.clone(),
            other => {
                return Err(Error::AttributeError(format!(
                    "'{}' object has no attribute 'split'",
                    other.python_type_name()
                )))
            }
        };
        out.push((pair[0].as_str() == Some("-"), prop));
    }
    Ok(out)
}

/// An id from a client value (string or int); anything else matches nothing.
fn value_id(v: &Value) -> Option<Id> {
    match v {
        Value::String(s) => super::args::parse_id(s.trim()),
        Value::Int(i) if *i >= 0 => Some(*i),
        _ => None,
    }
}

/// The type of a property of `class`, automatic ones included.
fn kind_of(class: &ClassDef, prop: &str) -> Option<PropType> {
    super::args::prop_type(class, prop)
}

/// The condition for one (possibly dotted) filterspec key.
fn path_cond(
    schema: &Schema,
    class: &ClassDef,
    path: &[&str],
    v: &Value,
    uid: Id,
    tz: Tz,
    now: Date,
) -> Result<Cond> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(Cond::Never);
    };
    let Some(kind) = kind_of(class, first) else {
        return Ok(Cond::Never);
    };
    if rest.is_empty() {
        return leaf_cond(class, first, &kind, v, uid, tz, now);
    }
    let Some(target) = kind.link_target().and_then(|t| schema.class(t)) else {
        return Ok(Cond::Never);
    };
    let inner = path_cond(schema, target, rest, v, uid, tz, now)?;
    Ok(Cond::Via {
        prop: first.to_string(),
        inner: vec![inner],
    })
}

fn attr_error(v: &Value, attr: &str) -> Error {
    Error::AttributeError(format!(
        "'{}' object has no attribute '{attr}'",
        v.python_type_name()
    ))
}

/// A value as the string Roundup's SQL would compare it as.
fn text(v: &Value) -> String {
    py_str(v)
}

/// The condition for a Link or Multilink property: ids (`-1` matching an empty
/// value) or, when any operand is a negative operator, Roundup's expression
/// language. An empty list matches an empty value, as `-1` does.
fn link_cond(p: String, v: &Value, uid: Id, to_user: bool, multilink: bool) -> Result<Cond> {
    let make = |ids: Vec<i64>, empty: bool| {
        if multilink {
            Cond::MultilinkIn {
                prop: p.clone(),
                ids,
                empty,
            }
        } else {
            Cond::LinkIn {
                prop: p.clone(),
                ids,
                null: empty,
            }
        }
    };
    Ok(match v {
        Value::Array(items) => {
            let ops: Vec<Option<i64>> = items
                .iter()
                .map(|x| link_operand(x, uid, to_user))
                .collect();
            if ops.iter().all(|o| o.is_some()) && ops.iter().flatten().any(|&o| o < -1) {
                let ops: Vec<i64> = ops.into_iter().flatten().collect();
                Cond::Expr {
                    prop: p.clone(),
                    multilink,
                    expr: compile_expr(&ops)?,
                }
            } else {
                let empty = items.is_empty() || ops.contains(&Some(-1));
                make(
                    ops.into_iter().flatten().filter(|&o| o >= 0).collect(),
                    empty,
                )
            }
        }
        other => match link_operand(other, uid, to_user) {
            Some(-1) => make(vec![], true),
            Some(x) if x >= 0 => make(vec![x], false),
            _ => Cond::Never,
        },
    })
}

/// A Link/Multilink filter value: `-1` (or `None`) is "empty", `@current_user` the caller.
fn link_operand(v: &Value, uid: Id, to_user: bool) -> Option<i64> {
    match v {
        Value::Nil => Some(-1),
        Value::Int(i) => Some(*i),
        Value::String(s) if s == "@current_user" && to_user => Some(uid),
        Value::String(s) => {
            let t = s.trim();
            if let Some(d) = t.strip_prefix('-') {
                if !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()) {
                    return d.parse::<i64>().ok().map(|x| -x);
                }
                return None;
            }
            super::args::parse_id(t)
        }
        _ => None,
    }
}

/// Compiles Roundup's postfix expression (`-1` empty, `-2` not, `-3` and, `-4` or).
fn compile_expr(ops: &[i64]) -> Result<IdExpr> {
    let mut stack: Vec<(IdExpr, usize)> = Vec::new();
    let err = || Error::ValueError("invalid filter expression".into());
    let deep = || {
        Error::ValueError(format!(
            "filter expression nested deeper than {MAX_EXPR_DEPTH}"
        ))
    };
    for &op in ops {
        match op {
            -1 => stack.push((IdExpr::Empty, 1)),
            -2 => {
                let (x, d) = stack.pop().ok_or_else(err)?;
                stack.push((IdExpr::Not(Box::new(x)), d + 1));
            }
            -3 | -4 => {
                let (y, dy) = stack.pop().ok_or_else(err)?;
                let (x, dx) = stack.pop().ok_or_else(err)?;
                let node = if op == -3 {
                    IdExpr::And(Box::new(x), Box::new(y))
                } else {
                    IdExpr::Or(Box::new(x), Box::new(y))
                };
                stack.push((node, dx.max(dy) + 1));
            }
            x if x >= 0 => stack.push((IdExpr::Has(x), 1)),
            _ => return Err(err()),
        }
        if stack.last().is_some_and(|(_, d)| *d > MAX_EXPR_DEPTH) {
            return Err(deep());
        }
    }
    if stack.len() > MAX_EXPR_DEPTH {
        return Err(deep());
    }
    // Several operands left mean an implicit AND, as Roundup's expression compiler does.
    let mut it = stack.into_iter().map(|(e, _)| e);
    let first = it.next().ok_or_else(err)?;
    Ok(it.fold(first, |acc, x| IdExpr::And(Box::new(acc), Box::new(x))))
}

#[allow(clippy::too_many_arguments)]
fn leaf_cond(
    class: &ClassDef,
    prop: &str,
    kind: &PropType,
    v: &Value,
    uid: Id,
    tz: Tz,
    now: Date,
) -> Result<Cond> {
    let p = prop.to_string();
    if prop == "id" {
        let ids: Vec<Id> = match v {
            Value::Array(items) => items.iter().filter_map(value_id).collect(),
            other => value_id(other).into_iter().collect(),
        };
        return Ok(Cond::IdIn(ids));
    }
    let _ = class;
    Ok(match kind {
        PropType::String { .. } => {
            let values: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let mut needles = Vec::new();
            for x in values {
                match x {
                    Value::String(s) => needles.push(s.clone()),
                    other => return Err(attr_error(other, "replace")),
                }
            }
            if needles.len() > MAX_ALTERNATIVES {
                return Err(Error::ValueError(format!(
                    "more than {MAX_ALTERNATIVES} substrings for {p}"
                )));
            }
            Cond::Contains { prop: p, needles }
        }
        PropType::Link { class: target, .. } => link_cond(p, v, uid, target == "user", false)?,
        PropType::Multilink { class: target, .. } => link_cond(p, v, uid, target == "user", true)?,
        PropType::Date => match v {
            Value::Array(items) => {
                let mut values = Vec::new();
                for x in items {
                    let d = Date::parse(&text(x), Tz::default(), now)
                        .map_err(|e| Error::ValueError(e.to_string()))?;
                    values.push(Scalar::Text(d.serialise()));
                }
                Cond::ColumnIn { prop: p, values }
            }
            other if text(other).split(',').count() > MAX_ALTERNATIVES => {
                return Err(Error::ValueError(format!(
                    "more than {MAX_ALTERNATIVES} date ranges for {p}"
                )))
            }
            other => match parse_date_filter(&text(other), tz, now) {
                None => return Ok(Cond::Always),
                Some(ranges) => Cond::Dates {
                    prop: p,
                    alts: ranges
                        .into_iter()
                        .map(|r| match r {
                            DateRange::Null => DateAlt::Null,
                            DateRange::Between { from, to } => DateAlt::Range {
                                from: from.map(|d| d.serialise()),
                                to: to.map(|d| d.serialise()),
                            },
                        })
                        .collect(),
                },
            },
        },
        PropType::Interval => match v {
            Value::Array(items) => {
                let mut secs = Vec::new();
                for x in items {
                    let i = Interval::parse(&text(x), now)
                        .map_err(|e| Error::ValueError(e.to_string()))?;
                    secs.push(i.as_seconds());
                }
                Cond::IntervalIn { prop: p, secs }
            }
            other => match parse_interval_filter(&text(other), now) {
                None => return Ok(Cond::Always),
                Some(r) => Cond::IntervalRange {
                    prop: p,
                    from: r.from,
                    to: r.to,
                },
            },
        },
        PropType::Boolean => {
            let values: Vec<Value> = match v {
                Value::String(s) => s.split(',').map(|x| Value::String(x.to_string())).collect(),
                Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            let bools = values
                .iter()
                .map(|x| match x {
                    Value::String(s) => {
                        matches!(
                            s.trim().to_lowercase().as_str(),
                            "checked" | "yes" | "true" | "on" | "1"
                        )
                    }
                    Value::Bool(b) => *b,
                    Value::Int(i) => *i != 0,
                    Value::Double(d) => *d != 0.0,
                    Value::Nil => false,
                    _ => true,
                })
                .map(|b| Scalar::Int(b as i64))
                .collect();
            Cond::ColumnIn {
                prop: p,
                values: bools,
            }
        }
        PropType::Number | PropType::Integer | PropType::Password => {
            let values: Vec<&Value> = match v {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            Cond::ColumnIn {
                prop: p,
                values: values
                    .into_iter()
                    .map(|x| match x {
                        Value::Int(i) => Scalar::Int(*i),
                        Value::Double(d) => Scalar::Real(*d),
                        Value::Bool(b) => Scalar::Int(*b as i64),
                        other => Scalar::Text(text(other)),
                    })
                    .collect(),
            }
        }
    })
}

/// The sort key for a (possibly dotted) property; Link and Multilink paths end in
/// the target class's order property.
fn sort_key(schema: &Schema, class: &ClassDef, prop: &str, descending: bool) -> Option<SortKey> {
    let mut path: Vec<String> = Vec::new();
    let mut cls = class;
    let mut last: Option<PropType> = None;
    for step in prop.split('.') {
        if let Some(t) = last.as_ref().and_then(|k| k.link_target()) {
            cls = schema.class(t)?;
        }
        let kind = kind_of(cls, step)?;
        path.push(step.to_string());
        last = Some(kind);
    }
    if let Some(target) = last
        .as_ref()
        .and_then(|k| k.link_target())
        .and_then(|t| schema.class(t))
    {
        path.push(target.orderprop());
    }
    Some(SortKey { path, descending })
}
