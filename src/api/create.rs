//! `create(classname, *args)` (reference §2.5).

use super::args::{arity, changed_names, class_arg, props_from_args};
use crate::error::{Error, Result};
use crate::items::{self, Ctx};
use crate::xmlrpc::Value;

/// Creates an item after Roundup's checks, in Roundup's order: class-level
/// Create, the class, the arguments, the key property, property-level Create.
pub fn create(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity("create", params, &["classname"], 0, true)?;
    let cn = class_arg(&params[0]);
    let tracker = ctx.tracker;
    if !tracker
        .security
        .has_permission_static(ctx.user, "Create", Some(&cn), None)
    {
        return Err(Error::Unauthorised(format!(
            "Permission to create {cn} denied"
        )));
    }
    let class = ctx.class(&cn)?.clone();
    let changes = props_from_args(ctx, &class, &params[1..], None)?;
    if let Some(key) = &class.key {
        if !changes.props.contains(key) {
            return Err(Error::UsageError(format!(
                "you must provide the \"{key}\" property."
            )));
        }
    }
    for name in changed_names(&changes) {
        if !tracker
            .security
            .has_permission_static(ctx.user, "Create", Some(&cn), Some(&name))
        {
            return Err(Error::Unauthorised(format!(
                "Permission to create {cn}.{name} denied"
            )));
        }
    }
    let id = items::create(ctx, &class, changes).map_err(Error::into_usage)?;
    Ok(Value::String(id.to_string()))
}
