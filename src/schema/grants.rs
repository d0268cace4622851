//! Roles and grants of `schema.toml` (`[[role]]`, `[[grant]]`), checked against the
//! classes, plus what Roundup's core grants by itself: the built-in roles and the
//! ten global permissions of the Admin role ([`implicit_grants`]).

use std::ops::Range;

use super::check::{CheckExpr, CompareOp};
use super::load::AUTOMATIC_PROPS;
use super::source::{Ctx, SchemaError, V};
use super::{ClassDef, Grant, Role};

/// The roles Roundup's `Security` creates by itself, with their descriptions, in
/// Roundup's order.
pub const BUILTIN_ROLES: [(&str, &str); 3] = [
    ("User", "A regular user, no privs"),
    ("Admin", "An admin user, full privs"),
    ("Anonymous", "An anonymous user"),
];

pub(crate) fn parse_roles(cx: &Ctx<'_>, v: Option<&V<'_>>) -> Result<Vec<Role>, SchemaError> {
    let mut roles: Vec<Role> = BUILTIN_ROLES
        .iter()
        .map(|(n, d)| Role {
            name: n.to_string(),
            description: d.to_string(),
        })
        .collect();
    let Some(v) = v else {
        return Ok(roles);
    };
    let arr = cx.array(v, "\"role\" (write [[role]])")?;
    let mut declared: Vec<String> = Vec::new();
    for r in arr.iter() {
        let t = cx.table(r, "each [[role]]")?;
        cx.check_keys(t, &["name", "description"], "[[role]]")?;
        let Some(nv) = t.get("name") else {
            return Err(cx.err(r.span(), "[[role]] needs a \"name\""));
        };
        let name = cx.string(nv, "the role name")?;
        if name.is_empty() || name.trim() != name || name.contains(',') {
            return Err(cx.err(
                nv.span(),
                format!(
                    "invalid role name \"{name}\": it must be non-empty, without commas and \
                     without leading or trailing spaces"
                ),
            ));
        }
        let lower = name.to_lowercase();
        if declared.contains(&lower) {
            return Err(cx.err(
                nv.span(),
                format!("role \"{name}\" is declared twice (role names ignore case)"),
            ));
        }
        declared.push(lower.clone());
        let description = match t.get("description") {
            Some(dv) => Some(cx.string(dv, "the role description")?.to_string()),
            None => None,
        };
        if let Some(existing) = roles.iter_mut().find(|r| r.name.to_lowercase() == lower) {
            if let Some(d) = description {
                existing.description = d;
            }
        } else {
            roles.push(Role {
                name: name.to_string(),
                description: description.unwrap_or_default(),
            });
        }
    }
    Ok(roles)
}

/// The ten global permissions Roundup's core (`security.py`, `cgi/client.py`,
/// `mailgw.py`) creates and gives to the Admin role before the schema runs, in
/// Roundup's order. `parse_schema` puts them first in [`super::Schema::grants`].
pub fn implicit_grants() -> Vec<Grant> {
    let mut out = Vec::new();
    for p in ["Create", "Edit", "Restore", "Retire", "View"] {
        out.push(admin_grant(
            p,
            &format!("User may {} everything", p.to_lowercase()),
        ));
    }
    for (p, d) in [
        ("Web Access", "User may access the web interface"),
        ("Rest Access", "User may access the rest interface"),
        ("Xmlrpc Access", "User may access the xmlrpc interface"),
        (
            "Web Roles",
            "User may manipulate user Roles through the web",
        ),
        ("Email Access", "User may use the email interface"),
    ] {
        out.push(admin_grant(p, d));
    }
    out
}

fn admin_grant(permission: &str, description: &str) -> Grant {
    Grant {
        roles: vec!["admin".into()],
        permission: permission.into(),
        class: None,
        properties: None,
        props_only: false,
        check: None,
        description: description.into(),
    }
}

/// Roundup's description of the permission a plain grant refers to.
fn default_description(permission: &str, class: Option<&str>) -> String {
    match class {
        Some(c) => match permission {
            "Create" => format!("User is allowed to create {c}"),
            "Edit" => format!("User is allowed to edit {c}"),
            "View" => format!("User is allowed to access {c}"),
            "Retire" => format!("User is allowed to retire {c}"),
            _ => String::new(),
        },
        None => implicit_grants()
            .into_iter()
            .find(|g| g.permission == permission)
            .map(|g| g.description)
            .unwrap_or_default(),
    }
}

