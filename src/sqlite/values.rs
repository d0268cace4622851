//! Values between SQL and the store: one property cell to a [`PropValue`] and
//! back (Roundup's column formats), how a class's row is read ([`RowShape`]), and
//! the words Roundup's native full-text indexer stores ([`crate::store::index_words`]).

use crate::store::column_kind;
use rusqlite::types::ValueRef;

use super::ddl;
use crate::hyperdb::date::Date;
use crate::hyperdb::interval::Interval;
use crate::schema::{ClassDef, PropType};
use crate::store::PropValue;

/// How one class's row is read by `get`: the SQL, and which column holds which
/// property. Built once per class when the store opens.
pub(crate) struct RowShape {
    /// The class's properties when built, to notice a different `ClassDef`.
    names: Vec<(String, PropType)>,
    pub(crate) sql: String,
    /// (column index, property name, type) of every property column.
    pub(crate) props: Vec<(usize, String, PropType)>,
    pub(crate) retired_col: usize,
    /// Every Multilink of the class in one query (`None` without Multilinks):
    /// `(index into multilinks, linkid)` rows of the item `?1`.
    pub(crate) multilinks_sql: Option<String>,
    /// The Multilink property names, in the order of `multilinks_sql`'s index.
    pub(crate) multilinks: Vec<String>,
}

impl RowShape {
    pub(crate) fn new(class: &ClassDef) -> RowShape {
        let cols = ddl::columns(class);
        let names: Vec<&str> = cols.iter().map(|(c, _)| c.as_str()).collect();
        let sql = format!(
            "select {},__retired__ from _{} where id=?1",
            names.join(","),
            class.name
        );
        let mut props = Vec::new();
        for (i, (col, _)) in cols.iter().enumerate() {
            let Some(prop) = col.strip_prefix('_') else {
                continue;
            };
            if prop.starts_with('_') {
                continue; // __x_int__ helper columns
            }
            if let Some(kind) = column_kind(class, prop) {
                props.push((i, prop.to_string(), kind.into_owned()));
            }
        }
        let multilinks: Vec<String> = class
            .properties
            .iter()
            .filter(|p| p.kind.is_multilink())
            .map(|p| p.name.clone())
            .collect();
        let multilinks_sql = (!multilinks.is_empty()).then(|| {
            let parts: Vec<String> = multilinks
                .iter()
                .enumerate()
                .map(|(i, p)| format!("select {i}, linkid from {}_{p} where nodeid=?1", class.name))
                .collect();
            parts.join(" union all ")
        });
        RowShape {
            multilinks_sql,
            multilinks,
            names: class
                .properties
                .iter()
                .map(|p| (p.name.clone(), p.kind.clone()))
                .collect(),
            sql,
            props,
            retired_col: cols.len(),
        }
    }

    pub(crate) fn matches(&self, class: &ClassDef) -> bool {
        self.names.len() == class.properties.len()
            && self
                .names
                .iter()
                .zip(&class.properties)
                .all(|((n, k), p)| *n == p.name && *k == p.kind)
    }
}

/// Converts one SQL cell of a property column to a value.
pub(crate) fn cell_to_value(kind: &PropType, v: ValueRef<'_>) -> Option<PropValue> {
    let text = |v: ValueRef<'_>| -> Option<String> {
        match v {
            // Valid UTF-8 (always, for what we write) takes the fast check.
            ValueRef::Text(t) => Some(match std::str::from_utf8(t) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(t).into_owned(),
            }),
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            ValueRef::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
            ValueRef::Null => None,
        }
    };
    let int = |v: ValueRef<'_>| -> Option<i64> {
        match v {
            ValueRef::Integer(i) => Some(i),
            ValueRef::Real(f) => Some(f as i64),
            ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
            _ => None,
        }
    };
    if matches!(v, ValueRef::Null) {
        return None;
    }
    Some(match kind {
        PropType::String { .. } => PropValue::String(text(v)?),
        PropType::Password => PropValue::Password(text(v)?),
        PropType::Date => PropValue::Date(Date::from_serialised(&text(v)?)?),
        PropType::Interval => PropValue::Interval(Interval::from_stored(&text(v)?)?),
        PropType::Link { .. } => PropValue::Link(int(v)?),
        PropType::Boolean => PropValue::Boolean(int(v)? != 0),
        PropType::Integer => PropValue::Integer(int(v)?),
        PropType::Number => PropValue::Number(match v {
            ValueRef::Real(f) => f,
            ValueRef::Integer(i) => i as f64,
            ValueRef::Text(t) => std::str::from_utf8(t).ok()?.trim().parse().ok()?,
            _ => return None,
        }),
        PropType::Multilink { .. } => return None,
    })
}

/// The SQL parameter for a value (Roundup's `hyperdb_to_sql_value`).
pub(crate) fn value_to_sql(v: &Option<PropValue>) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        None => V::Null,
        Some(PropValue::String(s)) | Some(PropValue::Password(s)) => V::Text(s.clone()),
        Some(PropValue::Date(d)) => V::Text(d.serialise()),
        Some(PropValue::Interval(i)) => V::Text(i.to_string()),
        Some(PropValue::Link(id)) => V::Integer(*id),
        Some(PropValue::Boolean(b)) => V::Integer(*b as i64),
        Some(PropValue::Integer(i)) => V::Integer(*i),
        Some(PropValue::Number(f)) => {
            if f.is_nan() {
                V::Null
            } else {
                V::Real(*f)
            }
        }
        Some(PropValue::Multilink(_)) => V::Null,
    }
}
