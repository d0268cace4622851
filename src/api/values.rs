//! Turning stored values into XML-RPC values as Roundup's marshalling does
//! (reference §2.3), with one deliberate difference: password hashes never leave
//! the server.

use crate::store::{Id, PropValue};
use crate::xmlrpc::Value;

/// How Booleans are sent: `display`/`list` send ints, `set` results booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolAs {
    /// `<int>1</int>`
    Int,
    /// `<boolean>1</boolean>`
    Bool,
}

/// An id as Roundup shows it: a string.
pub fn id_value(id: Id) -> Value {
    Value::String(id.to_string())
}

/// The XML-RPC form of a stored value.
pub fn encode(v: Option<&PropValue>, bools: BoolAs) -> Value {
    match v {
        None => Value::Nil,
        Some(PropValue::String(s)) => Value::String(s.clone()),
        Some(PropValue::Password(p)) => password_struct(Some(p)),
        Some(PropValue::Date(d)) => Value::String(d.repr()),
        Some(PropValue::Interval(i)) => Value::String(i.repr()),
        Some(PropValue::Link(l)) => id_value(*l),
        Some(PropValue::Multilink(ids)) => Value::Array(ids.iter().map(|i| id_value(*i)).collect()),
        Some(PropValue::Boolean(b)) => match bools {
            BoolAs::Int => Value::Int(*b as i64),
            BoolAs::Bool => Value::Bool(*b),
        },
        Some(PropValue::Number(n)) => {
            if n.is_nan() {
                Value::Nil
            } else {
                Value::Double(*n)
            }
        }
        Some(PropValue::Integer(i)) => Value::Int(*i),
    }
}

/// A Password value: Roundup's struct shape (`scheme`, `password`, `plaintext`)
/// with the scheme only — the hash and any plaintext are withheld.
pub fn password_struct(stored: Option<&String>) -> Value {
    let Some(stored) = stored else {
        return Value::Nil;
    };
    let scheme = stored
        .strip_prefix('{')
        .and_then(|r| r.split_once('}'))
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    Value::Struct(vec![
        ("scheme".into(), Value::String(scheme)),
        ("password".into(), Value::Nil),
        ("plaintext".into(), Value::Nil),
    ])
}
