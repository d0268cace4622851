//! Argument handling shared by the methods: Python-style arity errors,
//! designators, and `props_from_args` (the `prop=value` form, reference §3).

use crate::error::{Error, Result};
use crate::hyperdb::{Date, Interval, Tz};
use crate::items::{Changes, Ctx, PropMap};
use crate::schema::{ClassDef, ClassKind, PropType};
use crate::store::pyrepr::{float_repr, str_repr};
use crate::store::{Id, Multilinks, PropValue};
use crate::xmlrpc::Value;

/// Python's `str()` of a value, for messages that interpolate client values.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::String(s) => s.clone(),
        Value::Double(d) => float_repr(*d),
        Value::DateTime(t) => t.clone(),
        Value::Base64(b) => format!("b{}", str_repr(&String::from_utf8_lossy(b))),
        Value::Nil => "None".into(),
        Value::Struct(_) => "{...}".into(),
        Value::Array(_) => "[...]".into(),
    }
}

fn quoted_list(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match q.len() {
        0 => String::new(),
        1 => q[0].clone(),
        2 => format!("{} and {}", q[0], q[1]),
        _ => format!("{}, and {}", q[..q.len() - 1].join(", "), q[q.len() - 1]),
    }
}

/// Checks the number of arguments like Python does for
/// `RoundupInstance.<method>(self, required..., optional=..., *varargs)`.
pub fn arity(
    method: &str,
    params: &[Value],
    required: &[&str],
    optional: usize,
    varargs: bool,
) -> Result<()> {
    if params.len() < required.len() {
        let missing = &required[params.len()..];
        return Err(Error::TypeError(format!(
            "RoundupInstance.{method}() missing {} required positional argument{}: {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            quoted_list(missing)
        )));
    }
    let max = required.len() + optional;
    if !varargs && params.len() > max {
        let given = params.len() + 1;
        let takes = if optional == 0 {
            format!(
                "{} positional argument{}",
                max + 1,
                if max == 0 { "" } else { "s" }
            )
        } else {
            format!(
                "from {} to {} positional arguments",
                required.len() + 1,
                max + 1
            )
        };
        return Err(Error::TypeError(format!(
            "RoundupInstance.{method}() takes {takes} but {given} {} given",
            if given == 1 { "was" } else { "were" }
        )));
    }
    Ok(())
}

/// A class name argument as text (Roundup formats whatever it gets into the
/// unknown-class message).
pub fn class_arg(v: &Value) -> String {
    py_str(v)
}

/// Roundup's `splitDesignator`: `^([A-Za-z](?:[A-Za-z_0-9]*[A-Za-z_]+)?)(\d+)$`.
/// Returns the class name and the id text as given (leading zeros kept).
pub fn split_designator(v: &Value) -> Result<(String, String)> {
    let d = match v {
        Value::String(s) => s.as_str(),
        other => {
            return Err(Error::TypeError(format!(
                "expected string or bytes-like object, got '{}'",
                other.python_type_name()
            )))
        }
    };
    let digits = d.len() - d.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (class, id) = d.split_at(d.len() - digits);
    let bytes = class.as_bytes();
    let ok = !id.is_empty()
        && !class.is_empty()
        && bytes[0].is_ascii_alphabetic()
        && class
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && (class.len() == 1 || !bytes[class.len() - 1].is_ascii_digit());
    if !ok {
        return Err(Error::DesignatorError(format!(
            "\"{d}\" not a node designator"
        )));
    }
    Ok((class.to_string(), id.to_string()))
}

/// An id given as text; ids too large for storage simply do not exist.
pub fn parse_id(text: &str) -> Option<Id> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The time zone for Date input: the user's `timezone`, else the tracker's.
pub fn user_tz(ctx: &mut Ctx<'_>) -> Tz {
    let tracker_tz = Tz::from_roundup_str(&ctx.tracker.settings.main.timezone).unwrap_or_default();
    let Some(users) = ctx.tracker.schema.class("user") else {
        return tracker_tz;
    };
    if users.prop("timezone").is_none() {
        return tracker_tz;
    }
    match ctx.tx.get(users, ctx.user.id, Multilinks::None) {
        Ok(Some(u)) => match u.get("timezone") {
            Some(PropValue::String(t)) if !t.is_empty() => match Tz::from_roundup_str(t) {
                Ok(tz) if tz.check().is_ok() => tz,
                _ => tracker_tz,
            },
            _ => tracker_tz,
        },
        _ => tracker_tz,
    }
}

