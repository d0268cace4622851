//! `userauditor.py` (the same in every template): validates usernames, addresses,
//! roles and time zones on create and set. Whatever class it runs on, addresses
//! are checked for uniqueness among the users (`db.user`, as Roundup's code does).

use crate::error::{Error, Result};
use crate::items::{Changes, Ctx};
use crate::store::{Cond, FilterQuery, Id, Multilinks, PropValue};
use regex::Regex;
use std::sync::LazyLock;

const LOCAL: &str = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*";
const DOMAIN: &str =
    r"(localhost|(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9]))";

static EMAIL_RFC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i)^{LOCAL}@{DOMAIN}$")).expect("valid regex"));
static EMAIL_LOCAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("(?i)^{LOCAL}$")).expect("valid regex"));
static USERNAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^[a-z0-9_@!%.+-]+$").expect("valid regex"));

fn valid_address(a: &str) -> bool {
    if a.contains('@') {
        EMAIL_RFC.is_match(a)
    } else {
        EMAIL_LOCAL.is_match(a)
    }
}

fn text(changes: &Changes, prop: &str) -> Option<String> {
    match changes.props.get(prop) {
        Some(Some(PropValue::String(s))) => Some(s.clone()),
        _ => None,
    }
}

/// The username, address, role and time zone checks of `audit_user_fields`.
pub fn audit_user_fields(ctx: &mut Ctx<'_>, id: Option<Id>, changes: &mut Changes) -> Result<()> {
    let tracker = ctx.tracker;
    let Some(class) = tracker.schema.class("user") else {
        return Err(Error::AttributeError(
            "'Database' object has no attribute 'user'".into(),
        ));
    };
    // An empty argument arrives as None; Roundup's code trips over it.
    if changes.props.get("username") == Some(&None) {
        return Err(Error::TypeError(
            "expected string or bytes-like object, got 'NoneType'".into(),
        ));
    }
    if changes.props.get("address") == Some(&None) {
        return Err(Error::TypeError(
            "argument of type 'NoneType' is not iterable".into(),
        ));
    }
    if changes.props.contains("username") {
        let name = text(changes, "username").unwrap_or_default();
        if !USERNAME.is_match(&name) {
            return Err(Error::ValueError(
                "Username/Login Name must consist only of the letters a-z (any case), digits 0-9 and the symbols: @._-!+%"
                    .into(),
            ));
        }
    }
    let mut addresses = Vec::new();
    if changes.props.contains("address") {
        addresses.push(text(changes, "address").unwrap_or_default());
    }
    if let Some(alts) = text(changes, "alternate_addresses").filter(|a| !a.is_empty()) {
        addresses.extend(alts.split('\n').map(str::to_string));
    }
    for address in addresses {
        if !valid_address(&address) {
            return Err(Error::ValueError(format!(
                "Email address syntax is invalid \"{address}\""
            )));
        }
        let q = FilterQuery {
            conds: vec![Cond::Contains {
                prop: "address".into(),
                needles: vec![address.clone()],
            }],
            ..Default::default()
        };
        let mut in_use = false;
        for other in ctx.tx.filter(class, &q)? {
            if Some(other) == id {
                continue;
            }
            if let Some(u) = ctx.tx.get(class, other, Multilinks::None)? {
                if matches!(u.get("address"), Some(PropValue::String(a)) if a.to_lowercase() == address.to_lowercase())
                {
                    in_use = true;
                }
            }
        }
        if class.prop("alternate_addresses").is_some() {
            let q = FilterQuery {
                conds: vec![Cond::Contains {
                    prop: "alternate_addresses".into(),
                    needles: vec![address.clone()],
                }],
                ..Default::default()
            };
            if ctx.tx.filter(class, &q)?.into_iter().any(|x| Some(x) != id) {
                in_use = true;
            }
        }
        if in_use {
            return Err(Error::ValueError(format!(
                "Email address {address} already in use"
            )));
        }
    }
    if let Some(roles) = text(changes, "roles") {
        for r in roles.split(',').map(|r| r.trim().to_lowercase()) {
            if !r.is_empty() && !ctx.tracker.schema.has_role(&r) {
                return Err(Error::ValueError(format!("Role \"{r}\" does not exist")));
            }
        }
    }
    if let Some(tz) = text(changes, "timezone").filter(|t| !t.is_empty()) {
        check_timezone(&tz)?;
    }
    Ok(())
}

/// Roundup's time zone check without pytz: integer offsets in -23..=23 and a few
/// names; anything else is the KeyError Roundup lets through.
pub fn check_timezone(tz: &str) -> Result<()> {
    if let Ok(n) = tz.trim().parse::<i64>() {
        if (-23..=23).contains(&n) {
            return Ok(());
        }
        return Err(Error::ValueError(format!(
            "Timezone \"{tz}\" exceeds valid range [-23...23]"
        )));
    }
    if ["UTC", "GMT", "UCT", "EST", "MST", "HST"].contains(&tz) {
        return Ok(());
    }
    Err(Error::KeyError(tz.to_string()))
}
