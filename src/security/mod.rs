//! Roundup's permission model: roles, grants and `hasPermission`, exactly as
//! `roundup/security.py` evaluates them (reference §6).
//!
//! * Permissions without a check condition are tried before those with one.
//! * A grant matches a class-level question (no property) unless it is
//!   `props_only`; check conditions run only when an item id is given.
//! * Search permission (used by `filter` and `lookup`) counts only `View` and
//!   `Search` grants without a check condition.

use crate::schema::check::{CheckExpr, CompareOp, Operand};
use crate::schema::{Grant, PropType, Schema};
use crate::store::{Id, Multilinks, PropValue, Tx};
use std::collections::HashMap;
use std::sync::Arc;

/// The authenticated user as the permission checks see them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserCtx {
    /// The user's id.
    pub id: Id,
    /// The user's name.
    pub username: String,
    /// Lower-cased role names from the user's `roles` property (unknown ones kept;
    /// they grant nothing).
    pub roles: Vec<String>,
}

/// Splits a `roles` property value as Roundup does: comma-separated, stripped,
/// lower-cased, empty parts dropped.
pub fn split_roles(roles: &str) -> Vec<String> {
    roles
        .split(',')
        .map(|r| r.trim().to_lowercase())
        .filter(|r| !r.is_empty())
        .collect()
}

/// Grants indexed for fast lookup: role -> permission name -> class -> grant
/// indexes.
#[derive(Debug)]
pub struct Security {
    index: HashMap<String, PermIndex>,
    grants: Vec<Grant>,
    schema: Arc<Schema>,
}

/// Grants of one role: permission name -> its grants by class.
type PermIndex = HashMap<String, ByClass>;

/// One role's grants of one permission: those for any class, and those for one
/// class (looked up by `&str`, so a permission check allocates nothing).
#[derive(Debug, Default)]
struct ByClass {
    global: Vec<usize>,
    class: HashMap<String, Vec<usize>>,
}

impl Security {
    /// Indexes the grants of a schema.
    pub fn new(schema: &Arc<Schema>) -> Security {
        let mut index: HashMap<String, PermIndex> = HashMap::new();
        for (i, g) in schema.grants.iter().enumerate() {
            for role in &g.roles {
                let by_class = index
                    .entry(role.to_lowercase())
                    .or_default()
                    .entry(g.permission.clone())
                    .or_default();
                match &g.class {
                    None => by_class.global.push(i),
                    Some(c) => by_class.class.entry(c.clone()).or_default().push(i),
                }
            }
        }
        Security {
            index,
            grants: schema.grants.clone(),
            schema: schema.clone(),
        }
    }

