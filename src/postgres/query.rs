//! `filter()` as PostgreSQL SQL over Roundup's tables; values travel as bound
//! parameters, class and property names come from the schema.
//!
//! The answers are those of the SQLite backend wherever the layout allows it:
//! substring search and sorting of Strings fold ASCII only and compare bytes
//! (`lower(x COLLATE "C")`, what SQLite's `lower()`/`LIKE` and BINARY collation
//! do), NULLs sort first ascending and last descending, and values a column
//! cannot hold (ids and Integers beyond 32 bits, Numbers beyond float4) match
//! nothing instead of failing. Roundup-on-PostgreSQL differs there (Unicode case
//! folding, the database collation, errors); the README lists it.

use super::value::{roundup_f32, Cell, Param};
use super::PgTx;
use crate::hyperdb::date::Date;
use crate::schema::{ClassDef, PropType, Schema};
use crate::store::column_kind;
use crate::store::filter::{Cond, DateAlt, FilterQuery, IdExpr, Scalar, SortKey};
use crate::store::sort::{sort_in_memory, SortReads, SortVal};
use crate::store::{Id, Result, StoreError};

/// Most bound values in one filter query (PostgreSQL allows 65 535).
const MAX_SQL_PARAMS: usize = 30_000;

struct Builder<'s> {
    schema: &'s Schema,
    params: Vec<Param>,
    aliases: usize,
}

fn in_int4(ids: &[Id]) -> Vec<Id> {
    ids.iter()
        .copied()
        .filter(|i| i32::try_from(*i).is_ok())
        .collect()
}