pub(crate) fn parse_grant(
    cx: &Ctx<'_>,
    v: &V<'_>,
    classes: &[ClassDef],
    roles: &[Role],
) -> Result<Vec<Grant>, SchemaError> {
    let t = cx.table(v, "each [[grant]]")?;
    cx.check_keys(
        t,
        &[
            "roles",
            "permission",
            "class",
            "properties",
            "props_only",
            "check",
            "description",
        ],
        "[[grant]]",
    )?;
    let Some(rv) = t.get("roles") else {
        return Err(cx.err(v.span(), "[[grant]] needs \"roles\""));
    };
    let mut grant_roles = Vec::new();
    for (r, span) in cx.strings(rv, "\"roles\"")? {
        if !roles
            .iter()
            .any(|x| x.name.to_lowercase() == r.to_lowercase())
        {
            return Err(cx.err(span, format!("grant names unknown role \"{r}\"")));
        }
        let lower = r.to_lowercase();
        if !grant_roles.contains(&lower) {
            grant_roles.push(lower);
        }
    }
    let Some(pv) = t.get("permission") else {
        return Err(cx.err(v.span(), "[[grant]] needs \"permission\""));
    };
    let perms = cx.strings(pv, "\"permission\"")?;
    for (p, span) in &perms {
        if p.is_empty() || p.trim() != p {
            return Err(cx.err(
                span.clone(),
                format!("invalid permission name \"{p}\": it must be non-empty, without leading or trailing spaces"),
            ));
        }
    }
    let class_list: Vec<(Option<&ClassDef>, Range<usize>)> = match t.get("class") {
        None => vec![(None, v.span())],
        Some(cv) => {
            let mut out = Vec::new();
            for (c, span) in cx.strings(cv, "\"class\"")? {
                match classes.iter().find(|x| x.name == c) {
                    Some(def) => out.push((Some(def), span)),
                    None => return Err(cx.err(span, format!("grant names unknown class \"{c}\""))),
                }
            }
            out
        }
    };
    let has_class = t.contains_key("class");
    let properties: Option<Vec<(String, Range<usize>)>> = match t.get("properties") {
        None => None,
        Some(pv) => {
            if !has_class {
                return Err(cx.err(pv.span(), "a grant with \"properties\" needs a \"class\""));
            }
            let arr = cx.array(pv, "\"properties\"")?;
            if arr.is_empty() {
                return Err(cx.err(
                    pv.span(),
                    "\"properties\" must not be empty (leave it out to mean all properties)",
                ));
            }
            let mut out = Vec::new();
            for x in arr.iter() {
                out.push((
                    cx.string(x, "each of \"properties\"")?.to_string(),
                    x.span(),
                ));
            }
            Some(out)
        }
    };
    let props_only = match t.get_key_value("props_only") {
        None => false,
        Some((k, pv)) => {
            let b = cx.boolean(pv, "\"props_only\"")?;
            if properties.is_none() {
                return Err(cx.err(
                    k.span(),
                    "\"props_only\" has no effect without \"properties\"",
                ));
            }
            b
        }
    };
    let check = match t.get("check") {
        None => None,
        Some(chv) => {
            let text = cx.string(chv, "\"check\"")?;
            if !has_class {
                return Err(cx.err(
                    chv.span(),
                    "a grant with a \"check\" needs a \"class\" (the check reads that class's item)",
                ));
            }
            match CheckExpr::parse(text) {
                Ok(e) => Some((e, chv.span())),
                Err(e) => {
                    return Err(cx.err(chv.span(), format!("check \"{text}\": {e}")));
                }
            }
        }
    };
    let description = match t.get("description") {
        Some(dv) => Some(cx.string(dv, "\"description\"")?.to_string()),
        None => None,
    };

    let mut out = Vec::new();
    for (class, _) in &class_list {
        if let (Some(def), Some(props)) = (class, &properties) {
            for (p, span) in props {
                if def.prop(p).is_none() && !AUTOMATIC_PROPS.contains(&p.as_str()) {
                    return Err(cx.err(
                        span.clone(),
                        format!(
                            "grant property \"{p}\" is not a property of class \"{}\"",
                            def.name
                        ),
                    ));
                }
            }
        }
        if let (Some(def), Some((expr, span))) = (class, &check) {
            check_expr_props(cx, expr, def, span.clone())?;
        }
        for (perm, _) in &perms {
            let class_name = class.map(|c| c.name.clone());
            out.push(Grant {
                roles: grant_roles.clone(),
                permission: perm.clone(),
                class: class_name.clone(),
                properties: properties
                    .as_ref()
                    .map(|ps| ps.iter().map(|(p, _)| p.clone()).collect()),
                props_only,
                check: check.as_ref().map(|(e, _)| e.clone()),
                description: description.clone().unwrap_or_else(|| {
                    if properties.is_none() && check.is_none() {
                        default_description(perm, class_name.as_deref())
                    } else {
                        String::new()
                    }
                }),
            });
        }
    }
    Ok(out)
}

fn check_expr_props(
    cx: &Ctx<'_>,
    expr: &CheckExpr,
    def: &ClassDef,
    span: Range<usize>,
) -> Result<(), SchemaError> {
    for p in expr.props() {
        if def.prop(p).is_none() && !AUTOMATIC_PROPS.contains(&p) {
            return Err(cx.err(
                span,
                format!(
                    "check names \"{p}\", which is not a property of class \"{}\"",
                    def.name
                ),
            ));
        }
    }
    fn contains_ok(e: &CheckExpr, def: &ClassDef) -> Option<String> {
        match e {
            CheckExpr::Or(v) | CheckExpr::And(v) => v.iter().find_map(|x| contains_ok(x, def)),
            CheckExpr::Compare {
                prop,
                op: CompareOp::Contains,
                ..
            } => match def.prop(prop) {
                Some(p) if p.kind.is_multilink() => None,
                _ => Some(prop.clone()),
            },
            _ => None,
        }
    }
    if let Some(p) = contains_ok(expr, def) {
        return Err(cx.err(
            span,
            format!(
                "check uses \"{p} contains ...\", but \"{p}\" is not a Multilink of class \"{}\"",
                def.name
            ),
        ));
    }
    Ok(())
}
