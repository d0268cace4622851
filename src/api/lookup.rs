//! `lookup(classname, keyvalue)` (reference §2.7).

use super::args::{arity, class_arg, py_str};
use crate::error::{Error, Result};
use crate::items::Ctx;
use crate::store::{Multilinks, PropValue};
use crate::xmlrpc::Value;

/// The id of the non-retired item whose key property equals `keyvalue`.
pub fn lookup(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity("lookup", params, &["classname", "key"], 0, false)?;
    let cn = class_arg(&params[0]);
    let class = ctx.class(&cn)?.clone();
    let tracker = ctx.tracker;
    let key = class.key.clone();
    let keyname = key.clone().unwrap_or_default();
    let search_ok = key
        .as_ref()
        .is_some_and(|k| tracker.security.has_search_permission(ctx.user, &cn, k));
    let view_ok =
        tracker
            .security
            .has_permission_static(ctx.user, "View", Some(&cn), key.as_deref());
    if !search_ok && !view_ok {
        return Err(Error::Unauthorised(format!(
            "Permission to lookup {cn} denied"
        )));
    }
    let Some(key) = key else {
        return Err(Error::TypeError(format!(
            "No key property set for class {cn}"
        )));
    };
    let mut value = py_str(&params[1]);
    if value == "@current_user" && cn == "user" {
        if let Some(u) = ctx.tx.get(&class, ctx.user.id, Multilinks::None)? {
            if let Some(PropValue::String(name)) = u.get(&key) {
                value = name.clone();
            }
        }
    }
    match ctx.tx.lookup(&class, &key, &value)? {
        Some(id) => Ok(Value::String(id.to_string())),
        None => Err(Error::KeyError(format!(
            "No key ({keyname}) value \"{value}\" for \"{cn}\""
        ))),
    }
}
