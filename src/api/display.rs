//! `display(designator, *propnames)` (reference §2.4).

use super::args::{arity, parse_id, prop_type, py_str, split_designator};
use super::values::{encode, password_struct, BoolAs};
use crate::error::{Error, Result};
use crate::items::Ctx;
use crate::schema::{ClassDef, ClassKind};
use crate::store::{Multilinks, PropValue};
use crate::xmlrpc::Value;

/// The text Roundup shows for FileClass content (reference §2.3).
pub(super) fn content_text(ctx: &mut Ctx<'_>, class: &ClassDef, id: i64) -> Result<Value> {
    match ctx.tx.content(class, id)? {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Ok(Value::String(s)),
            Err(e) => {
                let digest = md5_hex(e.as_bytes());
                Ok(Value::String(format!(
                    "{}{id} is not text, retrieve using binary_content property. mdsum: {digest}",
                    class.name
                )))
            }
        },
        None => Ok(Value::String(format!(
            "ERROR reading file: {}{id}\nPossibly an access right configuration problem.\n[Errno 2] No such file or directory",
            class.name
        ))),
    }
}

fn md5_hex(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// The requested properties of one item, all-or-nothing on View permission.
pub fn display(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity("display", params, &["designator"], 0, true)?;
    let (cn, id_text) = split_designator(&params[0])?;
    let class = ctx.class(&cn)?.clone();
    let mut props: Vec<String> = if params.len() > 1 {
        params[1..].iter().map(py_str).collect()
    } else {
        class.properties.iter().map(|p| p.name.clone()).collect()
    };
    props.sort();
    props.dedup();
    let id = parse_id(&id_text);
    let tracker = ctx.tracker;
    let user = ctx.user;
    let mut result: Option<Vec<(String, Value)>> = None;
    for p in &props {
        let allowed = match id {
            Some(i) => tracker.security.has_permission(
                &mut *ctx.tx,
                user,
                "View",
                Some(&cn),
                Some(p),
                Some(i),
            )?,
            None => tracker
                .security
                .has_permission_static(user, "View", Some(&cn), Some(p)),
        };
        if !allowed {
            return Err(Error::Unauthorised(format!(
                "Permission to view {p} of {} denied",
                py_str(&params[0])
            )));
        }
        if result.is_none() {
            result = Some(values(ctx, &class, &id_text, &props)?);
        }
    }
    Ok(Value::Struct(result.unwrap_or_default()))
}

/// Roundup's `cl.get(itemid, prop)` for each prop.
fn values(
    ctx: &mut Ctx<'_>,
    class: &ClassDef,
    id_text: &str,
    props: &[String],
) -> Result<Vec<(String, Value)>> {
    let mut item = None;
    let mut out = Vec::with_capacity(props.len());
    for p in props {
        if p == "id" {
            out.push((p.clone(), Value::String(id_text.to_string())));
            continue;
        }
        if item.is_none() {
            let found = match parse_id(id_text) {
                Some(i) => ctx.tx.get(class, i, Multilinks::All)?,
                None => None,
            };
            item =
                Some(found.ok_or_else(|| {
                    Error::IndexError(format!("no such {} {id_text}", class.name))
                })?);
        }
        let Some(it) = item.as_ref() else { continue };
        let is_file = class.kind == ClassKind::FileClass;
        let v = if is_file && p == "content" {
            content_text(ctx, class, it.id)?
        } else if is_file && p == "binary_content" {
            Value::Base64(ctx.tx.content(class, it.id)?.unwrap_or_default())
        } else if prop_type(class, p).is_none() {
            return Err(Error::KeyError(p.clone()));
        } else {
            match it.get(p) {
                Some(PropValue::Password(h)) => password_struct(Some(h)),
                other => encode(other, BoolAs::Int),
            }
        };
        out.push((p.clone(), v));
    }
    Ok(out)
}
