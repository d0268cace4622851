//! `schema()`: every class with its properties and their types (reference §2.1).

use super::args::arity;
use crate::error::Result;
use crate::items::Ctx;
use crate::xmlrpc::Value;

/// `schema()` -> `{class: [[prop, repr], ...]}`, properties sorted by name.
pub fn schema(ctx: &mut Ctx<'_>, params: &[Value]) -> Result<Value> {
    arity("schema", params, &[], 0, false)?;
    let classes = ctx
        .tracker
        .schema
        .classes
        .iter()
        .map(|c| {
            let mut props: Vec<(&str, String)> = c
                .properties
                .iter()
                .map(|p| (p.name.as_str(), p.kind.repr()))
                .collect();
            props.sort_by(|a, b| a.0.cmp(b.0));
            let arr = props
                .into_iter()
                .map(|(n, r)| Value::Array(vec![Value::str(n), Value::String(r)]))
                .collect();
            (c.name.clone(), Value::Array(arr))
        })
        .collect();
    Ok(Value::Struct(classes))
}