impl Builder<'_> {
    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("t{}", self.aliases)
    }

    fn push(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }

    fn conds(&mut self, class: &ClassDef, alias: &str, conds: &[Cond]) -> String {
        if conds.is_empty() {
            return "true".into();
        }
        let parts: Vec<String> = conds.iter().map(|c| self.cond(class, alias, c)).collect();
        parts.join(" and ")
    }

    fn cond(&mut self, class: &ClassDef, a: &str, cond: &Cond) -> String {
        let cn = &class.name;
        match cond {
            Cond::Never => "false".into(),
            Cond::Always => "true".into(),
            Cond::Contains { prop, needles } => {
                if needles.iter().any(|n| n.contains('\0')) {
                    return "false".into();
                }
                let parts: Vec<String> = needles
                    .iter()
                    .map(|n| {
                        let m = self.push(Param::Text(like_pattern(n)));
                        format!("lower({a}._{prop} COLLATE \"C\") LIKE {m} ESCAPE '\\'")
                    })
                    .collect();
                if parts.is_empty() {
                    "true".into()
                } else {
                    format!("({})", parts.join(" and "))
                }
            }
            Cond::IdIn(ids) => {
                let ids = in_int4(ids);
                if ids.is_empty() {
                    return "false".into();
                }
                let m = self.push(Param::Ints(ids));
                format!("{a}.id = any({m})")
            }
            Cond::LinkIn { prop, ids, null } => {
                let ids = in_int4(ids);
                let mut parts = Vec::new();
                if *null {
                    parts.push(format!("{a}._{prop} is NULL"));
                }
                if !ids.is_empty() {
                    let m = self.push(Param::Ints(ids));
                    parts.push(format!("{a}._{prop} = any({m})"));
                }
                if parts.is_empty() {
                    "false".into()
                } else {
                    format!("({})", parts.join(" or "))
                }
            }
            Cond::MultilinkIn { prop, ids, empty } => {
                let ids = in_int4(ids);
                let mut parts = Vec::new();
                if !ids.is_empty() {
                    let m = self.push(Param::Ints(ids));
                    parts.push(format!(
                        "{a}.id in (select nodeid from {cn}_{prop} where linkid = any({m}))"
                    ));
                }
                if *empty {
                    parts.push(format!(
                        "not exists (select 1 from {cn}_{prop} where nodeid={a}.id)"
                    ));
                }
                if parts.is_empty() {
                    "false".into()
                } else {
                    format!("({})", parts.join(" or "))
                }
            }
            Cond::Expr {
                prop,
                multilink,
                expr,
            } => self.expr(cn, a, prop, *multilink, expr),
            Cond::Dates { prop, alts } => {
                let mut parts = Vec::new();
                for alt in alts {
                    match alt {
                        DateAlt::Null => parts.push(format!("{a}._{prop} is NULL")),
                        DateAlt::Range { from, to } => {
                            let mut w = Vec::new();
                            if let Some(f) = from.as_deref().and_then(Date::from_serialised) {
                                let m = self.push(Param::Date(f));
                                w.push(format!("{a}._{prop} >= {m}"));
                            }
                            if let Some(t) = to.as_deref().and_then(Date::from_serialised) {
                                let m = self.push(Param::Date(t));
                                w.push(format!("{a}._{prop} <= {m}"));
                            }
                            if w.is_empty() {
                                parts.push("true".into());
                            } else {
                                parts.push(format!("({})", w.join(" and ")));
                            }
                        }
                    }
                }
                if parts.is_empty() {
                    "true".into()
                } else {
                    format!("({})", parts.join(" or "))
                }
            }
            Cond::IntervalRange { prop, from, to } => {
                let mut w = Vec::new();
                if let Some(f) = from {
                    let m = self.push(Param::Int(*f));
                    w.push(format!("{a}.__{prop}_int__ >= {m}"));
                }
                if let Some(t) = to {
                    let m = self.push(Param::Int(*t));
                    w.push(format!("{a}.__{prop}_int__ <= {m}"));
                }
                if w.is_empty() {
                    "true".into()
                } else {
                    format!("({})", w.join(" and "))
                }
            }
            Cond::IntervalIn { prop, secs } => {
                if secs.is_empty() {
                    return "false".into();
                }
                let m = self.push(Param::Ints(secs.clone()));
                format!("{a}.__{prop}_int__ = any({m}::int8[])")
            }
            Cond::ColumnIn { prop, values } => {
                let kind = column_kind(class, prop);
                let mut parts = Vec::new();
                for v in values {
                    let p = match (kind.as_deref(), v) {
                        (Some(PropType::Date), Scalar::Text(t)) => {
                            Date::from_serialised(t).map(Param::Date)
                        }
                        (Some(PropType::Boolean), Scalar::Int(i)) => Some(Param::Bool(*i != 0)),
                        (Some(PropType::Boolean), Scalar::Real(r)) => Some(Param::Bool(*r != 0.0)),
                        (Some(PropType::Number), Scalar::Real(r)) => {
                            roundup_f32(*r).map(|_| Param::Real(*r))
                        }
                        (Some(PropType::Number), Scalar::Int(i)) => {
                            roundup_f32(*i as f64).map(|_| Param::Real(*i as f64))
                        }
                        (Some(PropType::Integer | PropType::Link { .. }), Scalar::Int(i)) => {
                            i32::try_from(*i).ok().map(|_| Param::Int(*i))
                        }
                        (Some(PropType::Integer), Scalar::Real(r)) => int_of(*r),
                        // Text compared with a numeric column: converted as SQLite's
                        // column affinity converts it; what is no number matches nothing.
                        (Some(PropType::Number), Scalar::Text(t)) => t
                            .trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|r| roundup_f32(*r).is_some())
                            .map(Param::Real),
                        (Some(PropType::Integer), Scalar::Text(t)) => {
                            t.trim().parse::<f64>().ok().and_then(int_of)
                        }
                        (Some(PropType::Link { .. }), _) => None,
                        (_, Scalar::Text(t)) if !t.contains('\0') => Some(Param::Text(t.clone())),
                        (_, Scalar::Text(_)) => None,
                        (_, Scalar::Int(i)) => Some(Param::Text(i.to_string())),
                        (_, Scalar::Real(r)) => Some(Param::Text(r.to_string())),
                    };
                    if let Some(p) = p {
                        let m = self.push(p);
                        parts.push(format!("{a}._{prop} = {m}"));
                    }
                }
                if parts.is_empty() {
                    "false".into()
                } else {
                    format!("({})", parts.join(" or "))
                }
            }
            Cond::Via { prop, inner } => {
                let Some(p) = class.prop(prop) else {
                    return "false".into();
                };
                let Some(target) = p.kind.link_target().and_then(|t| self.schema.class(t)) else {
                    return "false".into();
                };
                let t = self.alias();
                let w = self.conds(target, &t, inner);
                let tn = &target.name;
                if p.kind.is_multilink() {
                    format!(
                        "{a}.id in (select m{t}.nodeid from {cn}_{prop} m{t}, _{tn} {t} where {t}.id=m{t}.linkid and {w})"
                    )
                } else {
                    format!("{a}._{prop} in (select {t}.id from _{tn} {t} where {w})")
                }
            }
        }
    }

    fn expr(&mut self, cn: &str, a: &str, prop: &str, multilink: bool, e: &IdExpr) -> String {
        match e {
            IdExpr::Has(id) => {
                if i32::try_from(*id).is_err() {
                    return "false".into();
                }
                let m = self.push(Param::Int(*id));
                if multilink {
                    format!("exists (select 1 from {cn}_{prop} where nodeid={a}.id and linkid={m})")
                } else {
                    format!("({a}._{prop} = {m} and {a}._{prop} is not NULL)")
                }
            }
            IdExpr::Empty => {
                if multilink {
                    format!("not exists (select 1 from {cn}_{prop} where nodeid={a}.id)")
                } else {
                    format!("{a}._{prop} is NULL")
                }
            }
            IdExpr::Not(x) => format!("not ({})", self.expr(cn, a, prop, multilink, x)),
            IdExpr::And(x, y) => format!(
                "({} and {})",
                self.expr(cn, a, prop, multilink, x),
                self.expr(cn, a, prop, multilink, y)
            ),
            IdExpr::Or(x, y) => format!(
                "({} or {})",
                self.expr(cn, a, prop, multilink, x),
                self.expr(cn, a, prop, multilink, y)
            ),
        }
    }
}

