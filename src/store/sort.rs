//! Sorting a filter's ids in memory, where a sort key's path crosses a
//! Multilink (SQL cannot order by it): the values of each key's path, ordered
//! as Roundup's Python sort orders them ([`SortVal`]), read through the
//! backend's [`SortReads`].

use crate::schema::{ClassDef, PropType, Schema};
use crate::store::column_kind;
use crate::store::filter::SortKey;
use crate::store::{Id, Result};
use std::cmp::Ordering;

/// A sortable value, ordered as Roundup's Python sort orders them (None first).
#[derive(Debug, Clone, PartialEq)]
pub enum SortVal {
    /// NULL, or a path that leads nowhere.
    Null,
    /// A number (ids, integers, reals, booleans, dates).
    Num(f64),
    /// Text.
    Text(String),
    /// The values of a Multilink's targets, sorted.
    List(Vec<SortVal>),
}

impl SortVal {
    /// The order of two values: NULL first, then numbers, texts, lists (lists
    /// element by element, then the shorter first).
    pub fn compare(&self, other: &SortVal) -> Ordering {
        use SortVal::*;
        match (self, other) {
            (Null, Null) => Ordering::Equal,
            (Null, _) => Ordering::Less,
            (_, Null) => Ordering::Greater,
            (Num(a), Num(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Text(a), Text(b)) => a.cmp(b),
            (List(a), List(b)) => {
                for (x, y) in a.iter().zip(b) {
                    let o = x.compare(y);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.len().cmp(&b.len())
            }
            (Num(_), _) => Ordering::Less,
            (_, Num(_)) => Ordering::Greater,
            (Text(_), List(_)) => Ordering::Less,
            (List(_), Text(_)) => Ordering::Greater,
        }
    }
}

/// The reads an in-memory sort needs from a backend, one item at a time.
pub trait SortReads {
    /// The link ids of the Multilink `prop` of `class`'s item `id`, as stored.
    fn multilink_ids(&mut self, class: &ClassDef, prop: &str, id: Id) -> Result<Vec<Id>>;
    /// The target of the Link `prop` of `class`'s item `id` (`None`: NULL or no item).
    fn link_target(&mut self, class: &ClassDef, prop: &str, id: Id) -> Result<Option<Id>>;
    /// The sort value of the column `col` of `class`'s item `id` (lower-cased
    /// text when `lower`; [`SortVal::Null`] when there is no item).
    fn column_value(&mut self, class: &ClassDef, col: &str, id: Id, lower: bool)
        -> Result<SortVal>;
}

/// The value of a property path for one item (lists where a Multilink is crossed).
fn path_value(
    reads: &mut impl SortReads,
    schema: &Schema,
    class: &ClassDef,
    id: Id,
    path: &[String],
) -> Result<SortVal> {
    let Some((step, rest)) = path.split_first() else {
        return Ok(SortVal::Null);
    };
    if step == "id" {
        return Ok(SortVal::Num(id as f64));
    }
    let Some(kind) = column_kind(class, step) else {
        return Ok(SortVal::Null);
    };
    match kind.as_ref() {
        PropType::Multilink { class: target, .. } => {
            let mut targets = reads.multilink_ids(class, step, id)?;
            targets.sort_unstable();
            targets.dedup();
            let mut vals = Vec::new();
            if let Some(tc) = schema.class(target) {
                for t in targets {
                    vals.push(if rest.is_empty() {
                        SortVal::Num(t as f64)
                    } else {
                        path_value(reads, schema, tc, t, rest)?
                    });
                }
            }
            vals.sort_by(|a, b| a.compare(b));
            Ok(SortVal::List(vals))
        }
        PropType::Link { class: target, .. } if !rest.is_empty() => {
            let t = reads.link_target(class, step, id)?;
            match (t, schema.class(target)) {
                (Some(t), Some(tc)) => path_value(reads, schema, tc, t, rest),
                _ => Ok(SortVal::Null),
            }
        }
        k => {
            let col = if *k == PropType::Interval {
                format!("__{step}_int__")
            } else {
                format!("_{step}")
            };
            let lower = matches!(k, PropType::String { .. });
            reads.column_value(class, &col, id, lower)
        }
    }
}

/// Sorts `ids` of `class` by `keys` in memory (each key's path value per item,
/// read through `reads`; equal rows keep their order).
pub fn sort_in_memory(
    reads: &mut impl SortReads,
    schema: &Schema,
    class: &ClassDef,
    keys: &[SortKey],
    ids: &mut Vec<Id>,
) -> Result<()> {
    let mut rows: Vec<(Vec<SortVal>, Id)> = Vec::with_capacity(ids.len());
    for &id in ids.iter() {
        let mut k = Vec::with_capacity(keys.len());
        for key in keys {
            k.push(path_value(reads, schema, class, id, &key.path)?);
        }
        rows.push((k, id));
    }
    rows.sort_by(|(a, _), (b, _)| {
        for ((x, y), key) in a.iter().zip(b).zip(keys) {
            let o = x.compare(y);
            let o = if key.descending { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
    *ids = rows.into_iter().map(|(_, id)| id).collect();
    Ok(())
}