    /// The grants a user's roles hold for `perm` on `class` (global ones first),
    /// split into (without check, with check).
    fn candidates<'a>(
        &'a self,
        user: &'a UserCtx,
        perm: &'a str,
        class: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        user.roles
            .iter()
            .filter_map(move |r| self.index.get(r))
            .filter_map(move |perms| perms.get(perm))
            .flat_map(move |by_class| {
                let specific = class
                    .and_then(|c| by_class.class.get(c))
                    .into_iter()
                    .flatten();
                by_class
                    .global
                    .iter()
                    .chain(specific)
                    .map(move |&i| &self.grants[i])
            })
    }

    /// Roundup's `Permission.test` without the check condition.
    fn matches_static(g: &Grant, class: Option<&str>, prop: Option<&str>) -> bool {
        if let (Some(k), Some(c)) = (&g.class, class) {
            if k != c {
                return false;
            }
        }
        if g.class.is_some() && class.is_none() {
            return false;
        }
        match prop {
            Some(p) => {
                if let Some(props) = &g.properties {
                    if !props.iter().any(|x| x == p) {
                        return false;
                    }
                }
            }
            None => {
                if g.properties.is_some() && g.props_only {
                    return false;
                }
            }
        }
        true
    }

    /// Roundup's `hasPermission(perm, uid, classname, property, itemid)`. `tx` is
    /// used only to evaluate check conditions (only when `itemid` is given).
    pub fn has_permission(
        &self,
        tx: &mut dyn Tx,
        user: &UserCtx,
        perm: &str,
        class: Option<&str>,
        prop: Option<&str>,
        itemid: Option<Id>,
    ) -> crate::store::Result<bool> {
        // Cheap first: grants without a check condition.
        if self.has_permission_unchecked(user, perm, class, prop) {
            return Ok(true);
        }
        for g in self.candidates(user, perm, class) {
            let Some(check) = &g.check else { continue };
            if !Self::matches_static(g, class, prop) {
                continue;
            }
            match (itemid, class) {
                (Some(id), Some(cn)) => {
                    if eval_check(tx, &self.schema, cn, id, user, check)? {
                        return Ok(true);
                    }
                }
                // Class- and property-level questions do not run checks.
                _ => return Ok(true),
            }
        }
        Ok(false)
    }

    /// True if a grant without a check condition answers `hasPermission` for
    /// `class.prop`: then the answer is yes for every item of the class, and a
    /// caller going through many items need not ask per item.
    pub fn has_permission_unchecked(
        &self,
        user: &UserCtx,
        perm: &str,
        class: Option<&str>,
        prop: Option<&str>,
    ) -> bool {
        self.any_grant(user, perm, class, prop, true)
    }

    /// `hasPermission` for questions that never run a check (no item): class-level
    /// and property-level, and global permissions such as `Xmlrpc Access`.
    pub fn has_permission_static(
        &self,
        user: &UserCtx,
        perm: &str,
        class: Option<&str>,
        prop: Option<&str>,
    ) -> bool {
        self.any_grant(user, perm, class, prop, false)
    }

    /// True if one of the user's grants for `perm` matches `class.prop` without
    /// running its check (only grants without a check when `unchecked_only`).
    fn any_grant(
        &self,
        user: &UserCtx,
        perm: &str,
        class: Option<&str>,
        prop: Option<&str>,
        unchecked_only: bool,
    ) -> bool {
        self.candidates(user, perm, class)
            .any(|g| (!unchecked_only || g.check.is_none()) && Self::matches_static(g, class, prop))
    }

    /// True if the user holds `perm` on `class` through a grant without a check
    /// condition (Roundup's `skip_permissions_with_check=True`).
    pub fn has_unchecked(&self, user: &UserCtx, perm: &str, class: &str) -> bool {
        self.has_permission_unchecked(user, perm, Some(class), None)
    }

    /// Roundup's `Role.searchable` across the user's roles: a View or Search grant
    /// without check covering `class.prop`.
    fn searchable(&self, user: &UserCtx, class: &str, prop: &str) -> bool {
        ["View", "Search"].iter().any(|perm| {
            self.candidates(user, perm, Some(class)).any(|g| {
                g.check.is_none()
                    && g.class.as_deref().is_none_or(|k| k == class)
                    && g.properties
                        .as_ref()
                        .is_none_or(|ps| ps.iter().any(|p| p == prop))
            })
        })
    }

    /// Roundup's `hasSearchPermission(uid, classname, property)` for a possibly
    /// dotted property path.
    pub fn has_search_permission(&self, user: &UserCtx, class: &str, path: &str) -> bool {
        let mut cn = class.to_string();
        let mut last: Option<PropType> = None;
        for (i, step) in path.split('.').enumerate() {
            if i > 0 {
                match last.as_ref().and_then(|k| k.link_target()) {
                    Some(t) => cn = t.to_string(),
                    None => return false,
                }
            }
            let Some(cls) = self.schema.class(&cn) else {
                return false;
            };
            let kind = match step {
                "id" => PropType::String { indexme: false },
                "creation" | "activity" => PropType::Date,
                "creator" | "actor" => PropType::Link {
                    class: "user".into(),
                    do_journal: false,
                },
                _ => match cls.prop(step) {
                    Some(p) => p.kind.clone(),
                    None => return false,
                },
            };
            if !self.searchable(user, &cn, step) {
                return false;
            }
            last = Some(kind);
        }
        if let Some(target) = last.as_ref().and_then(|k| k.link_target()) {
            let Some(tc) = self.schema.class(target) else {
                return false;
            };
            let mut needed = vec!["id".to_string(), tc.labelprop(), tc.orderprop()];
            needed.dedup();
            return needed.iter().all(|p| self.searchable(user, target, p));
        }
        true
    }
}

