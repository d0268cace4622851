//! `filter()` as SQL over Roundup's tables. Every value travels as a bound
//! parameter; class and property names come from the schema, never from clients.

use crate::schema::{ClassDef, PropType, Schema};
use crate::store::column_kind;
use crate::store::filter::{Cond, DateAlt, FilterQuery, IdExpr, Scalar, SortKey};
use crate::store::sort::{sort_in_memory, SortReads, SortVal};
use crate::store::{Id, Result};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension};

/// Most ids put into one SQL `IN (...)` list for `search_matches`.
const MAX_SQL_IDS: usize = 1000;
/// Most bound values in one filter query (SQLite allows 32 766).
const MAX_SQL_PARAMS: usize = 30_000;

struct Builder<'s> {
    schema: &'s Schema,
    params: Vec<SqlValue>,
    aliases: usize,
}

impl Builder<'_> {
    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("t{}", self.aliases)
    }

    fn marks(&mut self, values: impl IntoIterator<Item = SqlValue>) -> String {
        let mut marks = Vec::new();
        for v in values {
            self.params.push(v);
            marks.push("?");
        }
        marks.join(",")
    }

    fn conds(&mut self, class: &ClassDef, alias: &str, conds: &[Cond]) -> String {
        if conds.is_empty() {
            return "1".into();
        }
        let parts: Vec<String> = conds.iter().map(|c| self.cond(class, alias, c)).collect();
        parts.join(" and ")
    }

    fn cond(&mut self, class: &ClassDef, a: &str, cond: &Cond) -> String {
        let cn = &class.name;
        match cond {
            Cond::Never => "0".into(),
            Cond::Always => "1".into(),
            Cond::Contains { prop, needles } => {
                let parts: Vec<String> = needles
                    .iter()
                    .map(|n| {
                        self.params.push(SqlValue::Text(like_pattern(n)));
                        format!("{a}._{prop} LIKE ? ESCAPE '\\'")
                    })
                    .collect();
                all_of(&parts)
            }
            Cond::IdIn(ids) => {
                if ids.is_empty() {
                    return "0".into();
                }
                let m = self.marks(ids.iter().map(|i| SqlValue::Integer(*i)));
                format!("{a}.id in ({m})")
            }
            Cond::LinkIn { prop, ids, null } => {
                let mut parts = Vec::new();
                if *null {
                    parts.push(format!("{a}._{prop} is NULL"));
                }
                if !ids.is_empty() {
                    let m = self.marks(ids.iter().map(|i| SqlValue::Integer(*i)));
                    parts.push(format!("{a}._{prop} in ({m})"));
                }
                any_of(&parts, "0")
            }
            Cond::MultilinkIn { prop, ids, empty } => {
                let mut parts = Vec::new();
                if !ids.is_empty() {
                    let m = self.marks(ids.iter().map(|i| SqlValue::Integer(*i)));
                    parts.push(format!(
                        "{a}.id in (select nodeid from {cn}_{prop} where linkid in ({m}))"
                    ));
                }
                if *empty {
                    parts.push(format!("{a}.id not in (select nodeid from {cn}_{prop})"));
                }
                any_of(&parts, "0")
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
                            if let Some(f) = from {
                                self.params.push(SqlValue::Text(f.clone()));
                                w.push(format!("{a}._{prop} >= ?"));
                            }
                            if let Some(t) = to {
                                self.params.push(SqlValue::Text(t.clone()));
                                w.push(format!("{a}._{prop} <= ?"));
                            }
                            parts.push(all_of(&w));
                        }
                    }
                }
                any_of(&parts, "1")
            }
            Cond::IntervalRange { prop, from, to } => {
                let mut w = Vec::new();
                if let Some(f) = from {
                    self.params.push(SqlValue::Integer(*f));
                    w.push(format!("{a}.__{prop}_int__ >= ?"));
                }
                if let Some(t) = to {
                    self.params.push(SqlValue::Integer(*t));
                    w.push(format!("{a}.__{prop}_int__ <= ?"));
                }
                all_of(&w)
            }
            Cond::IntervalIn { prop, secs } => {
                if secs.is_empty() {
                    return "0".into();
                }
                let m = self.marks(secs.iter().map(|s| SqlValue::Integer(*s)));
                format!("{a}.__{prop}_int__ in ({m})")
            }
            Cond::ColumnIn { prop, values } => {
                if values.is_empty() {
                    return "0".into();
                }
                let m = self.marks(values.iter().map(|v| match v {
                    Scalar::Text(t) => SqlValue::Text(t.clone()),
                    Scalar::Int(i) => SqlValue::Integer(*i),
                    Scalar::Real(r) => SqlValue::Real(*r),
                }));
                format!("{a}._{prop} in ({m})")
            }
            Cond::Via { prop, inner } => {
                let Some(p) = class.prop(prop) else {
                    return "0".into();
                };
                let Some(target) = p.kind.link_target().and_then(|t| self.schema.class(t)) else {
                    return "0".into();
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
                self.params.push(SqlValue::Integer(*id));
                if multilink {
                    format!("exists (select 1 from {cn}_{prop} where nodeid={a}.id and linkid=?)")
                } else {
                    format!("({a}._{prop} = ? and {a}._{prop} is not NULL)")
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

/// `%needle%` with LIKE's special characters escaped by `\`.
fn like_pattern(needle: &str) -> String {
    let mut s = String::with_capacity(needle.len() + 2);
    s.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
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
) -> Option<String> {
    let mut cls = class;
    let mut alias = "t0".to_string();
    for (i, step) in key.path.iter().enumerate() {
        let last = i + 1 == key.path.len();
        if step == "id" {
            return last.then(|| format!("{alias}.id"));
        }
        let kind = column_kind(cls, step)?;
        if last {
            return Some(match kind.as_ref() {
                PropType::String { .. } => format!("lower({alias}._{step})"),
                PropType::Interval => format!("{alias}.__{step}_int__"),
                PropType::Multilink { .. } => return None,
                _ => format!("{alias}._{step}"),
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

/// Runs a filter query.
pub fn run(
    conn: &Connection,
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
    // `+` keeps SQLite off the low-selectivity retired index (one seek per row).
    let mut wheres = vec!["+t0.__retired__=0".to_string()];
    let w = b.conds(class, "t0", &q.conds);
    if w != "1" {
        wheres.push(w);
    }
    // Long id lists would exceed SQLite's bound-parameter limit: those are
    // applied after the query instead.
    let mut post_filter: Option<std::collections::HashSet<Id>> = None;
    if let Some(m) = &q.search_matches {
        if m.len() <= MAX_SQL_IDS {
            let marks = b.marks(m.iter().map(|i| SqlValue::Integer(*i)));
            wheres.push(format!("t0.id in ({marks})"));
        } else {
            post_filter = Some(m.iter().copied().collect());
        }
    }
    let mut joins = Vec::new();
    let mut order = Vec::new();
    let mut in_memory = false;
    for (n, key) in q.sort.iter().enumerate() {
        match sort_expr(schema, class, key, n, &mut joins) {
            Some(e) => order.push(format!("{e}{}", if key.descending { " desc" } else { "" })),
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
        return Err(crate::store::StoreError::Limit(format!(
            "filter too complex: more than {MAX_SQL_PARAMS} values"
        )));
    }
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut ids: Vec<Id> = stmt
        .query_map(params_from_iter(b.params), |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    if let Some(keep) = post_filter {
        ids.retain(|i| keep.contains(i));
    }
    if in_memory {
        sort_in_memory(&mut Reads(conn), schema, class, &q.sort, &mut ids)?;
    }
    Ok(ids)
}

fn cell_sort_val(v: rusqlite::types::ValueRef<'_>, lower: bool) -> SortVal {
    use rusqlite::types::ValueRef as V;
    match v {
        V::Null => SortVal::Null,
        V::Integer(i) => SortVal::Num(i as f64),
        V::Real(f) => SortVal::Num(f),
        V::Text(t) | V::Blob(t) => {
            let s = String::from_utf8_lossy(t);
            SortVal::Text(if lower {
                s.to_lowercase()
            } else {
                s.into_owned()
            })
        }
    }
}

/// The reads of an in-memory sort, on the filter's connection.
struct Reads<'c>(&'c Connection);

impl SortReads for Reads<'_> {
    fn multilink_ids(&mut self, class: &ClassDef, prop: &str, id: Id) -> Result<Vec<Id>> {
        let mut stmt = self.0.prepare_cached(&format!(
            "select linkid from {}_{prop} where nodeid=?1",
            class.name
        ))?;
        let targets = stmt
            .query_map([id], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        Ok(targets)
    }

    fn link_target(&mut self, class: &ClassDef, prop: &str, id: Id) -> Result<Option<Id>> {
        let sql = format!("select _{prop} from _{} where id=?1", class.name);
        Ok(self
            .0
            .prepare_cached(&sql)?
            .query_row([id], |r| r.get(0))
            .optional()?
            .flatten())
    }

    fn column_value(
        &mut self,
        class: &ClassDef,
        col: &str,
        id: Id,
        lower: bool,
    ) -> Result<SortVal> {
        let sql = format!("select {col} from _{} where id=?1", class.name);
        Ok(self
            .0
            .prepare_cached(&sql)?
            .query_row([id], |r| Ok(cell_sort_val(r.get_ref(0)?, lower)))
            .optional()?
            .unwrap_or(SortVal::Null))
    }
}

/// SQL that holds when any of `parts` holds; `none` when there are none.
fn any_of(parts: &[String], none: &str) -> String {
    if parts.is_empty() {
        none.into()
    } else {
        format!("({})", parts.join(" or "))
    }
}

/// SQL that holds when all of `parts` hold (always, when there are none).
fn all_of(parts: &[String]) -> String {
    if parts.is_empty() {
        "1".into()
    } else {
        format!("({})", parts.join(" and "))
    }
}
