//! `action(name, *args)` with the built-in `retire` and `restore` (reference §2.8).

use super::args::{parse_id, py_str, split_designator};
use crate::error::{Error, Result};
use crate::items::{self, Ctx};
use crate::store::{Multilinks, PropValue};
use crate::xmlrpc::Value;

/// Runs `retire` or `restore` on one designator.
pub fn action(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    super::args::arity("action", params, &["name"], 0, true)?;
    let name = py_str(&params[0]);
    if name != "retire" && name != "restore" {
        return Err(Error::Exception(format!(
            "action \"{name}\" is not supported "
        )));
    }
    let args = &params[1..];
    if args.is_empty() {
        return Err(Error::TypeError(
            "PermCheck.permission() missing 1 required positional argument: 'designator'".into(),
        ));
    }
    if args.len() > 1 {
        return Err(Error::TypeError(format!(
            "PermCheck.permission() takes 2 positional arguments but {} were given",
            args.len() + 1
        )));
    }
    let (cn, id_text) = split_designator(&args[0])?;
    let tracker = ctx.tracker;
    let id = parse_id(&id_text);
    let allowed = match id {
        Some(i) if tracker.schema.class(&cn).is_some() => tracker.security.has_permission(
            &mut *ctx.tx,
            ctx.user,
            "Retire",
            Some(&cn),
            None,
            Some(i),
        )?,
        _ => tracker
            .security
            .has_permission_static(ctx.user, "Retire", Some(&cn), None),
    };
    if !allowed {
        return Err(Error::Unauthorised(format!(
            "You do not have permission to retire or restore the {cn} class."
        )));
    }
    let class = ctx.class(&cn)?.clone();
    let Some(id) = id else {
        return Err(Error::IndexError(format!("no such {cn} {id_text}")));
    };
    if name == "retire" {
        if cn == "user" {
            if let Some(u) = ctx.tx.get(&class, id, Multilinks::None)? {
                if matches!(u.get("username"), Some(PropValue::String(n)) if n == "admin" || n == "anonymous")
                {
                    return Err(Error::ValueError(
                        "You may not retire the admin or anonymous user".into(),
                    ));
                }
            }
        }
        items::retire(ctx, &class, id)?;
    } else {
        items::restore(ctx, &class, id)?;
    }
    Ok(Value::Nil)
}