/// An integral value within int4, as a parameter.
fn int_of(r: f64) -> Option<Param> {
    (r.fract() == 0.0 && r >= f64::from(i32::MIN) && r <= f64::from(i32::MAX))
        .then_some(Param::Int(r as i64))
}

/// `%needle%`, ASCII letters lower-cased (the column side is too), with LIKE's
/// special characters escaped by `\`.
fn like_pattern(needle: &str) -> String {
    let mut s = String::with_capacity(needle.len() + 2);
    s.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c.to_ascii_lowercase());
    }
    s.push('%');
    s
}

/// The SQL expression a sort key orders by, with the joins it needs, or `None`
/// when the path crosses a Multilink (sorted in memory instead).
fn sort_expr(
    schema: &Schema,
    class: &ClassDef,
    key: &SortKey,
    n: usize,
    joins: &mut Vec<String>,
) -> Option<(String, bool)> {
    let mut cls = class;
    let mut alias = "t0".to_string();
    for (i, step) in key.path.iter().enumerate() {
        let last = i + 1 == key.path.len();
        if step == "id" {
            return last.then(|| (format!("{alias}.id"), false));
        }
        let kind = column_kind(cls, step)?;
        if last {
            return Some(match kind.as_ref() {
                PropType::String { .. } => (format!("lower({alias}._{step} COLLATE \"C\")"), true),
                PropType::Password => (format!("{alias}._{step} COLLATE \"C\""), true),
                PropType::Interval => (format!("{alias}.__{step}_int__"), true),
                PropType::Multilink { .. } => return None,
                _ => (format!("{alias}._{step}"), true),
            });
        }
        match kind.as_ref() {
            PropType::Link { class: target, .. } => {
                let next = format!("s{n}_{i}");
                joins.push(format!(
                    "left outer join _{target} {next} on {next}.id={alias}._{step}"
                ));
                cls = schema.class(target)?;
                alias = next;
            }
            _ => return None,
        }
    }
    None
}