/// The type of a property as `getprops()` sees it (automatic ones included).
pub fn prop_type(class: &ClassDef, name: &str) -> Option<PropType> {
    match name {
        "id" => Some(PropType::String { indexme: false }),
        "creation" | "activity" => Some(PropType::Date),
        "creator" | "actor" => Some(PropType::Link {
            class: "user".into(),
            do_journal: false,
        }),
        _ => class.prop(name).map(|p| p.kind.clone()),
    }
}

/// Python's `float()` on already stripped text.
pub fn py_float(s: &str) -> Option<f64> {
    let cleaned = strip_underscores(s)?;
    let lower = cleaned.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return cleaned.parse().ok();
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'+' || b == b'-')
    {
        return None;
    }
    cleaned.parse().ok()
}

/// Python's `int()` on already stripped text (decimal only).
pub fn py_int(s: &str) -> Option<i64> {
    let cleaned = strip_underscores(s)?;
    let digits = cleaned.strip_prefix(['+', '-']).unwrap_or(&cleaned);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cleaned.parse().ok()
}

/// Removes `_` digit separators, which Python allows only between digits.
fn strip_underscores(s: &str) -> Option<String> {
    if !s.contains('_') {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let before = i > 0 && b[i - 1].is_ascii_digit();
            let after = b.get(i + 1).is_some_and(|x| x.is_ascii_digit());
            if !(before && after) {
                return None;
            }
        }
    }
    Some(s.replace('_', ""))
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Roundup's `convertLinkValue`: an id, or a key value of the target class.
fn link_value(ctx: &mut Ctx<'_>, prop: &str, target: &ClassDef, value: &str) -> Result<Id> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Existence is checked when the item is written; absurdly long ids exist nowhere.
        return Ok(value.parse().unwrap_or(Id::MAX));
    }
    match &target.key {
        Some(key) => ctx.tx.lookup(target, key, value)?.ok_or_else(|| {
            Error::UsageError(format!(
                "property {prop}: {} is not a {}.",
                str_repr(value),
                target.name
            ))
        }),
        None => Err(Error::UsageError(format!(
            "you may only enter ID values for property {prop}"
        ))),
    }
}

/// Roundup's `rawToHyperdb` for a non-empty value (already known to be a property).
fn raw_to_value(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    itemid: Option<Id>,
    prop: &str,
    kind: &PropType,
    raw: &str,
) -> Result<Option<PropValue>> {
    let value = py_strip(raw);
    let tracker = ctx.tracker;
    let target = |_: &Ctx<'_>| {
        kind.link_target()
            .and_then(|t| tracker.schema.class(t))
            .ok_or_else(|| Error::Internal("schema link to unknown class".into()))
    };
    Ok(match kind {
        PropType::String { .. } => {
            if prop == "content" {
                Some(PropValue::String(value.to_string()))
            } else {
                Some(PropValue::String(
                    value.replace("\r\n", "\n").replace('\r', "\n"),
                ))
            }
        }
        PropType::Password => {
            if value.is_empty() {
                return Ok(None);
            }
            let stored = ctx
                .tracker
                .settings
                .hash_policy()
                .from_input(value)
                .map_err(|e| Error::UsageError(format!("property {prop}: {e}")))?;
            Some(PropValue::Password(stored))
        }
        PropType::Date => {
            let tz = user_tz(ctx);
            let d = Date::parse(value, tz, ctx.now).map_err(|e| {
                Error::UsageError(format!(
                    "property {prop}: {} is an invalid date ({e})",
                    str_repr(value)
                ))
            })?;
            Some(PropValue::Date(d))
        }
        PropType::Interval => {
            let i = Interval::parse(value, ctx.now).map_err(|e| {
                Error::UsageError(format!(
                    "property {prop}: {} is an invalid date interval ({e})",
                    str_repr(value)
                ))
            })?;
            Some(PropValue::Interval(i))
        }
        PropType::Link { .. } => {
            if value == "-1" || value.is_empty() {
                None
            } else {
                let t = target(ctx)?;
                Some(PropValue::Link(link_value(ctx, prop, t, value)?))
            }
        }
        PropType::Multilink { .. } => {
            let t = target(ctx)?;
            let mut current: Vec<Id> = match itemid {
                Some(id) => match ctx.tx.get(class, id, Multilinks::Only(&[prop]))? {
                    Some(item) => match item.get(prop) {
                        Some(PropValue::Multilink(v)) => v.clone(),
                        _ => Vec::new(),
                    },
                    None => return Err(Error::IndexError(format!("no such {} {id}", class.name))),
                },
                None => Vec::new(),
            };
            let mut do_set = true;
            let mut new_value = Vec::new();
            for item in value.split(',') {
                let item = py_strip(item);
                if item.is_empty() {
                    continue;
                }
                let (remove, item) = if let Some(rest) = item.strip_prefix('-') {
                    do_set = false;
                    (true, py_strip(rest))
                } else if let Some(rest) = item.strip_prefix('+') {
                    do_set = false;
                    (false, py_strip(rest))
                } else {
                    (false, item)
                };
                let id = link_value(ctx, prop, t, item)?;
                if remove {
                    current.retain(|x| *x != id);
                } else {
                    new_value.push(id);
                    if !current.contains(&id) {
                        current.push(id);
                    }
                }
            }
            let mut v = if do_set { new_value } else { current };
            v.sort_unstable();
            v.dedup();
            Some(PropValue::Multilink(v))
        }
        PropType::Boolean => Some(PropValue::Boolean(matches!(
            value.to_lowercase().as_str(),
            "checked" | "yes" | "true" | "on" | "1"
        ))),
        PropType::Number => Some(PropValue::Number(py_float(value).ok_or_else(|| {
            Error::UsageError(format!(
                "property {prop}: {} is not a number",
                str_repr(value)
            ))
        })?)),
        PropType::Integer => Some(PropValue::Integer(py_int(value).ok_or_else(|| {
            Error::UsageError(format!(
                "property {prop}: {} is not an integer",
                str_repr(value)
            ))
        })?)),
    })
}

