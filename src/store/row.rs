//! A class table's row as both backends lay it out: its non-Multilink columns
//! (Roundup's names and order; each backend names the SQL types) and which column
//! holds which property ([`RowLayout`]), and the columns and values of a row
//! written ([`insert_columns`], [`update_columns`]).

use crate::hyperdb::date::Date;
use crate::schema::{ClassDef, PropType};
use crate::store::{column_kind, Id, PropValue, Result, Values};

/// The non-Multilink columns of a class table with their declared types, sorted
/// by name as Roundup sorts them (Python string order of `_<prop>`).
/// `sql_type` is the backend's column type of a property type; the automatic
/// columns are declared as a Link (`_actor`, `_creator`) and a Date
/// (`_activity`, `_creation`), an Interval's `__<prop>_int__` helper as `BIGINT`.
pub fn columns(
    class: &ClassDef,
    sql_type: fn(&PropType) -> &'static str,
) -> Vec<(String, &'static str)> {
    let link = sql_type(&PropType::Integer);
    let date = sql_type(&PropType::Date);
    let mut cols: Vec<(String, &'static str)> = vec![
        ("_actor".into(), link),
        ("_activity".into(), date),
        ("_creator".into(), link),
        ("_creation".into(), date),
    ];
    for p in &class.properties {
        if p.kind.is_multilink() {
            continue;
        }
        cols.push((format!("_{}", p.name), sql_type(&p.kind)));
        if p.kind == PropType::Interval {
            cols.push((format!("__{}_int__", p.name), "BIGINT"));
        }
    }
    cols.sort();
    cols
}

/// How one class's row is read by `get`, whatever the SQL dialect: the columns
/// selected (then `__retired__`), which of them holds which property, and the
/// class's Multilinks. Built once per class when a store opens.
#[derive(Debug, Clone)]
pub struct RowLayout {
    /// The class's properties when built, to notice a different `ClassDef`.
    names: Vec<(String, PropType)>,
    /// The column names, in [`columns`]' order.
    pub columns: Vec<String>,
    /// (column index, property name, type) of every property column.
    pub props: Vec<(usize, String, PropType)>,
    /// The index of `__retired__`, selected after the columns.
    pub retired_col: usize,
    /// The Multilink property names, in the class's order.
    pub multilinks: Vec<String>,
}

impl RowLayout {
    /// The layout of `class`'s row.
    pub fn new(class: &ClassDef) -> RowLayout {
        let columns: Vec<String> = columns(class, |_| "").into_iter().map(|(c, _)| c).collect();
        let mut props = Vec::new();
        for (i, col) in columns.iter().enumerate() {
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
        let multilinks = class
            .properties
            .iter()
            .filter(|p| p.kind.is_multilink())
            .map(|p| p.name.clone())
            .collect();
        RowLayout {
            names: class
                .properties
                .iter()
                .map(|p| (p.name.clone(), p.kind.clone()))
                .collect(),
            retired_col: columns.len(),
            columns,
            props,
            multilinks,
        }
    }

    /// True when `class` has the properties this layout was built from.
    pub fn matches(&self, class: &ClassDef) -> bool {
        self.names.len() == class.properties.len()
            && self
                .names
                .iter()
                .zip(&class.properties)
                .all(|((n, k), p)| *n == p.name && *k == p.kind)
    }
}

/// A value for a column of a class table being written, before the backend
/// makes it an SQL parameter.
#[derive(Debug, Clone, Copy)]
pub enum ColumnValue<'v> {
    /// `id`, `_creator`, `_actor`: an integer.
    Int(Id),
    /// `_creation`, `_activity`.
    Date(Date),
    /// An Interval's `__<prop>_int__` helper: its seconds, NULL when unset.
    Seconds(Option<i64>),
    /// The `_<prop>` column of the property named first.
    Prop(&'v str, &'v Option<PropValue>),
}

/// The seconds of an Interval value for its `__<prop>_int__` column.
fn seconds(v: &Option<PropValue>) -> ColumnValue<'static> {
    ColumnValue::Seconds(match v {
        Some(PropValue::Interval(i)) => Some(i.as_seconds()),
        _ => None,
    })
}

/// The columns and parameters of a new row of `class` (Roundup's `addnode`):
/// `id`, `_creation`, `_activity`, `_creator`, `_actor`, then every
/// non-Multilink property in the class's order (an Interval's
/// `__<prop>_int__` before its `_<prop>`; unset ones NULL). `param` makes each
/// value the backend's parameter (and may refuse it). Multilinks are left to
/// the caller.
pub fn insert_columns<P>(
    class: &ClassDef,
    id: Id,
    values: &Values,
    user: Id,
    now: Date,
    mut param: impl FnMut(ColumnValue<'_>) -> Result<P>,
) -> Result<(Vec<String>, Vec<P>)> {
    let mut cols = vec![
        "id".to_string(),
        "_creation".into(),
        "_activity".into(),
        "_creator".into(),
        "_actor".into(),
    ];
    let mut args = vec![
        param(ColumnValue::Int(id))?,
        param(ColumnValue::Date(now))?,
        param(ColumnValue::Date(now))?,
        param(ColumnValue::Int(user))?,
        param(ColumnValue::Int(user))?,
    ];
    for p in &class.properties {
        if p.kind.is_multilink() {
            continue;
        }
        let v = values.get(&p.name).cloned().flatten();
        let prop = param(ColumnValue::Prop(&p.name, &v))?;
        if p.kind == PropType::Interval {
            cols.push(format!("__{}_int__", p.name));
            args.push(param(seconds(&v))?);
        }
        cols.push(format!("_{}", p.name));
        args.push(prop);
    }
    Ok((cols, args))
}

/// The column assignments of a changed row of `class` (Roundup's `setnode`):
/// `_activity` and `_actor` when `touch`, then each of `values` in order (an
/// Interval's `__<prop>_int__` before its `_<prop>`), made parameters by
/// `param`. A Multilink of `values` is handed to `multilink` (its new ids, none
/// for NULL) when it comes; names that are not properties are skipped.
pub fn update_columns<P>(
    class: &ClassDef,
    values: &Values,
    user: Id,
    now: Date,
    touch: bool,
    mut param: impl FnMut(ColumnValue<'_>) -> Result<P>,
    mut multilink: impl FnMut(&str, Vec<Id>) -> Result<()>,
) -> Result<(Vec<String>, Vec<P>)> {
    let mut sets = Vec::new();
    let mut args = Vec::new();
    if touch {
        sets.push("_activity".to_string());
        args.push(param(ColumnValue::Date(now))?);
        sets.push("_actor".to_string());
        args.push(param(ColumnValue::Int(user))?);
    }
    for (name, v) in values {
        let Some(p) = class.prop(name) else { continue };
        match &p.kind {
            PropType::Multilink { .. } => {
                let ids = match v {
                    Some(PropValue::Multilink(ids)) => ids.clone(),
                    _ => Vec::new(),
                };
                multilink(name, ids)?;
            }
            kind => {
                let prop = param(ColumnValue::Prop(name, v))?;
                if *kind == PropType::Interval {
                    sets.push(format!("__{name}_int__"));
                    args.push(param(seconds(v))?);
                }
                sets.push(format!("_{name}"));
                args.push(prop);
            }
        }
    }
    Ok((sets, args))
}