/// Evaluates a check condition for `class<id>` and `user`.
pub fn eval_check(
    tx: &mut dyn Tx,
    schema: &Schema,
    class: &str,
    id: Id,
    user: &UserCtx,
    check: &CheckExpr,
) -> crate::store::Result<bool> {
    let Some(cls) = schema.class(class) else {
        return Ok(false);
    };
    let needs_item = !check_only_id(check);
    let item = if needs_item {
        tx.get(cls, id, Multilinks::All)?
    } else {
        None
    };
    Ok(eval(check, id, item.as_ref(), user))
}

fn check_only_id(e: &CheckExpr) -> bool {
    match e {
        CheckExpr::Or(v) | CheckExpr::And(v) => v.iter().all(check_only_id),
        CheckExpr::Compare { prop, .. } => prop == "id",
        CheckExpr::IsEmpty(p) => p == "id",
    }
}

/// The value of a property for a check: text or ids; `None` for NULL.
fn check_value(prop: &str, id: Id, item: Option<&crate::store::Item>) -> Option<Vec<String>> {
    if prop == "id" {
        return Some(vec![id.to_string()]);
    }
    match item?.get(prop)? {
        PropValue::String(s) | PropValue::Password(s) => Some(vec![s.clone()]),
        PropValue::Link(l) => Some(vec![l.to_string()]),
        PropValue::Multilink(ids) => Some(ids.iter().map(|i| i.to_string()).collect()),
        PropValue::Integer(i) => Some(vec![i.to_string()]),
        PropValue::Boolean(b) => Some(vec![if *b { "1" } else { "0" }.to_string()]),
        PropValue::Number(n) => Some(vec![n.to_string()]),
        PropValue::Date(d) => Some(vec![d.serialise()]),
        PropValue::Interval(i) => Some(vec![i.to_string()]),
    }
}

fn eval(e: &CheckExpr, id: Id, item: Option<&crate::store::Item>, user: &UserCtx) -> bool {
    match e {
        CheckExpr::Or(v) => v.iter().any(|x| eval(x, id, item, user)),
        CheckExpr::And(v) => v.iter().all(|x| eval(x, id, item, user)),
        CheckExpr::IsEmpty(p) => match check_value(p, id, item) {
            None => true,
            Some(v) => v.is_empty() || (v.len() == 1 && v[0].is_empty()),
        },
        CheckExpr::Compare { prop, op, operand } => {
            let value = check_value(prop, id, item).filter(|v| !v.is_empty());
            let rhs = match operand {
                Operand::User => Some(user.id.to_string()),
                Operand::Null => None,
                Operand::Literal(s) => Some(s.clone()),
            };
            match op {
                CompareOp::Contains => match (&value, &rhs) {
                    (Some(v), Some(r)) => v.contains(r),
                    (None, None) => true,
                    _ => false,
                },
                CompareOp::Eq | CompareOp::Ne => {
                    let eq = match (&value, &rhs) {
                        (None, None) => true,
                        (Some(v), Some(r)) => v.len() == 1 && &v[0] == r,
                        _ => false,
                    };
                    if *op == CompareOp::Eq {
                        eq
                    } else {
                        !eq
                    }
                }
            }
        }
    }
}