/// Roundup's `props_from_args`: parses `prop=value` arguments (Binary arguments
/// too: their bytes are split the same way, and a FileClass `content` keeps them
/// exactly). `itemid` is the item being changed (for Multilink `+`/`-`).
pub fn props_from_args(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    args: &[Value],
    itemid: Option<Id>,
) -> Result<Changes> {
    let mut changes = Changes {
        props: PropMap::new(),
        content: None,
    };
    for arg in args {
        let (key, raw): (String, Vec<u8>) = match arg {
            Value::String(s) => match s.split_once('=') {
                Some((k, v)) => (k.to_string(), v.as_bytes().to_vec()),
                None => {
                    return Err(Error::UsageError(format!(
                        "argument \"{s}\" not propname=value"
                    )))
                }
            },
            Value::Base64(b) => match b.iter().position(|&c| c == b'=') {
                Some(p) => (
                    String::from_utf8_lossy(&b[..p]).into_owned(),
                    b[p + 1..].to_vec(),
                ),
                None => {
                    return Err(Error::UsageError(format!(
                        "argument \"{}\" not propname=value",
                        String::from_utf8_lossy(b)
                    )))
                }
            },
            other => {
                return Err(Error::AttributeError(format!(
                    "'{}' object has no attribute 'split'",
                    other.python_type_name()
                )))
            }
        };
        let is_content = class.kind == ClassKind::FileClass && py_strip(&key) == "content";
        if raw.is_empty() {
            if is_content {
                changes.content = Some(Vec::new());
            } else {
                if prop_type(class, &key).is_none() {
                    return Err(Error::KeyError(key));
                }
                changes.props.insert(&key, None);
            }
            continue;
        }
        let name = py_strip(&key).to_string();
        let Some(kind) = prop_type(class, &name) else {
            return Err(Error::UsageError(format!(
                "{} is not a property of {}",
                str_repr(&name),
                class.name
            )));
        };
        if is_content {
            let bytes = match arg {
                Value::Base64(_) => raw,
                _ => py_strip(&String::from_utf8_lossy(&raw)).as_bytes().to_vec(),
            };
            changes.content = Some(bytes);
            continue;
        }
        let text = String::from_utf8(raw)
            .map_err(|_| Error::UsageError(format!("property {name}: value is not UTF-8 text")))?;
        let value = raw_to_value(ctx, class, itemid, &name, &kind, &text)?;
        changes.props.insert(&name, value);
    }
    Ok(changes)
}

/// The names the caller passed, as they count for permission checks: property
/// names, with `content` included when given.
pub fn changed_names(changes: &Changes) -> Vec<String> {
    let mut names: Vec<String> = changes.props.iter().map(|(k, _)| k.to_string()).collect();
    if changes.content.is_some() {
        names.push("content".into());
    }
    names
}
