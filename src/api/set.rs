//! `set(designator, *args)` (reference §2.6).

use super::args::{arity, changed_names, parse_id, props_from_args, py_str, split_designator};
use super::values::{encode, password_struct, BoolAs};
use crate::error::{Error, Result};
use crate::items::{self, Ctx};
use crate::store::PropValue;
use crate::xmlrpc::Value;

/// Changes an item; returns the properties that actually changed.
pub fn set(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity("set", params, &["designator"], 0, true)?;
    let (cn, id_text) = split_designator(&params[0])?;
    let class = ctx.class(&cn)?.clone();
    let id = parse_id(&id_text);
    let no_such = || Error::UsageError(format!("no such {cn} {id_text}"));
    if let Some(id) = id {
        // `+x`/`-x` arguments are applied to the current value: other daemons'
        // changes of this item wait from here until this one commits.
        ctx.tx.lock_item(&class, id)?;
        // "Now" from after the wait: journal dates follow the item's commit order.
        ctx.now = ctx.now.max(crate::hyperdb::date::Date::now());
    }
    let changes = props_from_args(ctx, &class, &params[1..], id)?;
    let tracker = ctx.tracker;
    for name in changed_names(&changes) {
        let allowed = match id {
            Some(i) => tracker.security.has_permission(
                &mut *ctx.tx,
                ctx.user,
                "Edit",
                Some(&cn),
                Some(&name),
                Some(i),
            )?,
            None => {
                tracker
                    .security
                    .has_permission_static(ctx.user, "Edit", Some(&cn), Some(&name))
            }
        };
        if !allowed {
            return Err(Error::Unauthorised(format!(
                "Permission to edit {name} of {} denied",
                py_str(&params[0])
            )));
        }
    }
    let Some(id) = id else { return Err(no_such()) };
    let result = items::set(ctx, &class, id, changes).map_err(Error::into_usage)?;
    let members = result
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Some(PropValue::Password(p)) => password_struct(Some(p)),
                other => encode(other.as_ref(), BoolAs::Bool),
            };
            (k.to_string(), value)
        })
        .collect();
    Ok(Value::Struct(members))
}
