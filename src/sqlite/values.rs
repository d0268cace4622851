//! Values between SQL and the store: one property cell to a [`PropValue`] and
//! back (Roundup's column formats), how a class's row is read ([`RowShape`]), and
//! the words Roundup's native full-text indexer stores ([`crate::store::index_words`]).

use crate::store::row::RowLayout;
use rusqlite::types::ValueRef;

use crate::hyperdb::date::Date;
use crate::hyperdb::interval::Interval;
use crate::schema::{ClassDef, PropType};
use crate::store::row::ColumnValue;
use crate::store::{PropValue, Result};

/// How one class's row is read by `get`: the SQL, and which column holds which
/// property ([`RowLayout`]). Built once per class when the store opens.
pub(crate) struct RowShape {
    /// The columns, the property columns and the Multilinks.
    pub(crate) layout: RowLayout,
    pub(crate) sql: String,
    /// Every Multilink of the class in one query (`None` without Multilinks):
    /// `(index into layout.multilinks, linkid)` rows of the item `?1`.
    pub(crate) multilinks_sql: Option<String>,
}

impl RowShape {
    pub(crate) fn new(class: &ClassDef) -> RowShape {
        let layout = RowLayout::new(class);
        let sql = format!(
            "select {},__retired__ from _{} where id=?1",
            layout.columns.join(","),
            class.name
        );
        let multilinks_sql = (!layout.multilinks.is_empty()).then(|| {
            let parts: Vec<String> = layout
                .multilinks
                .iter()
                .enumerate()
                .map(|(i, p)| format!("select {i}, linkid from {}_{p} where nodeid=?1", class.name))
                .collect();
            parts.join(" union all ")
        });
        RowShape {
            layout,
            sql,
            multilinks_sql,
        }
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

/// The SQL parameter for a column being written (Dates as Roundup's text).
pub(crate) fn column_param(c: ColumnValue<'_>) -> Result<rusqlite::types::Value> {
    Ok(match c {
        ColumnValue::Int(i) => i.into(),
        ColumnValue::Date(d) => d.serialise().into(),
        ColumnValue::Seconds(s) => s.map_or(rusqlite::types::Value::Null, Into::into),
        ColumnValue::Prop(_, v) => value_to_sql(v),
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
