//! `list(classname, propname=None)` (reference §2.2).

use super::args::{arity, class_arg, py_str};
use super::values::{encode, BoolAs};
use crate::error::{Error, Result};
use crate::items::Ctx;
use crate::schema::ClassKind;
use crate::xmlrpc::Value;

/// The property (default: the label property) of every non-retired item the
/// user may view; items that may not be viewed are silently left out.
pub fn list(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity("list", params, &["classname"], 1, false)?;
    let cn = class_arg(&params[0]);
    let class = ctx.class(&cn)?.clone();
    let prop = match params.get(1) {
        None | Some(Value::Nil) => class.labelprop(),
        Some(Value::String(s)) if s.is_empty() => class.labelprop(),
        Some(v) => py_str(v),
    };
    // FileClass content lives in files, not in a column: read per item, as
    // `display` shows it (text, or the "not text" notice; `binary_content` as
    // Binary).
    let file_content =
        class.kind == ClassKind::FileClass && (prop == "content" || prop == "binary_content");
    let known = prop == "id" || file_content || super::args::prop_type(&class, &prop).is_some();
    let tracker = ctx.tracker;
    let user = ctx.user;
    let column = if known && !file_content {
        ctx.tx.column(&class, &prop)?
    } else {
        ctx.tx
            .list(&class)?
            .into_iter()
            .map(|i| (i, None))
            .collect()
    };
    // One answer for the whole column when a grant without a check covers it;
    // otherwise the check runs per item, as Roundup does.
    let all_visible =
        tracker
            .security
            .has_permission_unchecked(user, "View", Some(&cn), Some(&prop));
    let mut out = Vec::with_capacity(column.len());
    for (id, value) in column {
        if !all_visible
            && !tracker.security.has_permission(
                &mut *ctx.tx,
                user,
                "View",
                Some(&cn),
                Some(&prop),
                Some(id),
            )?
        {
            continue;
        }
        if !known {
            return Err(Error::KeyError(prop));
        }
        if file_content {
            out.push(if prop == "content" {
                super::display::content_text(ctx, &class, id)?
            } else {
                Value::Base64(ctx.tx.content(&class, id)?.unwrap_or_default())
            });
            continue;
        }
        match value {
            Some(crate::store::PropValue::Password(p)) => {
                out.push(super::values::password_struct(Some(&p)))
            }
            // Moved, not copied: ten thousand titles are most of a list's work.
            Some(crate::store::PropValue::String(s)) => out.push(Value::String(s)),
            value => out.push(encode(value.as_ref(), BoolAs::Int)),
        }
    }
    Ok(Value::Array(out))
}