/// Runs a filter query in `tx`.
pub fn run(
    tx: &mut PgTx<'_>,
    schema: &Schema,
    class: &ClassDef,
    q: &FilterQuery,
) -> Result<Vec<Id>> {
    if let Some(m) = &q.search_matches {
        if m.is_empty() {
            return Ok(Vec::new());
        }
    }
    let mut b = Builder {
        schema,
        params: Vec::new(),
        aliases: 0,
    };
    let mut wheres = vec!["t0.__retired__=0".to_string()];
    let w = b.conds(class, "t0", &q.conds);
    if w != "true" {
        wheres.push(w);
    }
    if let Some(m) = &q.search_matches {
        let ids = in_int4(m);
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mark = b.push(Param::Ints(ids));
        wheres.push(format!("t0.id = any({mark})"));
    }
    let mut joins = Vec::new();
    let mut order = Vec::new();
    let mut in_memory = false;
    for (n, key) in q.sort.iter().enumerate() {
        match sort_expr(schema, class, key, n, &mut joins) {
            Some((e, nullable)) => order.push(match (key.descending, nullable) {
                (false, true) => format!("{e} NULLS FIRST"),
                (true, true) => format!("{e} DESC NULLS LAST"),
                (false, false) => e,
                (true, false) => format!("{e} DESC"),
            }),
            None => in_memory = true,
        }
    }
    let sql = format!(
        "select t0.id from _{} t0 {} where {}{}",
        class.name,
        joins.join(" "),
        wheres.join(" and "),
        if order.is_empty() || in_memory {
            String::new()
        } else {
            format!(" order by {}", order.join(","))
        }
    );
    if b.params.len() > MAX_SQL_PARAMS {
        return Err(StoreError::Limit(format!(
            "filter too complex: more than {MAX_SQL_PARAMS} values"
        )));
    }
    let rows = tx.query(&sql, &b.params)?;
    let mut ids: Vec<Id> = rows
        .iter()
        .filter_map(|r| r.get::<_, Cell>(0).int())
        .collect();
    if in_memory {
        sort_in_memory(&mut Reads(tx), schema, class, &q.sort, &mut ids)?;
    }
    Ok(ids)
}

fn cell_sort_val(c: Cell, lower: bool) -> SortVal {
    match c {
        Cell::Null => SortVal::Null,
        Cell::Int(i) => SortVal::Num(i as f64),
        Cell::Real(f) => SortVal::Num(f),
        Cell::Bool(b) => SortVal::Num(f64::from(u8::from(b))),
        Cell::Timestamp(us) => SortVal::Num(us as f64),
        Cell::Ints(v) => SortVal::List(v.into_iter().map(|i| SortVal::Num(i as f64)).collect()),
        Cell::Texts(v) => SortVal::List(
            v.into_iter()
                .map(|t| t.map_or(SortVal::Null, SortVal::Text))
                .collect(),
        ),
        Cell::Text(s) => SortVal::Text(if lower { s.to_lowercase() } else { s }),
    }
}

/// The reads of an in-memory sort, in the filter's transaction.
struct Reads<'t, 'a>(&'t mut PgTx<'a>);

impl SortReads for Reads<'_, '_> {
    fn multilink_ids(&mut self, class: &ClassDef, prop: &str, id: Id) -> Result<Vec<Id>> {
        let sql = format!("select linkid from {}_{prop} where nodeid=$1", class.name);
        Ok(self
            .0
            .query(&sql, &[Param::Int(id)])?
            .iter()
            .filter_map(|r| r.get::<_, Cell>(0).int())
            .collect())
    }

    fn link_target(&mut self, class: &ClassDef, prop: &str, id: Id) -> Result<Option<Id>> {
        let sql = format!("select _{prop} from _{} where id=$1", class.name);
        Ok(self
            .0
            .query(&sql, &[Param::Int(id)])?
            .first()
            .and_then(|r| r.get::<_, Cell>(0).int()))
    }

    fn column_value(
        &mut self,
        class: &ClassDef,
        col: &str,
        id: Id,
        lower: bool,
    ) -> Result<SortVal> {
        let sql = format!("select {col} from _{} where id=$1", class.name);
        Ok(self
            .0
            .query(&sql, &[Param::Int(id)])?
            .first()
            .map(|r| cell_sort_val(r.get::<_, Cell>(0), lower))
            .unwrap_or(SortVal::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_and_fold_ascii_only() {
        assert_eq!(like_pattern("A%b_C\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(like_pattern("ÉMILE"), "%Émile%");
    }
}
